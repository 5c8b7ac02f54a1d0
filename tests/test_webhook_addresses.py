"""Where a webhook delivery may go (issue 15, point 4: server-side request forgery).

In production a receiver must be a public address however its host is spelled, and a name is resolved
when each delivery (or ping) is sent, with the resolver the app holds: here one the test controls. Every
address it gives is checked, the connection goes to a checked one (never to a second answer of the same
name), redirects are not followed, and whatever stops a delivery reads the same to its owner.

Receivers are real HTTP(S) servers on loopback addresses (tests/webhook_receiver.py). A public address
cannot be reached from a test, so where a delivery to one was aimed is read from a real HTTP proxy on
127.0.0.1 that records the target and refuses it (``EgressProxy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.config import Settings
from app.errors import Invalid
from app.models import Webhook
from app.services import webhooks as webhook_service
from tests.conftest import make_settings
from tests.factories import build_world, submit
from tests.support.apps import build_app
from tests.support.webhooks import attempts, create_hook, deliveries
from tests.webhook_receiver import EgressProxy, Receiver, tls_files

PRODUCTION = Settings(_env_file=None, environment="production", secret_key="a-real-secret")  # type: ignore[call-arg]
DEVELOPMENT = Settings(_env_file=None, environment="development", secret_key="a-real-secret")  # type: ignore[call-arg]
PUBLIC = "93.184.216.34"  # a public address; nothing here ever connects to it


class Resolver:
    """A resolver the test controls: each name gives its answers in turn, one per lookup (the last one
    again after that); an unknown name does not resolve. Every lookup is recorded."""

    def __init__(self, answers: dict[str, Sequence[Sequence[str] | Exception]] | None = None) -> None:
        self.answers = {name: list(script) for name, script in (answers or {}).items()}
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        script = self.answers.get(host)
        if not script:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Hanging:
    """A resolver that never answers (a DNS server that drops the query)."""

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        await asyncio.Event().wait()
        return []


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@contextlib.asynccontextmanager
async def app_in(db_url: str, **overrides: Any):
    """An app on this test's database with these settings: (app, its API client, its settings)."""
    settings = make_settings(db_url, **overrides)
    application = build_app(settings)
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client, settings
    finally:
        await application.state.engine.dispose()


@pytest.fixture
async def production(db_url):
    """An app in production mode (a short webhook timeout, so the silent resolver is soon given up on)."""
    async with app_in(db_url, environment="production", webhook_timeout_seconds=1) as running:
        yield running


async def deliver(sessionmaker, settings, resolver, http: httpx.AsyncClient | None = None, **kwargs: Any) -> int:
    async with webhook_service.http_client() as own:
        return await webhook_service.deliver_due(sessionmaker, http or own, worker_id="test-worker", settings=settings,
                                                 resolver=resolver, **kwargs)


# --- the check: every spelling ------------------------------------------------------------------------

# Hosts that are this machine, a private, link-local, shared or reserved network, as a URL may spell them.
NOT_PUBLIC_HOSTS = [
    # IPv4 in the C library's forms: one number, hexadecimal, octal, short, with a trailing dot
    "2130706433", "0x7f.1", "127.1", "0", "0x7f000001", "017700000001", "0x7f.0x0.0x0.0x1", "0177.1",
    "127.0.0.1.", "127.255.255.254", "0.0.0.0", "0x0", "00", "0x",
    # the issue's names for this machine
    "localhost", "localhost.", "LOCALHOST", "api.localhost", "api.localhost.",
    # private, shared (CGNAT), link-local (cloud metadata), reserved, multicast, broadcast, documentation
    "10.0.0.1", "10.1", "167772161", "172.16.0.1", "172.31.255.255", "192.168.1.1", "192.168.257",
    "100.64.0.1", "169.254.169.254", "0xa9.0xfe.0xa9.0xfe", "2852039166", "192.0.0.1", "192.0.2.1",
    "198.18.0.1", "198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "192.88.99.1",
    # IPv6: loopback, unspecified, mapped and compatible IPv4, link-local (with a zone), unique-local,
    # site-local, multicast, NAT64 and 6to4 carrying a private IPv4, Teredo, documentation, discard
    "[::1]", "[0:0:0:0:0:0:0:1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:10.0.0.1]",
    "[::ffff:169.254.169.254]", "[::127.0.0.1]", "[fe80::1]", "[fe80::1%25eth0]", "[fd00::1]", "[fc00::1]",
    "[fec0::1]", "[ff02::1]", "[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::a00:1]",
    "[2002:7f00:1::1]", "[2002:c0a8:101::1]", "[2001::1]", "[2001:db8::1]", "[100::1]", "[3fff::1]",
]


