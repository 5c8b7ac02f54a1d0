"""GET /api/v1/forms: who sees which forms, the filters, cursor pagination and phone masking."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.db import transaction
from app.models import OpinionForm
from tests.factories import World, act, answered_form, assigned_form, build_world, submit
from tests.support.problems import assert_problem
from tests.support.webhooks import api_client

# --- helpers -----------------------------------------------------------------------------------------


async def listing(
    client: httpx.AsyncClient, world: World, who: str = "coordinator", params: Any = None
) -> dict[str, Any]:
    response = await client.get("/api/v1/forms", params=params, headers=world.auth(who))
    assert response.status_code == 200, response.text
    return response.json()


async def ids(client: httpx.AsyncClient, world: World, who: str = "coordinator", params: Any = None) -> set[int]:
    page = await listing(client, world, who, params)
    assert page["next_cursor"] is None, "expected one page"
    return {item["id"] for item in page["items"]}


async def walk(
    client: httpx.AsyncClient, world: World, who: str = "coordinator", params: dict[str, Any] | None = None
) -> list[list[int]]:
    """Every page, following next_cursor until it is null."""
    pages: list[list[int]] = []
    cursor = None
    while True:
        query = dict(params or {})
        if cursor is not None:
            query["cursor"] = cursor
        page = await listing(client, world, who, query)
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


async def set_columns(sessionmaker: Any, form_id: int, **values: Any) -> None:
    async with transaction(sessionmaker) as session:
        await session.execute(update(OpinionForm).where(OpinionForm.id == form_id).values(**values))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- visibility --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["coordinator", "admin"])
async def test_office_lists_every_form(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    created = {
        (await submit(client, workroom_code="LS-01"))["id"],
        (await submit(client, workroom_code="LS-02"))["id"],
        (await submit(client))["id"],
        (await submit(client, headers=world.auth("rep"), workroom_code="LS-01"))["id"],
        (await assigned_form(client, world, "B"))["id"],
    }

    assert await ids(client, world, who) == created


async def test_handler_lists_only_forms_currently_assigned_to_its_unit(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client)
    for_a = (await assigned_form(client, world, "A"))["id"]
    answered_by_a = (await answered_form(client, world, "A"))["id"]
    for_b = (await assigned_form(client, world, "B"))["id"]
    moved = (await assigned_form(client, world, "A"))["id"]
    response = await act(client, world, "coordinator", moved, "reassign", {"unit_id": world.units["B"].id})
    assert response.status_code == 200, response.text

    assert await ids(client, world, "handler_a") == {for_a, answered_by_a}
    assert await ids(client, world, "handler_b") == {for_b, moved}


async def test_representative_lists_forms_of_its_workrooms_and_those_it_entered(client, sessionmaker):
    world = await build_world(sessionmaker)
    at_ls01 = (await submit(client, workroom_code="LS-01"))["id"]
    at_ls02 = (await submit(client, workroom_code="LS-02"))["id"]
    await submit(client)
    # 张代表 (rep) sits in LS-01 but took this one down at LS-02.
    rep_at_ls02 = (await submit(client, headers=world.auth("rep"), workroom_code="LS-02"))["id"]
    rep2_online = (await submit(client, headers=world.auth("rep2")))["id"]

    assert await ids(client, world, "rep") == {at_ls01, rep_at_ls02}
    assert await ids(client, world, "rep2") == {at_ls02, rep_at_ls02, rep2_online}


async def test_form_entered_by_a_representative_records_who_entered_it(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, headers=world.auth("rep"), workroom_code="LS-02")

    [item] = (await listing(client, world, "rep"))["items"]

    assert item["id"] == form["id"]
    assert item["entered_by_user_id"] == world.user_ids["rep"]
    assert item["entered_by_representative_id"] == world.representatives["rep"].id
    assert item["workroom_code"] == "LS-02"


async def test_anonymous_listing_is_401(client, sessionmaker):
    await build_world(sessionmaker)
    await submit(client)

    assert_problem(await client.get("/api/v1/forms"), 401, "unauthorized")


async def test_listing_with_invalid_token_is_401(client, sessionmaker):
    await build_world(sessionmaker)

    response = await client.get("/api/v1/forms", headers={"Authorization": "Bearer forged"})

    assert_problem(response, 401, "invalid_token")


# --- filters -----------------------------------------------------------------------------------------


async def test_filter_by_one_status(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client)
    assigned = (await assigned_form(client, world))["id"]
    await answered_form(client, world)

    assert await ids(client, world, params={"status": "assigned"}) == {assigned}


async def test_filter_by_repeated_status_matches_any_of_them(client, sessionmaker):
    world = await build_world(sessionmaker)
    submitted = (await submit(client))["id"]
    await assigned_form(client, world)
    answered = (await answered_form(client, world))["id"]
    declined = (await submit(client))["id"]
    response = await act(client, world, "coordinator", declined, "decline", {"reason": "重复。"})
    assert response.status_code == 200, response.text

    assert await ids(client, world, params=[("status", "submitted"), ("status", "answered")]) == {submitted, answered}
    assert await ids(client, world, params=[("status", "declined")]) == {declined}


async def test_filter_by_unknown_status_is_422(client, sessionmaker):
    world = await build_world(sessionmaker)

    response = await client.get("/api/v1/forms", params={"status": "lost"}, headers=world.auth("coordinator"))

    assert_problem(response, 422, "validation_error")


async def test_filter_by_workroom_code(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client, workroom_code="LS-01")
    at_ls02 = {(await submit(client, workroom_code="LS-02"))["id"] for _ in range(2)}
    await submit(client)

    assert await ids(client, world, params={"workroom": "LS-02"}) == at_ls02
    assert await ids(client, world, params={"workroom": "LS-99"}) == set()


async def test_filter_by_category_code(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client, category="urban_traffic")
    environment = (await submit(client, category="environment", content="河道有垃圾漂浮。"))["id"]
    await submit(client, category=None)

    assert await ids(client, world, params={"category": "environment"}) == {environment}


async def test_filter_by_unit_id(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client)
    await assigned_form(client, world, "A")
    for_b = (await assigned_form(client, world, "B"))["id"]

    assert await ids(client, world, params={"unit_id": world.units["B"].id}) == {for_b}


async def test_filter_overdue_lists_open_forms_past_their_deadline(client, sessionmaker):
    world = await build_world(sessionmaker)
    past = datetime.now(UTC) - timedelta(hours=2)
    late = (await assigned_form(client, world))["id"]
    await set_columns(sessionmaker, late, due_at=past)
    await assigned_form(client, world)  # on time
    answered_late = (await answered_form(client, world))["id"]  # answered: no longer open
    await set_columns(sessionmaker, answered_late, due_at=past)
    await submit(client)

    page = await listing(client, world, params={"overdue": "true"})

    assert [item["id"] for item in page["items"]] == [late]
    assert page["items"][0]["supervision"] == "overdue"


async def test_q_finds_text_in_content(client, sessionmaker):
    world = await build_world(sessionmaker)
    lights = (await submit(client, content="村口路灯坏了三盏。"))["id"]
    await submit(client, content="河道有垃圾漂浮。")

    assert await ids(client, world, params={"q": "路灯"}) == {lights}


@pytest.mark.parametrize(("q", "expected"), [("%", "percent"), ("100%", "percent"), ("_", "underscore"),
                                             ("a_b", "underscore"), ("\\", "backslash")])
async def test_q_treats_like_wildcards_literally(client, sessionmaker, q, expected):
    world = await build_world(sessionmaker)
    forms = {
        "percent": (await submit(client, content="满意率要达到100%才行。"))["id"],
        "plain": (await submit(client, content="新装100个路灯，a路口和b路口。"))["id"],
        "underscore": (await submit(client, content="编号a_b路口积水。"))["id"],
        "lookalike": (await submit(client, content="编号axb路口积水。"))["id"],
        "backslash": (await submit(client, content="文件在 D:\\资料 里。"))["id"],
    }

    assert await ids(client, world, params={"q": q}) == {forms[expected]}


async def test_filter_by_submission_dates_is_inclusive(client, sessionmaker):
    world = await build_world(sessionmaker)
    days = {}
    for day in (date(2025, 3, 1), date(2025, 3, 15), date(2025, 3, 31)):
        form = await submit(client)
        at = datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)
        await set_columns(sessionmaker, form["id"], submitted_on=day, submitted_at=at)
        days[day.day] = form["id"]
    await submit(client)  # today

    assert await ids(client, world, params={"submitted_from": "2025-03-15"}) >= {days[15], days[31]}
    assert days[1] not in await ids(client, world, params={"submitted_from": "2025-03-15"})
    assert await ids(client, world, params={"submitted_to": "2025-03-15"}) == {days[1], days[15]}
    assert await ids(client, world, params={"submitted_from": "2025-03-02", "submitted_to": "2025-03-31"}) == {
        days[15], days[31],
    }
    assert await ids(client, world, params={"submitted_from": "2025-03-15", "submitted_to": "2025-03-15"}) == {
        days[15],
    }


async def test_filter_by_malformed_date_is_422(client, sessionmaker):
    world = await build_world(sessionmaker)

    response = await client.get("/api/v1/forms", params={"submitted_from": "2025-13-01"},
                                headers=world.auth("coordinator"))

    assert_problem(response, 422, "validation_error")


async def test_filters_combine_with_and_and_with_visibility(client, sessionmaker):
    world = await build_world(sessionmaker)
    wanted = (await assigned_form(client, world, "A", workroom_code="LS-01"))["id"]
    await assigned_form(client, world, "A", workroom_code="LS-02")
    await answered_form(client, world, "A", workroom_code="LS-01")
    await assigned_form(client, world, "B", workroom_code="LS-01")

    params = {"status": "assigned", "workroom": "LS-01"}
    assert await ids(client, world, "handler_a", params) == {wanted}
    assert len(await ids(client, world, "coordinator", params)) == 2


# --- pagination --------------------------------------------------------------------------------------


async def test_limit_defaults_to_50_newest_first(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = [(await submit(client))["id"] for _ in range(51)]

    first = await listing(client, world)
    second = await listing(client, world, params={"cursor": first["next_cursor"]})

    assert [item["id"] for item in first["items"]] == sorted(created, reverse=True)[:50]
    assert first["next_cursor"] is not None
    assert [item["id"] for item in second["items"]] == [min(created)]
    assert second["next_cursor"] is None


async def test_newest_form_comes_first(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = [(await submit(client))["id"] for _ in range(4)]

    items = (await listing(client, world))["items"]

    assert [item["id"] for item in items] == created[::-1]
    times = [datetime.fromisoformat(item["submitted_at"]) for item in items]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize("limit", ["0", "201", "-1", "many"])
async def test_limit_outside_1_to_200_is_422(client, sessionmaker, limit):
    world = await build_world(sessionmaker)

    response = await client.get("/api/v1/forms", params={"limit": limit}, headers=world.auth("coordinator"))

    assert_problem(response, 422, "validation_error")


async def test_limit_200_is_allowed(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client)

    page = await listing(client, world, params={"limit": 200})

    assert len(page["items"]) == 1 and page["next_cursor"] is None


async def test_walking_next_cursor_returns_every_form_exactly_once(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = [(await submit(client))["id"] for _ in range(10)]

    pages = await walk(client, world, params={"limit": 3})

    assert [len(page) for page in pages] == [3, 3, 3, 1]
    flat = [form_id for page in pages for form_id in page]
    assert flat == sorted(created, reverse=True)


async def test_last_full_page_has_no_next_cursor(client, sessionmaker):
    world = await build_world(sessionmaker)
    for _ in range(6):
        await submit(client)

    pages = await walk(client, world, params={"limit": 3})

    assert [len(page) for page in pages] == [3, 3]


async def test_walking_pages_with_filters_and_visibility_stays_inside_them(client, sessionmaker):
    world = await build_world(sessionmaker)
    mine = set()
    for i in range(7):
        mine.add((await assigned_form(client, world, "A"))["id"])
        if i % 2:
            await assigned_form(client, world, "B")
            await submit(client)

    pages = await walk(client, world, "handler_a", {"limit": 2, "status": "assigned"})

    flat = [form_id for page in pages for form_id in page]
    assert len(flat) == len(set(flat)) and set(flat) == mine


async def test_forms_submitted_during_a_walk_do_not_disturb_it(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = [(await submit(client))["id"] for _ in range(6)]

    first = await listing(client, world, params={"limit": 3})
    for _ in range(3):
        await submit(client)
    second = await listing(client, world, params={"limit": 3, "cursor": first["next_cursor"]})

    seen = [item["id"] for item in first["items"] + second["items"]]
    assert seen == sorted(created, reverse=True)
    assert second["next_cursor"] is None


@pytest.mark.parametrize("cursor", [
    "garbage",
    "!!!!",
    "€uro",
    b64(b"x:5"),
    b64(b"f:"),
    b64(b"f:abc"),
    b64(b"\xff\xfe\xfd"),
    b64(b"f:99999999999999999999999"),
    b64(b"f:-5"),
])
async def test_garbage_cursor_is_422_invalid_cursor(client, sessionmaker, cursor):
    world = await build_world(sessionmaker)
    await submit(client)

    response = await client.get("/api/v1/forms", params={"cursor": cursor}, headers=world.auth("coordinator"))

    assert_problem(response, 422, "invalid_cursor")


# --- phone masking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "shown", "name"), [
    ("coordinator", "13812345678", "王女士"),
    ("admin", "13812345678", "王女士"),
    ("handler_a", "138****5678", "王**"),
    ("rep", "138****5678", "王**"),
])
async def test_submitter_name_and_phone_are_whole_for_the_office_and_masked_for_others(
        client, sessionmaker, who, shown, name):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, "A", workroom_code="LS-01", submitter_name="王女士",
                               submitter_phone="13812345678")

    [item] = (await listing(client, world, who))["items"]
    read = await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth(who))

    assert item["id"] == form["id"]
    assert item["submitter_phone"] == shown
    assert item["submitter_name"] == name
    assert read.status_code == 200, read.text
    assert read.json()["submitter_phone"] == shown


async def test_an_api_key_reads_the_case_not_the_offices_notes_or_instructions(client, sessionmaker):
    """forms:read is the case as the public timeline tells it (services/disclosure.py): no internal notes,
    no assignment instructions, no office-only steps, no staff names, names and phones masked."""
    world = await build_world(sessionmaker)
    reader = await api_client(sessionmaker, scopes=("forms:read",), name="只读客户端")
    form = await submit(client, submitter_name="王女士", submitter_phone="13812345678")
    secret_note, secret_instructions = "内部备注：涉及补偿，勿外传", "批办说明：请先联系村书记"
    assert (await act(client, world, "coordinator", form["id"], "assign",
                      {"unit_id": world.units["A"].id, "instructions": secret_instructions})).status_code == 200
    assert (await act(client, world, "coordinator", form["id"], "notes", {"note": secret_note})).status_code in (200, 201)
    assert (await act(client, world, "handler_a", form["id"], "reply",
                      {"reply": "已处理。", "internal_note": secret_note})).status_code == 200

    office = (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("coordinator"))).text
    assert secret_note in office and secret_instructions in office and "王女士" in office
    for path in (f"/api/v1/forms/{form['id']}", "/api/v1/forms"):
        read = await client.get(path, headers=reader)
        assert read.status_code == 200, read.text
        assert secret_note not in read.text and secret_instructions not in read.text
        assert "王女士" not in read.text and "13812345678" not in read.text
    detail = (await client.get(f"/api/v1/forms/{form['id']}", headers=reader)).json()
    assert [e["type"] for e in detail["events"]] == ["submitted", "assigned", "answered"]
    assert detail["events"][-1]["note"] == "已处理。" and all(e["actor"] == "" for e in detail["events"])


async def test_a_status_named_twice_is_one_filter(client, sessionmaker):  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await submit(client)
    response = await client.get("/api/v1/forms", params={"status": ["submitted"] * 8},
                                headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    assert [f["id"] for f in response.json()["items"]] == [form["id"]]


async def test_a_status_that_is_not_a_string_is_a_422_in_a_body_too(client, sessionmaker):  # type: ignore[no-untyped-def]
    """Found by the fuzzer: an object among the statuses of an export job's filters (it was a 500)."""
    world = await build_world(sessionmaker)
    for status in ([{}], [["submitted"]], [None, "submitted"]):
        response = await client.post("/api/v1/exports", json={"filters": {"status": status}},
                                     headers=world.auth("coordinator"))
        assert response.status_code == 422, (status, response.text)
