"""Idempotency-Keys are the caller's own (issue 15, point 7; services/idempotency.py): anonymous keys per
client address, signed-in keys per principal (staff user, resident, API client), through every door that
takes one (POST /api/v1/forms, the representatives' page, Open311). The same key from another caller is
another key: it files its own form and never gets back the first caller's tracking number or code. From
the same caller the semantics stay: same key + same body → the first answer; other body → 422."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from app.models import IdempotencyRecord, OpinionForm
from tests.conftest import make_settings, wechat_settings
from tests.factories import build_world
from tests.fake_wechat import FakeWeChat
from tests.support.apps import build_app
from tests.support.logins import sign_in, wechat_login
from tests.support.problems import assert_problem

FORMS = "/api/v1/forms"
BODY = {"content": "菜场门口的排水沟堵了，一下雨就积水。", "category": "environment", "submitter_name": "王阿姨",
        "submitter_phone": "13800001111"}


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[Any]:
    application = build_app(make_settings(db_url))
    yield application
    await application.state.engine.dispose()


def _client(app: Any, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 5000)), base_url="http://testserver")


async def _forms(app: Any) -> int:
    async with app.state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


def _created_apart(first: httpx.Response, second: httpx.Response) -> None:
    """``second`` made a form of its own: 201, not a replay, nothing of ``first``'s form in it."""
    assert first.status_code == second.status_code == 201, second.text
    assert "Idempotent-Replayed" not in second.headers
    mine, theirs = first.json(), second.json()
    assert theirs["id"] != mine["id"] and theirs["tracking_no"] != mine["tracking_no"]
    assert mine["tracking_no"] not in second.text
    assert f'"verification_code":"{mine["verification_code"]}"' not in second.text.replace(" ", "")


def _replayed(first: httpx.Response, again: httpx.Response) -> None:
    assert again.status_code == first.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


# --- anonymous: per client address ------------------------------------------------------------------------


async def test_an_anonymous_key_replayed_from_another_address_files_its_own_form(app):
    key = {"Idempotency-Key": "form-1"}
    async with _client(app, "198.51.100.1") as resident, _client(app, "203.0.113.9") as stranger:
        first = await resident.post(FORMS, json=BODY, headers=key)
        replay_elsewhere = await stranger.post(FORMS, json=BODY, headers=key)
        _created_apart(first, replay_elsewhere)
        # Each address keeps its own first answer.
        _replayed(first, await resident.post(FORMS, json=BODY, headers=key))
        _replayed(replay_elsewhere, await stranger.post(FORMS, json=BODY, headers=key))
    assert await _forms(app) == 2


async def test_an_anonymous_key_from_the_same_address_keeps_its_semantics(app):
    key = {"Idempotency-Key": "form-2"}
    async with _client(app) as resident:
        first = await resident.post(FORMS, json=BODY, headers=key)
        _replayed(first, await resident.post(FORMS, json=BODY, headers=key))
        reused = await resident.post(FORMS, json={**BODY, "content": "另一条意见。"}, headers=key)
        assert_problem(reused, 422, "idempotency_key_reused")
    async with _client(app, "203.0.113.9") as stranger:  # another body under the same key elsewhere: a new key
        other = await stranger.post(FORMS, json={**BODY, "content": "另一条意见。"}, headers=key)
        assert other.status_code == 201, other.text
    assert await _forms(app) == 2


async def test_a_spoofed_forwarded_for_is_not_another_address(app):
    """No trusted proxy: X-Forwarded-For is the client's own word, so it neither escapes nor reaches
    another address's namespace."""
    key = {"Idempotency-Key": "form-3"}
    async with _client(app) as client:
        first = await client.post(FORMS, json=BODY, headers=key)
        again = await client.post(FORMS, json=BODY, headers={**key, "X-Forwarded-For": "203.0.113.50"})
        _replayed(first, again)
    assert await _forms(app) == 1


async def test_behind_a_trusted_proxy_each_forwarded_resident_has_a_namespace(db_url):
    app = build_app(make_settings(db_url, trusted_proxies="127.0.0.1"))
    try:
        key = {"Idempotency-Key": "form-4"}
        async with _client(app) as proxy:
            first = await proxy.post(FORMS, json=BODY, headers={**key, "X-Forwarded-For": "203.0.113.7"})
            other = await proxy.post(FORMS, json=BODY, headers={**key, "X-Forwarded-For": "203.0.113.8"})
            _created_apart(first, other)
            _replayed(first, await proxy.post(FORMS, json=BODY, headers={**key, "X-Forwarded-For": "203.0.113.7"}))
    finally:
        await app.state.engine.dispose()


async def test_no_client_address_is_stored_with_a_key(app):
    async with _client(app, "198.51.100.77") as resident:
        assert (await resident.post(FORMS, json=BODY, headers={"Idempotency-Key": "form-5"})).status_code == 201
    async with app.state.sessionmaker() as session:
        (scope,) = (await session.scalars(select(IdempotencyRecord.scope))).all()
    assert scope.startswith("anon:") and "198.51.100.77" not in scope and len(scope) <= 64


