"""One guard for one secret (issue 15, point 3; app/services/verification.py): every door that takes a
form's verification code — the tracking page, the tracking API, a form's photos (list, read, upload) —
shares one per-IP limit and one per-number failure count and lock. Wrong guesses through any door count
toward the lock every door sees; a locked number refuses even the right code through every door, with
the tracking door's answer (429 ``tracking_locked``, 锁定); a spoofed X-Forwarded-For escapes nothing."""

from __future__ import annotations

import io
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import REDIS_URL, make_settings
from tests.factories import build_world
from tests.support.apps import build_app
from tests.support.logins import csrf_of
from tests.support.problems import assert_problem

FORM = {"content": "菜场门口的排水沟堵了，一下雨就积水。", "category": "environment"}
# Generous everywhere except the limit a test is about.
LIFTED: dict[str, Any] = {
    "public_submit_per_ip_per_minute": 1000, "track_per_ip_per_minute": 1000, "login_per_ip_per_minute": 1000,
    "track_failures_before_lock": 1000, "login_failures_before_lock": 1000,
}


@pytest.fixture
async def make(tmp_path) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Build apps with given limits (photos under this test's folder); disposed after the test."""
    apps: list[Any] = []

    async def build(db_url: str, **limits: Any) -> Any:
        app = build_app(make_settings(db_url, photo_dir=tmp_path / "photos", **{**LIFTED, **limits}))
        apps.append(app)
        return app

    yield build
    for app in apps:
        await app.state.lockouts.aclose()
        await app.state.rate_limiter.aclose()
        await app.state.engine.dispose()


def _client(app: Any, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 5000)), base_url="http://testserver")


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 80, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def _wrong(form: dict[str, Any]) -> str:
    return "000000" if form["verification_code"] != "000000" else "111111"


