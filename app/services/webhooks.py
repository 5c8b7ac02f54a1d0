"""Webhooks (回调): integrators' subscriptions to form changes, and their delivery from the outbox.

A webhook belongs to the API client that created it (scope ``webhooks``); an admin manages every one
and creates office-owned ones (no client). Its signing secret is shown once and stored encrypted with a
key derived from the app secret. After a rotation the previous secret keeps signing beside the new one
for ``ROTATION_GRACE``, so a receiver can switch without losing a delivery.

Delivery, the Standard Webhooks way (https://www.standardwebhooks.com): each ``WebhookDelivery`` (one
change to one webhook, written by ``changes.record`` in the action's transaction) is POSTed as
``{"id", "type", "at", "data"}`` with ``webhook-id`` (the change's stable id, the same on every retry and
redelivery, for the receiver to dedupe by), ``webhook-timestamp`` and ``webhook-signature``. A 2xx
answer delivers it; anything else is retried on ``RETRY_DELAYS`` (about a day), then it has failed.

``deliver_due`` is what workers run: a short transaction claims due deliveries (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, the write lock on SQLite) by setting a lease (``claimed_until``); the sends
happen outside any transaction; each result is recorded in a transaction of its own, and only changes
the delivery if the claim is still this worker's. A worker killed mid-send leaves its claims to expire
and another sends them again: at least once, never lost. A webhook's deliveries go out one after the
other in change order, and none is claimed while another of the same webhook is in flight; different
webhooks are sent concurrently, so one slow receiver never holds up the others. A claim reads only what it
takes: the webhooks that may be served now (a handful of rows), then each one's next due deliveries through
the partial indexes over pending rows, whatever the backlog.

Every delivery is capped: ``MAX_ATTEMPTS`` attempts over about a day, then it has failed. So is every
receiver: when a delivery fails for good and nothing reached the receiver since ``PAUSE_AFTER`` (about a
day), the webhook is paused (switched off with ``paused_at`` and ``paused_reason``, an audit line and a
log line) and gets no new deliveries and no claims until its owner resumes it.

Where a delivery may go (server-side request forgery): the address is resolved when it is sent, with the
resolver the app holds (``app.state.webhook_resolver``; tests install their own), every address it gives
is checked, and the connection goes to an address that was checked (the URL is rewritten to it, with the
original ``Host`` header and TLS server name), never through a proxy and never following a redirect. In
production only public addresses pass (``is_public``); in development and test, private ones too, and
plain ``http://`` only to this machine. Whatever stops a delivery before an answer comes back (an address
refused, a name that does not resolve, a refused connection, a timeout) is recorded with one neutral text,
so a ping cannot tell a closed port from a refused address; the log says which it was.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import (
    Integer,
    String,
    Text,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app.config import TZ, Settings
from app.db import transaction
from app.errors import Conflict, Invalid, NotFound
from app.models import (
    ApiClient,
    AuditEvent,
    DeliveryStatus,
    FormChange,
    Role,
    Scope,
    UTCDateTime,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)
from app.models.integrations import PauseReason
from app.services import pagination
from app.services.auth import Principal
from app.services.changes import EVENT_TYPES

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
USER_AGENT = "Minyi-Webhooks/1"
# The cap on one delivery: this many attempts, then it has failed (a redelivery starts a fresh set).
MAX_ATTEMPTS = 10
# Wait after the n-th failed attempt: the ten attempts spread over about 24 hours (30 s, 2 min, 10 min,
# 30 min, 1 h, 2 h, 4 h, 8 h, 8 h), each wait ±10 % at random so receivers coming back from an outage are
# not hit by every worker at the same second.
RETRY_DELAYS: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s) for s in (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
)
assert len(RETRY_DELAYS) == MAX_ATTEMPTS - 1, "one wait between each two attempts"
JITTER = 0.1
# The cap on one receiver: a webhook is paused when a delivery fails for good and nothing reached the
# receiver for this long. It is the shortest time a delivery's attempts can span (about 21 hours), so the
# first delivery to fail for good at a receiver that failed throughout pauses it.
PAUSE_AFTER = sum(RETRY_DELAYS, timedelta()) * (1 - JITTER)
ROTATION_GRACE = timedelta(hours=24)
MAX_WEBHOOKS_PER_OWNER = 20
# At most this many deliveries of one webhook are claimed in one round, so a backlog at one receiver
# leaves room in the round for the others.
PER_WEBHOOK_PER_ROUND = 10
MAX_ERROR_CHARS = 500
# Where private addresses (and plain http:// to this machine) are allowed; everywhere else is production.
ENVIRONMENTS_ALLOWING_PRIVATE = frozenset({"development", "test"})
# What an attempt that got no answer records, whatever the cause (see the module's docstring).
UNREACHABLE = "未能送达接收方：地址不可用、无法连接或超时 (receiver not reached)"
DECRYPT_FAILED = "无法解密签名密钥（MINYI_SECRET_KEY 已更改？请轮换密钥）"
WORKER_LABEL = "系统：回调投递 (webhook worker)"


# --- secrets -----------------------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, *, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256(secret bytes, "id.timestamp.body")>``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _fernet(secret_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"minyi-webhook-secret:" + secret_key.encode()).digest()))


@dataclass(frozen=True)
class Secrets:
    """A webhook's signing secret, and the one it replaced while that still signs (after a rotation)."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def signing(self, now: datetime) -> list[str]:
        if self.previous and self.previous_until and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]


