"""The workflow through the JSON API: assign, reassign, reply, close, decline, reopen.

Each action: its status change, the fields it sets, exactly one new event, who may do it, which statuses
allow it (everything else is 409 ``invalid_transition`` with the form untouched), and what happens when
two people act on one form at the same moment.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from app.config import TZ
from app.db import transaction
from app.models import FormEvent, OpinionForm
from app.services import stats as stats_service
from tests.factories import World, act, answered_form, assigned_form, build_world, submit
from tests.support.calendar import is_working
from tests.support.problems import assert_problem

ACTIONS = ("assign", "reassign", "reply", "close", "decline", "reopen")
# Which action each status allows; every other (status, action) pair must be refused with 409.
ALLOWED = {
    "submitted": {"assign", "decline"},
    "assigned": {"reassign", "reply"},
    "answered": {"close", "reopen"},
    "closed": set(),
    "declined": set(),
}
ILLEGAL = [(status, action) for status, allowed in ALLOWED.items() for action in ACTIONS if action not in allowed]


# --- helpers -----------------------------------------------------------------------------------------


def body_for(world: World, action: str) -> dict[str, Any]:
    return {
        "assign": {"unit_id": world.units["A"].id},
        "reassign": {"unit_id": world.units["B"].id},
        "reply": {"reply": "路灯已于本周更换完毕。"},
        "close": {"satisfaction": "satisfied"},
        "decline": {"reason": "不属于本镇职责范围。"},
        "reopen": {"reason": "群众回访表示仍未修好。"},
    }[action]


async def form_in(client: httpx.AsyncClient, world: World, status: str, **fields: Any) -> dict[str, Any]:
    """A form brought to ``status`` through the API (assigned to unit A where it has a unit)."""
    if status == "submitted":
        return await submit(client, **fields)
    if status == "assigned":
        return await assigned_form(client, world, **fields)
    if status == "answered":
        return await answered_form(client, world, **fields)
    if status == "closed":
        form = await answered_form(client, world, **fields)
        response = await act(client, world, "coordinator", form["id"], "close", {"satisfaction": "satisfied"})
    elif status == "declined":
        form = await submit(client, **fields)
        response = await act(client, world, "coordinator", form["id"], "decline", {"reason": "重复提交。"})
    else:
        raise ValueError(status)
    assert response.status_code == 200, response.text
    return response.json()


async def detail(client: httpx.AsyncClient, world: World, form_id: int, who: str = "coordinator") -> dict[str, Any]:
    response = await client.get(f"/api/v1/forms/{form_id}", headers=world.auth(who))
    assert response.status_code == 200, response.text
    return response.json()


async def snapshot(sessionmaker: Any, form_id: int) -> dict[str, Any]:
    """What an action would change, read straight from the database."""
    async with transaction(sessionmaker) as session:
        form = await session.get(OpinionForm, form_id)
        assert form is not None
        events = await session.scalar(select(func.count()).select_from(FormEvent).where(FormEvent.form_id == form_id))
        return {
            "status": form.status, "unit_id": form.unit_id, "instructions": form.instructions, "due_at": form.due_at,
            "reply": form.reply, "satisfaction": form.satisfaction, "decline_reason": form.decline_reason,
            "updated_at": form.updated_at, "events": events,
        }


async def event_types(sessionmaker: Any, form_id: int) -> list[str]:
    async with transaction(sessionmaker) as session:
        return list(await session.scalars(
            select(FormEvent.type).where(FormEvent.form_id == form_id).order_by(FormEvent.id)
        ))


async def summary(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    response = await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    return response.json()


async def counters_match_recount(sessionmaker: Any) -> list[dict[str, Any]]:
    async with transaction(sessionmaker) as session:
        return await stats_service.verify(session)


def local(value: str) -> datetime:
    """Parse an API time, insisting on the +08:00 offset the API shows."""
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(hours=8), value
    return parsed


def working_days_after(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` on the Chinese calendar (调休 included)."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if is_working(current):
            days -= 1
    return current


def today_local() -> date:
    return datetime.now(TZ).date()


def only_new_event(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The one event an action added to the form's timeline."""
    assert len(after["events"]) == len(before["events"]) + 1, after["events"]
    assert [e["id"] for e in after["events"][:-1]] == [e["id"] for e in before["events"]]
    return after["events"][-1]


