"""Which Host the app answers to and prints (issue 15, point 7; app/http/hosts.py, MINYI_ALLOWED_HOSTS), and
/metrics in production (MINYI_METRICS_TOKEN / MINYI_METRICS_OPEN).

Without MINYI_PUBLIC_URL, absolute URLs (QR codes, posters, calendar and Open311 links) are built from the
request's host only when it is allowed: MINYI_ALLOWED_HOSTS, or outside production localhost, 127.0.0.1,
::1 and testserver. Any other host gets 400 ``host_not_allowed`` and nothing printed; a QR code built from
the host is private to the asker and varies with Host, so no shared cache serves it under another host.
With MINYI_ALLOWED_HOSTS set every route refuses other hosts, the probes excepted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from app.config import Settings
from app.db import transaction
from app.models import OpinionForm, ServicePoint, utcnow
from tests.conftest import make_settings
from tests.factories import build_world
from tests.support.apps import build_app
from tests.support.problems import assert_problem

PRODUCTION = {"environment": "production", "secret_key": "a-long-random-production-secret"}


@pytest.fixture
async def make(db_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Build apps on this test's database with given settings; disposed after the test."""
    apps: list[Any] = []

    def build(**settings: Any) -> Any:
        app = build_app(make_settings(db_url, **settings))
        apps.append(app)
        return app

    yield build
    for app in apps:
        await app.state.engine.dispose()


