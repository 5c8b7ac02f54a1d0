"""Every client error is problem+json; no input gives a 500; a failed request changes nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from app.db import transaction
from app.models import FormEvent, OpinionForm, StatCell, TrackingSequence
from app.services import stats as stats_service
from tests.conftest import make_settings
from tests.factories import act, build_world, submit
from tests.support.problems import assert_problem


async def test_unknown_path_is_a_404_problem(client):
    assert_problem(await client.get("/api/v1/no-such-thing"), 404, "not_found")


async def test_wrong_method_is_a_405_problem(client):
    assert_problem(await client.delete("/api/v1/forms"), 405, "method_not_allowed")


async def test_validation_error_lists_each_field(client):
    body = assert_problem(await client.post("/api/v1/forms", json={"channel": "pigeon"}), 422, "validation_error")
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "content") in locs and ("body", "channel") in locs
    assert all({"loc", "msg", "type"} <= set(e) for e in body["errors"])


async def test_malformed_json_is_a_422_problem(client):
    response = await client.post("/api/v1/forms", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 422, "validation_error")


async def test_nul_character_in_body_is_refused_alike_on_both_engines(client, sessionmaker):
    assert_problem(await client.post("/api/v1/forms", json={"content": "路灯\u0000坏了"}), 422, "validation_error")
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 0


async def test_nul_character_in_url_is_a_400_problem(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert_problem(await client.get("/api/v1/forms?q=a%00b", headers=world.auth("admin")), 400, "invalid_characters")
    assert_problem(await client.get("/api/v1/workrooms/LS%0001", headers=world.auth("admin")), 400, "invalid_characters")


async def test_nul_character_in_login_form_is_not_a_500(client, db_engine):
    # Form fields are not JSON bodies: this NUL reaches the database. SQLite compares it and finds no
    # such user (401); PostgreSQL refuses the value, which the safety net answers as a 422 problem.
    response = await client.post("/api/v1/auth/token", data={"username": "ad\u0000min", "password": "x"})
    if db_engine == "postgresql":
        body = assert_problem(response, 422, "invalid_data")
        assert body["title"].startswith("内容有误")
    else:
        assert_problem(response, 401, "invalid_credentials")


@pytest.mark.parametrize("path", ["/api/v1/forms/99999999999999999999", "/api/v1/forms/0", "/api/v1/forms/-1"])
async def test_absurd_ids_are_422_not_driver_errors(client, sessionmaker, path):
    world = await build_world(sessionmaker)
    assert_problem(await client.get(path, headers=world.auth("admin")), 422, "validation_error")


async def test_absurd_unit_id_in_a_body_is_422(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": 10**20})
    assert_problem(response, 422, "validation_error")


async def test_body_over_the_limit_is_413_by_content_length(db_url):
    from tests.support.apps import build_app

    app = build_app(make_settings(db_url, max_body_bytes=2048))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.post("/api/v1/forms", json={"content": "长" * 3000})
            assert_problem(response, 413, "payload_too_large")
            ok = await http.post("/api/v1/forms", json={"content": "长" * 100})
            assert ok.status_code == 201
    finally:
        await app.state.engine.dispose()


async def test_chunked_body_over_the_limit_is_413(db_url):
    from tests.support.apps import build_app

    app = build_app(make_settings(db_url, max_body_bytes=2048))

    async def chunks():
        for _ in range(10):
            yield b'{"content": "' + b"a" * 500

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.post("/api/v1/forms", content=chunks(), headers={"content-type": "application/json"})
            assert_problem(response, 413, "payload_too_large")
    finally:
        await app.state.engine.dispose()


async def test_a_request_that_fails_after_writing_leaves_nothing_behind(app, sessionmaker, monkeypatch):
    """Fault injection: the counters update fails after the form and its event were flushed.

    The request is one transaction, so the form, its event, the tracking number and the counters are
    all rolled back, and the client gets a problem+json 500 rather than a broken connection.
    """
    first = None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://t") as http:
        first = await submit(http)

        async def broken_record(*args, **kwargs):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(stats_service, "record_new", broken_record)  # the counters of a new form
        response = await http.post("/api/v1/forms", json={"content": "第二份意见"})
        assert_problem(response, 500, "internal_error")
        monkeypatch.undo()
        third = await submit(http)

    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 2
        assert await session.scalar(select(func.count()).select_from(FormEvent)) == 2
        assert (await session.scalars(select(TrackingSequence.last_value))).one() == 2
        assert await session.scalar(select(func.sum(StatCell.collected)).where(StatCell.grain == "m")) == 2
        assert await stats_service.verify(session) == []
    # The failed request did not take a number: the third form follows the first directly.
    assert int(third["tracking_no"][-5:]) == int(first["tracking_no"][-5:]) + 1


async def test_healthz_does_not_need_the_database(tmp_path):
    from tests.support.apps import build_app

    # A database URL that cannot be opened: /healthz still answers, /readyz says why not.
    app = build_app(make_settings("postgresql+asyncpg://nobody@127.0.0.1:1/none"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            health = await http.get("/healthz")
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert_problem(await http.get("/readyz"), 503, "database_unavailable")
    finally:
        await app.state.engine.dispose()


async def test_readyz_checks_the_database(client):
    response = await client.get("/readyz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_openapi_and_docs_are_served(client):
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/forms" in spec["paths"] and "/api/v1/stats/summary" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200