# --- assign (批办) -------------------------------------------------------------------------------------


async def test_assign_gives_submitted_form_to_unit_with_instructions_and_one_event(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, workroom_code="LS-01")
    before = await detail(client, world, form["id"])

    response = await act(client, world, "coordinator", form["id"], "assign",
                         {"unit_id": world.units["B"].id, "instructions": "请三日内现场查看。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "assigned"
    assert body["unit_id"] == world.units["B"].id
    assert body["unit_name"] == "镇生态环境办"
    assert body["instructions"] == "请三日内现场查看。"
    assert local(body["assigned_at"]) <= datetime.now(UTC)
    after = await detail(client, world, form["id"])
    assert after["status"] == "assigned" and after["unit_id"] == world.units["B"].id
    event = only_new_event(before, after)
    assert event["type"] == "assigned"
    assert event["actor"] == "coordinator"
    assert event["actor_role"] == "coordinator"
    assert event["from_status"] == "submitted"
    assert event["to_status"] == "assigned"
    assert event["note"] == "请三日内现场查看。"
    assert event["unit_id"] == world.units["B"].id
    assert body["events"] == after["events"]


@pytest.mark.parametrize(("category", "due_days"), [("urban_traffic", 15), ("public_security", 5)])
async def test_assign_without_due_at_sets_deadline_from_category_due_days_in_working_days(
    client, sessionmaker, category, due_days
):
    world = await build_world(sessionmaker)
    form = await submit(client, category=category)
    first_day = today_local()

    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})

    assert response.status_code == 200, response.text
    due_at = local(response.json()["due_at"])
    assert due_at > datetime.now(UTC)
    # The end of the last working day, local time; the day is counted from the day of assignment.
    assert due_at.time().isoformat() == "23:59:59"
    assert due_at.date() in {working_days_after(first_day, due_days), working_days_after(today_local(), due_days)}


