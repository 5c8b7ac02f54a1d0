"""合并办理 (issue 19.3, services/merging.py): similar forms merged into one suggestion and unmerged again.

A follower follows its lead's assignment, reply and closure with its own events, counters and notices;
unmerging gives it back exactly the state it had when it was merged; the counters agree with a recount
(``minyi stats verify``) throughout. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from app.db import transaction
from app.models import FormChange, FormEvent, OpinionForm, Resident, SmsMessage, WebhookDelivery, WechatNotice
from app.services import merging
from app.services import stats as stats_service
from app.services import stats_current
from tests.conftest import make_settings
from tests.factories import World, act, answered_form, assigned_form, build_world, submit
from tests.support.logins import csrf_of, sign_in
from tests.support.problems import assert_problem
from tests.support.webhooks import api_client, create_hook

PHONE = "13812345678"
REPLY = "已更换村口三盏路灯，并加装一盏太阳能灯。"


@pytest.fixture
def settings(db_url: str):  # type: ignore[no-untyped-def]
    """SMS offered (the log provider), so that consenting submitters get reply notices; no worker sends them."""
    return make_settings(db_url, sms_provider="log", worker_in_process=False, supervise_interval_seconds=0)


# --- helpers -----------------------------------------------------------------------------------------


async def merge(client: httpx.AsyncClient, world: World, lead_id: int, *ids: int, who: str = "coordinator") -> httpx.Response:
    return await client.post(f"/api/v1/forms/{lead_id}/merge", json={"form_ids": list(ids)}, headers=world.auth(who))


async def ok(response: Any) -> dict[str, Any]:
    response = await response
    assert response.status_code == 200, response.text
    return response.json()


async def read(client: httpx.AsyncClient, world: World, form_id: int) -> dict[str, Any]:
    return await ok(client.get(f"/api/v1/forms/{form_id}", headers=world.auth("coordinator")))


async def state(sessionmaker: Any, form_id: int) -> dict[str, Any]:
    """What unmerging must give back, straight from the database."""
    async with transaction(sessionmaker) as session:
        form = await session.get(OpinionForm, form_id)
        assert form is not None
        return {name: getattr(form, name) for name in merging.RESTORED}


async def counters_agree(sessionmaker: Any) -> None:
    """What ``minyi stats verify`` checks: the counters against a recount, and the summary's ``current``
    against the forms list."""
    async with transaction(sessionmaker) as session:
        assert await stats_service.verify(session) == []
        assert await stats_current.verify(session) == []


async def events_of(sessionmaker: Any, form_id: int) -> list[FormEvent]:
    async with transaction(sessionmaker) as session:
        return list(await session.scalars(select(FormEvent).where(FormEvent.form_id == form_id).order_by(FormEvent.id)))


# --- merging and unmerging ---------------------------------------------------------------------------


async def test_merge_then_unmerge_gives_each_form_back_exactly_where_it_was(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lead = await assigned_form(client, world)
    waiting = await submit(client)
    answered = await answered_form(client, world)
    assigned = await assigned_form(client, world, instructions="先核实位置。")
    followers = [waiting["id"], answered["id"], assigned["id"]]
    before = {form_id: await state(sessionmaker, form_id) for form_id in followers}

    merged = await ok(merge(client, world, lead["id"], *followers))

    assert [f["id"] for f in merged["followers"]] == followers and merged["merged_into"] is None
    assert merged["events"][-1]["type"] == "merged"
    assert merged["events"][-1]["data"]["form_ids"] == followers
    for form_id in followers:
        follower = await read(client, world, form_id)
        assert follower["merged_into"] == lead["id"]
        assert follower["merged_into_tracking_no"] == lead["tracking_no"]
        assert (follower["status"], follower["unit_id"], follower["due_at"], follower["reply"]) == (
            "assigned", world.units["A"].id, lead["due_at"], None)
        assert follower["events"][-1]["type"] == "merged_into"
        assert lead["tracking_no"] in follower["events"][-1]["note"]
    await counters_agree(sessionmaker)
    # Merging a follower again into its lead changes nothing.
    count = len(await events_of(sessionmaker, waiting["id"]))
    assert (await ok(merge(client, world, lead["id"], waiting["id"])))["followers"] == merged["followers"]
    assert len(await events_of(sessionmaker, waiting["id"])) == count

    unmerged = await ok(client.post(f"/api/v1/forms/{lead['id']}/unmerge", headers=world.auth("coordinator")))

    assert unmerged["followers"] == [] and unmerged["events"][-1]["type"] == "merge_removed"
    for form_id in followers:
        assert await state(sessionmaker, form_id) == before[form_id]
        follower = await read(client, world, form_id)
        assert follower["merged_into"] is None and follower["events"][-1]["type"] == "unmerged"
        assert [e["type"] for e in follower["events"]][-2:] == ["merged_into", "unmerged"]
    assert (await read(client, world, answered["id"]))["reply"] == "已安排维修，三日内完成。"
    await counters_agree(sessionmaker)


async def test_followers_follow_assign_reply_and_close_and_every_resident_is_told(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    await create_hook(client, world.auth("admin"), "https://hooks.example.cn/minyi", events=["form.answered"])
    forms = [await submit(client, submitter_phone=PHONE, sms_consent=True) for _ in range(3)]
    lead, *followers = forms
    async with transaction(sessionmaker) as session:  # each submitted through the mini-program, say
        for n, form in enumerate(forms):
            resident = Resident(openid=f"o_resident_{n}")
            session.add(resident)
            await session.flush()
            await session.execute(update(OpinionForm).where(OpinionForm.id == form["id"]).values(resident_id=resident.id))
    await ok(merge(client, world, lead["id"], *(f["id"] for f in followers)))

    await ok(act(client, world, "coordinator", lead["id"], "assign", {"unit_id": world.units["A"].id, "instructions": "尽快。"}))
    await ok(act(client, world, "handler_a", lead["id"], "reply", {"reply": REPLY, "internal_note": "费用已报批"}))

    for follower in followers:
        read_back = await read(client, world, follower["id"])
        assert (read_back["status"], read_back["reply"], read_back["unit_id"]) == ("answered", REPLY, world.units["A"].id)
        types = [(e["type"], e["actor"]) for e in read_back["events"]]
        assert types[-2:] == [("assigned", "coordinator"), ("answered", "handler_a")]
        assert read_back["events"][-1]["data"]["lead_id"] == lead["id"]
    async with transaction(sessionmaker) as session:
        ids = [f["id"] for f in forms]
        notices = list(await session.scalars(select(WechatNotice.form_id).order_by(WechatNotice.form_id)))
        replies = list(await session.scalars(select(SmsMessage.form_id).where(SmsMessage.kind == "reply")
                                             .order_by(SmsMessage.form_id)))
        hooked = list(await session.scalars(
            select(FormChange.form_id).join(WebhookDelivery, WebhookDelivery.change_id == FormChange.id)
            .order_by(FormChange.form_id)))
    assert notices == replies == hooked == ids  # one of each per resident

    await ok(act(client, world, "coordinator", lead["id"], "close", {"satisfaction": "satisfied"}))

    for follower in followers:
        read_back = await read(client, world, follower["id"])
        assert (read_back["status"], read_back["satisfaction"]) == ("closed", "satisfied")
    summary = await ok(client.get("/api/v1/stats/summary", headers=world.auth("coordinator")))
    assert (summary["collected"], summary["assigned"], summary["answered"], summary["closed"]) == (3, 3, 3, 3)
    await counters_agree(sessionmaker)
    # The resident tracks their own number and reads the lead's reply, and that their form was merged.
    tracked = await ok(client.get(f"/api/v1/track/{followers[0]['tracking_no']}",
                                  params={"code": followers[0]["verification_code"]}))
    assert tracked["reply"] == REPLY and tracked["status"] == "closed"
    note = next(e["note"] for e in tracked["timeline"] if e["type"] == "merged_into")
    assert note == f"已与同类意见 {lead['tracking_no']} 合并办理。"


async def test_return_reopen_and_extension_follow_and_unmerge_after_them(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lead = await assigned_form(client, world)
    follower = await submit(client)
    before = await state(sessionmaker, follower["id"])
    await ok(merge(client, world, lead["id"], follower["id"]))

    await ok(act(client, world, "handler_a", lead["id"], "return", {"reason": "不属于本单位。"}))
    assert (await read(client, world, follower["id"]))["returned_count"] == 1
    reassigned = await ok(act(client, world, "coordinator", lead["id"], "assign", {"unit_id": world.units["B"].id}))
    later = datetime.fromisoformat(reassigned["due_at"]) + timedelta(days=7)
    extended = await ok(act(client, world, "handler_b", lead["id"], "extension",
                            {"due_at": later.isoformat(), "reason": "需协调供电局。"}))
    assert (await read(client, world, follower["id"]))["extension_due_at"] == extended["extension_due_at"]
    await ok(act(client, world, "coordinator", lead["id"], "extension/refuse", {}))
    await ok(act(client, world, "handler_b", lead["id"], "reply", {"reply": REPLY}))
    await ok(act(client, world, "coordinator", lead["id"], "reopen", {"reason": "群众不满意。"}))
    reopened = await read(client, world, follower["id"])
    assert (reopened["status"], reopened["unit_id"], reopened["reopened_count"]) == ("assigned", world.units["B"].id, 1)
    await counters_agree(sessionmaker)

    await ok(client.post(f"/api/v1/forms/{follower['id']}/unmerge", headers=world.auth("admin")))

    assert await state(sessionmaker, follower["id"]) == before
    assert (await read(client, world, lead["id"]))["followers"] == []
    assert [e.type for e in await events_of(sessionmaker, lead["id"])][-1] == "merge_removed"
    await counters_agree(sessionmaker)


# --- who may, and what is refused --------------------------------------------------------------------


async def test_only_the_office_merges_and_unmerges(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lead, follower = await assigned_form(client, world), await assigned_form(client, world)
    integrator = await api_client(sessionmaker, scopes=("forms:read", "forms:write", "webhooks"))
    for headers in (world.auth("handler_a"), world.auth("rep"), integrator):
        for path, body in ((f"{lead['id']}/merge", {"form_ids": [follower["id"]]}), (f"{follower['id']}/unmerge", None)):
            assert_problem(await client.post(f"/api/v1/forms/{path}", json=body, headers=headers), 403, "forbidden")
    assert_problem(await client.post(f"/api/v1/forms/{lead['id']}/merge", json={"form_ids": [follower["id"]]}), 401)
    assert (await read(client, world, follower["id"]))["merged_into"] is None
    await ok(merge(client, world, lead["id"], follower["id"], who="admin"))


async def test_a_merge_across_units_is_refused_naming_both_units_and_nothing_is_merged(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lead = await assigned_form(client, world, "A")
    same_unit, other_unit = await submit(client), await assigned_form(client, world, "B")

    body = assert_problem(await merge(client, world, lead["id"], same_unit["id"], other_unit["id"]), 409,
                          "merge_across_units")

    assert "镇城建办" in body["detail"] and "镇生态环境办" in body["detail"] and other_unit["tracking_no"] in body["detail"]
    assert (await read(client, world, same_unit["id"]))["merged_into"] is None  # all or nothing
    await counters_agree(sessionmaker)


async def test_a_follower_is_acted_on_through_its_lead_but_takes_internal_notes(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lead, follower = await assigned_form(client, world), await assigned_form(client, world)
    await ok(merge(client, world, lead["id"], follower["id"]))

    body = assert_problem(await act(client, world, "coordinator", follower["id"], "reply", {"reply": REPLY}), 409,
                          "merged_form")
    assert lead["tracking_no"] in body["detail"] and body["merged_into"] == lead["id"]
    assert_problem(await act(client, world, "handler_a", follower["id"], "return", {"reason": "不是我们的"}), 409,
                   "merged_form")
    # Another unit's handler learns nothing about the suggestion.
    assert_problem(await act(client, world, "handler_b", follower["id"], "reply", {"reply": REPLY}), 403, "not_your_unit")
    noted = await ok(act(client, world, "handler_a", follower["id"], "notes", {"note": "已电话联系反映人。"}))
    assert noted["events"][-1]["type"] == "note" and noted["status"] == "assigned"


async def test_each_refused_merge_has_its_own_code(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lead, follower, other_lead, its_follower = [await submit(client) for _ in range(4)]
    closed = await answered_form(client, world)
    await ok(act(client, world, "coordinator", closed["id"], "close", {}))
    await ok(merge(client, world, lead["id"], follower["id"]))
    await ok(merge(client, world, other_lead["id"], its_follower["id"]))

    cases = [
        ((follower["id"], other_lead["id"]), 409, "lead_is_merged"),
        ((closed["id"], lead["id"]), 409, "lead_finished"),
        ((lead["id"], its_follower["id"]), 409, "already_merged"),
        ((lead["id"], other_lead["id"]), 409, "form_is_lead"),
        ((lead["id"], closed["id"]), 409, "form_finished"),
        ((lead["id"], 99_999), 422, "unknown_form"),
        ((lead["id"], lead["id"]), 422, "merge_into_itself"),
        ((99_999, lead["id"]), 404, "form_not_found"),
    ]
    for (lead_id, form_id), status, code in cases:
        assert_problem(await merge(client, world, lead_id, form_id), status, code)
    assert_problem(await client.post(f"/api/v1/forms/{lead['id']}/merge", json={"form_ids": []},
                                     headers=world.auth("coordinator")), 422)
    assert_problem(await client.post(f"/api/v1/forms/{closed['id']}/unmerge", headers=world.auth("coordinator")),
                   409, "not_merged")


async def test_a_merge_and_an_action_on_the_lead_at_once_leave_one_consistent_suggestion(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lead = await submit(client)
    followers = [await submit(client) for _ in range(3)]

    merged, assigned = await asyncio.gather(
        merge(client, world, lead["id"], *(f["id"] for f in followers)),
        act(client, world, "coordinator", lead["id"], "assign", {"unit_id": world.units["A"].id}),
    )

    assert (merged.status_code, assigned.status_code) == (200, 200), (merged.text, assigned.text)
    for follower in followers:
        assert (await read(client, world, follower["id"]))["status"] == "assigned"
    await counters_agree(sessionmaker)


# --- the office's page and the resident's -------------------------------------------------------------


async def test_the_office_page_merges_by_number_shows_refusals_and_unmerges_without_javascript(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lead = await assigned_form(client, world, "A")
    follower, elsewhere = await submit(client), await assigned_form(client, world, "B")
    token = await sign_in(client, "coordinator")

    refused = await client.post(f"/office/forms/{lead['id']}/merge",
                                data={"csrf_token": token, "tracking_nos": f"{follower['tracking_no']}，{elsewhere['tracking_no']}"})
    assert refused.status_code == 409 and 'id="merge"' in refused.text and "不能跨承办单位合并" in refused.text
    response = await client.post(f"/office/forms/{lead['id']}/merge",
                                 data={"csrf_token": token, "tracking_nos": follower["tracking_no"].lower()})
    assert response.status_code == 303 and response.headers["location"] == f"/office/forms/{lead['id']}"

    page = await client.get(f"/office/forms/{lead['id']}")
    assert f'data-follower="{follower["id"]}"' in page.text
    page = await client.get(f"/office/forms/{follower['id']}")
    assert "已并入" in page.text and f'href="/office/forms/{lead["id"]}"' in page.text
    assert 'data-action="assign"' not in page.text and 'data-action="note"' in page.text
    response = await client.post(f"/office/forms/{follower['id']}/unmerge", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    assert (await read(client, world, follower["id"]))["status"] == "submitted"

    # The resident's tracking page says the form was merged, then handled on its own again.
    tracked = await client.post("/track", data={"csrf_token": token, "no": follower["tracking_no"],
                                                "code": follower["verification_code"]})
    assert f"已与同类意见 {lead['tracking_no']} 合并办理" in tracked.text and "恢复单独办理" in tracked.text
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)
                                    .where(OpinionForm.merged_into_id.is_not(None))) == 0