def _seal(secret_key: str, value: Secrets) -> str:
    raw = {"current": value.current, "previous": value.previous,
           "previous_until": value.previous_until.isoformat() if value.previous_until else None}
    return _fernet(secret_key).encrypt(json.dumps(raw).encode()).decode()


def _open(secret_key: str, sealed: str) -> Secrets:
    """The secrets of a webhook; raises ``InvalidToken`` when MINYI_SECRET_KEY changed since they were sealed."""
    raw = json.loads(_fernet(secret_key).decrypt(sealed.encode()))
    until = raw.get("previous_until")
    return Secrets(raw["current"], raw.get("previous"), datetime.fromisoformat(until) if until else None)


# --- rules -------------------------------------------------------------------------------------------


def normalize_events(events: Sequence[str]) -> str:
    """The stored form of a subscription: known types, each once, in ``EVENT_TYPES`` order, space-padded
    (the outbox's fan-out matches ``" <type> "``)."""
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown:
        raise Invalid(
            f"未知的事件类型：{', '.join(unknown)}。可订阅：{', '.join(EVENT_TYPES)}。", code="unknown_event",
            extra={"unknown": unknown, "allowed": list(EVENT_TYPES)},
        )
    chosen = [event for event in EVENT_TYPES if event in events]
    if not chosen:
        raise Invalid("请至少订阅一种事件。", code="no_events", extra={"allowed": list(EVENT_TYPES)})
    return " " + " ".join(chosen) + " "


def event_list(webhook: Webhook) -> list[str]:
    return webhook.events.split()


# --- receiver addresses ----------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses to try, as text ("203.0.113.7", "2001:db8::1"). Raises when the name does not
# resolve. The app holds one (``app.state.webhook_resolver``) and hands it to the worker and the ping.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer for ``host``, through the event loop (a thread: never blocking it)."""
    answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for _family, _type, _proto, _name, sockaddr in answers]


# Not public, whatever a name or a spelling says (IANA's special-purpose registries). IPv4:
_V4_NOT_PUBLIC = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8",  # "this network" (0.0.0.0 reaches this machine)
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (cloud metadata services live here)
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "198.18.0.0/15",  # benchmarking
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255
))
# IPv6: only global unicast (2000::/3) can be public, less these; addresses that carry an IPv4 address
# (mapped, NAT64, 6to4) are judged by it. Loopback, unspecified, IPv4-compatible, link-local, site-local,
# unique-local (fc00::/7) and multicast all fall outside 2000::/3.
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_NOT_PUBLIC = tuple(ipaddress.IPv6Network(n) for n in (
    "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
    "2001:db8::/32", "3fff::/20",  # documentation
))
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_6TO4 = ipaddress.IPv6Network("2002::/16")


def is_public(address: IPAddress) -> bool:
    """Whether a delivery may go to ``address`` in production: a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _6TO4:
            return address.sixtofour is not None and is_public(address.sixtofour)
        return address in _V6_GLOBAL_UNICAST and not any(address in network for network in _V6_NOT_PUBLIC)
    return not any(address in network for network in _V4_NOT_PUBLIC)


def _is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


# An IPv4 part as the C library reads it (inet_aton, which getaddrinfo uses for a numeric host): decimal,
# 0x hexadecimal or 0-led octal.
_V4_PART = re.compile(r"0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form a resolver would take as one: ``127.0.0.1``, ``127.1``,
    ``0x7f.1``, ``017700000001``, ``2130706433``, ``0``, ``[::ffff:127.0.0.1]`` (brackets optional),
    with or without a trailing dot. None for a name. A host whose last label is a number but that is no
    address (``1.2.3.256``, ``4294967296``, ``example.123``) is refused (422 ``invalid_webhook_url``), as
    browsers refuse it (WHATWG URL: a host that "ends in a number" must be an IPv4 address)."""
    host = host.lower().strip("[]")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.replace("%25", "%"))
        except ValueError as exc:
            raise Invalid("回调地址无效。", code="invalid_webhook_url") from exc
    host = host.removesuffix(".")
    parts = host.split(".")
    if not _NUMERIC_LABEL.fullmatch(parts[-1]):
        return None
    values: list[int] = []
    for part in parts:
        if len(parts) > 4 or not _V4_PART.fullmatch(part):
            raise Invalid("回调地址无效：不是有效的 IP 地址。", code="invalid_webhook_url")
        if part.startswith("0x"):
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0") and len(part) > 1:
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (4 - len(head)):
        raise Invalid("回调地址无效：不是有效的 IP 地址。", code="invalid_webhook_url")
    return ipaddress.IPv4Address(sum(value << (8 * (3 - index)) for index, value in enumerate(head)) + last)