async def test_assign_honours_an_explicit_due_at(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    wanted = (datetime.now(TZ) + timedelta(days=3)).replace(hour=17, minute=30, second=0, microsecond=0)

    response = await act(client, world, "coordinator", form["id"], "assign",
                         {"unit_id": world.units["A"].id, "due_at": wanted.astimezone(UTC).isoformat()})

    assert response.status_code == 200, response.text
    assert response.json()["due_at"] == wanted.isoformat()
    assert (await detail(client, world, form["id"]))["due_at"] == wanted.isoformat()


async def test_assign_with_due_at_in_the_past_is_422_and_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    before = await snapshot(sessionmaker, form["id"])
    past = (datetime.now(TZ) - timedelta(hours=1)).isoformat()

    response = await act(client, world, "coordinator", form["id"], "assign",
                         {"unit_id": world.units["A"].id, "due_at": past})

    assert_problem(response, 422, "invalid_due_at")
    assert await snapshot(sessionmaker, form["id"]) == before
    assert (await summary(client, world))["assigned"] == 0


async def test_assign_to_unknown_unit_is_422_and_form_stays_submitted_without_event(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": 999_999})

    assert_problem(response, 422, "unknown_unit")
    after = await snapshot(sessionmaker, form["id"])
    assert after == before
    assert after["status"] == "submitted" and after["events"] == 1


async def test_assign_counts_the_form_as_assigned_once(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    assert (await summary(client, world))["assigned"] == 0

    response = await act(client, world, "admin", form["id"], "assign", {"unit_id": world.units["A"].id})

    assert response.status_code == 200, response.text
    assert response.json()["events"][-1]["actor"] == "admin"
    assert response.json()["events"][-1]["actor_role"] == "admin"
    assert (await summary(client, world))["assigned"] == 1
    assert await counters_match_recount(sessionmaker) == []


# --- reassign (改派) -----------------------------------------------------------------------------------


async def test_reassign_moves_assigned_form_to_another_unit_keeping_its_deadline(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await detail(client, world, form["id"])

    response = await act(client, world, "coordinator", form["id"], "reassign",
                         {"unit_id": world.units["B"].id, "instructions": "属环境问题，改由生态环境办办理。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "assigned"
    assert body["unit_id"] == world.units["B"].id
    assert body["unit_name"] == "镇生态环境办"
    assert body["instructions"] == "属环境问题，改由生态环境办办理。"
    assert body["due_at"] == before["due_at"]
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "reassigned"
    assert (event["actor"], event["actor_role"]) == ("coordinator", "coordinator")
    assert (event["from_status"], event["to_status"]) == ("assigned", "assigned")
    assert event["note"] == "属环境问题，改由生态环境办办理。"
    assert event["data"]["from_unit_id"] == world.units["A"].id
    assert event["unit_id"] == world.units["B"].id
    assert (await summary(client, world))["assigned"] == 1


async def test_after_reassign_only_the_new_unit_may_read_and_reply(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    response = await act(client, world, "coordinator", form["id"], "reassign", {"unit_id": world.units["B"].id})
    assert response.status_code == 200, response.text

    assert_problem(await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("handler_a")), 403,
                   "form_forbidden")
    assert_problem(await act(client, world, "handler_a", form["id"], "reply", {"reply": "已处理。"}), 403,
                   "not_your_unit")
    response = await act(client, world, "handler_b", form["id"], "reply", {"reply": "已处理。"})
    assert response.status_code == 200, response.text


# --- reply (答复) --------------------------------------------------------------------------------------


async def test_handler_of_the_unit_replies_and_form_becomes_answered(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await detail(client, world, form["id"], "handler_a")

    response = await act(client, world, "handler_a", form["id"], "reply", {"reply": "  路灯已于本周更换完毕。 "})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "answered"
    assert body["reply"] == "路灯已于本周更换完毕。"
    assert local(body["answered_at"]) <= datetime.now(UTC)
    assert body["unit_id"] == world.units["A"].id
    event = only_new_event(before, await detail(client, world, form["id"], "handler_a"))
    assert event["type"] == "answered"
    assert (event["actor"], event["actor_role"]) == ("handler_a", "handler")
    assert (event["from_status"], event["to_status"]) == ("assigned", "answered")
    assert event["note"] == "路灯已于本周更换完毕。"
    assert (await summary(client, world))["answered"] == 1


async def test_reply_internal_note_is_kept_in_the_event_data_that_staff_read(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")

    response = await act(client, world, "handler_a", form["id"], "reply",
                         {"reply": "已更换路灯。", "internal_note": "费用由村集体承担，勿对外公开。"})

    assert response.status_code == 200, response.text
    for who in ("coordinator", "admin", "handler_a"):
        event = (await detail(client, world, form["id"], who))["events"][-1]
        assert event["type"] == "answered"
        assert event["data"] == {"internal_note": "费用由村集体承担，勿对外公开。"}
        assert event["note"] == "已更换路灯。"
    assert (await detail(client, world, form["id"]))["reply"] == "已更换路灯。"


@pytest.mark.parametrize("who", ["coordinator", "admin"])
async def test_office_may_reply_to_a_form_assigned_to_any_unit(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "B")

    response = await act(client, world, who, form["id"], "reply", {"reply": "经协调已解决。"})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "answered"
    event = response.json()["events"][-1]
    assert (event["type"], event["actor"], event["actor_role"]) == ("answered", who, who)


async def test_handler_of_another_unit_cannot_reply_and_form_is_unchanged(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "handler_b", form["id"], "reply", {"reply": "不是我们的事。"})

    assert_problem(response, 403, "not_your_unit")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_handler_of_another_unit_cannot_read_the_form(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")

    assert_problem(await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("handler_b")), 403,
                   "form_forbidden")
    assert (await detail(client, world, form["id"], "handler_a"))["id"] == form["id"]


async def test_handler_cannot_reply_to_a_form_not_yet_assigned(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "handler_a", form["id"], "reply", {"reply": "抢先答复。"})

    assert_problem(response, 403, "not_your_unit")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_representative_cannot_reply_to_an_assigned_form(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A", workroom_code="LS-01")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "rep", form["id"], "reply", {"reply": "代表答复。"})

    assert_problem(response, 403, "forbidden")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_reply_with_empty_text_is_422_and_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "handler_a", form["id"], "reply", {"reply": "   "})

    problem = assert_problem(response, 422, "validation_error")
    assert any(error["loc"][-1] == "reply" for error in problem["errors"])
    assert await snapshot(sessionmaker, form["id"]) == before


# --- close (办结) --------------------------------------------------------------------------------------


async def test_close_records_satisfaction_and_note_and_counts_closed(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await answered_form(client, world)
    before = await detail(client, world, form["id"])

    response = await act(client, world, "coordinator", form["id"], "close",
                         {"satisfaction": "basically_satisfied", "note": "电话回访，群众基本满意。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "closed"
    assert body["satisfaction"] == "basically_satisfied"
    assert local(body["closed_at"]) <= datetime.now(UTC)
    assert body["reply"] == "已安排维修，三日内完成。"
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "closed"
    assert (event["actor"], event["actor_role"]) == ("coordinator", "coordinator")
    assert (event["from_status"], event["to_status"]) == ("answered", "closed")
    assert event["note"] == "电话回访，群众基本满意。"
    assert event["data"] == {"satisfaction": "basically_satisfied"}
    counts = await summary(client, world)
    assert (counts["assigned"], counts["answered"], counts["closed"]) == (1, 1, 1)


async def test_close_with_unknown_satisfaction_is_422_and_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await answered_form(client, world)
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "coordinator", form["id"], "close", {"satisfaction": "thrilled"})

    assert_problem(response, 422, "validation_error")
    assert await snapshot(sessionmaker, form["id"]) == before


# --- decline (不予受理) ---------------------------------------------------------------------------------


async def test_decline_records_the_reason_and_counts_declined(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    before = await detail(client, world, form["id"])

    response = await act(client, world, "admin", form["id"], "decline", {"reason": "属司法程序，请向法院反映。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "declined"
    assert body["decline_reason"] == "属司法程序，请向法院反映。"
    assert local(body["declined_at"]) <= datetime.now(UTC)
    assert body["unit_id"] is None and body["due_at"] is None
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "declined"
    assert (event["actor"], event["actor_role"]) == ("admin", "admin")
    assert (event["from_status"], event["to_status"]) == ("submitted", "declined")
    assert event["note"] == "属司法程序，请向法院反映。"
    counts = await summary(client, world)
    assert (counts["declined"], counts["assigned"]) == (1, 0)


async def test_decline_without_a_reason_is_422_and_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "coordinator", form["id"], "decline", {})

    assert_problem(response, 422, "validation_error")
    assert await snapshot(sessionmaker, form["id"]) == before


# --- reopen (重办) -------------------------------------------------------------------------------------


async def test_reopen_returns_answered_form_to_same_unit_with_new_deadline_and_no_reply(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await answered_form(client, world, "B")
    # Let the first deadline lapse, so the reopened form's deadline is visibly a new one.
    lapsed = datetime.now(UTC) - timedelta(days=2)
    async with transaction(sessionmaker) as session:
        await session.execute(update(OpinionForm).where(OpinionForm.id == form["id"]).values(due_at=lapsed))
    before = await detail(client, world, form["id"])
    first_day = today_local()

    response = await act(client, world, "coordinator", form["id"], "reopen", {"reason": "群众回访表示仍未修好。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "assigned"
    assert body["unit_id"] == world.units["B"].id
    assert body["unit_name"] == "镇生态环境办"
    assert body["reply"] is None
    assert body["answered_at"] is None
    due_at = local(body["due_at"])
    assert due_at > datetime.now(UTC)
    assert due_at.date() in {working_days_after(first_day, 15), working_days_after(today_local(), 15)}
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "reopened"
    assert (event["actor"], event["actor_role"]) == ("coordinator", "coordinator")
    assert (event["from_status"], event["to_status"]) == ("answered", "assigned")
    assert event["note"] == "群众回访表示仍未修好。"


async def test_reopen_does_not_take_the_form_out_of_the_answered_count(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await answered_form(client, world)
    assert (await summary(client, world))["answered"] == 1

    response = await act(client, world, "coordinator", form["id"], "reopen", {"reason": "不满意。"})
    assert response.status_code == 200, response.text
    assert (await summary(client, world))["answered"] == 1

    response = await act(client, world, "handler_a", form["id"], "reply", {"reply": "已重新维修。"})
    assert response.status_code == 200, response.text
    counts = await summary(client, world)
    # "Answered" counts forms that ever reached answered: a second answer is not a second form.
    assert (counts["collected"], counts["assigned"], counts["answered"]) == (1, 1, 1)
    assert await counters_match_recount(sessionmaker) == []


# --- the timeline ------------------------------------------------------------------------------------


async def test_form_detail_shows_every_event_in_order(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    steps = [
        ("coordinator", "assign", {"unit_id": world.units["A"].id, "instructions": "请核实。"}),
        ("coordinator", "reassign", {"unit_id": world.units["B"].id}),
        ("handler_b", "reply", {"reply": "已修复。"}),
        ("coordinator", "reopen", {"reason": "仍有一盏不亮。"}),
        ("admin", "reply", {"reply": "全部修复。"}),
        ("coordinator", "close", {"satisfaction": "satisfied"}),
    ]
    for who, action, body in steps:
        response = await act(client, world, who, form["id"], action, body)
        assert response.status_code == 200, (action, response.text)

    events = (await detail(client, world, form["id"]))["events"]

    assert [e["type"] for e in events] == [
        "submitted", "assigned", "reassigned", "answered", "reopened", "answered", "closed",
    ]
    assert [e["actor"] for e in events] == ["公众", "coordinator", "coordinator", "handler_b", "coordinator",
                                            "admin", "coordinator"]
    assert [e["to_status"] for e in events] == [
        "submitted", "assigned", "assigned", "answered", "assigned", "answered", "closed",
    ]
    # Each event starts where the previous one ended.
    assert [e["from_status"] for e in events[1:]] == [e["to_status"] for e in events[:-1]]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    times = [local(e["at"]) for e in events]
    assert times == sorted(times)


# --- illegal transitions -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted({status for status, _ in ILLEGAL}))
async def test_actions_not_allowed_in_current_status_are_409_and_the_form_unchanged(client, sessionmaker, status):
    """Every action ``ALLOWED`` does not allow in ``status``, one after another on one form in that status
    (each refusal changes nothing, so the next meets the same form)."""
    world = await build_world(sessionmaker)
    form = await form_in(client, world, status)
    before = await snapshot(sessionmaker, form["id"])
    counts_before = await summary(client, world)

    for action in [action for s, action in ILLEGAL if s == status]:
        response = await act(client, world, "coordinator", form["id"], action, body_for(world, action))

        assert_problem(response, 409, "invalid_transition")
        assert await snapshot(sessionmaker, form["id"]) == before, action
        after = await summary(client, world)
        assert {k: v for k, v in after.items() if k != "as_of"} == {
            k: v for k, v in counts_before.items() if k != "as_of"}, action


async def test_assigning_twice_is_409_and_keeps_the_first_unit(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")

    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["B"].id})

    assert_problem(response, 409, "invalid_transition")
    after = await detail(client, world, form["id"])
    assert after["unit_id"] == world.units["A"].id
    assert [e["type"] for e in after["events"]] == ["submitted", "assigned"]
    assert (await summary(client, world))["assigned"] == 1


# --- permissions -------------------------------------------------------------------------------------

# The status in which each office-only action would be allowed, so only the role can refuse it.
OFFICE_ONLY = {"assign": "submitted", "reassign": "assigned", "close": "answered", "decline": "submitted",
               "reopen": "answered"}


@pytest.mark.parametrize("who", ["handler_a", "rep"])
@pytest.mark.parametrize("action", sorted(OFFICE_ONLY))
async def test_handler_and_representative_cannot_take_office_actions(client, sessionmaker, who, action):
    world = await build_world(sessionmaker)
    # Unit A and workroom LS-01: the closest either user gets to the form.
    form = await form_in(client, world, OFFICE_ONLY[action], workroom_code="LS-01")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, who, form["id"], action, body_for(world, action))

    assert_problem(response, 403, "forbidden")
    assert await snapshot(sessionmaker, form["id"]) == before


@pytest.mark.parametrize("action", ACTIONS)
async def test_anonymous_action_is_401(client, sessionmaker, action):
    world = await build_world(sessionmaker)
    status = next(s for s, allowed in ALLOWED.items() if action in allowed)
    form = await form_in(client, world, status)
    before = await snapshot(sessionmaker, form["id"])

    response = await client.post(f"/api/v1/forms/{form['id']}/{action}", json=body_for(world, action))

    assert_problem(response, 401, "unauthorized")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_anonymous_cannot_read_a_form(client, sessionmaker):
    await build_world(sessionmaker)
    form = await submit(client)

    assert_problem(await client.get(f"/api/v1/forms/{form['id']}"), 401, "unauthorized")


async def test_invalid_token_is_401(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)

    response = await client.post(f"/api/v1/forms/{form['id']}/assign", json=body_for(world, "assign"),
                                 headers={"Authorization": "Bearer not-a-real-token"})

    assert_problem(response, 401, "invalid_token")
    assert (await snapshot(sessionmaker, form["id"]))["status"] == "submitted"


@pytest.mark.parametrize("action", ACTIONS)
async def test_action_on_unknown_form_is_404(client, sessionmaker, action):
    world = await build_world(sessionmaker)

    response = await act(client, world, "coordinator", 424242, action, body_for(world, action))

    assert_problem(response, 404, "form_not_found")


async def test_reading_unknown_form_is_404(client, sessionmaker):
    world = await build_world(sessionmaker)

    assert_problem(await client.get("/api/v1/forms/424242", headers=world.auth("coordinator")), 404,
                   "form_not_found")


# --- concurrency -------------------------------------------------------------------------------------


async def test_ten_concurrent_assigns_exactly_one_wins(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    units = [world.units["A" if i % 2 else "B"].id for i in range(10)]

    responses = await asyncio.gather(*(
        act(client, world, "coordinator", form["id"], "assign", {"unit_id": unit}) for unit in units
    ))

    winners = [(unit, r) for unit, r in zip(units, responses, strict=True) if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_problem(response, 409, "invalid_transition")
    winning_unit, _ = winners[0]
    after = await snapshot(sessionmaker, form["id"])
    assert (after["status"], after["unit_id"]) == ("assigned", winning_unit)
    assert await event_types(sessionmaker, form["id"]) == ["submitted", "assigned"]
    assert (await summary(client, world))["assigned"] == 1
    assert await counters_match_recount(sessionmaker) == []


@pytest.mark.parametrize("first", ["close", "reopen"])
async def test_close_and_reopen_at_once_exactly_one_wins(client, sessionmaker, first):
    world = await build_world(sessionmaker)
    form = await answered_form(client, world)
    order = ["close", "reopen"] if first == "close" else ["reopen", "close"]

    responses = dict(zip(order, await asyncio.gather(*(
        act(client, world, "coordinator", form["id"], action, body_for(world, action)) for action in order
    )), strict=True))

    winners = [action for action, r in responses.items() if r.status_code == 200]
    assert len(winners) == 1, {a: r.status_code for a, r in responses.items()}
    loser = next(action for action in order if action not in winners)
    assert_problem(responses[loser], 409, "invalid_transition")
    expected = {"close": ("closed", "closed"), "reopen": ("assigned", "reopened")}[winners[0]]
    assert (await snapshot(sessionmaker, form["id"]))["status"] == expected[0]
    assert await event_types(sessionmaker, form["id"]) == ["submitted", "assigned", "answered", expected[1]]
    assert (await summary(client, world))["closed"] == (1 if winners[0] == "close" else 0)
    assert await counters_match_recount(sessionmaker) == []


async def test_two_replies_at_once_exactly_one_wins(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")

    first, second = await asyncio.gather(
        act(client, world, "handler_a", form["id"], "reply", {"reply": "承办单位答复。"}),
        act(client, world, "coordinator", form["id"], "reply", {"reply": "联络站答复。"}),
    )

    assert sorted([first.status_code, second.status_code]) == [200, 409], (first.text, second.text)
    winner, loser = (first, second) if first.status_code == 200 else (second, first)
    assert_problem(loser, 409, "invalid_transition")
    after = await snapshot(sessionmaker, form["id"])
    assert (after["status"], after["reply"]) == ("answered", winner.json()["reply"])
    assert await event_types(sessionmaker, form["id"]) == ["submitted", "assigned", "answered"]
    assert (await summary(client, world))["answered"] == 1


async def test_reassign_to_the_unit_that_already_has_it_is_422_and_writes_no_event(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    events_before = len((await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("admin"))).json()["events"])
    response = await act(client, world, "coordinator", form["id"], "reassign", {"unit_id": world.units["A"].id})
    assert response.status_code == 422 and response.json()["code"] == "same_unit"
    after = (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("admin"))).json()
    assert len(after["events"]) == events_before and after["unit_id"] == world.units["A"].id
