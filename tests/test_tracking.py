"""Public tracking: GET /api/v1/track/{tracking_no}?code=... (CONTRACT "Opinion forms", issue point
"Public tracking"). A resident holds only the number and the code; they see the status, the reply and a
timeline, never staff-only text.

Every test here runs on SQLite and on PostgreSQL, through the real app over httpx.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.factories import World, act, build_world, submit

REPLY = "已安排维修，三日内完成。"
INTERNAL_NOTE = "内部备注：施工队长电话13700001234，勿外传"
INSTRUCTIONS = "批示：请城建办会同村委现场查看，注意维稳"
CONTRACT_FIELDS = {"tracking_no", "status", "status_label", "submitted_at", "answered_at", "reply", "timeline"}


async def track(client: httpx.AsyncClient, tracking_no: str, code: str | None) -> httpx.Response:
    params = {} if code is None else {"code": code}
    return await client.get(f"/api/v1/track/{tracking_no}", params=params)


async def answered(
    client: httpx.AsyncClient, world: World, *, instructions: str | None = None, internal_note: str | None = None
) -> dict[str, Any]:
    """Submit, assign (with optional 批示) and reply (with an optional internal note); the submitted form
    is returned, as it holds the verification code."""
    form = await submit(client, workroom_code="LS-01")
    assign_body: dict[str, Any] = {"unit_id": world.units["A"].id}
    if instructions is not None:
        assign_body["instructions"] = instructions
    response = await act(client, world, "coordinator", form["id"], "assign", assign_body)
    assert response.status_code == 200, response.text
    reply_body = {"reply": REPLY}
    if internal_note is not None:
        reply_body["internal_note"] = internal_note
    response = await act(client, world, "handler_a", form["id"], "reply", reply_body)
    assert response.status_code == 200, response.text
    return form


async def test_tracking_a_new_form_shows_it_submitted(client):
    form = await submit(client)

    response = await track(client, form["tracking_no"], form["verification_code"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert CONTRACT_FIELDS <= body.keys(), body
    assert body["tracking_no"] == form["tracking_no"]
    assert body["status"] == "submitted"
    assert body["status_label"] == "已收集"
    assert body["submitted_at"] == form["submitted_at"]
    assert body["submitted_at"].endswith("+08:00")
    assert body["answered_at"] is None
    assert body["reply"] is None
    assert [entry["type"] for entry in body["timeline"]] == ["submitted"]


async def test_tracking_an_assigned_form_shows_it_in_progress(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})

    body = (await track(client, form["tracking_no"], form["verification_code"])).json()

    assert body["status"] == "assigned"
    assert body["status_label"] == "办理中"
    assert [entry["type"] for entry in body["timeline"]] == ["submitted", "assigned"]


async def test_tracking_an_answered_form_shows_reply_and_answered_at(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await answered(client, world)

    response = await track(client, form["tracking_no"], form["verification_code"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "answered"
    assert body["status_label"] == "已答复"
    assert body["reply"] == REPLY
    assert body["answered_at"] is not None and body["answered_at"].endswith("+08:00")
    assert datetime.fromisoformat(body["answered_at"]) >= datetime.fromisoformat(body["submitted_at"])
    assert [entry["type"] for entry in body["timeline"]] == ["submitted", "assigned", "answered"]
    assert body["timeline"][-1]["note"] == REPLY


async def test_internal_note_never_appears_in_tracking(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await answered(client, world, internal_note=INTERNAL_NOTE)
    # The note was kept (staff see it), so its absence below is the tracking view's doing.
    detail = await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("coordinator"))
    assert INTERNAL_NOTE in detail.text

    response = await track(client, form["tracking_no"], form["verification_code"])

    assert response.status_code == 200, response.text
    assert INTERNAL_NOTE not in response.text
    assert "13700001234" not in response.text
    assert "internal_note" not in response.text


async def test_instructions_are_not_shown_in_tracking(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await answered(client, world, instructions=INSTRUCTIONS)
    detail = await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("coordinator"))
    assert INSTRUCTIONS in detail.text

    response = await track(client, form["tracking_no"], form["verification_code"])

    assert response.status_code == 200, response.text
    assert INSTRUCTIONS not in response.text
    assert "instructions" not in response.json()


async def test_tracking_does_not_show_the_submitters_phone(client):
    form = await submit(client, submitter_name="王阿姨", submitter_phone="13900001111")

    response = await track(client, form["tracking_no"], form["verification_code"])

    assert response.status_code == 200, response.text
    assert "13900001111" not in response.text
    assert "王阿姨" not in response.text


async def test_unknown_number_and_wrong_code_give_identical_404(client):
    form = await submit(client)
    code = form["verification_code"]
    wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
    number = form["tracking_no"]
    unknown_number = number[:-5] + f"{(int(number[-5:]) + 1):05d}"

    wrong = await track(client, number, wrong_code)
    unknown = await track(client, unknown_number, code)

    assert wrong.status_code == unknown.status_code == 404
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert wrong.json()["code"] == "tracking_not_found"
    assert wrong.content == unknown.content


async def test_code_of_another_form_gives_404(client):
    first = await submit(client)
    second = await submit(client)
    if first["verification_code"] == second["verification_code"]:  # one chance in a million
        second = await submit(client)

    response = await track(client, first["tracking_no"], second["verification_code"])

    assert response.status_code == 404


async def test_tracking_without_code_is_422(client):
    form = await submit(client)

    response = await track(client, form["tracking_no"], None)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(error["loc"][-1] == "code" for error in response.json()["errors"])


async def test_tracking_number_prefix_is_case_insensitive(client):
    form = await submit(client)

    response = await track(client, form["tracking_no"].lower(), form["verification_code"])

    assert response.status_code == 200, response.text
    assert response.json()["tracking_no"] == form["tracking_no"]
