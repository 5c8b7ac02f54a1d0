"""The outbox of form changes: written in the action's own transaction, public steps only, with the
webhook deliveries and reply notices it fans out to."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from app.db import transaction
from app.errors import Invalid
from app.models import ApiClient, FormChange, Resident, Webhook, WebhookDelivery, WechatNotice, utcnow
from app.services import changes as change_service
from app.services import forms as form_service
from app.services.auth import Principal
from tests.factories import act, assigned_form, build_world, submit


async def _changes(sessionmaker) -> list[FormChange]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(FormChange).order_by(FormChange.id))).all())


async def test_every_public_step_writes_one_change_with_the_form_as_integrators_see_it(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, submitter_name="王阿姨", submitter_phone="13800001111")
    await act(client, world, "coordinator", form["id"], "notes", {"note": "内部：先电话联系"})
    await act(client, world, "coordinator", form["id"], "urge", {})
    await act(client, world, "handler_a", form["id"], "reply", {"reply": "已修复", "internal_note": "花了两天"})
    await act(client, world, "coordinator", form["id"], "close", {"satisfaction": "satisfied"})

    rows = await _changes(sessionmaker)
    assert [r.type for r in rows] == ["form.submitted", "form.assigned", "form.answered", "form.closed"]
    assert all(r.form_id == form["id"] and r.event_id is not None for r in rows)
    answered = rows[2].data
    assert answered["status"] == "answered" and answered["reply"] == "已修复"
    assert answered["unit_id"] == world.units["A"].id and answered["tracking_no"] == form["tracking_no"]
    text = repr([r.data for r in rows])
    for private in ("王阿姨", "13800001111", "花了两天", "先电话联系", "verification"):
        assert private not in text


async def test_a_refused_submission_writes_no_change_and_a_batch_writes_one_each(sessionmaker, settings):
    async with transaction(sessionmaker) as session:
        results = await form_service.submit_many(session, [
            (Principal(), form_service.Submission(content="一")),
            (Principal(), form_service.Submission(content="二", category="no-such-category")),
            (Principal(), form_service.Submission(content="三")),
        ], settings=settings)
    assert isinstance(results[1], Invalid)
    rows = await _changes(sessionmaker)
    assert [r.data["content"] for r in rows] == ["一", "三"]
    assert {r.form_id for r in rows} == {results[0].form.id, results[2].form.id}


async def test_a_change_rolled_back_with_its_action_leaves_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    # Reply is not allowed from "submitted": the action fails, and with it anything it wrote.
    response = await act(client, world, "coordinator", form["id"], "reply", {"reply": "太早了"})
    assert response.status_code == 409
    assert [r.type for r in await _changes(sessionmaker)] == ["form.submitted"]


async def test_deliveries_fan_out_to_subscribed_active_webhooks_of_unrevoked_clients_only(client, sessionmaker):
    world = await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        both = Webhook(url="http://127.0.0.1:9/a", events=" form.submitted form.answered ", secret="x")
        answered_only = Webhook(url="http://127.0.0.1:9/b", events=" form.answered ", secret="x")
        inactive = Webhook(url="http://127.0.0.1:9/c", events=" form.submitted ", secret="x", active=False)
        # A prefix of a real type must not match it.
        prefix = Webhook(url="http://127.0.0.1:9/d", events=" form.answer ", secret="x")
        revoked = ApiClient(name="旧系统", scopes=["webhooks"], key_prefix="mk_old", key_hash="0" * 64,
                            revoked_at=utcnow())
        live = ApiClient(name="小程序后台", scopes=["webhooks"], key_prefix="mk_new", key_hash="1" * 64)
        session.add_all([revoked, live])
        await session.flush()
        of_revoked = Webhook(client_id=revoked.id, url="http://127.0.0.1:9/e", events=" form.answered ", secret="x")
        of_live = Webhook(client_id=live.id, url="http://127.0.0.1:9/f", events=" form.answered ", secret="x")
        session.add_all([both, answered_only, inactive, prefix, of_revoked, of_live])
    form = await assigned_form(client, world)
    await act(client, world, "handler_a", form["id"], "reply", {"reply": "好的"})

    async with sessionmaker() as session:
        rows = (await session.execute(
            select(Webhook.url, FormChange.type).join(WebhookDelivery, WebhookDelivery.webhook_id == Webhook.id)
            .join(FormChange, FormChange.id == WebhookDelivery.change_id).order_by(WebhookDelivery.id)
        )).all()
    assert sorted(rows) == sorted([
        ("http://127.0.0.1:9/a", "form.submitted"),
        ("http://127.0.0.1:9/a", "form.answered"),
        ("http://127.0.0.1:9/b", "form.answered"),
        ("http://127.0.0.1:9/f", "form.answered"),
    ])


async def test_answering_a_residents_form_queues_one_notice_and_others_none(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        resident = Resident(openid="o-resident-1")
        session.add(resident)
        await session.flush()
        form, _code = await form_service.submit(
            session, principal=Principal(resident=resident), data=form_service.Submission(content="小区门口积水"),
            settings=settings,
        )
    assert form.channel == "wechat" and form.resident_id == resident.id
    other = await submit(client)
    await act(client, world, "coordinator", form.id, "answer-on-spot", {"reply": "已安排疏通"})
    await act(client, world, "coordinator", other["id"], "answer-on-spot", {"reply": "已处理"})

    async with sessionmaker() as session:
        notices = (await session.scalars(select(WechatNotice))).all()
        assert [(n.form_id, n.resident_id, n.status) for n in notices] == [(form.id, resident.id, "pending")]


async def test_the_feed_pages_through_every_change_in_order_without_repeats(client, sessionmaker):
    for n in range(7):
        await submit(client, content=f"第{n}条")
    seen: list[str] = []
    cursor = None
    # On PostgreSQL the feed holds back while any older writing transaction on the server is still running
    # (other test processes may share it), so an empty page means "not yet": ask again, briefly.
    deadline = time.monotonic() + 30
    async with sessionmaker() as session:
        while len(seen) < 7 and time.monotonic() < deadline:
            rows, next_cursor = await change_service.feed(session, cursor=cursor, limit=3)
            contents = [r.data["content"] for r in rows]
            await session.rollback()  # a fresh snapshot for the next page
            if not rows:
                assert next_cursor == cursor  # nothing new: resume from the same place
                await asyncio.sleep(0.2)
                continue
            seen += contents
            cursor = next_cursor
        rows, _ = await change_service.feed(session, cursor=cursor)
        assert rows == []
    assert seen == [f"第{n}条" for n in range(7)]


@pytest.mark.parametrize("cursor", ["???", "Yzox", "ZjoxMjM", "YzotMToy"])
async def test_a_forged_feed_cursor_is_refused(sessionmaker, cursor):
    async with sessionmaker() as session:
        with pytest.raises(Invalid):
            await change_service.feed(session, cursor=cursor)


async def test_changes_carry_the_writing_transaction_id_on_postgresql_and_none_on_sqlite(client, sessionmaker, db_engine):
    await submit(client)
    await submit(client)
    rows = await _changes(sessionmaker)
    if db_engine == "postgresql":
        assert all(r.txid is not None for r in rows)
        assert rows[0].txid < rows[1].txid
    else:  # one writer at a time: id order is commit order, and the feed orders by id
        assert [r.txid for r in rows] == [None, None]
