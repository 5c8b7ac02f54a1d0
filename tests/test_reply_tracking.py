"""The rest of the workflow through the JSON API: return (退回), extension (延期), answer on the spot (当场答复),
urging (催办), internal notes, and what public tracking may and may not show of them.

Each action: who may take it, the status it needs (409 otherwise, the form untouched), what it changes on the
form, the one event it writes, and the counters still equal to a recount afterwards.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.config import TZ
from app.db import transaction
from app.models import FormEvent, OpinionForm
from app.services import stats as stats_service
from tests.factories import World, act, answered_form, assigned_form, build_world, submit
from tests.support.problems import assert_problem

NOTE = "内部备注：村支书说施工方是其亲戚，请注意回避。"
INTERNAL_NOTE = "费用由村集体垫付，暂不对外公开。"
REASON = "该路段属县交通局管养，不属本单位职责。"


# --- helpers -----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
async def _counters_equal_a_recount_after_every_scenario(sessionmaker):
    """Whatever a test did (including the refused actions), the counters still equal a recount."""
    yield
    async with transaction(sessionmaker) as session:
        assert await stats_service.verify(session) == []


async def detail(client: httpx.AsyncClient, world: World, form_id: int, who: str = "coordinator") -> dict[str, Any]:
    response = await client.get(f"/api/v1/forms/{form_id}", headers=world.auth(who))
    assert response.status_code == 200, response.text
    return response.json()


async def track(client: httpx.AsyncClient, form: dict[str, Any]) -> dict[str, Any]:
    """Public tracking, as the resident holding the number and the code sees it (no credentials)."""
    response = await client.get(f"/api/v1/track/{form['tracking_no']}", params={"code": form["verification_code"]})
    assert response.status_code == 200, response.text
    return response.json()


async def track_text(client: httpx.AsyncClient, form: dict[str, Any]) -> str:
    response = await client.get(f"/api/v1/track/{form['tracking_no']}", params={"code": form["verification_code"]})
    assert response.status_code == 200, response.text
    return response.text


async def snapshot(sessionmaker: Any, form_id: int) -> dict[str, Any]:
    """Everything an action could change, read straight from the database."""
    async with transaction(sessionmaker) as session:
        form = await session.get(OpinionForm, form_id)
        assert form is not None
        events = await session.scalar(select(func.count()).select_from(FormEvent).where(FormEvent.form_id == form_id))
        return {
            "status": form.status, "unit_id": form.unit_id, "due_at": form.due_at, "reply": form.reply,
            "extension_due_at": form.extension_due_at, "extension_reason": form.extension_reason,
            "returned_count": form.returned_count, "reopened_count": form.reopened_count,
            "answered_at": form.answered_at, "updated_at": form.updated_at, "events": events,
        }


async def counters_match_recount(sessionmaker: Any) -> list[dict[str, Any]]:
    async with transaction(sessionmaker) as session:
        return await stats_service.verify(session)


async def summary(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    response = await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    return response.json()


def only_new_event(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    assert len(after["events"]) == len(before["events"]) + 1, after["events"]
    assert [e["id"] for e in after["events"][:-1]] == [e["id"] for e in before["events"]]
    return after["events"][-1]


def later(due_at: str, days: int) -> str:
    """A deadline ``days`` after the API time ``due_at``, as the API would show it (+08:00, whole seconds)."""
    return (datetime.fromisoformat(due_at) + timedelta(days=days)).astimezone(TZ).replace(microsecond=0).isoformat()


async def assigned_with_code(client: httpx.AsyncClient, world: World, unit: str = "A") -> dict[str, Any]:
    """An assigned form that still carries the verification code from its submission (for tracking)."""
    form = await submit(client)
    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units[unit].id})
    assert response.status_code == 200, response.text
    return {**response.json(), "verification_code": form["verification_code"]}


async def closed_form(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    form = await answered_form(client, world, **fields)
    response = await act(client, world, "coordinator", form["id"], "close", {"satisfaction": "satisfied"})
    assert response.status_code == 200, response.text
    return response.json()


async def declined_form(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    form = await submit(client, **fields)
    response = await act(client, world, "coordinator", form["id"], "decline", {"reason": "重复提交。"})
    assert response.status_code == 200, response.text
    return response.json()


async def form_in(client: httpx.AsyncClient, world: World, status: str, **fields: Any) -> dict[str, Any]:
    builders = {"submitted": submit, "assigned": assigned_form, "answered": answered_form, "closed": closed_form,
                "declined": declined_form}
    if status == "submitted":
        return await submit(client, **fields)
    return await builders[status](client, world, **fields)


# --- return (退回) -------------------------------------------------------------------------------------


async def test_handler_of_the_unit_returns_the_form_to_the_office_queue_with_reason(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await detail(client, world, form["id"])
    assert before["due_at"] is not None

    response = await act(client, world, "handler_a", form["id"], "return", {"reason": f"  {REASON} "})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "submitted"
    assert body["unit_id"] is None and body["unit_name"] is None
    assert body["due_at"] is None
    assert body["supervision"] == "none"
    assert body["returned_count"] == 1
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "returned"
    assert (event["actor"], event["actor_role"]) == ("handler_a", "handler")
    assert (event["from_status"], event["to_status"]) == ("assigned", "submitted")
    assert event["unit_id"] == world.units["A"].id
    assert event["note"] == REASON
    counts = await summary(client, world)
    assert (counts["assigned"], counts["returned"]) == (1, 1)
    assert await counters_match_recount(sessionmaker) == []


async def test_returned_form_leaves_the_units_view_and_can_be_assigned_again(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    assert (await act(client, world, "handler_a", form["id"], "return", {"reason": REASON})).status_code == 200

    assert_problem(await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("handler_a")), 403,
                   "form_forbidden")
    listed = await client.get("/api/v1/forms", headers=world.auth("handler_a"))
    assert [f["id"] for f in listed.json()["items"]] == []

    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["B"].id})
    assert response.status_code == 200, response.text
    assert response.json()["due_at"] is not None
    response = await act(client, world, "handler_b", form["id"], "return", {"reason": "也不属于生态环境办。"})
    assert response.status_code == 200, response.text

    body = response.json()
    assert body["returned_count"] == 2
    returns = [e for e in (await detail(client, world, form["id"]))["events"] if e["type"] == "returned"]
    assert [(e["unit_id"], e["note"]) for e in returns] == [
        (world.units["A"].id, REASON), (world.units["B"].id, "也不属于生态环境办。"),
    ]
    counts = await summary(client, world)
    # The form was assigned (once, as a form) and returned twice (as times).
    assert (counts["collected"], counts["assigned"], counts["returned"]) == (1, 1, 2)
    assert await counters_match_recount(sessionmaker) == []


@pytest.mark.parametrize(("who", "code"), [
    ("handler_b", "not_your_unit"), ("coordinator", "not_your_unit"), ("admin", "not_your_unit"),
    ("rep", "not_your_unit"),
])
async def test_only_the_handler_of_the_forms_unit_may_return_it(client, sessionmaker, who, code):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A", workroom_code="LS-01")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, who, form["id"], "return", {"reason": REASON})

    assert_problem(response, 403, code)
    assert await snapshot(sessionmaker, form["id"]) == before


@pytest.mark.parametrize("status", ["answered", "closed"])
async def test_return_of_a_form_no_longer_in_progress_is_409(client, sessionmaker, status):
    world = await build_world(sessionmaker)
    form = await form_in(client, world, status)
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "handler_a", form["id"], "return", {"reason": REASON})

    assert_problem(response, 409, "invalid_transition")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_return_without_a_reason_is_422_and_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await snapshot(sessionmaker, form["id"])

    for body in ({}, {"reason": "   "}):
        assert_problem(await act(client, world, "handler_a", form["id"], "return", body), 422, "validation_error")

    assert await snapshot(sessionmaker, form["id"]) == before


async def test_return_withdraws_a_pending_extension_request(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    response = await act(client, world, "handler_a", form["id"], "extension",
                         {"due_at": later(form["due_at"], 10), "reason": "需协调县交通局。"})
    assert response.status_code == 200, response.text

    response = await act(client, world, "handler_a", form["id"], "return", {"reason": REASON})

    assert response.status_code == 200, response.text
    assert (response.json()["extension_due_at"], response.json()["extension_reason"]) == (None, None)
    assert_problem(await act(client, world, "coordinator", form["id"], "extension/approve", {}), 409,
                   "invalid_transition")


async def test_return_is_not_shown_to_the_resident(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    assert (await act(client, world, "coordinator", form["id"], "assign",
                      {"unit_id": world.units["A"].id})).status_code == 200
    assert (await act(client, world, "handler_a", form["id"], "return", {"reason": REASON})).status_code == 200

    body = await track(client, form)

    assert body["status"] == "submitted"
    assert "returned" not in [entry["type"] for entry in body["timeline"]]
    assert REASON not in await track_text(client, form)


async def test_return_and_reply_at_once_exactly_one_wins(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")

    returned, replied = await asyncio.gather(
        act(client, world, "handler_a", form["id"], "return", {"reason": REASON}),
        act(client, world, "coordinator", form["id"], "reply", {"reply": "已处理。"}),
    )

    assert sorted([returned.status_code, replied.status_code]) == [200, 409], (returned.text, replied.text)
    loser = returned if returned.status_code == 409 else replied
    assert_problem(loser, 409, "invalid_transition")
    after = await snapshot(sessionmaker, form["id"])
    assert after["status"] == ("submitted" if returned.status_code == 200 else "answered")
    assert after["events"] == 3
    assert await counters_match_recount(sessionmaker) == []


# --- extension (延期) ----------------------------------------------------------------------------------


async def test_handler_requests_an_extension_that_waits_for_the_office(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_with_code(client, world, "A")
    before = await detail(client, world, form["id"], "handler_a")
    wanted = later(form["due_at"], 10)

    response = await act(client, world, "handler_a", form["id"], "extension",
                         {"due_at": wanted, "reason": "需协调县交通局。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "assigned"
    assert body["due_at"] == form["due_at"]
    assert body["extension_due_at"] == wanted
    assert body["extension_reason"] == "需协调县交通局。"
    event = only_new_event(before, await detail(client, world, form["id"], "handler_a"))
    assert event["type"] == "extension_requested"
    assert (event["actor"], event["actor_role"]) == ("handler_a", "handler")
    assert (event["from_status"], event["to_status"]) == ("assigned", None)
    assert event["note"] == "需协调县交通局。"
    assert event["unit_id"] == world.units["A"].id
    # A request is not yet a new deadline: the resident still sees the old one and no new entry.
    tracked = await track(client, form)
    assert tracked["due_at"] == form["due_at"]
    assert [entry["type"] for entry in tracked["timeline"]] == ["submitted", "assigned"]
    assert await counters_match_recount(sessionmaker) == []


async def test_second_extension_request_while_one_is_pending_is_409(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    first = later(form["due_at"], 10)
    assert (await act(client, world, "handler_a", form["id"], "extension",
                      {"due_at": first, "reason": "第一次申请。"})).status_code == 200
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "handler_a", form["id"], "extension",
                         {"due_at": later(form["due_at"], 20), "reason": "第二次申请。"})

    assert_problem(response, 409, "extension_pending")
    assert await snapshot(sessionmaker, form["id"]) == before
    assert (await detail(client, world, form["id"]))["extension_due_at"] == first


@pytest.mark.parametrize("days", [0, -1], ids=["same-deadline", "earlier-deadline"])
async def test_extension_to_a_date_not_later_than_the_current_deadline_is_422(client, sessionmaker, days):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "handler_a", form["id"], "extension",
                         {"due_at": later(form["due_at"], days), "reason": "需要更多时间。"})

    assert_problem(response, 422, "invalid_due_at")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_extension_without_a_reason_is_422(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "handler_a", form["id"], "extension", {"due_at": later(form["due_at"], 5)})

    assert_problem(response, 422, "validation_error")
    assert await snapshot(sessionmaker, form["id"]) == before


@pytest.mark.parametrize("who", ["handler_b", "coordinator", "rep"])
async def test_only_the_handler_of_the_forms_unit_may_request_an_extension(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A", workroom_code="LS-01")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, who, form["id"], "extension",
                         {"due_at": later(form["due_at"], 10), "reason": "需协调。"})

    assert_problem(response, 403, "not_your_unit")
    assert await snapshot(sessionmaker, form["id"]) == before


@pytest.mark.parametrize("who", ["coordinator", "admin"])
async def test_approved_extension_becomes_the_deadline_and_the_resident_sees_it(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    form = await submit(client)
    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})
    old_due = response.json()["due_at"]
    wanted = later(old_due, 10)
    assert (await act(client, world, "handler_a", form["id"], "extension",
                      {"due_at": wanted, "reason": "需协调县交通局。"})).status_code == 200
    before = await detail(client, world, form["id"])

    response = await act(client, world, who, form["id"], "extension/approve", {"note": "同意延期。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "assigned"
    assert body["due_at"] == wanted
    assert (body["extension_due_at"], body["extension_reason"]) == (None, None)
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "extension_approved"
    assert (event["actor"], event["actor_role"]) == (who, who)
    assert event["note"] == "同意延期。"
    assert datetime.fromisoformat(event["data"]["requested_due_at"]) == datetime.fromisoformat(wanted)
    assert datetime.fromisoformat(event["data"]["previous_due_at"]) == datetime.fromisoformat(old_due)
    tracked = await track(client, form)
    assert tracked["due_at"] == wanted
    assert [entry["type"] for entry in tracked["timeline"]] == ["submitted", "assigned", "extension_approved"]
    assert tracked["timeline"][-1]["label"]
    assert "需协调县交通局" not in await track_text(client, form)
    assert await counters_match_recount(sessionmaker) == []


async def test_after_approval_a_new_request_must_be_later_than_the_new_deadline(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    first = later(form["due_at"], 10)
    assert (await act(client, world, "handler_a", form["id"], "extension",
                      {"due_at": first, "reason": "一。"})).status_code == 200
    assert (await act(client, world, "coordinator", form["id"], "extension/approve", {})).status_code == 200

    # Later than the old deadline but not than the approved one.
    assert_problem(await act(client, world, "handler_a", form["id"], "extension",
                             {"due_at": later(form["due_at"], 5), "reason": "二。"}), 422, "invalid_due_at")
    response = await act(client, world, "handler_a", form["id"], "extension",
                         {"due_at": later(form["due_at"], 15), "reason": "二。"})
    assert response.status_code == 200, response.text
    assert response.json()["extension_due_at"] == later(form["due_at"], 15)


async def test_refused_extension_keeps_the_deadline_and_clears_the_request(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_with_code(client, world, "A")
    assert (await act(client, world, "handler_a", form["id"], "extension",
                      {"due_at": later(form["due_at"], 10), "reason": "需协调。"})).status_code == 200
    before = await detail(client, world, form["id"])

    response = await act(client, world, "coordinator", form["id"], "extension/refuse", {"note": "请按期办结。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "assigned"
    assert body["due_at"] == form["due_at"]
    assert (body["extension_due_at"], body["extension_reason"]) == (None, None)
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "extension_refused"
    assert event["note"] == "请按期办结。"
    assert (await track(client, form))["due_at"] == form["due_at"]
    # With nothing pending any more, the unit may ask again.
    response = await act(client, world, "handler_a", form["id"], "extension",
                         {"due_at": later(form["due_at"], 3), "reason": "再次申请。"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("decision", ["approve", "refuse"])
async def test_deciding_with_no_pending_extension_is_409(client, sessionmaker, decision):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "coordinator", form["id"], f"extension/{decision}", {})

    assert_problem(response, 409, "no_pending_extension")
    assert await snapshot(sessionmaker, form["id"]) == before


@pytest.mark.parametrize("decision", ["approve", "refuse"])
@pytest.mark.parametrize("who", ["handler_a", "rep"])
async def test_handler_and_representative_cannot_decide_an_extension(client, sessionmaker, who, decision):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A", workroom_code="LS-01")
    assert (await act(client, world, "handler_a", form["id"], "extension",
                      {"due_at": later(form["due_at"], 10), "reason": "需协调。"})).status_code == 200
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, who, form["id"], f"extension/{decision}", {})

    assert_problem(response, 403, "forbidden")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_reply_settles_a_pending_extension_request(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    assert (await act(client, world, "handler_a", form["id"], "extension",
                      {"due_at": later(form["due_at"], 10), "reason": "需协调。"})).status_code == 200

    response = await act(client, world, "handler_a", form["id"], "reply", {"reply": "已办结。"})

    assert response.status_code == 200, response.text
    assert (response.json()["extension_due_at"], response.json()["extension_reason"]) == (None, None)
    assert response.json()["due_at"] == form["due_at"]


async def test_approve_and_refuse_at_once_exactly_one_wins(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    wanted = later(form["due_at"], 10)
    assert (await act(client, world, "handler_a", form["id"], "extension",
                      {"due_at": wanted, "reason": "需协调。"})).status_code == 200

    approved, refused = await asyncio.gather(
        act(client, world, "coordinator", form["id"], "extension/approve", {}),
        act(client, world, "admin", form["id"], "extension/refuse", {}),
    )

    assert sorted([approved.status_code, refused.status_code]) == [200, 409], (approved.text, refused.text)
    assert_problem(approved if approved.status_code == 409 else refused, 409, "no_pending_extension")
    after = await detail(client, world, form["id"])
    decisions = [e["type"] for e in after["events"] if e["type"] in ("extension_approved", "extension_refused")]
    assert decisions == (["extension_approved"] if approved.status_code == 200 else ["extension_refused"])
    assert after["due_at"] == (wanted if approved.status_code == 200 else form["due_at"])


# --- answer on the spot (当场答复) ----------------------------------------------------------------------


async def test_representative_who_entered_the_form_answers_it_on_the_spot(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, headers=world.auth("rep"), workroom_code="LS-01")
    before = await detail(client, world, form["id"], "rep")

    response = await act(client, world, "rep", form["id"], "answer-on-spot", {"reply": " 已当场解释相关政策。 "})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "answered"
    assert body["reply"] == "已当场解释相关政策。"
    assert body["answered_at"] is not None
    assert body["unit_id"] is None
    event = only_new_event(before, await detail(client, world, form["id"], "rep"))
    assert event["type"] == "answered_on_spot"
    assert (event["actor"], event["actor_role"]) == ("rep", "representative")
    assert (event["from_status"], event["to_status"]) == ("submitted", "answered")
    assert event["note"] == "已当场解释相关政策。"
    tracked = await track(client, form)
    assert tracked["status"] == "answered"
    assert tracked["reply"] == "已当场解释相关政策。"
    assert tracked["answered_at"] == body["answered_at"]
    assert [entry["type"] for entry in tracked["timeline"]] == ["submitted", "answered_on_spot"]
    assert tracked["timeline"][-1]["note"] == "已当场解释相关政策。"
    counts = await summary(client, world)
    # Answered without ever being assigned.
    assert (counts["collected"], counts["assigned"], counts["answered"]) == (1, 0, 1)
    assert await counters_match_recount(sessionmaker) == []


async def test_another_representative_cannot_answer_on_the_spot_even_when_they_can_see_the_form(client, sessionmaker):
    world = await build_world(sessionmaker)
    # rep enters a form at rep2's workroom: rep2 sees it (their workroom) but did not enter it.
    form = await submit(client, headers=world.auth("rep"), workroom_code="LS-02")
    assert (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("rep2"))).status_code == 200
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "rep2", form["id"], "answer-on-spot", {"reply": "已解答。"})

    assert_problem(response, 403, "not_your_form")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_representative_cannot_answer_on_the_spot_a_form_the_public_submitted(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, workroom_code="LS-01")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "rep", form["id"], "answer-on-spot", {"reply": "已解答。"})

    assert_problem(response, 403, "not_your_form")
    assert await snapshot(sessionmaker, form["id"]) == before


@pytest.mark.parametrize("who", ["coordinator", "admin"])
async def test_office_may_answer_any_submitted_form_on_the_spot(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    form = await submit(client, headers=world.auth("rep"))

    response = await act(client, world, who, form["id"], "answer-on-spot", {"reply": "电话中已解答。"})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "answered"
    assert response.json()["events"][-1]["actor"] == who
    assert (await track(client, form))["reply"] == "电话中已解答。"
    assert await counters_match_recount(sessionmaker) == []


async def test_handler_cannot_answer_on_the_spot(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "handler_a", form["id"], "answer-on-spot", {"reply": "已解答。"})

    assert_problem(response, 403, "forbidden")
    assert await snapshot(sessionmaker, form["id"]) == before


@pytest.mark.parametrize("status", ["assigned", "answered", "closed", "declined"])
async def test_answer_on_the_spot_is_only_for_submitted_forms(client, sessionmaker, status):
    world = await build_world(sessionmaker)
    form = await form_in(client, world, status)
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "coordinator", form["id"], "answer-on-spot", {"reply": "已解答。"})

    assert_problem(response, 409, "invalid_transition")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_the_entering_representative_also_gets_409_once_the_form_is_assigned(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, headers=world.auth("rep"))
    assert (await act(client, world, "coordinator", form["id"], "assign",
                      {"unit_id": world.units["A"].id})).status_code == 200
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "rep", form["id"], "answer-on-spot", {"reply": "已解答。"})

    assert_problem(response, 409, "invalid_transition")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_empty_answer_on_the_spot_is_422(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, headers=world.auth("rep"))
    before = await snapshot(sessionmaker, form["id"])

    assert_problem(await act(client, world, "rep", form["id"], "answer-on-spot", {"reply": "  "}), 422,
                   "validation_error")
    assert await snapshot(sessionmaker, form["id"]) == before


# --- reopen after an answer on the spot ----------------------------------------------------------------


async def test_reopening_a_form_answered_on_the_spot_needs_a_unit(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, headers=world.auth("rep"))
    assert (await act(client, world, "rep", form["id"], "answer-on-spot", {"reply": "已解答。"})).status_code == 200
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "coordinator", form["id"], "reopen", {"reason": "群众仍有疑问。"})

    assert_problem(response, 422, "unit_required")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_reopening_a_form_answered_on_the_spot_with_a_unit_assigns_it_there(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, headers=world.auth("rep"))
    assert (await act(client, world, "rep", form["id"], "answer-on-spot", {"reply": "已解答。"})).status_code == 200
    before = await detail(client, world, form["id"])

    response = await act(client, world, "coordinator", form["id"], "reopen",
                         {"reason": "群众仍有疑问。", "unit_id": world.units["B"].id})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "assigned"
    assert (body["unit_id"], body["unit_name"]) == (world.units["B"].id, "镇生态环境办")
    assert body["reply"] is None and body["answered_at"] is None
    assert datetime.fromisoformat(body["due_at"]) > datetime.now(UTC)
    assert body["reopened_count"] == 1
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "reopened"
    assert event["unit_id"] == world.units["B"].id
    # The new unit now has it and may reply.
    response = await act(client, world, "handler_b", form["id"], "reply", {"reply": "已上门解释。"})
    assert response.status_code == 200, response.text
    counts = await summary(client, world)
    assert (counts["assigned"], counts["answered"], counts["reopened"]) == (1, 1, 1)
    assert await counters_match_recount(sessionmaker) == []


# --- urge (催办) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["coordinator", "admin"])
async def test_office_urges_an_assigned_form_without_changing_its_status(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")
    before = await detail(client, world, form["id"])

    response = await act(client, world, who, form["id"], "urge", {"note": "请于本周内答复。"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "assigned"
    assert (body["unit_id"], body["due_at"]) == (before["unit_id"], before["due_at"])
    event = only_new_event(before, await detail(client, world, form["id"]))
    assert event["type"] == "urged"
    assert (event["actor"], event["actor_role"]) == (who, who)
    assert (event["from_status"], event["to_status"]) == ("assigned", None)
    assert event["note"] == "请于本周内答复。"
    assert event["unit_id"] == world.units["A"].id
    # The unit sees that it was chased.
    assert (await detail(client, world, form["id"], "handler_a"))["events"][-1]["type"] == "urged"
    assert await counters_match_recount(sessionmaker) == []


async def test_urge_without_a_note_is_allowed(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A")

    response = await act(client, world, "coordinator", form["id"], "urge")

    assert response.status_code == 200, response.text
    assert response.json()["events"][-1]["type"] == "urged"
    assert response.json()["events"][-1]["note"] is None


@pytest.mark.parametrize("who", ["handler_a", "rep"])
async def test_only_the_office_may_urge(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A", workroom_code="LS-01")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, who, form["id"], "urge", {"note": "快点。"})

    assert_problem(response, 403, "forbidden")
    assert await snapshot(sessionmaker, form["id"]) == before


@pytest.mark.parametrize("status", ["submitted", "answered", "closed", "declined"])
async def test_urge_is_only_for_assigned_forms(client, sessionmaker, status):
    world = await build_world(sessionmaker)
    form = await form_in(client, world, status)
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, "coordinator", form["id"], "urge", {"note": "请尽快。"})

    assert_problem(response, 409, "invalid_transition")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_urging_is_not_shown_to_the_resident(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    assert (await act(client, world, "coordinator", form["id"], "assign",
                      {"unit_id": world.units["A"].id})).status_code == 200
    assert (await act(client, world, "coordinator", form["id"], "urge", {"note": "督促城建办加快。"})).status_code == 200

    tracked = await track(client, form)

    assert [entry["type"] for entry in tracked["timeline"]] == ["submitted", "assigned"]
    assert "督促城建办加快" not in await track_text(client, form)


# --- internal notes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), [
    ("coordinator", "submitted"), ("admin", "closed"), ("handler_a", "assigned"), ("handler_a", "answered"),
    ("rep", "declined"),
])
async def test_staff_who_can_see_the_form_add_an_internal_note(client, sessionmaker, who, status):
    world = await build_world(sessionmaker)
    # Entered by rep at LS-01 and (where it has a unit) handled by unit A: every ``who`` can see it.
    form = await form_in(client, world, status, headers=world.auth("rep"), workroom_code="LS-01")
    before = await detail(client, world, form["id"], who)

    response = await act(client, world, who, form["id"], "notes", {"note": NOTE})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    event = only_new_event(before, await detail(client, world, form["id"], who))
    assert event["type"] == "note"
    assert event["internal"] is True
    assert event["note"] == NOTE
    assert event["actor"] == who
    assert event["to_status"] is None
    assert await counters_match_recount(sessionmaker) == []


@pytest.mark.parametrize("who", ["handler_b", "rep2"])
async def test_staff_who_cannot_see_the_form_cannot_add_a_note(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A", workroom_code="LS-01")
    before = await snapshot(sessionmaker, form["id"])

    response = await act(client, world, who, form["id"], "notes", {"note": NOTE})

    assert_problem(response, 403, "form_forbidden")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_anonymous_cannot_add_a_note(client, sessionmaker):
    await build_world(sessionmaker)
    form = await submit(client)
    before = await snapshot(sessionmaker, form["id"])

    response = await client.post(f"/api/v1/forms/{form['id']}/notes", json={"note": NOTE})

    assert_problem(response, 401, "unauthorized")
    assert await snapshot(sessionmaker, form["id"]) == before


async def test_empty_note_is_422(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    before = await snapshot(sessionmaker, form["id"])

    for body in ({}, {"note": ""}, {"note": "   "}):
        assert_problem(await act(client, world, "coordinator", form["id"], "notes", body), 422, "validation_error")

    assert await snapshot(sessionmaker, form["id"]) == before


async def test_internal_notes_never_appear_in_public_tracking_at_any_step(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, workroom_code="LS-01")
    steps = [
        ("coordinator", "notes", {"note": NOTE + "（受理）"}),
        ("coordinator", "assign", {"unit_id": world.units["A"].id}),
        ("handler_a", "notes", {"note": NOTE + "（办理）"}),
        ("handler_a", "reply", {"reply": "已修复。"}),
        ("coordinator", "notes", {"note": NOTE + "（回访）"}),
        ("coordinator", "close", {"satisfaction": "satisfied"}),
        ("admin", "notes", {"note": NOTE + "（办结后）"}),
    ]
    for who, action, body in steps:
        response = await act(client, world, who, form["id"], action, body)
        assert response.status_code == 200, (action, response.text)
        text = await track_text(client, form)
        assert "内部备注" not in text and "施工方是其亲戚" not in text, (action, text)

    tracked = await track(client, form)
    assert [entry["type"] for entry in tracked["timeline"]] == ["submitted", "assigned", "answered", "closed"]
    # Staff still read every note.
    staff = await detail(client, world, form["id"])
    assert [e["note"] for e in staff["events"] if e["type"] == "note"] == [
        NOTE + "（受理）", NOTE + "（办理）", NOTE + "（回访）", NOTE + "（办结后）",
    ]
    assert all(e["internal"] for e in staff["events"] if e["type"] == "note")
    assert await counters_match_recount(sessionmaker) == []


async def test_reply_internal_note_never_appears_in_public_tracking(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    assert (await act(client, world, "coordinator", form["id"], "assign",
                      {"unit_id": world.units["A"].id})).status_code == 200
    response = await act(client, world, "handler_a", form["id"], "reply",
                         {"reply": "已更换路灯。", "internal_note": INTERNAL_NOTE})
    assert response.status_code == 200, response.text
    assert response.json()["events"][-1]["data"] == {"internal_note": INTERNAL_NOTE}

    for step in ("answered", "closed"):
        if step == "closed":
            assert (await act(client, world, "coordinator", form["id"], "close", {})).status_code == 200
        text = await track_text(client, form)
        assert INTERNAL_NOTE not in text and "村集体垫付" not in text and "internal_note" not in text
        tracked = await track(client, form)
        assert tracked["status"] == step
        assert tracked["reply"] == "已更换路灯。"


# --- the counters after everything above ---------------------------------------------------------------


async def test_a_long_mixed_history_leaves_counters_equal_to_a_recount(client, sessionmaker):
    world = await build_world(sessionmaker)
    forms = [await submit(client, headers=world.auth("rep"), workroom_code="LS-01") for _ in range(4)]
    f1, f2, f3, f4 = (f["id"] for f in forms)
    steps = [
        ("coordinator", f1, "assign", {"unit_id": world.units["A"].id}),
        ("handler_a", f1, "return", {"reason": REASON}),
        ("coordinator", f1, "assign", {"unit_id": world.units["B"].id}),
        ("coordinator", f1, "urge", {}),
        ("handler_b", f1, "notes", {"note": NOTE}),
        ("handler_b", f1, "reply", {"reply": "已处理。", "internal_note": INTERNAL_NOTE}),
        ("coordinator", f1, "reopen", {"reason": "不满意。"}),
        ("handler_b", f1, "reply", {"reply": "已再次处理。"}),
        ("coordinator", f1, "close", {"satisfaction": "basically_satisfied"}),
        ("rep", f2, "answer-on-spot", {"reply": "已当场解答。"}),
        ("coordinator", f2, "reopen", {"reason": "仍有疑问。", "unit_id": world.units["A"].id}),
        ("handler_a", f2, "return", {"reason": REASON}),
        ("coordinator", f2, "decline", {"reason": "不予受理。"}),
        ("coordinator", f3, "assign", {"unit_id": world.units["A"].id}),
        ("coordinator", f3, "reassign", {"unit_id": world.units["B"].id}),
        ("coordinator", f4, "answer-on-spot", {"reply": "已解答。"}),
        ("coordinator", f4, "close", {"satisfaction": "unsatisfied"}),
    ]
    for who, form_id, action, body in steps:
        response = await act(client, world, who, form_id, action, body)
        assert response.status_code == 200, (action, response.text)
        assert await counters_match_recount(sessionmaker) == [], action

    counts = await summary(client, world)
    assert {k: counts[k] for k in ("collected", "assigned", "answered", "closed", "declined", "returned",
                                   "reopened", "satisfied", "basically_satisfied", "unsatisfied")} == {
        "collected": 4, "assigned": 3, "answered": 3, "closed": 2, "declined": 1, "returned": 2, "reopened": 2,
        "satisfied": 0, "basically_satisfied": 1, "unsatisfied": 1,
    }
