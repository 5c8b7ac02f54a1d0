"""Submitting an opinion form: POST /api/v1/forms (CONTRACT "Opinion forms", issue point "Submission").

Every test here runs on SQLite and on PostgreSQL. Requests go through the real app over httpx; the
database is read directly only to check what was (or was not) stored.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import TZ
from app.db import transaction
from tests.support.apps import build_app
from app.models import IdempotencyRecord, OpinionForm, ServicePoint, Workroom
from app.services import forms as form_service
from app.services import idempotency
from app.services.auth import ANONYMOUS
from tests.conftest import make_settings
from tests.factories import World, build_world, submit
from tests.support.problems import assert_problem

FORMS = "/api/v1/forms"
CONTENT = "村口路灯坏了三盏，晚上走路看不清，请尽快修复。"
BODY = {"content": CONTENT, "category": "urban_traffic"}
TRACKING_NO = re.compile(r"^LS(\d{4})-(\d{5})$")


# --- helpers -----------------------------------------------------------------------------------------


async def form_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


async def idempotency_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0)


async def form_row(sessionmaker: async_sessionmaker[AsyncSession], form_id: int) -> dict[str, Any]:
    """The raw opinion_form row, every column, as the database holds it."""
    async with transaction(sessionmaker) as session:
        table = OpinionForm.__table__
        row = (await session.execute(select(table).where(table.c.id == form_id))).mappings().one()
        return dict(row)


async def make_service_point(sessionmaker: async_sessionmaker[AsyncSession], world: World, workroom: str) -> int:
    starts_at = datetime(2025, 3, 8, 1, 0, tzinfo=UTC)
    async with transaction(sessionmaker) as session:
        point = ServicePoint(
            workroom_id=world.workrooms[workroom].id, title="菜场流动服务点", place_type="market",
            location="洛社菜场门口", starts_at=starts_at, ends_at=starts_at + timedelta(hours=2),
        )
        session.add(point)
        await session.flush()
        return point.id


def assert_validation_problem(response: httpx.Response, field: str) -> dict[str, Any]:
    """A FastAPI validation error rendered as problem+json, with an entry in ``errors`` for ``field``."""
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"], body
    for error in body["errors"]:
        assert {"loc", "msg", "type"} <= error.keys(), error
    assert any(error["loc"][-1] == field for error in body["errors"]), body["errors"]
    return body


def sequence_of(tracking_no: str) -> int:
    match = TRACKING_NO.match(tracking_no)
    assert match, tracking_no
    return int(match.group(2))


# --- the created form --------------------------------------------------------------------------------


async def test_anonymous_submission_is_201_with_number_code_and_status(client, sessionmaker):
    response = await client.post(FORMS, json=BODY)

    assert response.status_code == 201, response.text
    form = response.json()
    assert isinstance(form["id"], int)
    assert TRACKING_NO.match(form["tracking_no"]), form["tracking_no"]
    assert re.fullmatch(r"\d{6}", form["verification_code"]), form["verification_code"]
    assert form["status"] == "submitted"
    assert form["content"] == CONTENT
    assert await form_count(sessionmaker) == 1


async def test_submitted_at_is_shanghai_time_with_offset(client):
    before = datetime.now(UTC)
    form = await submit(client)
    after = datetime.now(UTC)

    assert form["submitted_at"].endswith("+08:00"), form["submitted_at"]
    submitted_at = datetime.fromisoformat(form["submitted_at"])
    assert before - timedelta(seconds=1) <= submitted_at <= after + timedelta(seconds=1)


async def test_every_contract_field_round_trips(client, sessionmaker):
    world = await build_world(sessionmaker)
    fields = {
        "content": "河道里有人倒垃圾，气味很大。", "category": "environment", "channel": "phone",
        "workroom_code": "LS-01", "submitter_name": "王阿姨", "submitter_phone": "13900001111",
        "location": "石塘湾村河边", "public": True,
    }
    created = (await client.post(FORMS, json=fields)).json()
    # Staff of the office see the form whole, phone included.
    response = await client.get(f"{FORMS}/{created['id']}", headers=world.auth("coordinator"))

    assert response.status_code == 200, response.text
    form = response.json()
    for name, value in fields.items():
        assert form[name] == value, (name, form[name])
    for name, value in fields.items():
        if name not in ("submitter_name", "submitter_phone"):  # whole for the office only (disclosure.py)
            assert created[name] == value, (name, created[name])
    assert (created["submitter_name"], created["submitter_phone"]) == ("王**", "139****1111")


async def test_submitter_phone_is_stored_whole(client, sessionmaker):
    form = await submit(client, submitter_phone="13900001111")

    assert (await form_row(sessionmaker, form["id"]))["submitter_phone"] == "13900001111"


async def test_public_defaults_to_false(client, sessionmaker):
    form = await submit(client)

    assert form["public"] is False
    assert (await form_row(sessionmaker, form["id"]))["public"] is False


async def test_channel_defaults_to_web_without_workroom(client):
    form = await submit(client)

    assert form["channel"] == "web"
    assert form["workroom_code"] is None


async def test_channel_defaults_to_workroom_with_workroom_code(client, sessionmaker):
    await build_world(sessionmaker)

    form = await submit(client, workroom_code="LS-01")

    assert form["channel"] == "workroom"
    assert form["workroom_code"] == "LS-01"


async def test_explicit_channel_wins_over_default(client, sessionmaker):
    await build_world(sessionmaker)

    form = await submit(client, workroom_code="LS-01", channel="wechat")

    assert form["channel"] == "wechat"


async def test_channel_defaults_to_service_point_with_service_point_id(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await make_service_point(sessionmaker, world, "LS-02")

    form = await submit(client, service_point_id=point_id)

    assert form["channel"] == "service_point"
    assert form["service_point_id"] == point_id


async def test_form_at_service_point_takes_the_service_points_workroom(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await make_service_point(sessionmaker, world, "LS-02")

    form = await submit(client, service_point_id=point_id)

    assert form["workroom_code"] == "LS-02"
    row = await form_row(sessionmaker, form["id"])
    assert row["workroom_id"] == world.workrooms["LS-02"].id
    assert row["service_point_id"] == point_id


async def test_service_point_with_its_own_workroom_code_is_accepted(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await make_service_point(sessionmaker, world, "LS-02")

    form = await submit(client, service_point_id=point_id, workroom_code="LS-02")

    assert form["workroom_code"] == "LS-02"
    assert form["service_point_id"] == point_id


async def test_service_point_of_another_workroom_is_422_and_saves_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await make_service_point(sessionmaker, world, "LS-02")

    response = await client.post(FORMS, json={**BODY, "service_point_id": point_id, "workroom_code": "LS-01"})

    assert_problem(response, 422, "workroom_mismatch")
    assert await form_count(sessionmaker) == 0


async def test_unknown_service_point_is_422_and_saves_nothing(client, sessionmaker):
    response = await client.post(FORMS, json={**BODY, "service_point_id": 999})

    assert_problem(response, 422, "unknown_service_point")
    assert await form_count(sessionmaker) == 0


# --- who entered it ----------------------------------------------------------------------------------


async def test_form_entered_by_representative_records_user_and_representative(client, sessionmaker):
    world = await build_world(sessionmaker)

    form = await submit(client, headers=world.auth("rep"), workroom_code="LS-01")

    assert form["entered_by_user_id"] == world.user_ids["rep"]
    assert form["entered_by_representative_id"] == world.representatives["rep"].id
    row = await form_row(sessionmaker, form["id"])
    assert row["entered_by_user_id"] == world.user_ids["rep"]
    assert row["entered_by_representative_id"] == world.representatives["rep"].id


async def test_anonymous_form_records_no_one_as_entering_it(client, sessionmaker):
    await build_world(sessionmaker)

    form = await submit(client, workroom_code="LS-01")

    assert form["entered_by_user_id"] is None
    assert form["entered_by_representative_id"] is None
    row = await form_row(sessionmaker, form["id"])
    assert row["entered_by_user_id"] is None
    assert row["entered_by_representative_id"] is None


# --- tracking numbers --------------------------------------------------------------------------------


async def test_tracking_number_is_prefix_shanghai_year_and_five_digits(client):
    form = await submit(client)

    match = TRACKING_NO.match(form["tracking_no"])
    assert match, form["tracking_no"]
    assert int(match.group(1)) == datetime.now(TZ).year
    assert match.group(2) == "00001"


async def test_tracking_numbers_follow_on_one_by_one(client):
    first = await submit(client)
    second = await submit(client)

    assert sequence_of(second["tracking_no"]) == sequence_of(first["tracking_no"]) + 1


async def test_tracking_prefix_comes_from_settings(db_url):
    application = build_app(make_settings(db_url, tracking_prefix="QX"))
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            form = await submit(http)
    finally:
        await application.state.engine.dispose()

    assert re.fullmatch(rf"QX{datetime.now(TZ).year}-00001", form["tracking_no"]), form["tracking_no"]


async def test_concurrent_submissions_get_distinct_gap_free_numbers(client, sessionmaker):
    responses = await asyncio.gather(*(client.post(FORMS, json=BODY) for _ in range(50)))

    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201]
    numbers = sorted(sequence_of(r.json()["tracking_no"]) for r in responses)
    assert numbers == list(range(1, 51))
    assert len({r.json()["id"] for r in responses}) == 50
    assert await form_count(sessionmaker) == 50


@pytest.mark.parametrize(
    "bad_fields",
    [{"category": "no_such_category"}, {"workroom_code": "XX-99"}, {"content": "   "}],
    ids=["unknown_category", "unknown_workroom", "blank_content"],
)
async def test_failed_submission_does_not_consume_a_tracking_number(client, bad_fields):
    first = await submit(client)
    refused = await client.post(FORMS, json={**BODY, **bad_fields})
    assert refused.status_code == 422, refused.text

    second = await submit(client)

    assert sequence_of(second["tracking_no"]) == sequence_of(first["tracking_no"]) + 1


# --- the verification code is never stored in clear ----------------------------------------------------


async def test_verification_code_is_stored_only_as_a_hash(client, sessionmaker):
    form = await submit(client)
    code = form["verification_code"]

    row = await form_row(sessionmaker, form["id"])

    assert row["verification_hash"] and row["verification_hash"] != code
    for column, value in row.items():
        assert value != code, column
        if isinstance(value, str):
            assert code not in value, column


async def test_idempotency_record_holds_the_answer_encrypted(client, sessionmaker):
    response = await client.post(FORMS, json=BODY, headers={"Idempotency-Key": "enc-1"})
    assert response.status_code == 201, response.text
    form = response.json()

    async with transaction(sessionmaker) as session:
        table = IdempotencyRecord.__table__
        rows = [dict(r) for r in (await session.execute(select(table))).mappings()]

    assert len(rows) == 1
    stored = rows[0]["response"]
    assert isinstance(stored, bytes) and stored
    for clear in (form["verification_code"], form["tracking_no"], "verification_code", CONTENT):
        assert clear.encode() not in stored, clear
    for column, value in rows[0].items():
        if isinstance(value, str):
            assert form["verification_code"] not in value, column
    # Compressed before it is sealed: far under PostgreSQL's 2 KB TOAST threshold (a Fernet token of the
    # same answer was about twice the size of its JSON).
    assert len(stored) < len(json.dumps(form, ensure_ascii=False).encode()) < 2000


async def test_an_answer_kept_as_a_fernet_token_before_sealing_still_replays(app, client, sessionmaker):
    headers = {"Idempotency-Key": "kept-before"}
    first = await client.post(FORMS, json=BODY, headers=headers)
    assert first.status_code == 201, first.text
    token = idempotency._fernet(app.state.settings.secret_key).encrypt(json.dumps(first.json()).encode())
    async with transaction(sessionmaker) as session:
        await session.execute(update(IdempotencyRecord).values(response=token))
    again = await client.post(FORMS, json=BODY, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert await form_count(sessionmaker) == 1


# --- Idempotency-Key ---------------------------------------------------------------------------------


async def test_same_idempotency_key_and_body_replays_the_first_response(client, sessionmaker):
    headers = {"Idempotency-Key": "retry-7f3a"}
    first = await client.post(FORMS, json=BODY, headers=headers)
    again = await client.post(FORMS, json=BODY, headers=headers)

    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    for name in ("id", "tracking_no", "verification_code", "status"):
        assert again.json()[name] == first.json()[name]
    assert await form_count(sessionmaker) == 1


async def test_concurrent_requests_with_one_idempotency_key_create_one_form(client, sessionmaker):
    headers = {"Idempotency-Key": "double-tap-1"}

    responses = await asyncio.gather(*(client.post(FORMS, json=BODY, headers=headers) for _ in range(50)))

    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201]
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies)
    assert await form_count(sessionmaker) == 1


async def test_reused_idempotency_key_with_other_body_is_422_and_creates_nothing(client, sessionmaker):
    headers = {"Idempotency-Key": "retry-1"}
    first = await client.post(FORMS, json=BODY, headers=headers)
    assert first.status_code == 201, first.text

    response = await client.post(FORMS, json={**BODY, "content": "另一条意见。"}, headers=headers)

    assert_problem(response, 422, "idempotency_key_reused")
    assert await form_count(sessionmaker) == 1
    # The key still answers its first request.
    replay = await client.post(FORMS, json=BODY, headers=headers)
    assert replay.json()["id"] == first.json()["id"]


async def test_different_idempotency_keys_create_different_forms(client, sessionmaker):
    first = await client.post(FORMS, json=BODY, headers={"Idempotency-Key": "key-a"})
    second = await client.post(FORMS, json=BODY, headers={"Idempotency-Key": "key-b"})

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert first.json()["tracking_no"] != second.json()["tracking_no"]
    assert await form_count(sessionmaker) == 2


async def test_idempotency_key_of_255_characters_is_accepted(client, sessionmaker):
    headers = {"Idempotency-Key": "k" * 255}
    first = await client.post(FORMS, json=BODY, headers=headers)
    again = await client.post(FORMS, json=BODY, headers=headers)

    assert first.status_code == again.status_code == 201, first.text
    assert again.json()["id"] == first.json()["id"]
    assert await form_count(sessionmaker) == 1


async def test_idempotency_key_longer_than_255_is_422_and_creates_nothing(client, sessionmaker):
    response = await client.post(FORMS, json=BODY, headers={"Idempotency-Key": "k" * 256})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await form_count(sessionmaker) == 0
    assert await idempotency_count(sessionmaker) == 0


async def test_idempotency_keys_are_scoped_per_caller(client, sessionmaker):
    world = await build_world(sessionmaker)
    headers = {"Idempotency-Key": "shared-key"}

    anonymous = await client.post(FORMS, json=BODY, headers=headers)
    by_rep = await client.post(FORMS, json=BODY, headers={**headers, **world.auth("rep")})

    assert anonymous.status_code == by_rep.status_code == 201, by_rep.text
    assert anonymous.json()["id"] != by_rep.json()["id"]
    assert by_rep.json()["entered_by_user_id"] == world.user_ids["rep"]
    assert await form_count(sessionmaker) == 2


async def test_idempotency_keys_of_two_users_do_not_collide(client, sessionmaker):
    world = await build_world(sessionmaker)
    headers = {"Idempotency-Key": "shared-key"}

    by_rep = await client.post(FORMS, json=BODY, headers={**headers, **world.auth("rep")})
    by_rep2 = await client.post(FORMS, json={**BODY, "content": "另一条。"}, headers={**headers, **world.auth("rep2")})

    assert by_rep.status_code == by_rep2.status_code == 201, by_rep2.text
    assert by_rep2.json()["entered_by_user_id"] == world.user_ids["rep2"]
    assert await form_count(sessionmaker) == 2


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "urban_traffic"}, "content"),
        ({"content": "   \n\t "}, "content"),
        ({"content": "字" * 2001}, "content"),
        ({"content": CONTENT, "channel": "carrier_pigeon"}, "channel"),
        ({"content": CONTENT, "submitter_phone": "call me maybe"}, "submitter_phone"),
        ({"content": CONTENT, "public": "perhaps"}, "public"),
    ],
    ids=["missing_content", "blank_content", "content_2001_chars", "bad_channel", "bad_phone", "bad_public"],
)
async def test_invalid_body_is_422_problem_and_saves_nothing(client, sessionmaker, body, field):
    response = await client.post(FORMS, json=body)

    assert_validation_problem(response, field)
    assert await form_count(sessionmaker) == 0


async def test_content_of_exactly_2000_characters_is_accepted(client):
    content = "字" * 2000

    form = await submit(client, content=content)

    assert form["content"] == content


async def test_unknown_category_is_422_and_saves_nothing(client, sessionmaker):
    response = await client.post(FORMS, json={**BODY, "category": "no_such_category"})

    assert_problem(response, 422, "unknown_category")
    assert await form_count(sessionmaker) == 0


async def test_unknown_workroom_is_422_and_saves_nothing(client, sessionmaker):
    await build_world(sessionmaker)

    response = await client.post(FORMS, json={**BODY, "workroom_code": "LS-99"})

    assert_problem(response, 422, "unknown_workroom")
    assert await form_count(sessionmaker) == 0


async def test_inactive_workroom_is_422_and_saves_nothing(client, sessionmaker):
    await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        await session.execute(update(Workroom).where(Workroom.code == "LS-02").values(active=False))

    response = await client.post(FORMS, json={**BODY, "workroom_code": "LS-02"})

    assert_problem(response, 422, "unknown_workroom")
    assert await form_count(sessionmaker) == 0


async def test_malformed_json_is_422_problem_not_500(client, sessionmaker):
    response = await client.post(
        FORMS, content='{"content": "路灯坏了'.encode(), headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 422, "validation_error")
    assert body["errors"] and {"loc", "msg", "type"} <= body["errors"][0].keys()
    assert await form_count(sessionmaker) == 0


async def test_json_array_body_is_422_problem_not_500(client, sessionmaker):
    response = await client.post(FORMS, json=[BODY])

    assert_problem(response, 422, "validation_error")
    assert await form_count(sessionmaker) == 0


# --- the year in the number is the town's year ---------------------------------------------------------
# The clock cannot be set over HTTP, so these two call the submission service with an explicit ``now``
# (no mock: the same function the endpoint calls, in a real transaction), then read the form back over HTTP.


async def submit_at(sessionmaker: async_sessionmaker[AsyncSession], settings, now: datetime) -> tuple[str, str]:
    async with transaction(sessionmaker) as session:
        form, code = await form_service.submit(
            session, principal=ANONYMOUS, data=form_service.Submission(content=CONTENT), settings=settings, now=now
        )
        return form.tracking_no, code


async def test_tracking_year_is_the_shanghai_year_at_new_year(client, sessionmaker, settings):
    # 2024-12-31 16:30 UTC is already 2025-01-01 00:30 in Asia/Shanghai.
    tracking_no, code = await submit_at(sessionmaker, settings, datetime(2024, 12, 31, 16, 30, tzinfo=UTC))

    assert tracking_no == "LS2025-00001"
    response = await client.get(f"/api/v1/track/{tracking_no}", params={"code": code})
    assert response.status_code == 200, response.text
    assert response.json()["submitted_at"] == "2025-01-01T00:30:00+08:00"


async def test_tracking_numbers_restart_each_year(sessionmaker, settings):
    last_of_2024 = datetime(2024, 12, 31, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    first_of_2025 = datetime(2024, 12, 31, 16, 1, tzinfo=UTC)  # 00:01 in Shanghai

    numbers = [
        (await submit_at(sessionmaker, settings, last_of_2024))[0],
        (await submit_at(sessionmaker, settings, last_of_2024))[0],
        (await submit_at(sessionmaker, settings, first_of_2025))[0],
        (await submit_at(sessionmaker, settings, last_of_2024))[0],
    ]

    assert numbers == ["LS2024-00001", "LS2024-00002", "LS2025-00001", "LS2024-00003"]
