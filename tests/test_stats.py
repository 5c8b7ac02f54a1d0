"""Statistics: the counts the office reports, read from counters and proved equal to a recount.

Every count is checked against a brute-force count of the forms table (and their events), never against
the counters themselves. Forms are put on chosen days by calling the services with ``now=``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import TZ
from app.db import transaction
from app.models import FormEvent, OpinionForm, User, Workroom, utcnow
from app.models import Category as CategoryModel
from app.services import forms as form_service
from app.services import stats as stats_service
from app.services import workflow
from app.services.auth import ANONYMOUS, Principal
from app.services.forms import Submission
from tests.factories import World, act, answered_form, assigned_form, build_world, submit

ROOT = Path(__file__).resolve().parent.parent
COUNTED = ("collected", "assigned", "answered", "closed", "declined", "overdue")
ENDPOINTS = ("summary", "by-workroom", "by-category", "monthly")
LISTS = ("by-workroom", "by-category", "monthly")
SEEDED_CATEGORIES = (
    "urban_traffic", "environment", "public_security", "livelihood",
    "education_health", "agriculture", "economy", "other",
)


# --- helpers -----------------------------------------------------------------------------------------


def local(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """A moment on ``day`` in the town's time zone (Asia/Shanghai)."""
    return datetime.combine(day, time(hour, minute), tzinfo=TZ)


async def principal_of(session: AsyncSession, world: World, who: str | None) -> Principal:
    if who is None:
        return ANONYMOUS
    return Principal(user=await session.get(User, world.user_ids[who]))


class Office:
    """Acts through the services directly, so forms can be placed on chosen days with ``now=``."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Any, world: World) -> None:
        self.sessionmaker, self.settings, self.world = sessionmaker, settings, world

    async def submit(self, when: datetime, *, workroom: str | None = None, category: str | None = "urban_traffic",
                     who: str | None = "rep") -> int:
        async with transaction(self.sessionmaker) as session:
            form, _code = await form_service.submit(
                session, principal=await principal_of(session, self.world, who),
                data=Submission(content="路灯坏了，请修复。", category=category, workroom_code=workroom),
                settings=self.settings, now=when,
            )
            return form.id

    async def _do(self, action: str, form_id: int, who: str = "coordinator", **kwargs: Any) -> None:
        async with transaction(self.sessionmaker) as session:
            principal = await principal_of(session, self.world, who)
            await getattr(workflow, action)(session, principal=principal, form_id=form_id, **kwargs)

    async def assign(self, form_id: int, unit: str = "A") -> None:
        await self._do("assign", form_id, unit_id=self.world.units[unit].id, instructions=None, due_at=None,
                       settings=self.settings)

    async def reassign(self, form_id: int, unit: str = "B") -> None:
        await self._do("reassign", form_id, unit_id=self.world.units[unit].id, instructions=None)

    async def reply(self, form_id: int) -> None:
        await self._do("reply", form_id, reply_text="已修复。", internal_note=None)

    async def close(self, form_id: int, satisfaction: str | None = "satisfied") -> None:
        await self._do("close", form_id, satisfaction=satisfaction, note=None)

    async def reopen(self, form_id: int) -> None:
        await self._do("reopen", form_id, reason="群众不满意，重新办理。", settings=self.settings)

    async def decline(self, form_id: int) -> None:
        await self._do("decline", form_id, reason="不属于受理范围。")

    async def return_to_office(self, form_id: int, who: str = "handler_a") -> None:
        await self._do("return_to_office", form_id, who=who, reason="不属于本单位职责。")

    async def answer_on_spot(self, form_id: int, who: str = "rep") -> None:
        await self._do("answer_on_spot", form_id, who=who, reply_text="已当场解答。")

    async def make_overdue(self, form_id: int) -> None:
        """Time passes: the form's deadline is now in the past."""
        async with transaction(self.sessionmaker) as session:
            await session.execute(
                update(OpinionForm).where(OpinionForm.id == form_id).values(due_at=utcnow() - timedelta(days=3))
            )


@dataclass(frozen=True)
class Row:
    """One form as the brute-force count sees it."""

    id: int
    day: date
    workroom: str | None
    category: str | None
    status: str
    due_at: datetime | None
    reached: frozenset[str]  # every status the form's timeline ever moved it to


