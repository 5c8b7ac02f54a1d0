"""The audit log: every admin action recorded once, in its own transaction (who, when, what, from where),
append-only in the database itself, readable and exportable by admins only."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.db import transaction
from app.models import AuditEvent, WebhookDelivery
from app.services import audit as audit_service
from tests.factories import build_world, submit

ADMIN_IP = "203.0.113.9"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def office(app) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling from ADMIN_IP, so the log's "from where" is checked."""
    transport = httpx.ASGITransport(app=app, client=(ADMIN_IP, 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _events(sessionmaker) -> list[AuditEvent]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


async def _only_new(sessionmaker, before: int) -> list[AuditEvent]:
    return [e for e in await _events(sessionmaker) if e.id > before]


async def _last_id(sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


# Each admin action: (method, path, body) built from what earlier steps created.
async def _admin_actions(office: httpx.AsyncClient, world, sessionmaker) -> list[tuple[str, str, str, Any]]:
    client = (await office.post("/api/v1/api-clients", json={"name": "审计测试", "scopes": ["webhooks"]},
                                headers=world.auth("admin"))).json()
    hook = (await office.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["form.submitted"]},
                              headers=world.auth("admin"))).json()
    await submit(office)  # one delivery to redeliver
    async with sessionmaker() as session:
        delivery_id = await session.scalar(select(WebhookDelivery.id).limit(1))
    return [
        ("user.create", "POST", "/api/v1/users", {"username": "newclerk", "password": "a-long-password-1", "role": "coordinator"}),
        ("api_client.update", "PATCH", f"/api/v1/api-clients/{client['id']}", {"name": "改名"}),
        ("api_client.rotate", "POST", f"/api/v1/api-clients/{client['id']}/rotate", None),
        ("webhook.update", "PATCH", f"/api/v1/webhooks/{hook['id']}", {"active": False}),
        ("webhook.rotate_secret", "POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret", None),
        ("webhook.redeliver", "POST", f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery_id}/redeliver", None),
        ("webhook.delete", "DELETE", f"/api/v1/webhooks/{hook['id']}", None),
        ("api_client.revoke", "DELETE", f"/api/v1/api-clients/{client['id']}", None),
        ("workroom.create", "POST", "/api/v1/workrooms", {"code": "LS-09", "name": "秦村村党代表工作室"}),
        ("workroom.update", "PATCH", "/api/v1/workrooms/LS-09", {"address": "秦村村委会"}),
        ("representative.create", "POST", "/api/v1/representatives", {"name": "王代表", "phone": "13911112222"}),
        ("unit.create", "POST", "/api/v1/units", {"name": "镇司法所"}),
        ("category.create", "POST", "/api/v1/categories", {"code": "culture", "name": "文化体育"}),
        ("category.update", "PATCH", "/api/v1/categories/culture", {"keywords": "图书馆,广场舞"}),
        ("export.forms", "GET", "/api/v1/forms/export.csv", None),
    ]


async def test_every_admin_action_is_recorded_once_with_who_when_what_and_where(office, sessionmaker):
    world = await build_world(sessionmaker)
    before = await _last_id(sessionmaker)
    actions = await _admin_actions(office, world, sessionmaker)
    setup = await _only_new(sessionmaker, before)
    assert [e.action for e in setup] == ["api_client.create", "webhook.create"]
    for action, method, path, body in actions:
        mark = await _last_id(sessionmaker)
        response = await office.request(method, path, json=body, headers=world.auth("admin"))
        assert response.status_code < 300, (action, response.text)
        [event] = await _only_new(sessionmaker, mark)
        assert event.action == action
        assert (event.actor_user_id, event.actor_label, event.actor_role) == (world.user_ids["admin"], "admin", "admin")
        assert event.ip == ADMIN_IP
        assert event.at is not None and event.request_id
        if response.headers.get("x-request-id"):
            assert event.request_id == response.headers["x-request-id"]
        if action == "representative.create":
            # Which fields changed, never a representative's phone number.
            assert "13911112222" not in str(event.details) and "phone" in event.details["fields"]
        if action == "user.create":
            assert event.details["username"] == "newclerk" and "password" not in str(event.details)
            assert "a-long-password" not in str(event.details)
        if action == "api_client.rotate":
            assert event.target == f"api_client:{path.split('/')[4]}" and not event.details


async def test_a_refused_or_failed_action_leaves_no_line(office, sessionmaker):
    world = await build_world(sessionmaker)
    before = await _last_id(sessionmaker)
    refused = await office.post("/api/v1/units", json={"name": "镇司法所"}, headers=world.auth("coordinator"))
    assert refused.status_code == 403
    duplicate = await office.post("/api/v1/categories", json={"code": "environment", "name": "重复"},
                                  headers=world.auth("admin"))
    assert duplicate.status_code == 409
    assert await _only_new(sessionmaker, before) == []


async def test_exports_without_personal_data_are_not_recorded_but_the_background_ones_with_are(office, sessionmaker):
    world = await build_world(sessionmaker)
    before = await _last_id(sessionmaker)
    stats = await office.get("/api/v1/stats/by-workroom/export.csv", headers=world.auth("admin"))
    assert stats.status_code == 200, stats.text
    job = await office.post("/api/v1/exports", json={"format": "csv", "filters": {"workroom": "LS-01"}},
                            headers=world.auth("admin"))
    assert job.status_code == 202, job.text
    [event] = await _only_new(sessionmaker, before)
    assert (event.action, event.target) == ("export.forms", f"export:{job.json()['id']}")
    assert event.details == {"format": "csv", "filters": {"workroom": "LS-01"}}


async def test_a_lockout_lift_is_recorded(app, office, sessionmaker):
    world = await build_world(sessionmaker)
    await app.state.lockouts.failed("login:rep", limit=1, window=60, lock=60)
    before = await _last_id(sessionmaker)
    assert (await office.delete("/api/v1/lockouts/login/rep", headers=world.auth("admin"))).status_code == 204
    [event] = await _only_new(sessionmaker, before)
    assert (event.action, event.target) == ("lockout.lift", "login:rep")


async def test_only_admins_read_the_log_newest_first_filtered_and_paged(office, sessionmaker):
    world = await build_world(sessionmaker)
    for name in ("甲单位", "乙单位", "丙单位"):
        await office.post("/api/v1/units", json={"name": name}, headers=world.auth("admin"))
    await office.post("/api/v1/categories", json={"code": "culture", "name": "文化体育"}, headers=world.auth("admin"))
    assert (await office.get("/api/v1/audit")).status_code == 401
    for who in ("coordinator", "handler_a", "rep"):
        assert (await office.get("/api/v1/audit", headers=world.auth(who))).status_code == 403

    page = await office.get("/api/v1/audit", params={"action": "unit.create", "limit": 2}, headers=world.auth("admin"))
    assert page.status_code == 200, page.text
    first = page.json()
    assert [i["details"]["name"] for i in first["items"]] == ["丙单位", "乙单位"]
    assert first["items"][0]["actor"] == "admin" and first["items"][0]["ip"] == ADMIN_IP
    rest = (await office.get("/api/v1/audit", params={"action": "unit.create", "cursor": first["next_cursor"]},
                             headers=world.auth("admin"))).json()
    assert [i["details"]["name"] for i in rest["items"]] == ["甲单位"] and rest["next_cursor"] is None
    prefixed = (await office.get("/api/v1/audit", params={"action": "category."}, headers=world.auth("admin"))).json()
    assert [i["action"] for i in prefixed["items"]] == ["category.create"]
    bad = await office.get("/api/v1/audit", params={"cursor": "nonsense"}, headers=world.auth("admin"))
    assert bad.status_code == 422


async def test_admins_export_the_log_as_csv_and_the_export_is_recorded(office, sessionmaker):
    world = await build_world(sessionmaker)
    await office.post("/api/v1/units", json={"name": "=HYPERLINK(\"http://evil\")"}, headers=world.auth("admin"))
    assert (await office.get("/api/v1/audit/export.csv", headers=world.auth("coordinator"))).status_code == 403
    response = await office.get("/api/v1/audit/export.csv", headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == list(audit_service.CSV_COLUMNS)
    actions = [row[8] for row in rows[1:]]
    assert actions == ["unit.create", "audit.export"]
    assert "=HYPERLINK" in rows[1][10]  # kept, inside the JSON of the details …
    for row in rows[1:]:  # … and no cell starts as a formula would
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)


async def test_the_database_refuses_to_change_or_delete_a_line(office, sessionmaker):
    world = await build_world(sessionmaker)
    await office.post("/api/v1/units", json={"name": "镇司法所"}, headers=world.auth("admin"))
    [event] = await _events(sessionmaker)
    for statement in ("UPDATE audit_event SET action = 'nothing'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with transaction(sessionmaker) as session:
                await session.execute(text(statement))
    [still] = await _events(sessionmaker)
    assert (still.id, still.action) == (event.id, "unit.create")


def test_a_user_created_on_the_command_line_is_recorded_as_the_cli(db_url):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env.update({"MINYI_DATABASE_URL": db_url, "MINYI_SECRET_KEY": "cli-secret"})
    done = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "create-user", "clerk",
                           "--role", "coordinator", "--password", "a-long-password-2"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def read() -> list[tuple[Any, ...]]:
        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as connection:
                return list((await connection.execute(text(
                    "SELECT action, actor_label, actor_user_id, ip FROM audit_event"))).all())
        finally:
            await engine.dispose()

    [(action, actor, user_id, ip)] = asyncio.run(read())
    assert (action, actor, user_id, ip) == ("user.create", audit_service.CLI_LABEL, None, None)