def _at(app: Any, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def _refused_page(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert "MINYI_ALLOWED_HOSTS" in response.text and "evil" not in response.text


async def _forms(app: Any) -> int:
    async with app.state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


# --- defaults: development and test --------------------------------------------------------------------------


async def test_by_default_qr_codes_print_the_development_hosts_only(make):
    app = make()
    world = await build_world(app.state.sessionmaker)
    point = await _service_point(app, world)
    for base in ("http://testserver", "http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000"):
        async with _at(app, base) as client:
            svg = await client.get("/w/LS-01/qr.svg")
            assert svg.status_code == 200, (base, svg.text)
            assert f"{base}/w/LS-01" in svg.text
    async with _at(app, "http://evil.example") as client:
        for path in ("/w/LS-01/qr.svg", f"/p/{point}/qr.svg", "/w/LS-01/poster", f"/p/{point}/poster"):
            _refused_page(await client.get(path))
        feed = await client.get(f"/api/v1/calendars/representatives/{world.representatives['rep'].id}",
                                headers=world.auth("coordinator"))
        assert_problem(feed, 400, "host_not_allowed")
        # Unset, the setting only keeps the host out of what is printed: the pages themselves are served.
        assert (await client.get("/")).status_code == 200


async def test_a_qr_code_from_the_request_host_is_private_and_varies_with_host(make):
    app = make()
    await build_world(app.state.sessionmaker)
    async with _at(app, "http://testserver") as client:
        svg = await client.get("/w/LS-01/qr.svg")
        poster = await client.get("/w/LS-01/poster")
    assert svg.headers["cache-control"].startswith("private") and "public" not in svg.headers["cache-control"]
    assert "Host" in [part.strip() for part in svg.headers["vary"].split(",")]
    assert poster.headers["cache-control"].startswith("private")
    assert "Host" in [part.strip() for part in poster.headers["vary"].split(",")]


async def test_with_a_public_url_qr_codes_print_it_for_any_host_and_may_be_cached(make):
    app = make(public_url="https://minyi.luoshe.gov.cn")
    await build_world(app.state.sessionmaker)
    async with _at(app, "http://10.0.0.5:8000") as client:
        svg = await client.get("/w/LS-01/qr.svg")
    assert svg.status_code == 200 and "https://minyi.luoshe.gov.cn/w/LS-01" in svg.text and "10.0.0.5" not in svg.text
    assert svg.headers["cache-control"] == "public, max-age=3600"


# --- MINYI_ALLOWED_HOSTS set ----------------------------------------------------------------------------------


async def test_allowed_hosts_are_printed_and_every_other_host_is_refused_on_every_route(make):
    app = make(allowed_hosts="minyi.luoshe.gov.cn, *.luoshe.cn")
    await build_world(app.state.sessionmaker)
    for base in ("https://minyi.luoshe.gov.cn", "http://www.luoshe.cn:8080"):
        async with _at(app, base) as client:
            svg = await client.get("/w/LS-01/qr.svg")
            assert svg.status_code == 200 and f"{base}/w/LS-01" in svg.text
            assert (await client.get("/")).status_code == 200
    for base in ("http://evil.example", "http://luoshe.cn", "http://testserver", "http://minyi.luoshe.gov.cn.evil.example"):
        async with _at(app, base) as client:
            _refused_page(await client.get("/"))
            _refused_page(await client.get("/w/LS-01/qr.svg"))
            assert_problem(await client.get("/api/v1/categories"), 400, "host_not_allowed")
            open311 = await client.get("/open311/discovery.json")
            assert open311.status_code == 400 and open311.json()[0]["code"] == 400  # the spec's error shape
            assert "MINYI_ALLOWED_HOSTS" in open311.json()[0]["description"]
            assert_problem(await client.post("/api/v1/forms", json={"content": "路灯坏了。"}), 400, "host_not_allowed")
    assert await _forms(app) == 0


async def test_probes_answer_whatever_the_host(make):
    """Load balancers and Prometheus reach a process at its own address: the probes build no URL."""
    app = make(allowed_hosts="minyi.luoshe.gov.cn")
    async with _at(app, "http://10.0.0.5:8000") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


@pytest.mark.parametrize("value", ["a b", "https://minyi.example.cn", "minyi.example.cn/path", "*.", "**"])
def test_a_malformed_allowed_host_is_refused_at_start(value):
    with pytest.raises(ValidationError, match="MINYI_ALLOWED_HOSTS"):
        Settings(_env_file=None, allowed_hosts=value)  # type: ignore[call-arg]


# --- production -----------------------------------------------------------------------------------------------


async def test_in_production_with_neither_setting_no_host_is_printed_and_nothing_is_filed(make):
    app = make(**PRODUCTION)
    world = await build_world(app.state.sessionmaker)
    async with _at(app, "http://localhost:8000") as client:
        _refused_page(await client.get("/w/LS-01/qr.svg"))
        _refused_page(await client.get("/w/LS-01/poster"))
        created = await client.post("/api/v1/api-clients", json={"name": "网格平台", "scopes": ["forms:write"]},
                                    headers=world.auth("admin"))
        assert created.status_code == 201, created.text
        # Open311's answer carries the tracking page's URL: refused before anything is written.
        filed = await client.post("/open311/v2/requests.json", content=urlencode({
            "service_code": "urban_traffic", "description": "路灯坏了三盏。", "address_string": "菜场东门",
            "attribute[workroom]": "LS-01", "api_key": created.json()["key"]}),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert filed.status_code == 400 and filed.json()[0]["code"] == 400, filed.text
        assert "MINYI_ALLOWED_HOSTS" in filed.json()[0]["description"]
    assert await _forms(app) == 0


async def test_in_production_the_allowed_hosts_are_printed(make):
    app = make(**PRODUCTION, allowed_hosts="minyi.luoshe.gov.cn")
    await build_world(app.state.sessionmaker)
    async with _at(app, "https://minyi.luoshe.gov.cn") as client:
        svg = await client.get("/w/LS-01/qr.svg")
    assert svg.status_code == 200 and "https://minyi.luoshe.gov.cn/w/LS-01" in svg.text


# --- /metrics in production -------------------------------------------------------------------------------------


async def test_metrics_in_production_without_a_token_are_not_there(make):
    app = make(**PRODUCTION)
    async with _at(app, "http://testserver") as client:
        response = await client.get("/metrics")
        unknown = await client.get("/no-such-page")
    assert response.status_code == 404 == unknown.status_code
    assert "minyi_" not in response.text and "# HELP" not in response.text


async def test_metrics_in_production_when_explicitly_open(make):
    app = make(**PRODUCTION, metrics_open=True)
    async with _at(app, "http://testserver") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200 and "# HELP" in response.text


async def test_metrics_in_production_with_a_token_ask_for_it(make):
    token = "a-metrics-token-of-some-length"
    app = make(**PRODUCTION, metrics_token=token)
    async with _at(app, "http://testserver") as client:
        assert_problem(await client.get("/metrics"), 401, "metrics_token_required")
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and "# HELP" in response.text


async def test_metrics_outside_production_stay_open_without_a_token(make):
    app = make()
    async with _at(app, "http://testserver") as client:
        assert (await client.get("/metrics")).status_code == 200


async def _service_point(app: Any, world: Any) -> int:
    async with transaction(app.state.sessionmaker) as session:
        point = ServicePoint(workroom_id=world.workrooms["LS-01"].id, title="菜市场流动服务点", place_type="market",
                             location="菜市场东门", starts_at=utcnow(), ends_at=utcnow() + timedelta(hours=2))
        session.add(point)
        await session.flush()
        return point.id