def _is_localhost_name(host: str) -> bool:
    name = host.lower().removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761: always this machine


def _private_allowed(settings: Settings) -> bool:
    return settings.environment in ENVIRONMENTS_ALLOWING_PRIVATE


def _parse(url: str) -> httpx.URL:
    """The URL as the sender reads it (one parser for checking and sending, so they cannot disagree)."""
    if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in url):
        raise Invalid("回调地址无效。", code="invalid_webhook_url")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise Invalid("回调地址无效。", code="invalid_webhook_url") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid("回调地址须为 http(s):// 开头的完整网址。", code="invalid_webhook_url")
    if parsed.userinfo:
        raise Invalid("回调地址不能包含用户名或密码；请用签名验证来源。", code="invalid_webhook_url")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise Invalid("回调地址无效：端口须在 1–65535 之间。", code="invalid_webhook_url")
    return parsed


def check_url(url: str, *, settings: Settings) -> str:
    """A receiver address, as far as it can be judged without resolving it (names are checked again
    when each delivery is sent, see ``receiver_addresses``): ``https://`` anywhere; ``http://`` only to
    this machine (localhost, ``*.localhost``, 127.0.0.0/8, ::1) and only in development and test. In
    production an address of this machine or of a private or reserved network, in any spelling, is
    refused, so a client cannot aim our worker inside the office network."""
    url = url.strip()
    parsed = _parse(url)
    host = parsed.raw_host.decode("ascii")
    address = literal_address(host)
    this_machine = _is_localhost_name(host) or (address is not None and _is_loopback(address))
    private_allowed = _private_allowed(settings)
    if parsed.scheme == "http" and not (private_allowed and this_machine):
        raise Invalid("回调地址须使用 https（仅开发和测试环境允许 http://localhost）。", code="insecure_webhook_url")
    if not private_allowed and (_is_localhost_name(host) or (address is not None and not is_public(address))):
        raise Invalid("回调地址不能指向本机或内网地址。", code="private_webhook_url")
    return url


class Unreachable(Exception):
    """A receiver not found (``refused`` False) or not to be connected to (True); the reason is for the
    log, never for the caller."""

    def __init__(self, reason: str, *, refused: bool = True) -> None:
        super().__init__(reason)
        self.refused = refused