@pytest.mark.parametrize("host", NOT_PUBLIC_HOSTS)
def test_production_refuses_every_spelling_of_an_address_that_is_not_public(host):
    for url in (f"https://{host}/hook", f"https://{host}:8443/hook"):
        with pytest.raises(Invalid) as refused:
            webhook_service.check_url(url, settings=PRODUCTION)
        assert refused.value.code == "private_webhook_url", url
        with pytest.raises(Invalid) as insecure:  # and plain http, as ever
            webhook_service.check_url(url.replace("https://", "http://"), settings=PRODUCTION)
        assert insecure.value.code in ("insecure_webhook_url", "private_webhook_url")


@pytest.mark.parametrize("host", [
    PUBLIC, "8.8.8.8", "1.1", "0x5db8d822", "1572395042", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]",
    "[64:ff9b::808:808]", "[2002:808:808::1]", "hooks.example.cn", "xn--fiq228c.cn", "例子.中国",
])
def test_production_takes_public_addresses_and_names(host):
    url = f"https://{host}/minyi"
    assert webhook_service.check_url(url, settings=PRODUCTION) == url


@pytest.mark.parametrize("url", [
    # (four dotted parts with leading zeros: the sender's URL parser refuses them outright)
    "https://0177.0.0.1/", "https://127.000.000.001/",
    "https://1.2.3.256/", "https://4294967296/", "https://1.2.3.4.5/", "https://08/", "https://example.123/",
    "https://[::1/", "https://[1::2::3]/", "https://%31%32%37.0.0.1/", "https://１２７.０.０.１/",
    "https://example.cn\\@127.0.0.1/", "https://example.cn:0/", "https://example.cn:65536/",
    "https://user@example.cn/", "ftp://example.cn/", "https:///hook", "https://exa mple.cn/",
])
def test_a_host_that_is_no_address_and_no_name_is_invalid(url):
    for settings in (PRODUCTION, DEVELOPMENT):
        with pytest.raises(Invalid) as refused:
            webhook_service.check_url(url, settings=settings)
        assert refused.value.code == "invalid_webhook_url", url


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0", "0177.0.0.1", "0x7f.0x0.0x0.0x1",
                                  "127.000.000.001", "10.1", "192.168.257", "0xa9.0xfe.0xa9.0xfe", "1.1"])
def test_numeric_hosts_are_read_as_the_c_library_reads_them(host):
    """The check reads a numeric host as the system's resolver will (inet_aton: what getaddrinfo uses)."""
    assert webhook_service.literal_address(host) == ipaddress.IPv4Address(socket.inet_aton(host))


@pytest.mark.parametrize(("environment", "url"), [
    ("test", "http://127.1:8080/hook"), ("test", "http://[::ffff:127.0.0.1]:8080/hook"),
    ("test", "http://hooks.localhost:8080/hook"), ("development", "http://localhost./hook"),
    ("development", "https://10.0.0.5/hook"), ("development", "https://[fd00::5]/hook"),
])
def test_outside_production_private_receivers_still_work(environment, url):
    settings = Settings(_env_file=None, environment=environment, secret_key="a-real-secret")  # type: ignore[call-arg]
    assert webhook_service.check_url(url, settings=settings) == url


