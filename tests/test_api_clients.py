"""API clients (CONTRACT "WeChat and integrators"): admins create, list, change, rotate and revoke them; a
key works for its scopes only, is stored hashed and shown once; each client has its own rate limit,
counted per process or shared through Redis."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from app.db import transaction
from tests.support.apps import build_app
from app.models import ApiClient, OpinionForm, utcnow
from app.services import rate_limit
from tests.conftest import make_settings
from tests.factories import World, build_world
from tests.conftest import REDIS_URL
from tests.support.problems import assert_problem
from tests.test_rate_limit import UNREACHABLE_REDIS

FORM = {"content": "小区门口的人行道被占用，老人出行不便。", "category": "urban_traffic"}


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def new_client(
    http: httpx.AsyncClient, world: World, scopes: list[str], **fields: Any
) -> dict[str, Any]:
    response = await http.post("/api/v1/api-clients", json={"name": "区网格平台", "scopes": scopes, **fields},
                               headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    return response.json()


async def client_row(sessionmaker: Any, client_id: int) -> ApiClient:
    async with transaction(sessionmaker) as session:
        row = await session.get(ApiClient, client_id)
        assert row is not None
        return row


# --- admin endpoints -------------------------------------------------------------------------------


async def test_admin_creates_a_client_and_sees_its_key_once(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/api-clients", json={"name": "区网格平台", "scopes": ["stats:read", "forms:write"]},
                                 headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    key = created["key"]
    assert key.startswith("mk_") and len(key) == 3 + 43
    assert created["key_prefix"] == key[:11]
    assert created["name"] == "区网格平台"
    assert created["scopes"] == ["forms:write", "stats:read"]  # each scope once, in a fixed order
    assert created["rate_limit_per_minute"] == settings.api_rate_limit_per_minute == 600
    assert created["active"] is True and created["revoked_at"] is None and created["last_used_at"] is None
    assert created["created_by_user_id"] == world.user_ids["admin"]
    assert created["created_at"].endswith("+08:00")

    detail = await client.get(f"/api/v1/api-clients/{created['id']}", headers=world.auth("admin"))
    assert detail.status_code == 200
    assert "key" not in detail.json() and key not in detail.text
    assert detail.json()["key_prefix"] == key[:11]


async def test_the_key_is_stored_only_as_its_hash(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = await new_client(client, world, ["forms:read"])
    row = await client_row(sessionmaker, created["id"])
    assert row.key_hash == hashlib.sha256(created["key"].encode()).hexdigest()
    stored = [str(getattr(row, column.key)) for column in ApiClient.__table__.columns]
    assert not any(created["key"] in value for value in stored)
    assert row.key_prefix == created["key"][:11]


async def test_the_list_never_shows_keys(client, sessionmaker):
    world = await build_world(sessionmaker)
    keys = [(await new_client(client, world, ["forms:read"], name=f"系统{n}"))["key"] for n in range(3)]
    response = await client.get("/api/v1/api-clients?limit=2", headers=world.auth("admin"))
    assert response.status_code == 200
    page = response.json()
    assert [item["name"] for item in page["items"]] == ["系统0", "系统1"] and page["next_cursor"]
    rest = await client.get(f"/api/v1/api-clients?cursor={page['next_cursor']}", headers=world.auth("admin"))
    assert [item["name"] for item in rest.json()["items"]] == ["系统2"] and rest.json()["next_cursor"] is None
    for answer in (response, rest):
        assert all("key" not in item for item in answer.json()["items"])
        assert not any(key in answer.text for key in keys)
        assert all({"last_used_at", "revoked_at", "key_prefix"} <= item.keys() for item in answer.json()["items"])


@pytest.mark.parametrize("body", [
    {"name": "系统", "scopes": ["forms:delete"]},
    {"name": "系统", "scopes": []},
    {"name": "系统"},
    {"name": "", "scopes": ["forms:read"]},
    {"name": "系统", "scopes": ["forms:read"], "rate_limit_per_minute": 0},
    {"name": "系统", "scopes": ["forms:read"], "rate_limit_per_minute": 10**9},
    {"name": "系统", "scopes": "forms:read"},
])
async def test_a_bad_client_body_is_a_422(client, sessionmaker, body):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/api-clients", json=body, headers=world.auth("admin"))
    assert assert_problem(response, 422, "validation_error")["errors"]
    async with transaction(sessionmaker) as session:
        assert (await session.scalars(select(ApiClient))).all() == []


async def test_an_unknown_scope_names_the_field(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/api-clients", json={"name": "系统", "scopes": ["forms:read", "admin"]},
                                 headers=world.auth("admin"))
    errors = assert_problem(response, 422)["errors"]
    assert errors[0]["loc"] == ["body", "scopes", 1]


async def test_only_admins_manage_clients(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = await new_client(client, world, ["forms:read", "forms:write", "stats:read", "webhooks"])
    calls = [
        ("GET", "/api/v1/api-clients", None),
        ("POST", "/api/v1/api-clients", {"name": "系统", "scopes": ["forms:read"]}),
        ("GET", f"/api/v1/api-clients/{created['id']}", None),
        ("PATCH", f"/api/v1/api-clients/{created['id']}", {"name": "改名"}),
        ("POST", f"/api/v1/api-clients/{created['id']}/rotate", None),
        ("DELETE", f"/api/v1/api-clients/{created['id']}", None),
    ]
    for method, url, body in calls:
        assert_problem(await client.request(method, url, json=body), 401)
        for who in ("coordinator", "handler_a", "rep"):
            assert_problem(await client.request(method, url, json=body, headers=world.auth(who)), 403, "forbidden")
        # A client with every scope still may not manage clients, itself included.
        assert_problem(await client.request(method, url, json=body, headers=key_header(created["key"])), 403)
    row = await client_row(sessionmaker, created["id"])
    assert row.name == "区网格平台" and row.revoked_at is None and row.rotated_at is None


async def test_an_unknown_client_is_a_404(client, sessionmaker):
    world = await build_world(sessionmaker)
    for method, url in (("GET", "/api/v1/api-clients/999"), ("PATCH", "/api/v1/api-clients/999"),
                        ("POST", "/api/v1/api-clients/999/rotate"), ("DELETE", "/api/v1/api-clients/999")):
        body = {"name": "x"} if method == "PATCH" else None
        assert_problem(await client.request(method, url, json=body, headers=world.auth("admin")), 404,
                       "api_client_not_found")
    assert_problem(await client.get("/api/v1/api-clients/0", headers=world.auth("admin")), 422)
    assert_problem(await client.get("/api/v1/api-clients/abc", headers=world.auth("admin")), 422)


# --- what a key may do -----------------------------------------------------------------------------


async def test_a_stats_only_key_reads_statistics_and_nothing_else(client, sessionmaker):
    world = await build_world(sessionmaker)
    key = (await new_client(client, world, ["stats:read"]))["key"]
    assert (await client.get("/api/v1/stats/summary", headers=key_header(key))).status_code == 200
    assert (await client.get("/api/v1/stats/by-category", headers=key_header(key))).status_code == 200
    body = assert_problem(await client.post("/api/v1/forms", json=FORM, headers=key_header(key)), 403, "missing_scope")
    assert body["scope"] == "forms:write"
    assert_problem(await client.get("/api/v1/forms", headers=key_header(key)), 403, "missing_scope")
    async with transaction(sessionmaker) as session:
        assert (await session.scalars(select(OpinionForm))).all() == []


async def test_a_write_only_key_submits_but_cannot_read(client, sessionmaker):
    world = await build_world(sessionmaker)
    key = (await new_client(client, world, ["forms:write"]))["key"]
    response = await client.post("/api/v1/forms", json=FORM, headers=key_header(key))
    assert response.status_code == 201, response.text
    assert_problem(await client.get("/api/v1/forms", headers=key_header(key)), 403, "missing_scope")
    assert_problem(await client.get(f"/api/v1/forms/{response.json()['id']}", headers=key_header(key)), 403)
    assert_problem(await client.get("/api/v1/stats/summary", headers=key_header(key)), 403, "missing_scope")


async def test_a_form_from_a_client_records_it_and_a_reading_client_sees_it(client, sessionmaker):
    world = await build_world(sessionmaker)
    writer = await new_client(client, world, ["forms:write"], name="写入系统")
    reader = await new_client(client, world, ["forms:read"], name="读取系统")
    response = await client.post("/api/v1/forms", json=FORM, headers=key_header(writer["key"]))
    assert response.status_code == 201, response.text
    form_id = response.json()["id"]
    async with transaction(sessionmaker) as session:
        assert (await session.get(OpinionForm, form_id)).api_client_id == writer["id"]

    listed = await client.get("/api/v1/forms", headers=key_header(reader["key"]))
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [form_id]
    assert listed.json()["items"][0]["api_client_id"] == writer["id"]
    one = await client.get(f"/api/v1/forms/{form_id}", headers=key_header(reader["key"]))
    assert one.status_code == 200 and one.json()["content"] == FORM["content"]
    assert_problem(await client.post("/api/v1/forms", json=FORM, headers=key_header(reader["key"])), 403,
                   "missing_scope")


async def test_an_unknown_key_is_a_401(client, sessionmaker):
    await build_world(sessionmaker)
    for key in ("mk_" + "x" * 43, "nonsense", "mk_"):
        assert_problem(await client.get("/api/v1/stats/summary", headers=key_header(key)), 401, "invalid_api_key")


# --- rotate, revoke, change ------------------------------------------------------------------------


async def test_rotating_stops_the_old_key_at_once_and_the_new_one_works(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = await new_client(client, world, ["stats:read"])
    old = created["key"]
    assert (await client.get("/api/v1/stats/summary", headers=key_header(old))).status_code == 200  # cached now
    response = await client.post(f"/api/v1/api-clients/{created['id']}/rotate", headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    new = rotated["key"]
    assert new != old and new.startswith("mk_") and rotated["key_prefix"] == new[:11]
    assert rotated["rotated_at"] is not None and rotated["id"] == created["id"]
    assert_problem(await client.get("/api/v1/stats/summary", headers=key_header(old)), 401, "invalid_api_key")
    assert (await client.get("/api/v1/stats/summary", headers=key_header(new))).status_code == 200
    row = await client_row(sessionmaker, created["id"])
    assert row.key_hash == hashlib.sha256(new.encode()).hexdigest()


async def test_revoking_stops_the_key_and_freezes_the_client(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = await new_client(client, world, ["stats:read"])
    key, url = created["key"], f"/api/v1/api-clients/{created['id']}"
    assert (await client.get("/api/v1/stats/summary", headers=key_header(key))).status_code == 200  # cached now
    response = await client.delete(url, headers=world.auth("admin"))
    assert response.status_code == 204 and response.content == b""
    assert_problem(await client.get("/api/v1/stats/summary", headers=key_header(key)), 401, "invalid_api_key")

    shown = (await client.get(url, headers=world.auth("admin"))).json()
    assert shown["active"] is False and shown["revoked_at"] is not None
    assert (await client.delete(url, headers=world.auth("admin"))).status_code == 204  # again: no change
    assert (await client.get(url, headers=world.auth("admin"))).json()["revoked_at"] == shown["revoked_at"]
    assert_problem(await client.post(f"{url}/rotate", headers=world.auth("admin")), 409, "client_revoked")
    assert_problem(await client.patch(url, json={"name": "复活"}, headers=world.auth("admin")), 409, "client_revoked")
    assert_problem(await client.get("/api/v1/stats/summary", headers=key_header(key)), 401, "invalid_api_key")


async def test_changing_scopes_applies_to_the_next_request(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = await new_client(client, world, ["stats:read"])
    key, url = created["key"], f"/api/v1/api-clients/{created['id']}"
    assert_problem(await client.get("/api/v1/forms", headers=key_header(key)), 403, "missing_scope")  # cached now
    response = await client.patch(url, json={"scopes": ["forms:read", "forms:read"], "name": "改名",
                                             "rate_limit_per_minute": 120}, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["scopes"] == ["forms:read"] and changed["name"] == "改名"
    assert changed["rate_limit_per_minute"] == 120 and "key" not in changed
    assert (await client.get("/api/v1/forms", headers=key_header(key))).status_code == 200
    assert_problem(await client.get("/api/v1/stats/summary", headers=key_header(key)), 403, "missing_scope")


@pytest.mark.parametrize("body", [{"name": None}, {"scopes": None}, {"scopes": ["root"]},
                                  {"rate_limit_per_minute": -1}, {"scopes": []}])
async def test_a_bad_change_is_a_422_and_changes_nothing(client, sessionmaker, body):
    world = await build_world(sessionmaker)
    created = await new_client(client, world, ["stats:read"])
    response = await client.patch(f"/api/v1/api-clients/{created['id']}", json=body, headers=world.auth("admin"))
    assert_problem(response, 422, "validation_error")
    row = await client_row(sessionmaker, created["id"])
    assert (row.name, row.scopes, row.rate_limit_per_minute) == ("区网格平台", ["stats:read"], 600)


# --- /me and last use ------------------------------------------------------------------------------


async def test_a_client_reads_itself(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = await new_client(client, world, ["forms:write", "webhooks"], rate_limit_per_minute=90)
    response = await client.get("/api/v1/api-clients/me", headers=key_header(created["key"]))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == created["id"] and me["name"] == "区网格平台"
    assert me["scopes"] == ["forms:write", "webhooks"] and me["rate_limit_per_minute"] == 90
    assert me["key_prefix"] == created["key"][:11] and "key" not in me
    assert me["last_used_at"] is not None  # this very request counted
    assert_problem(await client.get("/api/v1/api-clients/me"), 401, "api_key_required")
    assert_problem(await client.get("/api/v1/api-clients/me", headers=world.auth("admin")), 403, "api_clients_only")


async def test_last_use_is_recorded_at_most_once_a_minute(app, client, sessionmaker):
    world = await build_world(sessionmaker)
    created = await new_client(client, world, ["stats:read"])
    assert (await client_row(sessionmaker, created["id"])).last_used_at is None
    assert (await client.get("/api/v1/stats/summary", headers=key_header(created["key"]))).status_code == 200
    first = (await client_row(sessionmaker, created["id"])).last_used_at
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    generation = app.state.auth_cache.generation
    for _ in range(3):
        assert (await client.get("/api/v1/stats/summary", headers=key_header(created["key"]))).status_code == 200
    assert (await client_row(sessionmaker, created["id"])).last_used_at == first  # within the minute: no write
    assert app.state.auth_cache.generation == generation  # bookkeeping drops no cache

    # Two minutes later (the row moved back, which also drops this process's cached client): written again.
    async with transaction(sessionmaker) as session:
        await session.execute(update(ApiClient).where(ApiClient.id == created["id"])
                              .values(last_used_at=first - timedelta(minutes=2)))
    assert (await client.get("/api/v1/stats/summary", headers=key_header(created["key"]))).status_code == 200
    assert (await client_row(sessionmaker, created["id"])).last_used_at > first
    listed = (await client.get("/api/v1/api-clients", headers=world.auth("admin"))).json()["items"]
    assert listed[0]["last_used_at"] is not None


# --- rate limits -----------------------------------------------------------------------------------


async def test_the_fourth_request_over_a_limit_of_three_is_a_429(client, sessionmaker):
    world = await build_world(sessionmaker)
    limited = await new_client(client, world, ["stats:read"], rate_limit_per_minute=3)
    other = await new_client(client, world, ["stats:read"], rate_limit_per_minute=3)
    for _ in range(3):
        assert (await client.get("/api/v1/stats/summary", headers=key_header(limited["key"]))).status_code == 200
    response = await client.get("/api/v1/stats/summary", headers=key_header(limited["key"]))
    body = assert_problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1 and body["retry_after"] == int(response.headers["Retry-After"])
    # Every path counts, and every client has its own allowance; staff are not limited by it.
    assert_problem(await client.get("/api/v1/api-clients/me", headers=key_header(limited["key"])), 429)
    assert (await client.get("/api/v1/stats/summary", headers=key_header(other["key"]))).status_code == 200
    assert (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).status_code == 200


async def test_raising_the_limit_shortens_the_wait_at_once(client, sessionmaker):
    world = await build_world(sessionmaker)
    limited = await new_client(client, world, ["stats:read"], rate_limit_per_minute=1)
    assert (await client.get("/api/v1/stats/summary", headers=key_header(limited["key"]))).status_code == 200
    refused = await client.get("/api/v1/stats/summary", headers=key_header(limited["key"]))
    assert_problem(refused, 429)
    assert int(refused.headers["Retry-After"]) > 50  # one a minute: wait for the minute
    response = await client.patch(f"/api/v1/api-clients/{limited['id']}", json={"rate_limit_per_minute": 600},
                                  headers=world.auth("admin"))
    assert response.status_code == 200
    # The minute already used stays used, but at 600 a minute the next request is due in 0.1 s, not 60.
    again = await client.get("/api/v1/stats/summary", headers=key_header(limited["key"]))
    assert again.status_code == 200 or again.headers["Retry-After"] == "1", again.headers


@asynccontextmanager
async def apps(db_url: str, count: int, *, prefix: str | None = None,
               **overrides: Any) -> AsyncIterator[list[tuple[FastAPI, httpx.AsyncClient]]]:
    """``count`` app instances (as if separate processes) on one database, each with its own HTTP client.
    ``prefix``: their Redis keys' namespace, this test's own."""
    made: list[tuple[FastAPI, httpx.AsyncClient]] = []
    try:
        for _ in range(count):
            settings = make_settings(db_url, supervise_interval_seconds=0, **overrides)
            application = build_app(settings)
            if prefix is not None:
                await application.state.rate_limiter.aclose()
                application.state.rate_limiter = rate_limit.create(settings, prefix=prefix)
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver")
            made.append((application, http))
        yield made
    finally:
        for application, http in made:
            await http.aclose()
            await application.state.rate_limiter.aclose()
            await application.state.engine.dispose()


async def limited_client(app_and_http: tuple[FastAPI, httpx.AsyncClient], limit: int) -> str:
    application, http = app_and_http
    world = await build_world(application.state.sessionmaker)
    return (await new_client(http, world, ["stats:read"], rate_limit_per_minute=limit))["key"]


@pytest.fixture
async def redis_prefix(redis) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    connection = redis
    prefix = f"minyi-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in connection.scan_iter(match=f"{prefix}*")]
    assert keys, "the apps never counted in Redis"
    await connection.delete(*keys)
    await connection.aclose()


async def test_two_apps_share_the_count_through_redis(db_url, redis_prefix):
    async with apps(db_url, 2, prefix=redis_prefix, redis_url=REDIS_URL) as made:
        (_, first), (_, second) = made
        key = await limited_client(made[0], 3)
        for http in (first, second, first):
            assert (await http.get("/api/v1/stats/summary", headers=key_header(key))).status_code == 200
        response = await second.get("/api/v1/stats/summary", headers=key_header(key))
        assert_problem(response, 429, "rate_limited")
        assert int(response.headers["Retry-After"]) >= 1
        assert_problem(await first.get("/api/v1/stats/summary", headers=key_header(key)), 429)


async def test_without_redis_each_app_counts_alone(db_url):
    async with apps(db_url, 2) as made:
        (_, first), (_, second) = made
        key = await limited_client(made[0], 3)
        for http in (first, first, first, second, second, second):
            assert (await http.get("/api/v1/stats/summary", headers=key_header(key))).status_code == 200
        assert_problem(await first.get("/api/v1/stats/summary", headers=key_header(key)), 429)
        assert_problem(await second.get("/api/v1/stats/summary", headers=key_header(key)), 429)


async def test_an_unreachable_redis_does_not_fail_requests(db_url, caplog):
    caplog.set_level(logging.WARNING, logger="minyi.rate_limit")
    async with apps(db_url, 1, redis_url=UNREACHABLE_REDIS) as made:
        (_, http), = made
        key = await limited_client(made[0], 3)
        for _ in range(3):
            response = await http.get("/api/v1/stats/summary", headers=key_header(key))
            assert response.status_code == 200, response.text
        # Still limited, in this process alone; and said once in the log, not once per request.
        assert_problem(await http.get("/api/v1/stats/summary", headers=key_header(key)), 429, "rate_limited")
        assert len([r for r in caplog.records if "Redis unreachable" in r.getMessage()]) == 1