async def receiver_addresses(
    url: str, *, settings: Settings, resolver: Resolver
) -> tuple[httpx.URL, list[IPAddress]]:
    """The receiver's URL and the addresses a delivery may connect to, resolved now. Every address the
    resolver gives is checked; one that may not be used refuses them all (a name answering both a public
    and a private address is not to be trusted with either)."""
    try:
        check_url(url, settings=settings)
    except Invalid as exc:
        raise Unreachable(f"address refused ({exc.code}): {exc.detail}") from exc
    parsed = _parse(url.strip())
    host = parsed.raw_host.decode("ascii")
    literal = literal_address(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            answers = await resolver(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        except Exception as exc:  # no such name, no DNS, a resolver's own failure: all "not reached"
            raise Unreachable(f"{host} did not resolve: {type(exc).__name__}: {exc}", refused=False) from exc
        addresses = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(str(answer))
            except ValueError as exc:
                raise Unreachable(f"{host} resolved to {answer!r}, not an address") from exc
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise Unreachable(f"{host} resolved to no address", refused=False)
    for address in addresses:
        if not _private_allowed(settings) and not is_public(address):
            raise Unreachable(f"{host} resolved to {address}, not a public address")
        if parsed.scheme == "http" and not _is_loopback(address):
            raise Unreachable(f"{host} resolved to {address}: plain http goes to this machine only")
    return parsed, addresses


def owner_of(principal: Principal) -> ApiClient | None:
    """Who manages webhooks here: an API client with scope ``webhooks`` (its own), or an admin (all of
    them; returns None). Anyone else: 401 or 403."""
    if principal.client is not None:
        return principal.require_scope(Scope.webhooks)
    principal.require_role(Role.admin)
    return None


def _mine(principal: Principal) -> Any:
    client = owner_of(principal)
    return Webhook.client_id == client.id if client is not None else true()


# --- managing webhooks -------------------------------------------------------------------------------


async def list_webhooks(
    session: AsyncSession, *, principal: Principal, limit: int, cursor: str | None
) -> tuple[Sequence[Webhook], str | None]:
    query = select(Webhook).where(_mine(principal)).order_by(Webhook.id)
    return await pagination.paginate(session, query, limit=limit, cursor=cursor)


async def get_or_raise(session: AsyncSession, *, principal: Principal, webhook_id: int, for_update: bool = False) -> Webhook:
    """The webhook if ``principal`` manages it; another client's webhook is a 404 like a missing one."""
    query = select(Webhook).where(Webhook.id == webhook_id, _mine(principal))
    if for_update:
        query = query.with_for_update()
    webhook = await session.scalar(query)
    if webhook is None:
        raise NotFound(f"回调 {webhook_id} 不存在。", code="webhook_not_found")
    return webhook


async def create(
    session: AsyncSession, *, principal: Principal, url: str, events: Sequence[str], settings: Settings,
    now: datetime | None = None,
) -> tuple[Webhook, str]:
    """A new webhook and its secret (the only time the secret is shown)."""
    client = owner_of(principal)
    client_id = client.id if client is not None else None
    owned = await session.scalar(select(func.count()).select_from(Webhook).where(
        Webhook.client_id == client_id if client_id is not None else Webhook.client_id.is_(None)))
    if (owned or 0) >= MAX_WEBHOOKS_PER_OWNER:
        raise Conflict(f"每个接口客户端最多 {MAX_WEBHOOKS_PER_OWNER} 个回调。", code="too_many_webhooks")
    secret = new_secret()
    webhook = Webhook(
        client_id=client_id, url=check_url(url, settings=settings), events=normalize_events(events),
        secret=_seal(settings.secret_key, Secrets(secret)), active=True, created_at=now or utcnow(),
    )
    session.add(webhook)
    await session.flush()
    return webhook, secret


async def update_webhook(
    session: AsyncSession, *, principal: Principal, webhook_id: int, data: dict[str, Any], settings: Settings,
) -> Webhook:
    """Change ``url``, ``events`` and/or ``active`` (only the keys present). Inactive webhooks get no new
    deliveries, and their pending ones wait until they are active again. Switching a paused webhook on
    resumes it (as ``resume`` does, except that its waiting deliveries keep their times)."""
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id, for_update=True)
    for key in ("url", "events", "active"):
        if key in data and data[key] is None:
            raise Invalid(f"{key} 不能为 null。", code="invalid_webhook")
    if "url" in data:
        webhook.url = check_url(data["url"], settings=settings)
    if "events" in data:
        webhook.events = normalize_events(data["events"])
    if "active" in data:
        if data["active"]:
            _switch_on(webhook)
        else:
            webhook.active = False
    await session.flush()
    return webhook


def _switch_on(webhook: Webhook) -> None:
    webhook.active = True
    webhook.paused_at = webhook.paused_reason = webhook.failing_since = None


async def resume(
    session: AsyncSession, *, principal: Principal, webhook_id: int, now: datetime | None = None,
) -> tuple[Webhook, bool]:
    """Switch a webhook (paused by the worker, or switched off) back on: it gets new deliveries again, and
    those still waiting are due now, oldest first. Returns the webhook and whether it had been paused.
    Resuming one that is on changes nothing."""
    now = now or utcnow()
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
    was_paused = webhook.paused_at is not None
    if not webhook.active:
        # The deliveries first, then the webhook: the order in which a worker recording an attempt takes
        # the same rows (services/webhooks._record), so the two can never wait on each other.
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.status == DeliveryStatus.pending,
                   WebhookDelivery.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
        _switch_on(webhook)
        await session.flush()
    return webhook, was_paused


async def delete_webhook(session: AsyncSession, *, principal: Principal, webhook_id: int) -> None:
    """Remove a webhook with its deliveries and their attempts."""
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
    await session.execute(delete(Webhook).where(Webhook.id == webhook.id))


async def rotate_secret(
    session: AsyncSession, *, principal: Principal, webhook_id: int, settings: Settings, now: datetime | None = None,
) -> tuple[Webhook, str]:
    """A new secret (shown this once). Deliveries carry signatures by both the new and the previous
    secret for ``ROTATION_GRACE``, then by the new one only."""
    now = now or utcnow()
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id, for_update=True)
    try:
        previous: str | None = _open(settings.secret_key, webhook.secret).current
    except InvalidToken:
        previous = None  # sealed under another app secret: unusable anyway
    secret = new_secret()
    webhook.secret = _seal(settings.secret_key, Secrets(secret, previous, now + ROTATION_GRACE if previous else None))
    await session.flush()
    return webhook, secret


# --- deliveries, as owners see them -----------------------------------------------------------------


