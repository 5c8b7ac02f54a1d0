"""Abuse limits (app/http/abuse.py): per-IP limits on public submissions, tracking look-ups and logins;
lockouts of a tracking number after wrong codes and of an account after failed logins, lifted by an
admin; client IPs from X-Forwarded-For only behind a trusted proxy; shared through Redis."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.apps import build_app
from app.models import OpinionForm
from tests.conftest import REDIS_URL, make_settings
from tests.factories import PASSWORD, build_world
from tests.support.logins import request_token

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
FORM = {"content": "菜场门口的排水沟堵了，一下雨就积水。", "category": "environment"}
# Generous everywhere except the limit a test is about.
LIFTED: dict[str, Any] = {
    "public_submit_per_ip_per_minute": 1000, "track_per_ip_per_minute": 1000, "login_per_ip_per_minute": 1000,
    "track_failures_before_lock": 1000, "login_failures_before_lock": 1000,
}


async def _app(db_url: str, **limits: Any) -> Any:
    return build_app(make_settings(db_url, **{**LIFTED, **limits}))


def _client(app: Any, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 5000)), base_url="http://testserver")


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    """Build apps with given limits; their engines are disposed after the test."""
    apps: list[Any] = []

    async def build(db_url: str, **limits: Any) -> Any:
        app = await _app(db_url, **limits)
        apps.append(app)
        return app

    yield build
    for app in apps:
        await app.state.lockouts.aclose()
        await app.state.rate_limiter.aclose()
        await app.state.engine.dispose()


async def _forms(app: Any) -> int:
    async with app.state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


def _limited(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["code"] == code and body["status"] == 429
    return body


async def _submitted(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/api/v1/forms", json=FORM)
    assert response.status_code == 201, response.text
    return response.json()


# --- public submissions per IP ----------------------------------------------------------------------


async def test_anonymous_submissions_past_the_ip_limit_get_429_and_nothing_is_written(db_url, make):
    app = await make(db_url, public_submit_per_ip_per_minute=3)
    async with _client(app) as client:
        for _ in range(3):
            await _submitted(client)
        _limited(await client.post("/api/v1/forms", json=FORM), "rate_limited")
    assert await _forms(app) == 3


async def test_each_client_ip_has_its_own_submission_allowance(db_url, make):
    app = await make(db_url, public_submit_per_ip_per_minute=2)
    async with _client(app, "198.51.100.1") as first, _client(app, "198.51.100.2") as second:
        for _ in range(2):
            await _submitted(first)
        _limited(await first.post("/api/v1/forms", json=FORM), "rate_limited")
        await _submitted(second)


async def test_staff_entering_forms_are_not_held_by_the_public_limit(db_url, make):
    app = await make(db_url, public_submit_per_ip_per_minute=1)
    world = await build_world(app.state.sessionmaker)
    async with _client(app) as client:
        for _ in range(4):  # a representative at a market stall, many residents in a row
            response = await client.post("/api/v1/forms", json=FORM, headers=world.auth("rep"))
            assert response.status_code == 201, response.text


async def test_the_submit_page_past_the_limit_says_so_keeps_the_text_and_writes_nothing(db_url, make):
    app = await make(db_url, public_submit_per_ip_per_minute=1)
    async with _client(app) as client:
        for expected in (303, 429):
            page = await client.get("/submit")
            token = CSRF_META.search(page.text)[1]  # type: ignore[index]
            response = await client.post("/submit", data={**FORM, "csrf_token": token})
            assert response.status_code == expected, response.text
        assert "请求过于频繁" in response.text
        assert FORM["content"] in response.text  # what the resident wrote is still in the form
        assert int(response.headers["Retry-After"]) >= 1
    assert await _forms(app) == 1


# --- X-Forwarded-For only from trusted proxies --------------------------------------------------------


async def test_behind_a_trusted_proxy_each_forwarded_client_counts_apart(db_url, make):
    app = await make(db_url, public_submit_per_ip_per_minute=1, trusted_proxies="127.0.0.1")
    async with _client(app) as proxy:
        for resident in ("203.0.113.7", "203.0.113.8"):
            response = await proxy.post("/api/v1/forms", json=FORM, headers={"X-Forwarded-For": resident})
            assert response.status_code == 201, response.text
        again = await proxy.post("/api/v1/forms", json=FORM, headers={"X-Forwarded-For": "203.0.113.7"})
        _limited(again, "rate_limited")


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(db_url, make):
    # No trusted proxies: a client cannot dodge its limit by naming another address.
    app = await make(db_url, public_submit_per_ip_per_minute=1)
    async with _client(app) as client:
        first = await client.post("/api/v1/forms", json=FORM, headers={"X-Forwarded-For": "203.0.113.7"})
        assert first.status_code == 201, first.text
        second = await client.post("/api/v1/forms", json=FORM, headers={"X-Forwarded-For": "203.0.113.99"})
        _limited(second, "rate_limited")


async def test_a_peer_outside_the_trusted_networks_cannot_forward(db_url, make):
    app = await make(db_url, public_submit_per_ip_per_minute=1, trusted_proxies="10.0.0.0/8")
    async with _client(app, "192.0.2.50") as outsider:
        assert (await outsider.post("/api/v1/forms", json=FORM, headers={"X-Forwarded-For": "203.0.113.1"})).status_code == 201
        _limited(await outsider.post("/api/v1/forms", json=FORM, headers={"X-Forwarded-For": "203.0.113.2"}),
                 "rate_limited")
    async with _client(app, "10.1.2.3") as proxy:  # inside the trusted network: the forwarded client counts
        assert (await proxy.post("/api/v1/forms", json=FORM, headers={"X-Forwarded-For": "203.0.113.3"})).status_code == 201


# --- tracking ------------------------------------------------------------------------------------------


async def test_wrong_codes_lock_the_number_even_for_the_right_code_and_only_that_number(db_url, make):
    app = await make(db_url, track_failures_before_lock=3)
    async with _client(app) as client:
        form, other = await _submitted(client), await _submitted(client)
        wrong = "000000" if form["verification_code"] != "000000" else "111111"
        for _ in range(3):
            response = await client.get(f"/api/v1/track/{form['tracking_no']}", params={"code": wrong})
            assert response.status_code == 404, response.text
        right = await client.get(f"/api/v1/track/{form['tracking_no']}", params={"code": form["verification_code"]})
        body = _limited(right, "tracking_locked")
        assert "锁定" in body["detail"]
        assert int(right.headers["Retry-After"]) <= 900
        fine = await client.get(f"/api/v1/track/{other['tracking_no']}", params={"code": other["verification_code"]})
        assert fine.status_code == 200, fine.text


async def test_a_right_code_forgets_the_wrong_ones_before_it(db_url, make):
    app = await make(db_url, track_failures_before_lock=3)
    async with _client(app) as client:
        form = await _submitted(client)
        url, right = f"/api/v1/track/{form['tracking_no']}", {"code": form["verification_code"]}
        wrong = {"code": "000000" if form["verification_code"] != "000000" else "111111"}
        for params in (wrong, wrong, right, wrong, wrong, right):
            expected = 200 if params is right else 404
            assert (await client.get(url, params=params)).status_code == expected


async def test_unknown_numbers_lock_like_real_ones(db_url, make):
    app = await make(db_url, track_failures_before_lock=2)
    async with _client(app) as client:
        for _ in range(2):
            assert (await client.get("/api/v1/track/LS2099-99999", params={"code": "123456"})).status_code == 404
        _limited(await client.get("/api/v1/track/LS2099-99999", params={"code": "123456"}), "tracking_locked")


async def test_lookups_past_the_ip_limit_get_429(db_url, make):
    app = await make(db_url, track_per_ip_per_minute=2)
    async with _client(app) as client:
        form = await _submitted(client)
        url, params = f"/api/v1/track/{form['tracking_no']}", {"code": form["verification_code"]}
        assert (await client.get(url, params=params)).status_code == 200
        assert (await client.get(url, params=params)).status_code == 200
        _limited(await client.get(url, params=params), "rate_limited")


async def test_the_tracking_page_shows_the_lock(db_url, make):
    app = await make(db_url, track_failures_before_lock=1)
    async with _client(app) as client:
        form = await _submitted(client)
        token = CSRF_META.search((await client.get("/track")).text)[1]  # type: ignore[index]
        data = {"no": form["tracking_no"], "code": "999999" if form["verification_code"] != "999999" else "888888",
                "csrf_token": token}
        assert (await client.post("/track", data=data)).status_code == 404
        locked = await client.post("/track", data={**data, "code": form["verification_code"]})
        assert locked.status_code == 429
        assert "锁定" in locked.text and int(locked.headers["Retry-After"]) >= 1


# --- logins ---------------------------------------------------------------------------------------------


async def test_failed_logins_lock_the_account_until_an_admin_lifts_it(db_url, make):
    app = await make(db_url, login_failures_before_lock=3)
    world = await build_world(app.state.sessionmaker)
    async with _client(app) as client:
        for _ in range(3):
            assert (await request_token(client, "coordinator", "wrong-password")).status_code == 401
        body = _limited(await request_token(client, "coordinator", PASSWORD), "account_locked")
        assert "管理员" in body["detail"]
        assert (await request_token(client, "rep", PASSWORD)).status_code == 200  # other accounts are not held

        listed = await client.get("/api/v1/lockouts", headers=world.auth("admin"))
        assert listed.status_code == 200, listed.text
        [lock] = listed.json()
        assert (lock["kind"], lock["subject"]) == ("login", "coordinator") and 0 < lock["seconds_left"] <= 900
        assert (await client.get("/api/v1/lockouts", headers=world.auth("coordinator"))).status_code == 403
        assert (await client.delete("/api/v1/lockouts/login/coordinator", headers=world.auth("coordinator"))).status_code == 403

        lifted = await client.delete("/api/v1/lockouts/login/coordinator", headers=world.auth("admin"))
        assert lifted.status_code == 204, lifted.text
        assert (await request_token(client, "coordinator", PASSWORD)).status_code == 200
        assert (await client.get("/api/v1/lockouts", headers=world.auth("admin"))).json() == []
        again = await client.delete("/api/v1/lockouts/login/coordinator", headers=world.auth("admin"))
        assert again.status_code == 404 and again.json()["code"] == "lockout_not_found"


async def test_an_admin_lifts_a_tracking_lock(db_url, make):
    app = await make(db_url, track_failures_before_lock=1)
    world = await build_world(app.state.sessionmaker)
    async with _client(app) as client:
        form = await _submitted(client)
        url = f"/api/v1/track/{form['tracking_no']}"
        await client.get(url, params={"code": "000000" if form["verification_code"] != "000000" else "111111"})
        _limited(await client.get(url, params={"code": form["verification_code"]}), "tracking_locked")
        listed = (await client.get("/api/v1/lockouts", params={"kind": "track"}, headers=world.auth("admin"))).json()
        assert [(lock["kind"], lock["subject"]) for lock in listed] == [("track", form["tracking_no"])]
        lifted = await client.delete(f"/api/v1/lockouts/track/{form['tracking_no']}", headers=world.auth("admin"))
        assert lifted.status_code == 204
        assert (await client.get(url, params={"code": form["verification_code"]})).status_code == 200


async def test_unknown_usernames_lock_like_real_ones(db_url, make):
    app = await make(db_url, login_failures_before_lock=2)
    async with _client(app) as client:
        for _ in range(2):
            assert (await request_token(client, "nobody-here", "x")).status_code == 401
        _limited(await request_token(client, "nobody-here", "x"), "account_locked")


async def test_login_attempts_past_the_ip_limit_get_429(db_url, make):
    app = await make(db_url, login_per_ip_per_minute=2)
    await build_world(app.state.sessionmaker)
    async with _client(app) as client:
        assert (await request_token(client, "admin", PASSWORD)).status_code == 200
        assert (await request_token(client, "rep", PASSWORD)).status_code == 200
        _limited(await request_token(client, "coordinator", PASSWORD), "rate_limited")


async def test_the_login_page_shows_the_lock(db_url, make):
    app = await make(db_url, login_failures_before_lock=1)
    await build_world(app.state.sessionmaker)
    async with _client(app) as client:
        token = CSRF_META.search((await client.get("/login")).text)[1]  # type: ignore[index]
        wrong = await client.post("/login", data={"username": "admin", "password": "nope", "csrf_token": token})
        assert wrong.status_code == 422
        locked = await client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
        assert locked.status_code == 429 and "锁定" in locked.text
        assert "minyi_session" not in locked.cookies


# --- shared through Redis -------------------------------------------------------------------------------


async def test_two_processes_on_one_redis_share_locks_and_ip_limits(db_url, make, redis):
    prefix = f"test-abuse-{secrets.token_hex(4)}:"
    try:
        one = await make(db_url, redis_url=REDIS_URL, redis_prefix=prefix, track_failures_before_lock=2,
                         public_submit_per_ip_per_minute=2)
        two = await make(db_url, redis_url=REDIS_URL, redis_prefix=prefix, track_failures_before_lock=2,
                         public_submit_per_ip_per_minute=2)
        async with _client(one) as first, _client(two) as second:
            form = await _submitted(first)
            await _submitted(second)  # the second submission from this IP, through the other process
            _limited(await first.post("/api/v1/forms", json=FORM), "rate_limited")

            url = f"/api/v1/track/{form['tracking_no']}"
            wrong = {"code": "000000" if form["verification_code"] != "000000" else "111111"}
            assert (await first.get(url, params=wrong)).status_code == 404
            assert (await second.get(url, params=wrong)).status_code == 404
            _limited(await first.get(url, params={"code": form["verification_code"]}), "tracking_locked")
            assert await redis.exists(f"{prefix}lock:on:track:{form['tracking_no']}") == 1
            # Lifted through one process, lifted for both.
            world = await build_world(one.state.sessionmaker)
            assert (await second.delete(f"/api/v1/lockouts/track/{form['tracking_no']}",
                                        headers=world.auth("admin"))).status_code == 204
            assert (await first.get(url, params={"code": form["verification_code"]})).status_code == 200
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