# --- signed in: per principal -------------------------------------------------------------------------------


async def test_staff_keys_are_per_user_not_per_address(app):
    world = await build_world(app.state.sessionmaker)
    key = {"Idempotency-Key": "stall-1"}
    async with _client(app, "198.51.100.1") as phone, _client(app, "198.51.100.2") as other_network:
        first = await phone.post(FORMS, json=BODY, headers={**key, **world.auth("rep")})
        # The same representative on another network: the same namespace, the first answer.
        _replayed(first, await other_network.post(FORMS, json=BODY, headers={**key, **world.auth("rep")}))
        # Another representative, the same address and key: a form of their own.
        _created_apart(first, await phone.post(FORMS, json=BODY, headers={**key, **world.auth("rep2")}))
        # Nobody signed in, the same address and key: not the representative's namespace either.
        _created_apart(first, await phone.post(FORMS, json=BODY, headers=key))
    assert await _forms(app) == 3


async def _api_key(client: httpx.AsyncClient, world: Any, name: str) -> dict[str, str]:
    response = await client.post("/api/v1/api-clients", json={"name": name, "scopes": ["forms:write"]},
                                 headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def test_api_client_keys_are_per_client(app):
    world = await build_world(app.state.sessionmaker)
    key = {"Idempotency-Key": "batch-1"}
    async with _client(app) as client:
        one, two = await _api_key(client, world, "网格平台"), await _api_key(client, world, "另一家")
        first = await client.post(FORMS, json=BODY, headers={**key, **one})
        _created_apart(first, await client.post(FORMS, json=BODY, headers={**key, **two}))
        _replayed(first, await client.post(FORMS, json=BODY, headers={**key, **one}))
    assert await _forms(app) == 2


async def test_resident_keys_are_per_resident(db_url, fake_wechat: FakeWeChat):
    app = build_app(wechat_settings(db_url, fake_wechat))
    try:
        key = {"Idempotency-Key": "wx-1"}
        async with _client(app) as client:
            alice = await wechat_login(client, fake_wechat, "openid-alice")
            bob = await wechat_login(client, fake_wechat, "openid-bob")
            first = await client.post(FORMS, json=BODY, headers={**key, **alice})
            _created_apart(first, await client.post(FORMS, json=BODY, headers={**key, **bob}))
            _replayed(first, await client.post(FORMS, json=BODY, headers={**key, **alice}))
            reused = await client.post(FORMS, json={**BODY, "content": "另一条意见。"}, headers={**key, **alice})
            assert_problem(reused, 422, "idempotency_key_reused")
    finally:
        await app.state.engine.dispose()


async def test_the_representatives_page_keys_are_per_representative(app):
    """The page's hidden idempotency_key (and offline.js's header) live in the signed-in user's namespace."""
    await build_world(app.state.sessionmaker)
    fields = {"content": BODY["content"], "category": "environment", "source": "w:LS-01",
              "idempotency_key": "page-1"}
    json_please = {"Accept": "application/json"}
    async with _client(app) as rep_phone, _client(app) as rep2_phone:
        token = await sign_in(rep_phone, "rep")
        first = await rep_phone.post("/rep/forms", data={**fields, "csrf_token": token}, headers=json_please)
        assert first.status_code == 201, first.text
        token2 = await sign_in(rep2_phone, "rep2")
        other = await rep2_phone.post("/rep/forms", data={**fields, "source": "", "csrf_token": token2},
                                      headers=json_please)
        assert other.status_code == 201, other.text
        assert other.json()["id"] != first.json()["id"] and "Idempotent-Replayed" not in other.headers
        again = await rep_phone.post("/rep/forms", data={**fields, "csrf_token": token}, headers=json_please)
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert await _forms(app) == 2


async def test_open311_keys_are_per_api_client(app):
    world = await build_world(app.state.sessionmaker)
    filed = {"service_code": "urban_traffic", "description": BODY["content"], "attribute[workroom]": "LS-01",
             "address_string": "洛社镇菜场东门"}
    async with _client(app) as client:
        one, two = await _api_key(client, world, "网格平台"), await _api_key(client, world, "另一家")

        async def file(api_key: dict[str, str]) -> httpx.Response:
            return await client.post("/open311/v2/requests.json", content=urlencode(filed),
                                     headers={"Content-Type": "application/x-www-form-urlencoded",
                                              "Idempotency-Key": "o311-1", **api_key})

        first, other, again = await file(one), await file(two), await file(one)
        assert first.status_code == other.status_code == again.status_code == 201, other.text
        assert other.json()[0]["service_request_id"] != first.json()[0]["service_request_id"]
        assert first.json()[0]["service_request_id"] not in other.text
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert await _forms(app) == 2