def message_id(change_id: int) -> str:
    """The stable id of a change: the ``webhook-id`` header, the body's ``id`` and the feed's ``id``."""
    return f"chg_{change_id}"


def local_time(value: datetime) -> str:
    return value.astimezone(TZ).isoformat()


def payload(change: FormChange) -> dict[str, Any]:
    """What a delivery's body carries, and (with ``form_id``) an item of ``GET /api/v1/changes``."""
    return {"id": message_id(change.id), "type": change.type, "at": local_time(change.at), "data": change.data}


def _encode_delivery_cursor(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(f"d:{delivery_id}".encode()).decode().rstrip("=")


def _decode_delivery_cursor(cursor: str) -> int:
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        delivery_id = int(value)
        if prefix != "d" or not 0 < delivery_id < 2**31:
            raise ValueError(cursor)
        return delivery_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("分页游标无效。", code="invalid_cursor") from exc


async def list_deliveries(
    session: AsyncSession, *, principal: Principal, webhook_id: int, status: str | None = None, limit: int,
    cursor: str | None,
) -> tuple[list[tuple[WebhookDelivery, FormChange]], str | None]:
    """A webhook's deliveries, newest first, with their changes."""
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
    query = (
        select(WebhookDelivery, FormChange).join(FormChange, FormChange.id == WebhookDelivery.change_id)
        .where(WebhookDelivery.webhook_id == webhook.id).order_by(WebhookDelivery.id.desc())
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if cursor:
        query = query.where(WebhookDelivery.id < _decode_delivery_cursor(cursor))
    rows = [(delivery, change) for delivery, change in (await session.execute(query.limit(limit + 1))).all()]
    next_cursor = _encode_delivery_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def get_delivery(
    session: AsyncSession, *, principal: Principal, webhook_id: int, delivery_id: int, for_update: bool = False,
) -> tuple[WebhookDelivery, FormChange]:
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
    query = (
        select(WebhookDelivery, FormChange).join(FormChange, FormChange.id == WebhookDelivery.change_id)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id)
    )
    if for_update:
        query = query.with_for_update(of=WebhookDelivery)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound(f"投递记录 {delivery_id} 不存在。", code="delivery_not_found")
    return row[0], row[1]


async def delivery_detail(
    session: AsyncSession, *, principal: Principal, webhook_id: int, delivery_id: int
) -> tuple[WebhookDelivery, FormChange, list[WebhookAttempt]]:
    """A delivery, its change and every attempt at it, oldest first."""
    delivery, change = await get_delivery(session, principal=principal, webhook_id=webhook_id, delivery_id=delivery_id)
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id).order_by(WebhookAttempt.id)
    return delivery, change, list((await session.scalars(query)).all())


async def redeliver(
    session: AsyncSession, *, principal: Principal, webhook_id: int, delivery_id: int, now: datetime | None = None,
) -> tuple[WebhookDelivery, FormChange]:
    """Send a delivery again now, whatever its status, with a fresh set of attempts. The row is reset
    (its attempts so far stay listed), so the receiver gets the same ``webhook-id`` again. A send in
    flight at this moment loses its claim: its result is recorded as an attempt but changes nothing."""
    delivery, change = await get_delivery(
        session, principal=principal, webhook_id=webhook_id, delivery_id=delivery_id, for_update=True
    )
    delivery.status = DeliveryStatus.pending
    delivery.attempts = 0
    delivery.next_attempt_at = now or utcnow()
    delivery.claimed_until = None
    delivery.delivered_at = None
    await session.flush()
    return delivery, change


# --- sending -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one POST to a receiver came to."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def signed_headers(signing: Sequence[str], *, msg_id: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id=msg_id, timestamp=timestamp, body=body) for s in signing),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


async def _exchange(
    http: httpx.AsyncClient, target: httpx.URL, addresses: Sequence[IPAddress], *, headers: dict[str, str],
    content: bytes, timeout: float,
) -> tuple[int, bytes]:
    """POST to the first of ``addresses`` that takes the connection (each one checked), with the
    receiver's own name in the ``Host`` header and as the TLS server name (so its certificate is verified
    against it). Returns the status and the start of the answer."""
    name = target.raw_host.decode("ascii")
    extensions = {"sni_hostname": name} if target.scheme == "https" and literal_address(name) is None else {}
    headers = {**headers, "host": target.netloc.decode("ascii")}
    for index, address in enumerate(addresses):
        try:
            async with http.stream("POST", target.copy_with(host=str(address)), content=content, headers=headers,
                                   timeout=timeout, follow_redirects=False, extensions=extensions) as response:
                answer = b""
                async for chunk in response.aiter_bytes():
                    answer += chunk
                    if len(answer) >= MAX_ERROR_CHARS:
                        break
                return response.status_code, answer
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if index == len(addresses) - 1:
                raise
    raise AssertionError("no address to try")  # receiver_addresses never returns none