async def _submitted(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/api/v1/forms", json=FORM)
    assert response.status_code == 201, response.text
    return response.json()


async def _with_photo(client: httpx.AsyncClient) -> tuple[dict[str, Any], int]:
    """A form submitted with one photo: the form and the photo's id."""
    response = await client.post("/api/v1/forms", data=FORM, files={"file": ("p.jpg", _jpeg(), "image/jpeg")})
    assert response.status_code == 201, response.text
    form = response.json()
    return form, form["photos"][0]["id"]


# --- the doors, each asked with a code ------------------------------------------------------------------


async def _track_api(client: httpx.AsyncClient, form: dict[str, Any], code: str) -> httpx.Response:
    return await client.get(f"/api/v1/track/{form['tracking_no']}", params={"code": code})


async def _track_page(client: httpx.AsyncClient, form: dict[str, Any], code: str) -> httpx.Response:
    token = csrf_of(await client.get("/track"))
    return await client.post("/track", data={"no": form["tracking_no"], "code": code, "csrf_token": token})


async def _photo_list(client: httpx.AsyncClient, form: dict[str, Any], code: str) -> httpx.Response:
    return await client.get(f"/api/v1/forms/{form['id']}/photos", params={"code": code})


async def _photo_read(client: httpx.AsyncClient, form: dict[str, Any], code: str) -> httpx.Response:
    photo_id = form["photos"][0]["id"] if form.get("photos") else 1
    return await client.get(f"/api/v1/forms/{form['id']}/photos/{photo_id}", params={"code": code})


async def _photo_upload(client: httpx.AsyncClient, form: dict[str, Any], code: str) -> httpx.Response:
    return await client.post(f"/api/v1/forms/{form['id']}/photos", params={"code": code},
                             files={"file": ("p.jpg", _jpeg(), "image/jpeg")})


API_DOORS = {"track_api": _track_api, "photo_list": _photo_list, "photo_read": _photo_read,
             "photo_upload": _photo_upload}
DOORS = {**API_DOORS, "track_page": _track_page}
RIGHT_STATUS = {"track_api": 200, "track_page": 200, "photo_list": 200, "photo_read": 200, "photo_upload": 201}


def _locked(response: httpx.Response, door: str) -> None:
    """The tracking door's lock answer: 429 with Retry-After and 锁定, problem+json on the API."""
    assert response.status_code == 429, (door, response.text)
    assert int(response.headers["Retry-After"]) >= 1
    if door == "track_page":
        assert "锁定" in response.text and "该编号查询码错误次数过多" in response.text
    else:
        body = assert_problem(response, 429, "tracking_locked")
        assert "锁定" in body["detail"] and body["retry_after"] >= 1


def _rate_limited(response: httpx.Response, door: str) -> None:
    assert response.status_code == 429, (door, response.text)
    assert int(response.headers["Retry-After"]) >= 1
    if door == "track_page":
        assert "请求过于频繁" in response.text
    else:
        assert_problem(response, 429, "rate_limited")


# --- one count, one lock ----------------------------------------------------------------------------------


@pytest.mark.parametrize("guessing", ["photo_list", "photo_read", "photo_upload"])
async def test_wrong_codes_through_the_photos_lock_the_number_tracking_sees(db_url, make, guessing):
    app = await make(db_url, track_failures_before_lock=3)
    async with _client(app) as client:
        form, _ = await _with_photo(client)
        for _ in range(3):
            assert_problem(await DOORS[guessing](client, form, _wrong(form)), 404, "form_not_found")
        _locked(await _track_api(client, form, form["verification_code"]), "track_api")
        _locked(await _track_page(client, form, form["verification_code"]), "track_page")


async def test_wrong_codes_through_tracking_lock_the_photos(db_url, make):
    app = await make(db_url, track_failures_before_lock=2)
    async with _client(app) as client:
        form, _ = await _with_photo(client)
        assert (await _track_page(client, form, _wrong(form))).status_code == 404
        assert_problem(await _track_api(client, form, _wrong(form)), 404, "tracking_not_found")
        for door in ("photo_list", "photo_read", "photo_upload"):
            _locked(await DOORS[door](client, form, form["verification_code"]), door)


async def test_guesses_spread_over_every_door_add_up_to_one_lock(db_url, make):
    app = await make(db_url, track_failures_before_lock=len(DOORS))
    world = await build_world(app.state.sessionmaker)
    async with _client(app) as client:
        form, _ = await _with_photo(client)
        other, _ = await _with_photo(client)
        for name, door in DOORS.items():
            assert (await door(client, form, _wrong(form))).status_code == 404, name
        # The right code now: refused through every door, and the other form is not held.
        for name, door in DOORS.items():
            _locked(await door(client, form, form["verification_code"]), name)
        for name, door in DOORS.items():
            assert (await door(client, other, other["verification_code"])).status_code == RIGHT_STATUS[name], name
        # One lock, the tracking number's, as the admins see it; lifted, every door opens again.
        locks = (await client.get("/api/v1/lockouts", params={"kind": "track"}, headers=world.auth("admin"))).json()
        assert [(lock["kind"], lock["subject"]) for lock in locks] == [("track", form["tracking_no"])]
        lifted = await client.delete(f"/api/v1/lockouts/track/{form['tracking_no']}", headers=world.auth("admin"))
        assert lifted.status_code == 204
        for name, door in DOORS.items():
            assert (await door(client, form, form["verification_code"])).status_code == RIGHT_STATUS[name], name


async def test_the_lock_answer_is_the_same_through_every_api_door(db_url, make):
    app = await make(db_url, track_failures_before_lock=1)
    async with _client(app) as client:
        form, _ = await _with_photo(client)
        await _photo_list(client, form, _wrong(form))
        answers = []
        for name, door in API_DOORS.items():
            response = await door(client, form, form["verification_code"])
            _locked(response, name)
            body = response.json()
            answers.append((body["code"], body["title"], body["detail"].split("，")[0]))
        assert len(set(answers)) == 1, answers


async def test_a_right_code_through_the_photos_forgets_wrong_ones_made_through_tracking(db_url, make):
    app = await make(db_url, track_failures_before_lock=3)
    async with _client(app) as client:
        form, _ = await _with_photo(client)
        for _ in range(2):
            assert (await _track_api(client, form, _wrong(form))).status_code == 404
        assert (await _photo_list(client, form, form["verification_code"])).status_code == 200
        for _ in range(2):  # two more: four wrong in all, never three in a row
            assert (await _track_api(client, form, _wrong(form))).status_code == 404
        assert (await _track_api(client, form, form["verification_code"])).status_code == 200


async def test_unknown_forms_by_id_lock_like_real_ones(db_url, make):
    app = await make(db_url, track_failures_before_lock=2)
    world = await build_world(app.state.sessionmaker)
    async with _client(app) as client:
        missing = {"id": 999_999, "verification_code": "123456"}
        for _ in range(2):
            assert_problem(await _photo_list(client, missing, "654321"), 404, "form_not_found")
        _locked(await _photo_list(client, missing, "654321"), "photo_list")
        locks = (await client.get("/api/v1/lockouts", params={"kind": "track"}, headers=world.auth("admin"))).json()
        assert [lock["subject"] for lock in locks] == ["#999999"]


async def test_the_lock_holds_codes_not_people_signed_in(db_url, make):
    """Staff and the resident's own token are not guessing a code: a locked number does not hold them."""
    app = await make(db_url, track_failures_before_lock=1)
    world = await build_world(app.state.sessionmaker)
    async with _client(app) as client:
        form, photo_id = await _with_photo(client)
        await _track_api(client, form, _wrong(form))
        _locked(await _photo_list(client, form, form["verification_code"]), "photo_list")
        staff = await client.get(f"/api/v1/forms/{form['id']}/photos/{photo_id}", headers=world.auth("coordinator"))
        assert staff.status_code == 200, staff.text


# --- per client IP, on every door --------------------------------------------------------------------------


@pytest.mark.parametrize("door", sorted(DOORS))
async def test_the_ip_limit_is_one_budget_spent_through_any_door(db_url, make, door):
    app = await make(db_url, track_per_ip_per_minute=len(DOORS))
    async with _client(app) as client:
        form, _ = await _with_photo(client)
        for name, other in DOORS.items():  # one attempt through each door, all right codes
            assert (await other(client, form, form["verification_code"])).status_code == RIGHT_STATUS[name], name
        _rate_limited(await DOORS[door](client, form, form["verification_code"]), door)
    async with _client(app, "198.51.100.20") as elsewhere:  # another client has its own budget
        assert (await DOORS[door](elsewhere, form, form["verification_code"])).status_code == RIGHT_STATUS[door]


async def test_an_upload_looks_twice_but_spends_one_attempt(db_url, make):
    app = await make(db_url, track_per_ip_per_minute=1)
    async with _client(app) as client:
        form = await _submitted(client)
        assert (await _photo_upload(client, form, form["verification_code"])).status_code == 201
        _rate_limited(await _photo_list(client, form, form["verification_code"]), "photo_list")


async def test_a_spoofed_forwarded_for_does_not_escape_the_limit_or_the_lock(db_url, make):
    # No trusted proxy: X-Forwarded-For is the client's own word, and ignored.
    app = await make(db_url, track_per_ip_per_minute=3, track_failures_before_lock=1000)
    async with _client(app) as client:
        form, _ = await _with_photo(client)
        for n in range(3):
            response = await _photo_list(client, form, _wrong(form) if n else form["verification_code"])
            assert response.status_code in (200, 404)
        spoofed = {"X-Forwarded-For": "203.0.113.77"}
        response = await client.get(f"/api/v1/forms/{form['id']}/photos", params={"code": form["verification_code"]},
                                    headers=spoofed)
        _rate_limited(response, "photo_list")
        response = await client.get(f"/api/v1/track/{form['tracking_no']}", params={"code": form["verification_code"]},
                                    headers={"X-Forwarded-For": "203.0.113.78"})
        _rate_limited(response, "track_api")


async def test_behind_a_trusted_proxy_a_prepended_address_does_not_escape_the_limit(db_url, make):
    """The proxy appends the address it saw; whatever the client wrote before it is not the client."""
    app = await make(db_url, track_per_ip_per_minute=2, trusted_proxies="127.0.0.1")
    async with _client(app) as proxy:
        form, _ = await _with_photo(proxy)
        for n in range(2):
            forwarded = {"X-Forwarded-For": f"192.0.2.{n + 1}, 203.0.113.7"}
            response = await proxy.get(f"/api/v1/forms/{form['id']}/photos",
                                       params={"code": form["verification_code"]}, headers=forwarded)
            assert response.status_code == 200, response.text
        forwarded = {"X-Forwarded-For": "192.0.2.99, 203.0.113.7"}
        _rate_limited(await proxy.get(f"/api/v1/track/{form['tracking_no']}",
                                      params={"code": form["verification_code"]}, headers=forwarded), "track_api")
        # Another resident behind the same proxy has a budget of their own.
        response = await proxy.get(f"/api/v1/track/{form['tracking_no']}", params={"code": form["verification_code"]},
                                   headers={"X-Forwarded-For": "203.0.113.8"})
        assert response.status_code == 200, response.text


async def test_locks_and_limits_of_every_door_are_shared_through_redis(db_url, make, redis):
    prefix = f"test-guard-{secrets.token_hex(4)}:"
    try:
        one = await make(db_url, redis_url=REDIS_URL, redis_prefix=prefix, track_failures_before_lock=2)
        two = await make(db_url, redis_url=REDIS_URL, redis_prefix=prefix, track_failures_before_lock=2)
        async with _client(one) as first, _client(two) as second:
            form, _ = await _with_photo(first)
            assert (await _photo_list(first, form, _wrong(form))).status_code == 404
            assert (await _track_api(second, form, _wrong(form))).status_code == 404
            _locked(await _photo_read(second, form, form["verification_code"]), "photo_read")
            _locked(await _track_api(first, form, form["verification_code"]), "track_api")
            assert await redis.exists(f"{prefix}lock:on:track:{form['tracking_no']}") == 1
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