@pytest.mark.parametrize(("settings", "answers", "allowed"), [
    (PRODUCTION, [PUBLIC], True),
    (PRODUCTION, ["2606:4700:4700::1111", PUBLIC], True),
    (PRODUCTION, ["127.0.0.1"], False),
    (PRODUCTION, ["10.0.0.1"], False),
    (PRODUCTION, ["169.254.169.254"], False),
    (PRODUCTION, ["100.64.0.1"], False),
    (PRODUCTION, ["::1"], False),
    (PRODUCTION, ["fe80::1%eth0"], False),
    (PRODUCTION, ["fd00::1"], False),
    (PRODUCTION, ["::ffff:127.0.0.1"], False),
    (PRODUCTION, ["64:ff9b::a9fe:a9fe"], False),
    (PRODUCTION, ["2002:a00:1::1"], False),
    (PRODUCTION, ["224.0.0.251"], False),
    (PRODUCTION, [PUBLIC, "10.0.0.1"], False),  # one bad answer refuses them all
    (PRODUCTION, ["10.0.0.1", PUBLIC], False),
    (PRODUCTION, [], False),
    (PRODUCTION, ["not-an-address"], False),
    (DEVELOPMENT, ["10.0.0.1"], True),
    (DEVELOPMENT, ["fd00::1"], True),
])
async def test_every_address_a_name_resolves_to_is_checked(settings, answers, allowed):
    resolver = Resolver({"hooks.example.cn": [answers]})
    url = "https://hooks.example.cn/minyi"
    if allowed:
        target, addresses = await webhook_service.receiver_addresses(url, settings=settings, resolver=resolver)
        assert target.host == "hooks.example.cn" and [str(a) for a in addresses] == answers
    else:
        with pytest.raises(webhook_service.Unreachable):
            await webhook_service.receiver_addresses(url, settings=settings, resolver=resolver)
    assert resolver.lookups == ["hooks.example.cn"]


async def test_plain_http_goes_to_this_machine_only_even_by_name():
    resolver = Resolver({"hooks.localhost": [["192.168.1.5"]]})
    test_settings = Settings(_env_file=None, environment="test", secret_key="s")  # type: ignore[call-arg]
    with pytest.raises(webhook_service.Unreachable, match="plain http"):
        await webhook_service.receiver_addresses("http://hooks.localhost:8080/", settings=test_settings,
                                                 resolver=resolver)


async def test_the_issues_addresses_are_refused_through_the_api_in_production(production):
    app, client, _ = production
    world = await build_world(app.state.sessionmaker)
    kept = await create_hook(client, world.auth("admin"), "https://hooks.example.cn/minyi")
    for url in ("https://2130706433/", "http://0x7f.1/", "http://127.1/", "http://0/", "http://localhost./",
                "http://[::ffff:127.0.0.1]/", "https://0x7f.1/", "https://127.1/", "https://0/",
                "https://localhost./", "https://[::ffff:127.0.0.1]/", "https://[fe80::1]/", "https://[fd12::1]/"):
        for answer in (
            await client.post("/api/v1/webhooks", json={"url": url, "events": ["form.submitted"]},
                              headers=world.auth("admin")),
            await client.patch(f"/api/v1/webhooks/{kept['id']}", json={"url": url}, headers=world.auth("admin")),
        ):
            assert answer.status_code == 422, (url, answer.text)
            assert answer.json()["code"] in ("private_webhook_url", "insecure_webhook_url"), url
    async with app.state.sessionmaker() as session:
        assert list((await session.scalars(select(Webhook.url))).all()) == ["https://hooks.example.cn/minyi"]


# --- at delivery: resolve, check, connect to what was checked ---------------------------------------


