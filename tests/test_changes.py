"""``GET /api/v1/changes``: every public step of every form, in commit order, resumable by cursor.

On PostgreSQL the feed shows a change only once every transaction that began before it has ended (the
txid horizon), so a transaction that commits after a later one is never skipped by a client's cursor.
That horizon spans the whole server, so on PostgreSQL the reads here wait (with a deadline) for the
changes they expect instead of assuming they are visible at once.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import transaction
from app.models import ApiClient, FormChange
from app.services import api_clients as api_client_service
from app.services import forms as form_service
from app.services import webhooks as webhook_service
from app.services.auth import Principal
from tests.factories import act, answered_form, build_world, submit
from tests.support.changes import read, read_until
from tests.webhook_receiver import Receiver


async def api_client(sessionmaker, *, scopes: tuple[str, ...]) -> dict[str, str]:
    key = "mk_" + secrets.token_urlsafe(32)
    async with transaction(sessionmaker) as session:
        session.add(ApiClient(name="同步客户端", scopes=list(scopes), key_prefix=key[:8],
                              key_hash=api_client_service.key_hash(key)))
    return {"X-API-Key": key}


async def stored_changes(sessionmaker) -> list[FormChange]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(FormChange).order_by(FormChange.id))).all())


async def test_the_feed_lists_every_public_step_in_order_with_the_webhooks_ids(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    first = await answered_form(client, world)
    await act(client, world, "coordinator", first["id"], "close", {"satisfaction": "satisfied"})
    second = await submit(client)
    await act(client, world, "coordinator", second["id"], "decline", {"reason": "不属于本镇职责范围。"})
    await act(client, world, "coordinator", first["id"], "urge", {})  # internal: never in the feed

    stored = await stored_changes(sessionmaker)
    items, _ = await read_until(client, world.auth("admin"), len(stored))
    assert [i["id"] for i in items] == [f"chg_{c.id}" for c in stored]
    assert [(i["type"], i["form_id"]) for i in items] == [
        ("form.submitted", first["id"]), ("form.assigned", first["id"]), ("form.answered", first["id"]),
        ("form.closed", first["id"]), ("form.submitted", second["id"]), ("form.declined", second["id"]),
    ]
    for item, change in zip(items, stored, strict=True):
        assert set(item) == {"id", "type", "at", "form_id", "data"}
        assert item["data"] == change.data and item["at"] == change.at.astimezone(settings.tz).isoformat()
        assert "submitter_phone" not in item["data"] and "verification_code" not in item["data"]
    assert items[3]["data"]["status"] == "closed" and items[3]["data"]["satisfaction"] == "satisfied"


async def test_a_feed_item_is_the_webhook_body_plus_form_id(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    with Receiver() as receiver:
        hook = (await client.post("/api/v1/webhooks", json={"url": receiver.url(), "events": ["form.submitted"]},
                                  headers=world.auth("admin"))).json()
        receiver.expect("hook", hook["secret"])
        form = await submit(client)
        async with webhook_service.http_client() as http:
            await webhook_service.deliver_due(sessionmaker, http, worker_id="t", settings=settings)
        (body,) = receiver.events()
    (item,) = (await read_until(client, world.auth("admin"), 1))[0]
    assert item == {**body, "form_id": form["id"]}


async def test_paging_by_cursor_neither_misses_nor_repeats_and_resumes_later(client, sessionmaker):
    world = await build_world(sessionmaker)
    admin = world.auth("admin")
    empty = await read(client, admin)
    assert empty == {"items": [], "next_cursor": None}
    for _ in range(4):
        await answered_form(client, world)  # 3 changes each
    expected = [f"chg_{c.id}" for c in await stored_changes(sessionmaker)]
    assert len(expected) == 12

    items, cursor = await read_until(client, admin, len(expected), limit=5)
    assert [i["id"] for i in items] == expected  # nothing missed, nothing twice, in order
    # Up to date: the cursor stays where it was, so a client keeps polling with it.
    caught_up = await read(client, admin, cursor=cursor)
    assert caught_up == {"items": [], "next_cursor": cursor}
    later = await submit(client)
    more, _ = await read_until(client, admin, 1, cursor=cursor)
    assert [(i["type"], i["form_id"]) for i in more] == [("form.submitted", later["id"])]


async def test_the_feed_is_for_api_clients_with_forms_read_and_for_the_office(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client)
    reader = await api_client(sessionmaker, scopes=("forms:read",))
    hooks_only = await api_client(sessionmaker, scopes=("webhooks", "forms:write"))
    for headers in (reader, world.auth("admin"), world.auth("coordinator")):
        assert (await client.get("/api/v1/changes", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/changes")).status_code == 401
    refused = await client.get("/api/v1/changes", headers=hooks_only)
    assert refused.status_code == 403 and refused.json()["code"] == "missing_scope"
    for who in ("handler_a", "rep"):
        response = await client.get("/api/v1/changes", headers=world.auth(who))
        assert response.status_code == 403 and response.json()["code"] == "forbidden"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "not a cursor!", _b64("x:1:2"), _b64("c:1"), _b64("c:-1:5"), _b64("c:1:99999999999999999999"), _b64("o:50"),
    "%00", "\u6c11\u610f",
])
async def test_an_invalid_cursor_is_a_422_invalid_cursor(client, sessionmaker, cursor):
    world = await build_world(sessionmaker)
    response = await client.get("/api/v1/changes", params={"cursor": cursor}, headers=world.auth("admin"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_cursor"


async def test_an_absurd_cursor_or_limit_is_a_422_not_a_500(client, sessionmaker):
    world = await build_world(sessionmaker)
    for params in ({"cursor": "c" * 5000}, {"limit": 0}, {"limit": 201}, {"limit": "many"}):
        response = await client.get("/api/v1/changes", params=params, headers=world.auth("admin"))
        assert response.status_code == 422, (params, response.text)


@pytest.mark.postgres_only
@pytest.mark.parametrize("db_engine", ["postgresql"])
async def test_a_change_that_commits_after_a_later_one_is_not_skipped(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    admin = world.auth("admin")
    early = await submit(client)  # with a category: its counters are not the held transaction's
    (seen,), cursor = await read_until(client, admin, 1)
    assert seen["form_id"] == early["id"]

    async with sessionmaker() as held:
        # A transaction that submitted a form and has not committed: its change has the lower id and txid.
        late, _code = await form_service.submit(
            held, principal=Principal(), data=form_service.Submission(content="晚提交的意见"), settings=settings
        )
        # Meanwhile another transaction writes a change and commits.
        assigned = await act(client, world, "coordinator", early["id"], "assign", {"unit_id": world.units["A"].id})
        assert assigned.status_code == 200
        # The feed holds back the committed change: showing it would move the client's cursor past the
        # held one, which would then never be read.
        assert await read(client, admin, cursor=cursor) == {"items": [], "next_cursor": cursor}
        await held.commit()

    items, _ = await read_until(client, admin, 2, cursor=cursor)
    assert [(i["type"], i["form_id"]) for i in items] == [("form.submitted", late.id), ("form.assigned", early["id"])]
    assert int(items[0]["id"].removeprefix("chg_")) < int(items[1]["id"].removeprefix("chg_"))