async def post(
    http: httpx.AsyncClient, url: str, *, signing: Sequence[str], msg_id: str, body: str, timeout: float,
    settings: Settings, resolver: Resolver, context: str = "webhook",
) -> Outcome:
    """POST one signed body to an address checked now (``receiver_addresses``). Never raises for anything
    the receiver, the network or the address does: an answer is reported as it came (a redirect too: it is
    not followed), and whatever stops the exchange before an answer is ``UNREACHABLE``, its cause logged
    with ``context``."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        # The whole exchange is bounded, resolving included, not just each read: a receiver trickling
        # bytes is a timeout too.
        async with asyncio.timeout(timeout):
            target, addresses = await receiver_addresses(url, settings=settings, resolver=resolver)
            headers = signed_headers(signing, msg_id=msg_id, body=body)
            status, answer = await _exchange(http, target, addresses, headers=headers, content=body.encode(),
                                             timeout=timeout)
    except Unreachable as exc:  # a refused address is worth an operator's look; a dead name less so
        log.log(logging.WARNING if exc.refused else logging.INFO, "%s not sent: %s", context, exc)
        return Outcome(None, UNREACHABLE, elapsed())
    except (TimeoutError, httpx.TimeoutException):
        log.info("%s: no answer within %g s", context, timeout)
        return Outcome(None, UNREACHABLE, elapsed())
    except Exception as exc:  # refused, reset, TLS, an address httpx cannot use: a failed attempt, not a crash
        log.info("%s not reached: %s: %s", context, type(exc).__name__, exc)
        return Outcome(None, UNREACHABLE, elapsed())
    if 200 <= status < 300:
        return Outcome(status, None, elapsed())
    text = answer.decode("utf-8", "replace").strip()
    redirect = "（重定向不跟随 redirects are not followed）" if 300 <= status < 400 else ""
    return Outcome(status, _clip(f"接收方返回 HTTP {status}{redirect}" + (f"：{text}" if text else "")), elapsed())


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after ``attempts`` failed attempts, or None when the delivery has failed for good."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return RETRY_DELAYS[attempts - 1] * (1 + random.uniform(-JITTER, JITTER))


@dataclass(frozen=True)
class _Job:
    delivery_id: int
    webhook_id: int
    url: str
    sealed_secret: str
    attempts: int
    claimed_until: datetime  # the lease, and the token that says the claim is still ours
    msg_id: str
    body: str


def _lease(settings: Settings) -> float:
    return max(settings.webhook_lease_seconds, settings.webhook_timeout_seconds + 5)


# Written into the claim's SQL, not bound: only a literal lets either engine's planner see that the
# claim's partial indexes (WHERE status = 'pending' ...) cover the rows asked for.
_PENDING = literal_column("'pending'")


def _ready_webhooks(*, now: datetime, limit: int) -> Any:
    """The webhooks a claim may serve now, the one waiting longest first: switched on (a paused one is
    off), not of a revoked client (whose deliveries wait, as an inactive webhook's do), none of its
    deliveries in flight (a probe of the lease index, which holds leased rows only), one due (the first
    in id order: a walk of the webhook's pending rows that stops there)."""
    in_flight = aliased(WebhookDelivery)
    first_due = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.webhook_id == Webhook.id, WebhookDelivery.status == _PENDING,
               WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.id)
        .limit(1)
        .scalar_subquery()
    )
    ready = (
        select(Webhook.id, first_due.label("first_due"))
        .outerjoin(ApiClient, ApiClient.id == Webhook.client_id)
        .where(
            Webhook.active.is_(True),
            or_(Webhook.client_id.is_(None), ApiClient.revoked_at.is_(None)),
            ~exists().where(in_flight.webhook_id == Webhook.id, in_flight.status == _PENDING,
                            in_flight.claimed_until >= now),
        )
        .subquery()
    )
    return select(ready.c.id).where(ready.c.first_due.is_not(None)).order_by(ready.c.first_due).limit(limit)