async def test_in_production_a_name_that_resolves_to_this_machine_is_never_connected_to(production, receiver, caplog):
    app, client, settings = production
    world = await build_world(app.state.sessionmaker)
    # Accepted when created: a name is judged when it is used.
    hook = await create_hook(client, world.auth("admin"), receiver.url(host="hooks.example.cn").replace("http:", "https:"))
    await submit(client)
    resolver = Resolver({"hooks.example.cn": [["127.0.0.1"]]})
    with caplog.at_level(logging.WARNING, logger="app.services.webhooks"):
        assert await deliver(app.state.sessionmaker, settings, resolver) == 1
    assert receiver.connections == 0 and resolver.lookups == ["hooks.example.cn"]
    (delivery,) = await deliveries(app.state.sessionmaker)
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == (
        "pending", None, webhook_service.UNREACHABLE)
    assert [a.error for a in await attempts(app.state.sessionmaker)] == [webhook_service.UNREACHABLE]
    # The operator's log says why; the owner's delivery log does not.
    assert any("resolved to 127.0.0.1, not a public address" in r.getMessage() for r in caplog.records)
    detail = await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery.id}", headers=world.auth("admin"))
    assert "127.0.0.1" not in detail.text


async def test_in_production_the_ping_reads_the_same_whatever_stopped_it(production, receiver):
    """A refused address, a name that does not resolve and a resolver that never answers give one and the
    same answer, and nothing connects: the ping is no port scanner."""
    app, client, settings = production
    world = await build_world(app.state.sessionmaker)
    app.state.webhook_resolver = Resolver({"inside.example.cn": [["127.0.0.1"]], "metadata.example.cn": [["169.254.169.254"]]})
    answers = []
    for name in ("inside.example.cn", "metadata.example.cn", "nowhere.example.cn"):
        hook = await create_hook(client, world.auth("admin"), f"https://{name}:{receiver.port}/hook")
        answer = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=world.auth("admin"))
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    app.state.webhook_resolver = Hanging()
    answer = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=world.auth("admin"))
    answers.append(answer.json())
    assert [(a["delivered"], a["status_code"], a["error"]) for a in answers] == [
        (False, None, webhook_service.UNREACHABLE)] * 4
    assert receiver.connections == 0


async def test_outside_production_a_closed_port_and_a_silent_receiver_read_the_same_in_the_ping(db_url, receiver):
    async with app_in(db_url, webhook_timeout_seconds=0.5) as (app, client, _):
        world = await build_world(app.state.sessionmaker)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        shut = await create_hook(client, world.auth("admin"), f"http://127.0.0.1:{closed}/hook")
        silent = await create_hook(client, world.auth("admin"), receiver.url("silent"))
        receiver.expect("silent", silent["secret"])
        receiver.hang_next(1, seconds=30, path="silent")
        answers = [(await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=world.auth("admin"))).json()
                   for hook in (shut, silent)]
        receiver.release()
    assert [(a["delivered"], a["status_code"], a["error"]) for a in answers] == [
        (False, None, webhook_service.UNREACHABLE)] * 2
    assert receiver.arrivals("silent")  # the silent one did get the request, and never answered in time


async def test_dns_rebinding_in_production_the_connection_goes_to_the_address_checked(production, receiver):
    """The name answers a public address when checked and this machine afterwards: the delivery is aimed
    at the public address (the proxy saw it), the name is not asked again for that attempt, and the next
    attempt, checked afresh, is refused. This machine's receiver never sees a connection."""
    app, client, settings = production
    world = await build_world(app.state.sessionmaker)
    await create_hook(client, world.auth("admin"), f"https://rebind.example.cn:{receiver.port}/hook")
    await submit(client)
    resolver = Resolver({"rebind.example.cn": [[PUBLIC], ["127.0.0.1"]]})
    with EgressProxy() as proxy:
        async with httpx.AsyncClient(proxy=proxy.url, trust_env=False, follow_redirects=False) as through_proxy:
            assert await deliver(app.state.sessionmaker, settings, resolver, http=through_proxy) == 1
            assert proxy.targets == [f"{PUBLIC}:{receiver.port}"] and resolver.lookups == ["rebind.example.cn"]
            (delivery,) = await deliveries(app.state.sessionmaker)
            assert delivery.last_error == webhook_service.UNREACHABLE  # the proxy refused: not reached
            assert await deliver(app.state.sessionmaker, settings, resolver, http=through_proxy,
                                 now=delivery.next_attempt_at) == 1
    assert proxy.targets == [f"{PUBLIC}:{receiver.port}"] and resolver.lookups == ["rebind.example.cn"] * 2
    assert receiver.connections == 0
    assert [a.error for a in await attempts(app.state.sessionmaker)] == [webhook_service.UNREACHABLE] * 2