async def form_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Row]:
    async with sessionmaker() as session:
        workrooms = dict((await session.execute(select(Workroom.id, Workroom.code))).all())
        categories = dict((await session.execute(select(CategoryModel.id, CategoryModel.code))).all())
        reached: dict[int, set[str]] = {}
        for form_id, status in await session.execute(select(FormEvent.form_id, FormEvent.to_status)):
            reached.setdefault(form_id, set()).add(status)
        forms = (await session.scalars(select(OpinionForm))).all()
        return [
            Row(
                id=f.id, day=f.submitted_at.astimezone(TZ).date(), workroom=workrooms.get(f.workroom_id),
                category=categories.get(f.category_id), status=f.status, due_at=f.due_at,
                reached=frozenset(reached.get(f.id, ())),
            )
            for f in forms
        ]


def count(rows: list[Row], now: datetime | None = None) -> dict[str, Any]:
    """The counts by their definition: every form; forms that ever reached a step (by their timeline);
    open (assigned) forms past their deadline; answered / collected to 4 places."""
    now = now or utcnow()
    counts: dict[str, Any] = {
        "collected": len(rows),
        "assigned": sum("assigned" in r.reached for r in rows),
        "answered": sum("answered" in r.reached for r in rows),
        "closed": sum("closed" in r.reached for r in rows),
        "declined": sum("declined" in r.reached for r in rows),
        "overdue": sum(r.status == "assigned" and r.due_at is not None and r.due_at < now for r in rows),
    }
    counts["answer_rate"] = round(counts["answered"] / counts["collected"], 4) if counts["collected"] else 0.0
    return counts


def select_rows(rows: list[Row], *, workroom: str | None = None, category: str | None = None,
                date_from: date | None = None, date_to: date | None = None) -> list[Row]:
    return [
        r for r in rows
        if (workroom is None or r.workroom == workroom)
        and (category is None or r.category == category)
        and (date_from is None or r.day >= date_from)
        and (date_to is None or r.day <= date_to)
    ]


def params(workroom: str | None = None, category: str | None = None, date_from: date | None = None,
           date_to: date | None = None) -> dict[str, str]:
    query = {"workroom": workroom, "category": category,
             "from": date_from.isoformat() if date_from else None, "to": date_to.isoformat() if date_to else None}
    return {k: v for k, v in query.items() if v is not None}


async def stats(client: httpx.AsyncClient, world: World, endpoint: str, who: str = "coordinator",
                headers: dict[str, str] | None = None, **query: Any) -> httpx.Response:
    return await client.get(f"/api/v1/stats/{endpoint}", params=params(**query),
                            headers={**world.auth(who), **(headers or {})})


async def summary(client: httpx.AsyncClient, world: World, **query: Any) -> dict[str, Any]:
    response = await stats(client, world, "summary", **query)
    assert response.status_code == 200, response.text
    return numbers(response.json())


def numbers(item: dict[str, Any]) -> dict[str, Any]:
    """The contracted counts of a summary or list item (other fields may come and go)."""
    return {k: item[k] for k in (*COUNTED, "answer_rate")}


def assert_local_time(value: str) -> datetime:
    assert value.endswith("+08:00"), value
    moment = datetime.fromisoformat(value)
    assert abs(moment - utcnow()) < timedelta(minutes=1), value
    return moment


# --- the summary -------------------------------------------------------------------------------------