def _next_due(webhook_ids: Sequence[int], *, now: datetime) -> Any:
    """Each webhook's first ``PER_WEBHOOK_PER_ROUND`` due deliveries, in change order. Rows claimed
    meanwhile are not skipped here but when they are locked, so a second worker never takes a webhook's
    next ones while its first are out."""
    firsts = [
        select(WebhookDelivery.id)
        .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == _PENDING,
               WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.id)
        .limit(PER_WEBHOOK_PER_ROUND)
        .subquery()
        for webhook_id in webhook_ids
    ]
    return union_all(*(select(first.c.id) for first in firsts))


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime, lease: float, limit: int
) -> list[_Job]:
    """Claim up to ``limit`` due deliveries, oldest first, at most ``PER_WEBHOOK_PER_ROUND`` per webhook
    and none of a webhook that has one in flight (so a webhook's changes go out in order). It reads the
    webhooks (a few rows), their next due deliveries through the index over pending rows, and those rows
    by key: the cost does not grow with the backlog, and a paused webhook's deliveries are never read."""
    claimed_until = now + timedelta(seconds=lease)
    async with transaction(sessionmaker) as session:
        webhook_ids = list((await session.scalars(_ready_webhooks(now=now, limit=limit))).all())
        if not webhook_ids:
            return []
        candidates = list((await session.scalars(_next_due(webhook_ids, now=now))).all())
        # Locks the chosen rows by key, skipping those another worker is claiming at this moment
        # (PostgreSQL; on SQLite the transaction holds the write lock), and checks again that they are
        # still unsettled and unclaimed. "Not settled" rather than "= 'pending'": the latter matches the
        # partial indexes' predicate, and a planner without statistics then reads a whole index for it.
        locked = (
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.id.in_(candidates),
                WebhookDelivery.status.not_in([DeliveryStatus.delivered, DeliveryStatus.failed]),
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            )
            .order_by(WebhookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
        )
        ids = list((await session.scalars(locked)).all())
        if not ids:
            return []
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(claimed_until=claimed_until)
        )
        rows = (await session.execute(
            select(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.attempts, Webhook.url,
                   Webhook.secret, FormChange)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .join(FormChange, FormChange.id == WebhookDelivery.change_id)
            .where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id)
        )).all()
    return [
        _Job(delivery_id, webhook_id, url, sealed, attempts, claimed_until, message_id(change.id),
             json.dumps(payload(change), ensure_ascii=False, separators=(",", ":")))
        for delivery_id, webhook_id, attempts, url, sealed, change in rows
    ]


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession], job: _Job, outcome: Outcome, *, worker_id: str, at: datetime,
) -> None:
    """The attempt, always (unless the delivery is gone); the delivery's new state, and the webhook's
    failing streak, only while the claim is still ours (no other worker took it over after the lease, no
    redelivery reset it)."""
    attempts = job.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts, "last_status_code": outcome.status_code, "last_error": outcome.error,
        "claimed_until": None,
    }
    gone = outcome.status_code == 410
    failed_for_good = False
    if outcome.delivered:
        values.update(status=DeliveryStatus.delivered, delivered_at=at, last_error=None)
    elif gone:
        values.update(status=DeliveryStatus.failed,
                      last_error=_clip(f"{outcome.error}（接收方表示已不再接收：回调已停用 webhook disabled）"))
    else:
        delay = retry_delay(attempts)
        if delay is None:
            values.update(status=DeliveryStatus.failed)
            failed_for_good = True
        else:
            values.update(next_attempt_at=at + delay)
    async with transaction(sessionmaker) as session:
        await session.execute(insert(WebhookAttempt).from_select(
            ["delivery_id", "at", "worker", "status_code", "error", "duration_ms"],
            select(WebhookDelivery.id, literal(at, UTCDateTime), literal(worker_id, String),
                   literal(outcome.status_code, Integer), literal(outcome.error, Text),
                   literal(outcome.duration_ms, Integer))
            .where(WebhookDelivery.id == job.delivery_id),
        ))
        updated = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == job.delivery_id, WebhookDelivery.status == DeliveryStatus.pending,
                   WebhookDelivery.claimed_until == job.claimed_until)
            .values(**values)
        )
        if updated.rowcount == 0:
            log.info("webhook delivery %s: claim lost before its result was recorded", job.delivery_id)
            return
        await _keep_streak(session, job, outcome, at=at, gone=gone, failed_for_good=failed_for_good)


async def _keep_streak(
    session: AsyncSession, job: _Job, outcome: Outcome, *, at: datetime, gone: bool, failed_for_good: bool,
) -> None:
    """The receiver's failing streak: cleared by a delivery, started by the first failure after one. A
    receiver that answers 410 Gone, or whose delivery has just failed for good while nothing reached it for
    ``PAUSE_AFTER``, is paused: switched off, with the time and the reason, an audit line and a log line."""
    this = Webhook.id == job.webhook_id
    if outcome.delivered:
        await session.execute(update(Webhook).where(this, Webhook.failing_since.is_not(None)).values(failing_since=None))
        return
    await session.execute(update(Webhook).where(this, Webhook.failing_since.is_(None)).values(failing_since=at))
    if gone:
        reason, pause = PauseReason.gone, update(Webhook).where(this, Webhook.active.is_(True))
    elif failed_for_good:
        reason, pause = PauseReason.failing, update(Webhook).where(
            this, Webhook.active.is_(True), Webhook.failing_since <= at - PAUSE_AFTER)
    else:
        return
    paused = await session.execute(pause.values(active=False, paused_at=at, paused_reason=reason.value))
    if paused.rowcount == 0:
        return
    session.add(AuditEvent(
        at=at, actor_label=WORKER_LABEL, action="webhook.pause", target=f"webhook:{job.webhook_id}",
        details={"reason": reason.value, "last_status_code": outcome.status_code, "last_error": outcome.error},
    ))
    log.warning("webhook %s paused (%s): %s", job.webhook_id, reason.value, outcome.error)


