"""The per-process statistics cache: polls that find nothing new run no statistics queries, a local write
shows at once, and another process's write shows within the cache's time to live."""

from __future__ import annotations

import time
import types

import httpx
from sqlalchemy import event

from app.db import create_engine, create_sessionmaker, transaction
from tests.support.apps import build_app
from app.services import forms as form_service
from app.services import read_cache
from app.services.auth import ANONYMOUS
from tests.conftest import make_settings
from tests.factories import build_world, submit


def count_statements(engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen.append(statement)

    return seen


async def test_a_repeated_poll_touches_no_table_at_all(app, client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client, workroom_code="LS-01")
    first = await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))
    seen = count_statements(app.state.engine)
    again = await client.get("/api/v1/stats/summary", headers={**world.auth("coordinator"),
                                                                "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert seen == [], seen  # neither the token nor the counts: both come from the process's cache


async def test_logout_in_this_process_takes_effect_at_once(client, sessionmaker):
    world = await build_world(sessionmaker)
    headers = world.auth("coordinator")
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401


async def test_a_local_write_is_seen_by_the_next_poll_at_once(client, sessionmaker):
    world = await build_world(sessionmaker)
    before = (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).json()
    await submit(client, workroom_code="LS-01")
    after = (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).json()
    assert after["collected"] == before["collected"] + 1


async def test_another_process_write_shows_after_the_time_to_live(db_url, sessionmaker, monkeypatch):
    # The cache's clock is the test's: the answer is cached for 3 s however slowly this machine runs.
    now = [time.monotonic()]
    monkeypatch.setattr(read_cache, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    app = build_app(make_settings(db_url, stats_cache_seconds=3))
    other = create_engine(make_settings(db_url))  # "another process": its own engine and sessions
    try:
        world = await build_world(app.state.sessionmaker)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            headers = world.auth("coordinator")
            before = (await http.get("/api/v1/stats/summary", headers=headers)).json()["collected"]
            async with transaction(create_sessionmaker(other)) as session:
                await form_service.submit(session, principal=ANONYMOUS, settings=app.state.settings,
                                          data=form_service.Submission(content="另一进程提交的意见"))
            cached = (await http.get("/api/v1/stats/summary", headers=headers)).json()["collected"]
            now[0] += 2.9
            still = (await http.get("/api/v1/stats/summary", headers=headers)).json()["collected"]
            now[0] += 0.2
            fresh = (await http.get("/api/v1/stats/summary", headers=headers)).json()["collected"]
        assert cached == still == before  # still within the time to live: the cached answer
        assert fresh == before + 1
    finally:
        await other.dispose()
        await app.state.engine.dispose()


async def test_cache_can_be_turned_off(db_url):
    app = build_app(make_settings(db_url, stats_cache_seconds=0))
    other = create_engine(make_settings(db_url))
    try:
        world = await build_world(app.state.sessionmaker)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            headers = world.auth("coordinator")
            before = (await http.get("/api/v1/stats/summary", headers=headers)).json()["collected"]
            async with transaction(create_sessionmaker(other)) as session:
                await form_service.submit(session, principal=ANONYMOUS, settings=app.state.settings,
                                          data=form_service.Submission(content="另一进程提交的意见"))
            assert (await http.get("/api/v1/stats/summary", headers=headers)).json()["collected"] == before + 1
    finally:
        await other.dispose()
        await app.state.engine.dispose()


async def test_a_failed_request_does_not_spoil_the_cached_login(client, sessionmaker):
    world = await build_world(sessionmaker)
    headers = world.auth("admin")
    assert (await client.get("/api/v1/representatives/99999", headers=headers)).status_code == 404
    # The failed request rolled back its session; the login it cached must still be whole.
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["username"] == "admin"