async def test_summary_counts_every_step_after_a_known_mix_of_actions(client, sessionmaker):
    world = await build_world(sessionmaker)
    coordinator = world.auth("coordinator")

    closed = await answered_form(client, world, workroom_code="LS-01")
    response = await act(client, world, "coordinator", closed["id"], "close", {"satisfaction": "satisfied"})
    assert response.status_code == 200

    # Answered, reopened, answered again, reopened again: answered once, assigned once, open now.
    reworked = await answered_form(client, world, workroom_code="LS-02")
    for action, body in (("reopen", {"reason": "不满意"}), ("reply", {"reply": "再次答复。"}), ("reopen", {"reason": "仍不满意"})):
        assert (await act(client, world, "coordinator", reworked["id"], action, body)).status_code == 200

    declined = await submit(client)
    response = await act(client, world, "coordinator", declined["id"], "decline", {"reason": "不属于受理范围"})
    assert response.status_code == 200

    late = await assigned_form(client, world, unit="B", category="environment")
    await Office(sessionmaker, None, world).make_overdue(late["id"])
    reassigned = await assigned_form(client, world)
    response = await act(client, world, "coordinator", reassigned["id"], "reassign", {"unit_id": world.units["B"].id})
    assert response.status_code == 200
    await answered_form(client, world)
    await submit(client, workroom_code="LS-01")

    # An illegal action changes nothing.
    response = await act(client, world, "coordinator", declined["id"], "assign", {"unit_id": world.units["A"].id})
    assert response.status_code == 409

    response = await client.get("/api/v1/stats/summary", headers=coordinator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {*COUNTED, "answer_rate", "as_of"} <= set(body)
    assert_local_time(body["as_of"])
    body = numbers(body)
    assert body == {
        "collected": 7, "assigned": 5, "answered": 3, "closed": 1, "declined": 1, "overdue": 1,
        "answer_rate": 0.4286,
    }
    assert body == count(await form_rows(sessionmaker))


async def test_summary_is_all_zero_with_answer_rate_zero_when_nothing_is_collected(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_local_time(body["as_of"])
    assert numbers(body) == {"collected": 0, "assigned": 0, "answered": 0, "closed": 0, "declined": 0, "overdue": 0,
                    "answer_rate": 0.0}


async def test_returned_on_spot_and_reopened_forms_count_each_step_once(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    when = local(D(2026, 2, 3))
    # Assigned, returned by the unit, assigned again, answered: assigned once, answered once.
    returned = await office.submit(when, workroom="LS-01")
    await office.assign(returned, "A")
    await office.return_to_office(returned, "handler_a")
    assert await summary(client, world) == count(await form_rows(sessionmaker))
    await office.assign(returned, "B")
    await office.reply(returned)
    # Returned, then declined: assigned and declined.
    refused = await office.submit(when, workroom="LS-01")
    await office.assign(refused, "B")
    await office.return_to_office(refused, "handler_b")
    await office.decline(refused)
    # Answered on the spot: answered without ever being assigned; reopened, it reaches "assigned".
    on_spot = await office.submit(when, workroom="LS-02")
    await office.answer_on_spot(on_spot, "rep")
    spot_then_closed = await office.submit(when, workroom="LS-02")
    await office.answer_on_spot(spot_then_closed, "coordinator")
    await office.close(spot_then_closed, "unsatisfied")

    body = await summary(client, world)
    assert body == {"collected": 4, "assigned": 2, "answered": 3, "closed": 1, "declined": 1, "overdue": 0,
                    "answer_rate": 0.75}
    assert body == count(await form_rows(sessionmaker))

    await office._do("reopen", on_spot, reason="仍未解决。", unit_id=world.units["A"].id)
    body = await summary(client, world)
    assert (body["assigned"], body["answered"]) == (3, 3)
    assert body == count(await form_rows(sessionmaker))
    async with sessionmaker() as session:
        assert await stats_service.verify(session) == []


async def test_answer_rate_is_answered_over_collected_rounded_to_four_places(client, sessionmaker):
    world = await build_world(sessionmaker)
    await answered_form(client, world)
    await answered_form(client, world)
    await submit(client)
    assert (await summary(client, world))["answer_rate"] == 0.6667


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_stats_refuse_anonymous_and_bad_tokens_with_401(client, sessionmaker, endpoint):
    world = await build_world(sessionmaker)
    await submit(client)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = await client.get(f"/api/v1/stats/{endpoint}", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "collected" not in response.text
    for who in ("admin", "handler_a", "rep"):
        assert (await stats(client, world, endpoint, who=who)).status_code == 200


# --- filters and date windows ------------------------------------------------------------------------


async def build_calendar(sessionmaker, settings) -> tuple[World, dict[str, int]]:
    """Ten forms on chosen local days, some straddling midnight and month ends, at various steps."""
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    d = date
    ids = {
        "dec20": await office.submit(local(d(2025, 12, 20)), workroom="LS-01"),
        "jan31": await office.submit(local(d(2026, 1, 31), 23, 30), workroom="LS-01"),
        "feb01a": await office.submit(local(d(2026, 2, 1), 0, 10), workroom="LS-02", category="environment"),
        "feb01b": await office.submit(local(d(2026, 2, 1), 9), workroom=None, category=None, who=None),
        "feb14": await office.submit(local(d(2026, 2, 14)), workroom="LS-01", category="environment"),
        "feb28": await office.submit(local(d(2026, 2, 28), 23, 59), workroom="LS-01", category="livelihood"),
        # 16:30 UTC on 28 February is 00:30 on 1 March in the town: a March form.
        "mar01a": await office.submit(datetime(2026, 2, 28, 16, 30, tzinfo=UTC), workroom=None),
        "mar01b": await office.submit(local(d(2026, 3, 1), 12), workroom="LS-02"),
        "mar15": await office.submit(local(d(2026, 3, 15)), workroom="LS-01", category=None),
        "apr02": await office.submit(local(d(2026, 4, 2)), workroom="LS-02", category="environment"),
    }
    await office.decline(ids["dec20"])
    for key in ("jan31", "feb01a", "feb14", "mar01a", "mar01b", "mar15"):
        await office.assign(ids[key])
    for key in ("jan31", "feb14", "mar01a", "mar01b"):
        await office.reply(ids[key])
    await office.close(ids["feb14"])
    await office.reopen(ids["mar01b"])
    await office.decline(ids["feb01b"])
    await office.make_overdue(ids["feb01a"])
    await office.make_overdue(ids["mar15"])
    return world, ids


async def test_forms_count_on_their_local_day_not_their_utc_day(client, sessionmaker, settings):
    world, ids = await build_calendar(sessionmaker, settings)
    async with sessionmaker() as session:
        days = dict((await session.execute(select(OpinionForm.id, OpinionForm.submitted_on))).all())
    assert days[ids["mar01a"]] == date(2026, 3, 1)
    assert days[ids["jan31"]] == date(2026, 1, 31)
    assert days[ids["feb01a"]] == date(2026, 2, 1)
    assert (await summary(client, world, date_from=date(2026, 3, 1), date_to=date(2026, 3, 1)))["collected"] == 2


D = date
WINDOWS = [
    pytest.param(D(2026, 2, 1), D(2026, 2, 28), 4, id="whole-february"),
    pytest.param(D(2026, 1, 31), D(2026, 3, 1), 7, id="february-with-a-ragged-day-each-side"),
    pytest.param(D(2026, 2, 10), D(2026, 2, 20), 1, id="inside-one-month"),
    pytest.param(D(2026, 1, 15), D(2026, 2, 10), 3, id="across-a-month-end-without-a-whole-month"),
    pytest.param(D(2026, 1, 1), D(2026, 3, 31), 8, id="three-whole-months"),
    pytest.param(D(2025, 12, 15), D(2026, 3, 15), 9, id="across-a-year-end"),
    pytest.param(D(2026, 3, 1), D(2026, 3, 1), 2, id="first-day-of-a-month"),
    pytest.param(D(2026, 2, 28), D(2026, 2, 28), 1, id="last-day-of-a-month"),
    pytest.param(D(2026, 2, 1), None, 8, id="from-a-first-of-month-only"),
    pytest.param(D(2026, 2, 15), None, 5, id="from-mid-month-only"),
    pytest.param(None, D(2026, 2, 28), 6, id="to-a-month-end-only"),
    pytest.param(None, D(2026, 3, 10), 8, id="to-mid-month-only"),
    pytest.param(D(2026, 5, 1), D(2026, 5, 31), 0, id="a-month-without-forms"),
    pytest.param(None, None, 10, id="no-window"),
]


async def test_date_windows_count_exactly_the_forms_submitted_inside_them(client, sessionmaker, settings):
    """Every window of ``WINDOWS`` on one calendar (built once: the windows only read it), under every
    workroom and category filter, against a recount of the forms."""
    world, _ = await build_calendar(sessionmaker, settings)
    rows = await form_rows(sessionmaker)
    for param in WINDOWS:
        date_from, date_to, collected = param.values
        window = {"date_from": date_from, "date_to": date_to}
        assert (await summary(client, world, **window))["collected"] == collected, param.id
        for workroom in (None, "LS-01", "LS-02"):
            for category in (None, "urban_traffic", "environment", "livelihood"):
                got = await summary(client, world, workroom=workroom, category=category, **window)
                want = count(select_rows(rows, workroom=workroom, category=category, **window))
                assert got == want, (param.id, workroom, category)


async def test_whole_months_are_read_from_month_cells_and_ragged_ends_from_day_cells(
    client, sessionmaker, settings
):
    world, _ = await build_calendar(sessionmaker, settings)
    windows = {
        "feb": {"date_from": D(2026, 2, 1), "date_to": D(2026, 2, 28)},  # one whole month
        "mid": {"date_from": D(2026, 2, 10), "date_to": D(2026, 2, 20)},  # days only
        "ragged": {"date_from": D(2026, 1, 31), "date_to": D(2026, 3, 1)},  # a day, a whole month, a day
    }

    async def read() -> dict[str, dict[str, Any]]:
        return {name: await summary(client, world, **window) for name, window in windows.items()}

    before = await read()

    async with transaction(sessionmaker) as session:  # mark February's month cells only
        await session.execute(text(
            "UPDATE stat_cell SET collected = collected + 100 WHERE grain = 'm' AND period = :p"
        ), {"p": D(2026, 2, 1)})
    after = await read()
    marked_cells = after["feb"]["collected"] - before["feb"]["collected"]
    assert marked_cells >= 100  # one mark per February month cell
    assert after["ragged"]["collected"] - before["ragged"]["collected"] == marked_cells
    assert after["mid"] == before["mid"]

    async with transaction(sessionmaker) as session:  # now mark the day cells of 14 February and 1 March
        await session.execute(text(
            "UPDATE stat_cell SET closed = closed + 1000 WHERE grain = 'd' AND period IN (:a, :b)"
        ), {"a": D(2026, 2, 14), "b": D(2026, 3, 1)})
    final = await read()
    assert final["feb"]["closed"] == after["feb"]["closed"]
    assert final["mid"]["closed"] >= after["mid"]["closed"] + 1000
    assert final["ragged"]["closed"] >= after["ragged"]["closed"] + 1000


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"workroom": "NO-SUCH"}, "unknown_workroom"),
        ({"category": "no_such_category"}, "unknown_category"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "invalid_date_range"),
        ({"from": "2026-02-30"}, "validation_error"),
        ({"to": "yesterday"}, "validation_error"),
        ({"from": "2026/02/01"}, "validation_error"),
    ],
)
async def test_bad_filters_are_refused_with_a_422_problem(client, sessionmaker, query, code):
    world = await build_world(sessionmaker)
    for endpoint in ENDPOINTS:
        response = await client.get(f"/api/v1/stats/{endpoint}", params=query, headers=world.auth("coordinator"))
        assert response.status_code == 422, (endpoint, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == 422
        assert problem["code"] == code, endpoint
        assert "ETag" not in response.headers


async def test_a_range_of_one_day_is_allowed(client, sessionmaker, settings):
    world, _ = await build_calendar(sessionmaker, settings)
    assert (await summary(client, world, date_from=D(2026, 2, 14), date_to=D(2026, 2, 14)))["closed"] == 1


# --- lists -------------------------------------------------------------------------------------------


async def add_workroom(sessionmaker, code: str, *, active: bool = True) -> None:
    async with transaction(sessionmaker) as session:
        session.add(Workroom(code=code, name=f"工作室 {code}", address="洛社镇", area="网格", active=active))


LIST_FILTERS = [
    {},
    {"date_from": D(2026, 1, 31), "date_to": D(2026, 3, 1)},
    {"date_from": D(2026, 2, 10), "date_to": D(2026, 2, 20)},
    {"date_from": D(2026, 2, 15)},
    {"date_to": D(2026, 2, 28)},
    {"workroom": "LS-01"},
    {"category": "environment", "date_from": D(2026, 2, 1)},
]


@pytest.mark.parametrize("endpoint", LISTS)
async def test_lists_answer_items_next_cursor_and_local_as_of(client, sessionmaker, settings, endpoint):
    world, _ = await build_calendar(sessionmaker, settings)
    response = await stats(client, world, endpoint)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor", "as_of"}
    assert body["next_cursor"] is None
    assert_local_time(body["as_of"])
    assert body["items"]
    key = {"by-workroom": "workroom", "by-category": "category", "monthly": "month"}[endpoint]
    for item in body["items"]:
        assert key in item
        for metric in COUNTED:
            assert isinstance(item[metric], int)
        expected_rate = round(item["answered"] / item["collected"], 4) if item["collected"] else 0.0
        assert item["answer_rate"] == expected_rate


async def test_every_list_sums_to_the_summary(client, sessionmaker, settings):
    """Under every filter of ``LIST_FILTERS``, on one calendar (built once: the lists only read it)."""
    world, _ = await build_calendar(sessionmaker, settings)
    for flt in LIST_FILTERS:
        name = ",".join(f"{k}={v}" for k, v in flt.items()) or "all"
        total = await summary(client, world, **flt)
        for endpoint in LISTS:
            response = await stats(client, world, endpoint, **flt)
            assert response.status_code == 200, (name, endpoint, response.text)
            items = response.json()["items"]
            sums = {m: sum(item[m] for item in items) for m in COUNTED}
            assert sums == {m: total[m] for m in COUNTED}, (name, endpoint)


async def test_by_workroom_lists_every_active_workroom_and_a_none_row_for_online_forms(client, sessionmaker, settings):
    world, _ = await build_calendar(sessionmaker, settings)
    await add_workroom(sessionmaker, "LS-03")  # active, never used: a zero row
    rows = await form_rows(sessionmaker)
    response = await stats(client, world, "by-workroom")
    items = response.json()["items"]
    codes = [item["workroom"] for item in items]
    assert codes == ["LS-01", "LS-02", "LS-03", None]
    by_code = {item["workroom"]: item for item in items}
    assert by_code["LS-01"]["name"] == "镇区党代表工作室"
    assert numbers(by_code["LS-03"]) == count([])
    for code in ("LS-01", "LS-02"):
        assert numbers(by_code[code]) == count(select_rows(rows, workroom=code)), code
    online = [r for r in rows if r.workroom is None]
    assert len(online) == 2
    assert numbers(by_code[None]) == count(online)


async def test_by_workroom_keeps_a_deactivated_workroom_that_has_forms(client, sessionmaker, settings):
    world, _ = await build_calendar(sessionmaker, settings)
    async with transaction(sessionmaker) as session:
        await session.execute(update(Workroom).where(Workroom.code == "LS-02").values(active=False))
    items = (await stats(client, world, "by-workroom")).json()["items"]
    assert "LS-02" in [item["workroom"] for item in items]
    assert sum(item["collected"] for item in items) == 10


async def test_by_workroom_with_a_window_lists_zero_rows_and_matches_a_recount(client, sessionmaker, settings):
    world, _ = await build_calendar(sessionmaker, settings)
    rows = await form_rows(sessionmaker)
    window = {"date_from": D(2026, 2, 10), "date_to": D(2026, 2, 20)}
    items = (await stats(client, world, "by-workroom", **window)).json()["items"]
    by_code = {item["workroom"]: item for item in items}
    assert set(by_code) >= {"LS-01", "LS-02"}
    assert numbers(by_code["LS-02"]) == count([])
    for code in ("LS-01", "LS-02"):
        assert numbers(by_code[code]) == count(select_rows(rows, workroom=code, **window))


async def test_by_workroom_with_a_workroom_filter_lists_only_that_workroom(client, sessionmaker, settings):
    world, _ = await build_calendar(sessionmaker, settings)
    rows = await form_rows(sessionmaker)
    items = (await stats(client, world, "by-workroom", workroom="LS-02")).json()["items"]
    assert [item["workroom"] for item in items] == ["LS-02"]
    assert numbers(items[0]) == count(select_rows(rows, workroom="LS-02"))


async def test_by_category_lists_every_category_and_a_none_row(client, sessionmaker, settings):
    world, _ = await build_calendar(sessionmaker, settings)
    rows = await form_rows(sessionmaker)
    items = (await stats(client, world, "by-category")).json()["items"]
    codes = [item["category"] for item in items]
    assert codes[:-1] == list(SEEDED_CATEGORIES)
    assert codes[-1] is None
    by_code = {item["category"]: item for item in items}
    for code in SEEDED_CATEGORIES:
        assert numbers(by_code[code]) == count(select_rows(rows, category=code)), code
    uncategorised = [r for r in rows if r.category is None]
    assert len(uncategorised) == 2
    assert numbers(by_code[None]) == count(uncategorised)


async def test_monthly_lists_months_as_year_month_in_order_matching_a_recount(client, sessionmaker, settings):
    world, _ = await build_calendar(sessionmaker, settings)
    rows = await form_rows(sessionmaker)
    for flt in LIST_FILTERS:
        items = (await stats(client, world, "monthly", **flt)).json()["items"]
        months = [item["month"] for item in items]
        assert all(re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", m) for m in months), months
        assert months == sorted(months)
        chosen = select_rows(rows, **flt)
        assert months == sorted({r.day.strftime("%Y-%m") for r in chosen}), flt
        for item in items:
            in_month = [r for r in chosen if r.day.strftime("%Y-%m") == item["month"]]
            assert numbers(item) == count(in_month), (flt, item["month"])
    unfiltered = (await stats(client, world, "monthly")).json()["items"]
    assert [item["month"] for item in unfiltered] == ["2025-12", "2026-01", "2026-02", "2026-03", "2026-04"]


# --- overdue -----------------------------------------------------------------------------------------


async def test_an_assigned_form_past_its_deadline_is_overdue_everywhere_it_counts(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    late = await office.submit(local(D(2026, 2, 10)), workroom="LS-01", category="environment")
    await office.assign(late)
    on_time = await office.submit(local(D(2026, 2, 11)), workroom="LS-01", category="environment")
    await office.assign(on_time)

    before = await summary(client, world)
    assert before["overdue"] == 0
    await office.make_overdue(late)

    assert (await summary(client, world))["overdue"] == 1
    assert (await summary(client, world, workroom="LS-01", category="environment"))["overdue"] == 1
    assert (await summary(client, world, date_from=D(2026, 2, 10), date_to=D(2026, 2, 10)))["overdue"] == 1
    assert (await summary(client, world, date_from=D(2026, 2, 11)))["overdue"] == 0
    assert (await summary(client, world, workroom="LS-02"))["overdue"] == 0
    assert (await summary(client, world, category="urban_traffic"))["overdue"] == 0

    workrooms = {i["workroom"]: i["overdue"] for i in (await stats(client, world, "by-workroom")).json()["items"]}
    assert workrooms == {"LS-01": 1, "LS-02": 0}
    categories = {i["category"]: i["overdue"] for i in (await stats(client, world, "by-category")).json()["items"]}
    assert categories["environment"] == 1
    assert sum(categories.values()) == 1
    months = {i["month"]: i["overdue"] for i in (await stats(client, world, "monthly")).json()["items"]}
    assert months == {"2026-02": 1}


async def test_answered_closed_declined_and_unassigned_forms_are_never_overdue(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    when = local(D(2026, 3, 2))
    answered, closed, declined, waiting, reopened = [await office.submit(when, workroom="LS-02") for _ in range(5)]
    for form_id in (answered, closed, reopened):
        await office.assign(form_id)
        await office.reply(form_id)
    await office.close(closed)
    await office.decline(declined)
    for form_id in (answered, closed, declined, waiting, reopened):
        await office.make_overdue(form_id)
    body = await summary(client, world)
    assert body["overdue"] == 0
    assert body == count(await form_rows(sessionmaker))

    # Reopened, it is open again: its (new) deadline decides. Moved into the past, it is overdue again.
    await office.reopen(reopened)
    assert (await summary(client, world))["overdue"] == 0
    await office.make_overdue(reopened)
    body = await summary(client, world)
    assert body["overdue"] == 1
    assert body == count(await form_rows(sessionmaker))
    months = {i["month"]: i["overdue"] for i in (await stats(client, world, "monthly")).json()["items"]}
    assert months == {"2026-03": 1}


# --- ETag --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_every_stats_answer_has_an_etag_and_the_current_tag_gets_304(client, sessionmaker, endpoint):
    world = await build_world(sessionmaker)
    await answered_form(client, world, workroom_code="LS-01")
    first = await stats(client, world, endpoint)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert re.fullmatch(r'(W/)?"[^"]+"', etag), etag

    again = await stats(client, world, endpoint, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_etag_is_stable_while_nothing_changes_although_as_of_moves(app, client, sessionmaker, endpoint):
    world = await build_world(sessionmaker)
    await assigned_form(client, world)
    first = await stats(client, world, endpoint)
    app.state.stats_cache.invalidate()  # force a fresh computation, as after the cache's time to live
    second = await stats(client, world, endpoint)
    assert first.json()["as_of"] != second.json()["as_of"]
    assert first.headers["ETag"] == second.headers["ETag"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_etag_changes_after_a_new_submission_and_the_old_tag_gets_200(client, sessionmaker, endpoint):
    world = await build_world(sessionmaker)
    await submit(client, workroom_code="LS-01")
    old = await stats(client, world, endpoint)
    await submit(client, workroom_code="LS-01")
    fresh = await stats(client, world, endpoint, headers={"If-None-Match": old.headers["ETag"]})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != old.headers["ETag"]
    if endpoint == "summary":
        assert fresh.json()["collected"] == 2
    else:
        assert sum(i["collected"] for i in fresh.json()["items"]) == 2


async def test_etag_changes_when_any_count_changes(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.submit(local(D(2026, 3, 3)), workroom="LS-01")
    seen = [(await stats(client, world, "summary")).headers["ETag"]]
    for step in (office.assign, office.make_overdue, office.reply, office.close):
        await step(form_id)
        seen.append((await stats(client, world, "summary")).headers["ETag"])
    assert len(set(seen)) == len(seen), seen


async def test_if_none_match_compares_weakly_and_accepts_lists_and_star(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client)
    etag = (await stats(client, world, "summary")).headers["ETag"]
    opaque = etag.removeprefix("W/")
    matching = [etag, opaque, f"W/{opaque}", f'"stale", {etag}', f'W/"stale",{opaque}', f'"a" , "b",  W/{opaque}', "*"]
    for header in matching:
        response = await stats(client, world, "summary", headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.headers["ETag"] == etag
        assert response.content == b""
    for header in ('"stale"', 'W/"stale", "other"', opaque[:-2] + '"', ""):
        response = await stats(client, world, "summary", headers={"If-None-Match": header})
        assert response.status_code == 200, header
        assert response.json()["collected"] == 1


async def test_etag_differs_between_filters_with_different_counts(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client, workroom_code="LS-01")
    one = await stats(client, world, "summary", workroom="LS-01")
    other = await stats(client, world, "summary", workroom="LS-02")
    assert one.headers["ETag"] != other.headers["ETag"]
    response = await stats(client, world, "summary", workroom="LS-02", headers={"If-None-Match": one.headers["ETag"]})
    assert response.status_code == 200


# --- concurrency -------------------------------------------------------------------------------------


async def test_concurrent_submissions_and_actions_keep_every_count_right(client, sessionmaker):
    """Many requests at once on the same counter cells (same day, workroom and category): none is lost."""
    world = await build_world(sessionmaker)
    forms = await asyncio.gather(*[submit(client, workroom_code="LS-01") for _ in range(12)])
    ids = [form["id"] for form in forms]
    unit = world.units["A"].id
    results = await asyncio.gather(
        *[act(client, world, "coordinator", form_id, "assign", {"unit_id": unit}) for form_id in ids[:8]],
        *[act(client, world, "coordinator", form_id, "decline", {"reason": "不予受理"}) for form_id in ids[8:]],
        *[submit(client, workroom_code="LS-01") for _ in range(6)],
    )
    assert [r.status_code for r in results[:12]] == [200] * 12
    replies = await asyncio.gather(
        *[act(client, world, "coordinator", form_id, "reply", {"reply": "已处理。"}) for form_id in ids[:5]],
        # The same form answered twice at once: one wins, the other gets 409; it counts once.
        act(client, world, "coordinator", ids[5], "reply", {"reply": "甲"}),
        act(client, world, "coordinator", ids[5], "reply", {"reply": "乙"}),
    )
    assert sorted(r.status_code for r in replies[5:]) == [200, 409]

    body = await summary(client, world)
    assert body == count(await form_rows(sessionmaker))
    assert (body["collected"], body["assigned"], body["answered"], body["declined"]) == (18, 8, 6, 4)
    async with sessionmaker() as session:
        assert await stats_service.verify(session) == []


# --- minyi stats verify ------------------------------------------------------------------------------


def run_verify(db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env["MINYI_DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "stats", "verify"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


async def test_stats_verify_command_exits_0_on_honest_counters_and_1_with_the_difference_after_tampering(
    client, sessionmaker, settings, db_url
):
    await build_calendar(sessionmaker, settings)
    async with sessionmaker() as session:
        assert await stats_service.verify(session) == []

    honest = run_verify(db_url)
    assert honest.returncode == 0, honest.stdout + honest.stderr
    assert "match" in honest.stdout

    async with transaction(sessionmaker) as session:
        await session.execute(text(
            "UPDATE stat_cell SET answered = answered + 1 WHERE grain = 'd' AND period = :day"
        ), {"day": D(2026, 2, 14)})
    tampered = run_verify(db_url)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    differences = json.loads(tampered.stdout)
    assert len(differences) == 1
    (difference,) = differences
    assert difference["grain"] == "d"
    assert difference["period"] == "2026-02-14"
    assert difference["stored"]["answered"] == difference["expected"]["answered"] + 1
    assert {k: v for k, v in difference["stored"].items() if k != "answered"} == {
        k: v for k, v in difference["expected"].items() if k != "answered"
    }
    assert "differ" in tampered.stderr


async def test_verify_finds_a_stray_cell_and_a_missing_cell(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.submit(local(D(2026, 1, 5)), workroom="LS-01")
    async with transaction(sessionmaker) as session:
        workroom_id = (await session.get(OpinionForm, form_id)).workroom_id
        # A cell no form accounts for, and a form whose month cell has gone.
        await session.execute(text(
            "INSERT INTO stat_cell (grain, period, workroom_id, category_id, month, collected, assigned, answered,"
            " closed, declined) VALUES ('d', :day, :w, 0, :month, 1, 0, 0, 0, 0)"
        ), {"day": D(2026, 1, 6), "w": workroom_id, "month": D(2026, 1, 1)})
        await session.execute(text("DELETE FROM stat_cell WHERE grain = 'm'"))
    async with sessionmaker() as session:
        differences = await stats_service.verify(session)
    assert sorted((d["grain"], d["period"]) for d in differences) == [("d", "2026-01-06"), ("m", "2026-01-01")]