async def _release(sessionmaker: async_sessionmaker[AsyncSession], jobs: Sequence[_Job]) -> None:
    """Give back claims this round had no time left to use."""
    async with transaction(sessionmaker) as session:
        for job in jobs:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == job.delivery_id, WebhookDelivery.claimed_until == job.claimed_until)
                .values(claimed_until=None)
            )


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    *,
    worker_id: str,
    settings: Settings,
    now: datetime | None = None,
    limit: int = 20,
    concurrency: int = 8,
    resolver: Resolver | None = None,
) -> int:
    """One round: claim the deliveries due at ``now``, send them, record the results. Returns how many
    were sent (0: nothing was due). ``now`` moves the clock for claiming and scheduling (tests); the
    ``webhook-timestamp`` is always the real time of sending. Receivers' names are resolved with
    ``resolver`` (the system's by default)."""
    now = now or utcnow()
    resolver = resolver or system_resolver
    lease = _lease(settings)
    timeout = settings.webhook_timeout_seconds
    jobs = await _claim(sessionmaker, now=now, lease=lease, limit=limit)
    if not jobs:
        return 0
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    by_webhook: dict[int, list[_Job]] = {}
    for job in jobs:
        by_webhook.setdefault(job.webhook_id, []).append(job)

    async def send_in_order(chain: list[_Job]) -> int:
        sent = 0
        for index, job in enumerate(chain):
            async with gate:
                # A send may only start while the lease still covers its whole timeout; what does not fit
                # is given back for the next round instead of risking a second worker sending it too.
                if time.monotonic() - started + timeout > lease:
                    await _release(sessionmaker, chain[index:])
                    return sent
                try:
                    secrets_ = _open(settings.secret_key, job.sealed_secret)
                except InvalidToken:
                    outcome = Outcome(None, DECRYPT_FAILED, 0)
                else:
                    at = now + timedelta(seconds=time.monotonic() - started)
                    outcome = await post(http, job.url, signing=secrets_.signing(at), msg_id=job.msg_id,
                                         body=job.body, timeout=timeout, settings=settings, resolver=resolver,
                                         context=f"webhook {job.webhook_id} delivery {job.delivery_id}")
                at = now + timedelta(seconds=time.monotonic() - started)
                await _record(sessionmaker, job, outcome, worker_id=worker_id, at=at)
                sent += 1
        return sent

    results = await asyncio.gather(*(send_in_order(chain) for chain in by_webhook.values()), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return sum(r for r in results if isinstance(r, int))


async def ping(
    sessionmaker: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, *, principal: Principal,
    webhook_id: int, settings: Settings, resolver: Resolver | None = None,
) -> tuple[str, Outcome]:
    """Send a signed ``webhook.ping`` to the webhook's address now and return what came back, under the
    same address rules as a delivery (and the same neutral text when nothing answered). Nothing is
    stored; the database is not held while the receiver answers. A paused webhook can be pinged: that is
    how its owner sees that the receiver is back before resuming it."""
    async with transaction(sessionmaker) as session:
        webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
        url, sealed = webhook.url, webhook.secret
    now = utcnow()
    msg_id = f"ping_{secrets.token_hex(8)}"
    body = json.dumps({"id": msg_id, "type": "webhook.ping", "at": local_time(now), "data": {"webhook_id": webhook_id}},
                      ensure_ascii=False, separators=(",", ":"))
    try:
        signing = _open(settings.secret_key, sealed).signing(now)
    except InvalidToken:
        return msg_id, Outcome(None, DECRYPT_FAILED, 0)
    return msg_id, await post(http, url, signing=signing, msg_id=msg_id, body=body,
                              timeout=settings.webhook_timeout_seconds, settings=settings,
                              resolver=resolver or system_resolver, context=f"webhook {webhook_id} ping")


def http_client() -> httpx.AsyncClient:
    """The client deliveries and pings are sent with: no redirects followed (a 3xx is a failed attempt);
    no proxy from the environment (a proxy would resolve the receiver's name again, past the check); no
    connection kept for reuse (connections are made to checked addresses under each receiver's name, and
    one made for one receiver must never carry another's request)."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, headers={"user-agent": USER_AGENT},
                             limits=httpx.Limits(max_keepalive_connections=0))