async def test_the_delivery_reaches_the_address_checked_under_the_receivers_own_name(client, sessionmaker, settings):
    """End to end on two loopback addresses: the name answers 127.0.0.2 when checked and 127.0.0.1
    afterwards. The receiver on 127.0.0.2 gets the delivery, signed and with the name in its Host header;
    the one on 127.0.0.1, on the same port, sees no connection."""
    with Receiver("127.0.0.1") as second_answer, Receiver("127.0.0.2", second_answer.port) as checked:
        world = await build_world(sessionmaker)
        url = checked.url(host="rebind.localhost")
        hook = await create_hook(client, world.auth("admin"), url, ["form.submitted"])
        checked.expect("hook", hook["secret"])
        await submit(client)
        resolver = Resolver({"rebind.localhost": [["127.0.0.2"], ["127.0.0.1"]]})
        assert await deliver(sessionmaker, settings, resolver) == 1
        (request,) = checked.requests
        assert request.headers["host"] == f"rebind.localhost:{checked.port}" and checked.rejected == []
        assert second_answer.connections == 0 and resolver.lookups == ["rebind.localhost"]
        assert [d.status for d in await deliveries(sessionmaker)] == ["delivered"]


async def test_https_to_a_checked_address_verifies_the_receivers_own_name(client, sessionmaker, settings, tmp_path):
    """The connection goes to the address, the TLS handshake names the host (SNI) and the certificate is
    verified against it; a certificate for another name fails the attempt."""
    cert, key, ca = tls_files(tmp_path, "hooks.localhost")
    trusting = ssl.create_default_context(cafile=str(ca))
    with Receiver("127.0.0.1", tls=(cert, key)) as secure:
        world = await build_world(sessionmaker)
        good = await create_hook(client, world.auth("admin"), secure.url("good", host="hooks.localhost"))
        wrong = await create_hook(client, world.auth("admin"), secure.url("wrong", host="other.localhost"))
        secure.expect("good", good["secret"])
        secure.expect("wrong", wrong["secret"])
        await submit(client)
        resolver = Resolver({"hooks.localhost": [["127.0.0.1"]], "other.localhost": [["127.0.0.1"]]})
        async with httpx.AsyncClient(verify=trusting, follow_redirects=False, trust_env=False) as http:
            assert await deliver(sessionmaker, settings, resolver, http=http) == 2
        assert [r.path for r in secure.requests] == ["good"]
        by_webhook = {d.webhook_id: d for d in await deliveries(sessionmaker)}
        assert by_webhook[good["id"]].status == "delivered"
        assert by_webhook[wrong["id"]].last_error == webhook_service.UNREACHABLE


async def test_a_redirect_is_not_followed_not_even_to_this_machine(client, sessionmaker, settings, receiver):
    with Receiver() as target:
        world = await build_world(sessionmaker)
        hook = await create_hook(client, world.auth("admin"), receiver.url(), ["form.submitted"])
        receiver.expect("hook", hook["secret"])
        target.expect("hook", hook["secret"])
        await submit(client)
        receiver.fail_next(2, status=302, location=target.url())
        resolver = Resolver()
        assert await deliver(sessionmaker, settings, resolver) == 1
        (delivery,) = await deliveries(sessionmaker)
        assert (delivery.status, delivery.last_status_code) == ("pending", 302)
        assert "HTTP 302" in delivery.last_error and "重定向不跟随" in delivery.last_error
        ping = (await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=world.auth("admin"))).json()
        assert (ping["delivered"], ping["status_code"]) == (False, 302)
        assert target.connections == 0 and resolver.lookups == []  # a literal address: nothing to resolve
