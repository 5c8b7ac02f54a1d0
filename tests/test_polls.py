"""Dashboard polls answered from the caches before routing (api/polls.py): the same answers and the same
access rules as the statistics routes themselves."""

from __future__ import annotations

import asyncio

from sqlalchemy import event

from app.services.auth import ANONYMOUS
from app.services.forms import Submission
from tests.factories import build_world, submit

SUMMARY = "/api/v1/stats/summary"


def _scope(path: str, query: bytes, headers: dict[str, str]) -> dict[str, object]:
    return {"type": "http", "method": "GET", "path": path, "query_string": query,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


async def test_a_repeat_poll_is_answered_before_routing_with_the_same_bytes(client, app, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    await submit(client, workroom_code="LS-01")
    auth = world.auth("coordinator")
    first = await client.get(SUMMARY, params={"workroom": "LS-01"}, headers=auth)
    assert first.status_code == 200 and first.json()["collected"] == 1
    # The caches now hold the answer for exactly this path, query and token.
    answers = app.state.poll_answers
    hit = answers.lookup(_scope(SUMMARY, b"workroom=LS-01", auth))
    assert hit is not None and hit[0] == first.headers["etag"]
    assert answers.lookup(_scope(SUMMARY, b"workroom=LS-02", auth)) is None
    assert answers.lookup(_scope(SUMMARY, b"workroom=LS-01", {})) is None
    assert answers.lookup(_scope(SUMMARY, b"workroom=LS-01", {"Authorization": "Bearer nope"})) is None

    second = await client.get(SUMMARY, params={"workroom": "LS-01"}, headers=auth)
    assert second.status_code == 200
    assert second.content == first.content
    for header in ("etag", "content-type", "cache-control", "content-length"):
        assert second.headers[header] == first.headers[header], header

    not_modified = await client.get(SUMMARY, params={"workroom": "LS-01"},
                                    headers={**auth, "If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == first.headers["etag"]
    assert "content-type" not in not_modified.headers
    stale = await client.get(SUMMARY, params={"workroom": "LS-01"}, headers={**auth, "If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.content == first.content


async def test_the_fast_path_keeps_the_routes_access_rules(client, app, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    auth = world.auth("coordinator")
    first = await client.get(SUMMARY, headers=auth)
    etag = first.headers["etag"]
    assert (await client.get(SUMMARY)).status_code == 401
    assert (await client.get(SUMMARY, headers={"Authorization": "Bearer not-a-token", "If-None-Match": etag})).status_code == 401
    assert (await client.get(SUMMARY, headers={"Authorization": "Basic eDp5", "If-None-Match": etag})).status_code == 401
    # Another signed-in user is answered from the same entry once their own token is known.
    other = await client.get(SUMMARY, headers={**world.auth("handler_a"), "If-None-Match": etag})
    assert other.status_code == 304
    # Signing out drops the token at once: the next poll with it is refused, not answered from the cache.
    assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code in (200, 204)
    assert (await client.get(SUMMARY, headers={**auth, "If-None-Match": etag})).status_code == 401


async def test_a_write_is_seen_by_the_next_poll(client, app, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    auth = world.auth("coordinator")
    first = await client.get(SUMMARY, headers=auth)
    assert first.json()["collected"] == 0
    await app.state.submissions.submit(ANONYMOUS, Submission(content="路口红绿灯时间太短。"))
    after = await client.get(SUMMARY, headers={**auth, "If-None-Match": first.headers["etag"]})
    assert after.status_code == 200 and after.json()["collected"] == 1
    assert after.headers["etag"] != first.headers["etag"]


async def test_concurrent_misses_compute_once(client, app, sessionmaker) -> None:
    """Polls that miss together share one computation (no stampede when an entry expires)."""
    world = await build_world(sessionmaker)
    auth = world.auth("coordinator")
    await client.get(SUMMARY, headers=auth)  # the token is now cached
    app.state.stats_cache.invalidate()
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "stat_cell" in statement or "opinion_form" in statement:
            statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        answers = await asyncio.gather(*[client.get(SUMMARY, headers=auth) for _ in range(20)])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    alone = len(statements)
    statements.clear()
    app.state.stats_cache.invalidate()
    event.listen(engine, "before_cursor_execute", count)
    try:
        await client.get(SUMMARY, headers=auth)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert alone == len(statements) > 0  # twenty polls cost what one costs
