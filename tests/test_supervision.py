"""Supervision (督办): the ladder over open forms — warning (预警, due within 2 working days), overdue (逾期),
escalated (督办, 5 working days late) — shown on every form read, filterable in the list, counted in the
summary, and recorded as events once per level by ``workflow.supervise`` (and the ``minyi supervise`` command).

Working days follow the Chinese calendar: the 2026 Spring Festival (15–23 Feb off, Saturdays 14 and 28 Feb
worked) makes the ladder visibly different from a Monday–Friday count. Deadlines are placed by updating the
row or by calling the services with ``now=``.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import TZ
from app.db import transaction
from app.models import FormEvent, OpinionForm, User
from app.services import forms as form_service
from app.services import stats as stats_service
from app.services import workflow
from app.services.auth import ANONYMOUS, Principal
from app.services.forms import Submission
from tests.factories import World, act, build_world
from tests.support.calendar import is_working

ROOT = Path(__file__).resolve().parent.parent
MINYI = [sys.executable, "-c", "from app.cli import main; main()"]
LEVELS = ("none", "warning", "overdue", "escalated")


# --- the calendar, counted here independently of the app ----------------------------------------------


def working_days_in(after: date, through: date) -> int:
    """Working days d with after < d <= through."""
    return sum(is_working(after + timedelta(days=i)) for i in range(1, (through - after).days + 1))


def nth_working_day_after(day: date, n: int) -> date:
    while n > 0:
        day += timedelta(days=1)
        n -= is_working(day)
    return day


def latest_due_day_late_by(today: date, n: int) -> date:
    """The latest due day that is ``n`` working days late on ``today``."""
    day = today - timedelta(days=1)
    while working_days_in(day, today) < n:
        day -= timedelta(days=1)
    return day


def expected_level(due_at: datetime | None, now: datetime, *, open_: bool) -> str:
    """The ladder by its definition in DESIGN.md."""
    if not open_ or due_at is None:
        return "none"
    today, due_day = now.astimezone(TZ).date(), due_at.astimezone(TZ).date()
    if now > due_at:
        return "escalated" if working_days_in(due_day, today) >= 5 else "overdue"
    return "warning" if working_days_in(today, due_day) <= 2 else "none"


def end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=TZ)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=TZ)


D = date


# --- acting through the services ----------------------------------------------------------------------


async def principal_of(session: AsyncSession, world: World, who: str | None) -> Principal:
    return ANONYMOUS if who is None else Principal(user=await session.get(User, world.user_ids[who]))


class Office:
    """Acts through the services directly, so events can be placed in time with ``now=``."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Any, world: World) -> None:
        self.sessionmaker, self.settings, self.world = sessionmaker, settings, world

    async def submit(self, when: datetime) -> int:
        async with transaction(self.sessionmaker) as session:
            form, _ = await form_service.submit(
                session, principal=ANONYMOUS, data=Submission(content="河道有垃圾漂浮，请清理。", category="environment"),
                settings=self.settings, now=when,
            )
            return form.id

    async def do(self, action: str, form_id: int, *, who: str = "coordinator", when: datetime, **kwargs: Any) -> Any:
        async with transaction(self.sessionmaker) as session:
            principal = await principal_of(session, self.world, who)
            return await getattr(workflow, action)(session, principal=principal, form_id=form_id, now=when, **kwargs)

    async def assigned(self, when: datetime, due_at: datetime, unit: str = "A") -> int:
        form_id = await self.submit(when)
        await self.do("assign", form_id, when=when, unit_id=self.world.units[unit].id, instructions=None,
                      due_at=due_at)
        return form_id

    async def supervise(self, when: datetime, **kwargs: Any) -> int:
        async with transaction(self.sessionmaker) as session:
            return await workflow.supervise(session, now=when, **kwargs)


async def supervision_events(sessionmaker: async_sessionmaker[AsyncSession], form_id: int) -> list[FormEvent]:
    async with sessionmaker() as session:
        return list(await session.scalars(
            select(FormEvent).where(FormEvent.form_id == form_id, FormEvent.type == "supervision")
            .order_by(FormEvent.id)
        ))


async def levels_recorded(sessionmaker: async_sessionmaker[AsyncSession], form_id: int) -> list[str]:
    return [e.data["level"] for e in await supervision_events(sessionmaker, form_id)]


async def set_due(sessionmaker: async_sessionmaker[AsyncSession], form_id: int, due_at: datetime | None) -> None:
    async with transaction(sessionmaker) as session:
        await session.execute(update(OpinionForm).where(OpinionForm.id == form_id).values(due_at=due_at))


async def api_assigned(client: httpx.AsyncClient, world: World, unit: str = "A") -> int:
    created = await client.post("/api/v1/forms", json={"content": "垃圾清运不及时。", "category": "environment"})
    assert created.status_code == 201, created.text
    form_id = created.json()["id"]
    response = await act(client, world, "coordinator", form_id, "assign", {"unit_id": world.units[unit].id})
    assert response.status_code == 200, response.text
    return form_id


async def read(client: httpx.AsyncClient, world: World, form_id: int, who: str = "coordinator") -> dict[str, Any]:
    response = await client.get(f"/api/v1/forms/{form_id}", headers=world.auth(who))
    assert response.status_code == 200, response.text
    return response.json()


async def listed(
    client: httpx.AsyncClient, world: World, who: str = "coordinator", **query: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200, **query}
    while True:
        response = await client.get("/api/v1/forms", params=params, headers=world.auth(who))
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        if not body["next_cursor"]:
            return items
        params["cursor"] = body["next_cursor"]


async def summary(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    response = await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    return response.json()


# --- every read shows the level --------------------------------------------------------------------------


async def test_every_form_read_shows_its_supervision_level(client, sessionmaker):
    world = await build_world(sessionmaker)
    now = datetime.now(TZ)
    today = now.date()
    placed = {
        "none": end_of(nth_working_day_after(today, 3)),
        "warning": end_of(nth_working_day_after(today, 2)),
        "overdue": end_of(latest_due_day_late_by(today, 4)),
        "escalated": end_of(latest_due_day_late_by(today, 5)),
    }
    ids = {}
    for level, due_at in placed.items():
        ids[level] = await api_assigned(client, world)
        await set_due(sessionmaker, ids[level], due_at)

    by_id = {item["id"]: item for item in await listed(client, world)}
    for level, form_id in ids.items():
        assert (await read(client, world, form_id))["supervision"] == level, level
        assert (await read(client, world, form_id, "handler_a"))["supervision"] == level, level
        assert by_id[form_id]["supervision"] == level, level
        # Action responses are form reads too.
        urged = await act(client, world, "coordinator", form_id, "urge", {})
        assert urged.status_code == 200, urged.text
        assert urged.json()["supervision"] == level, level


async def test_a_new_form_and_forms_no_longer_open_are_never_under_supervision(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = await client.post("/api/v1/forms", json={"content": "路面破损。"})
    assert created.status_code == 201 and created.json()["supervision"] == "none"
    long_ago = datetime.now(UTC) - timedelta(days=60)
    answered = await api_assigned(client, world)
    assert (await act(client, world, "handler_a", answered, "reply", {"reply": "已修。"})).status_code == 200
    closed = await api_assigned(client, world)
    assert (await act(client, world, "handler_a", closed, "reply", {"reply": "已修。"})).status_code == 200
    assert (await act(client, world, "coordinator", closed, "close", {})).status_code == 200
    open_one = await api_assigned(client, world)
    for form_id in (answered, closed, open_one):
        await set_due(sessionmaker, form_id, long_ago)

    assert (await read(client, world, created.json()["id"]))["supervision"] == "none"
    assert (await read(client, world, answered))["supervision"] == "none"
    assert (await read(client, world, closed))["supervision"] == "none"
    # The same deadline on an open form is escalated: only openness differs.
    assert (await read(client, world, open_one))["supervision"] == "escalated"
    assert {i["id"] for i in await listed(client, world, supervision="escalated")} == {open_one}


# --- the list filter and the summary ------------------------------------------------------------------


async def grid(sessionmaker, settings, world: World, today: date) -> dict[int, datetime | None]:
    """Open forms due on every day from two weeks ago to a week ahead (at the start and at the end of the
    day, alternating between units A and B), and forms that are not open but carry an old deadline.
    Returns each form's deadline."""
    created = datetime.now(TZ)
    long_ago = created - timedelta(days=40)
    plan: list[tuple[str, datetime | None]] = []
    for offset in range(-16, 8):
        day = today + timedelta(days=offset)
        plan += [("open", end_of(day)), ("open", datetime.combine(day, time(0, 0, 1), tzinfo=TZ))]
    plan += [("submitted", None), ("answered", long_ago), ("closed", long_ago)]
    placed: dict[int, datetime | None] = {}
    async with transaction(sessionmaker) as session:
        coordinator = await principal_of(session, world, "coordinator")
        for index, (kind, due_at) in enumerate(plan):
            form, _ = await form_service.submit(
                session, principal=ANONYMOUS, data=Submission(content=f"第{index}件", category="environment"),
                settings=settings, now=created,
            )
            placed[form.id] = due_at
            if kind == "submitted":
                continue
            await workflow.assign(session, principal=coordinator, form_id=form.id,
                                  unit_id=world.units["A" if index % 2 else "B"].id, instructions=None, due_at=None,
                                  now=created)
            if kind in ("answered", "closed"):
                await workflow.reply(session, principal=coordinator, form_id=form.id, reply_text="已处理。",
                                     internal_note=None, now=created)
            if kind == "closed":
                await workflow.close(session, principal=coordinator, form_id=form.id, satisfaction=None, note=None,
                                     now=created)
    for form_id, due_at in placed.items():
        if due_at is not None:
            await set_due(sessionmaker, form_id, due_at)
    return placed


async def test_supervision_filter_lists_exactly_the_forms_at_that_level(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    placed = await grid(sessionmaker, settings, world, datetime.now(TZ).date())

    forms = {item["id"]: item for item in await listed(client, world)}
    now = datetime.now(TZ)
    assert set(forms) == set(placed)
    for form_id, item in forms.items():
        due_at = datetime.fromisoformat(item["due_at"]) if item["due_at"] else None
        assert item["supervision"] == expected_level(due_at, now, open_=item["status"] == "assigned"), item
    seen = set()
    for level in LEVELS:
        got = {item["id"] for item in await listed(client, world, supervision=level)}
        want = {form_id for form_id, item in forms.items() if item["supervision"] == level}
        assert got == want, level
        seen |= got
    assert seen == set(placed)
    # Every rung of the ladder is actually on the grid, so no level passes by being empty.
    assert all(any(item["supervision"] == level for item in forms.values()) for level in LEVELS)


async def test_supervision_filter_combines_with_other_filters_and_visibility(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    await grid(sessionmaker, settings, world, datetime.now(TZ).date())
    everything = await listed(client, world)

    for level in ("warning", "overdue", "escalated"):
        mine = await listed(client, world, "handler_a", supervision=level)
        assert {i["id"] for i in mine} == {
            i["id"] for i in everything if i["supervision"] == level and i["unit_id"] == world.units["A"].id
        }, level
        filtered = await listed(client, world, supervision=level, unit_id=world.units["B"].id)
        assert {i["id"] for i in filtered} == {
            i["id"] for i in everything if i["supervision"] == level and i["unit_id"] == world.units["B"].id
        }, level
    late = {i["id"] for i in await listed(client, world, overdue="true")}
    assert late == {i["id"] for i in everything if i["supervision"] in ("overdue", "escalated")}


@pytest.mark.parametrize("level", ["late", "WARNING", "", "1"])
async def test_unknown_supervision_level_is_422(client, sessionmaker, level):
    world = await build_world(sessionmaker)

    response = await client.get("/api/v1/forms", params={"supervision": level}, headers=world.auth("coordinator"))

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "validation_error"


async def test_summary_counts_the_supervision_ladder_like_the_forms_show_it(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    await grid(sessionmaker, settings, world, datetime.now(TZ).date())
    forms = await listed(client, world)

    counts = await summary(client, world)

    levels = [item["supervision"] for item in forms]
    assert counts["warning"] == levels.count("warning") > 0
    assert counts["escalated"] == levels.count("escalated") > 0
    # "Overdue" counts every open form past its deadline: the escalated ones are overdue too.
    assert counts["overdue"] == levels.count("overdue") + levels.count("escalated")
    assert levels.count("overdue") > 0


# --- recording the ladder as events ---------------------------------------------------------------------


async def test_supervise_records_each_level_once_as_the_deadline_approaches_and_passes(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    # Due on Tuesday 24 February 2026, the first working day after the Spring Festival.
    form_id = await office.assigned(at(D(2026, 2, 2)), end_of(D(2026, 2, 24)))

    # 12 Feb: 13 Feb, Saturday 14 Feb (a make-up workday) and 24 Feb are still ahead: 3 working days.
    assert await office.supervise(at(D(2026, 2, 12))) == 0
    # 13 Feb: two working days left (14 and 24 Feb), eleven calendar days before the deadline.
    assert await office.supervise(at(D(2026, 2, 13))) == 1
    assert await levels_recorded(sessionmaker, form_id) == ["warning"]
    assert await office.supervise(at(D(2026, 2, 13), 16)) == 0
    # The last day is still within the deadline.
    assert await office.supervise(at(D(2026, 2, 24), 18)) == 0
    assert await office.supervise(at(D(2026, 2, 25), 9)) == 1
    assert await levels_recorded(sessionmaker, form_id) == ["warning", "overdue"]
    # 25, 26, 27 and Saturday 28 Feb are four working days late; Sunday 1 March adds none.
    assert await office.supervise(at(D(2026, 3, 1))) == 0
    # Monday 2 March is the fifth (counting the make-up Saturday): escalated.
    assert await office.supervise(at(D(2026, 3, 2), 9)) == 1
    assert await office.supervise(at(D(2026, 3, 2), 9)) == 0
    assert await office.supervise(at(D(2026, 4, 30))) == 0

    events = await supervision_events(sessionmaker, form_id)
    assert [e.data["level"] for e in events] == ["warning", "overdue", "escalated"]
    assert [e.at for e in events] == [at(D(2026, 2, 13)), at(D(2026, 2, 25), 9), at(D(2026, 3, 2), 9)]
    assert all(e.actor_label == "系统" and e.actor_user_id is None for e in events)
    assert all(e.unit_id == world.units["A"].id and e.note for e in events)
    assert len({e.note for e in events}) == 3
    # Recording supervision changes no status and no count.
    async with sessionmaker() as session:
        assert (await session.get(OpinionForm, form_id)).status == "assigned"
        assert await stats_service.verify(session) == []


async def test_supervise_fills_in_every_level_passed_when_a_form_jumps_straight_to_escalated(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.assigned(at(D(2026, 2, 2)), end_of(D(2026, 2, 24)))

    assert await office.supervise(at(D(2026, 3, 10))) == 3
    assert await office.supervise(at(D(2026, 3, 10))) == 0
    assert await office.supervise(at(D(2026, 3, 20))) == 0

    events = await supervision_events(sessionmaker, form_id)
    assert [e.data["level"] for e in events] == ["warning", "overdue", "escalated"]
    assert {e.at for e in events} == {at(D(2026, 3, 10))}


async def test_supervise_jumping_from_warning_to_escalated_records_overdue_too(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.assigned(at(D(2026, 3, 2)), end_of(D(2026, 3, 13)))
    assert await office.supervise(at(D(2026, 3, 12))) == 1

    assert await office.supervise(at(D(2026, 3, 25))) == 2

    assert await levels_recorded(sessionmaker, form_id) == ["warning", "overdue", "escalated"]


async def test_supervise_ignores_forms_that_are_not_open(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    start, due = at(D(2026, 3, 2)), end_of(D(2026, 3, 6))
    answered = await office.assigned(start, due)
    await office.do("reply", answered, when=at(D(2026, 3, 3)), reply_text="已处理。", internal_note=None)
    closed = await office.assigned(start, due)
    await office.do("reply", closed, when=at(D(2026, 3, 3)), reply_text="已处理。", internal_note=None)
    await office.do("close", closed, when=at(D(2026, 3, 4)), satisfaction="satisfied", note=None)
    returned = await office.assigned(start, due)
    await office.do("return_to_office", returned, who="handler_a", when=at(D(2026, 3, 3)), reason="非本单位职责。")
    submitted = await office.submit(start)
    open_one = await office.assigned(start, due)

    assert await office.supervise(at(D(2026, 4, 1))) == 3

    for form_id in (answered, closed, returned, submitted):
        assert await levels_recorded(sessionmaker, form_id) == []
    assert await levels_recorded(sessionmaker, open_one) == ["warning", "overdue", "escalated"]


async def test_after_an_approved_extension_the_ladder_is_recorded_afresh(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.assigned(at(D(2026, 3, 2)), end_of(D(2026, 3, 13)))
    assert await office.supervise(at(D(2026, 3, 16))) == 2  # warning and overdue

    await office.do("request_extension", form_id, who="handler_a", when=at(D(2026, 3, 16), 11),
                    due_at=end_of(D(2026, 4, 10)), reason="需协调县水利局。")
    await office.do("decide_extension", form_id, when=at(D(2026, 3, 16), 15), approve=True, note=None)

    # The new deadline is far off: nothing to record, and the old levels are not recorded again.
    assert await office.supervise(at(D(2026, 3, 17))) == 0
    # 9 April: only 10 April is left (Qingming, 4–6 April, is behind).
    assert await office.supervise(at(D(2026, 4, 9))) == 1
    assert await office.supervise(at(D(2026, 4, 13), 9)) == 1
    assert await office.supervise(at(D(2026, 4, 13), 9)) == 0
    assert await levels_recorded(sessionmaker, form_id) == ["warning", "overdue", "warning", "overdue"]


async def test_a_refused_extension_does_not_restart_the_ladder(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.assigned(at(D(2026, 3, 2)), end_of(D(2026, 3, 13)))
    assert await office.supervise(at(D(2026, 3, 12))) == 1  # warning

    await office.do("request_extension", form_id, who="handler_a", when=at(D(2026, 3, 12), 11),
                    due_at=end_of(D(2026, 4, 10)), reason="需协调。")
    await office.do("decide_extension", form_id, when=at(D(2026, 3, 12), 15), approve=False, note=None)

    assert await office.supervise(at(D(2026, 3, 12), 16)) == 0
    assert await office.supervise(at(D(2026, 3, 16))) == 1
    assert await levels_recorded(sessionmaker, form_id) == ["warning", "overdue"]


async def test_a_form_returned_and_assigned_again_gets_a_fresh_ladder(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.assigned(at(D(2026, 3, 2)), end_of(D(2026, 3, 13)))
    assert await office.supervise(at(D(2026, 3, 16))) == 2

    await office.do("return_to_office", form_id, who="handler_a", when=at(D(2026, 3, 16), 11), reason="非本单位。")
    assert await office.supervise(at(D(2026, 3, 20))) == 0
    await office.do("assign", form_id, when=at(D(2026, 3, 20)), unit_id=world.units["B"].id, instructions=None,
                    due_at=end_of(D(2026, 3, 31)))

    assert await office.supervise(at(D(2026, 4, 14))) == 3
    events = await supervision_events(sessionmaker, form_id)
    assert [e.data["level"] for e in events] == ["warning", "overdue", "warning", "overdue", "escalated"]
    assert [e.unit_id for e in events[2:]] == [world.units["B"].id] * 3


async def test_supervise_works_through_more_forms_than_one_batch(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    forms = [await office.assigned(at(D(2026, 3, 2)), end_of(D(2026, 3, 13))) for _ in range(7)]

    assert await office.supervise(at(D(2026, 3, 16)), batch=3) == 14
    assert await office.supervise(at(D(2026, 3, 16)), batch=3) == 0
    for form_id in forms:
        assert await levels_recorded(sessionmaker, form_id) == ["warning", "overdue"]


async def test_two_supervise_runs_at_once_record_each_level_once(sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    forms = [await office.assigned(at(D(2026, 3, 2)), end_of(D(2026, 3, 13))) for _ in range(30)]
    when = at(D(2026, 4, 1))

    async def run() -> int:
        async with transaction(sessionmaker) as session:
            return await workflow.supervise(session, now=when, batch=4)

    results = await asyncio.gather(run(), run())

    assert sum(results) == 3 * len(forms), results
    for form_id in forms:
        assert await levels_recorded(sessionmaker, form_id) == ["warning", "overdue", "escalated"]
    assert await office.supervise(when) == 0


# --- the command ---------------------------------------------------------------------------------------


def run_supervise(db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env.update({"MINYI_DATABASE_URL": db_url, "MINYI_SECRET_KEY": "test-secret-key"})
    return subprocess.run([*MINYI, "supervise"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def first_number(text: str) -> int:
    match = re.search(r"\d+", text)
    assert match, text
    return int(match.group())


async def test_supervise_command_records_the_ladder_and_prints_how_many_events(client, sessionmaker, db_url):
    world = await build_world(sessionmaker)
    today = datetime.now(TZ).date()
    escalated = await api_assigned(client, world)
    warning = await api_assigned(client, world)
    quiet = await api_assigned(client, world)
    await set_due(sessionmaker, escalated, end_of(latest_due_day_late_by(today, 8)))
    await set_due(sessionmaker, warning, end_of(nth_working_day_after(today, 1)))
    await set_due(sessionmaker, quiet, end_of(nth_working_day_after(today, 10)))

    first = await asyncio.to_thread(run_supervise, db_url)

    assert first.returncode == 0, first.stdout + first.stderr
    assert first_number(first.stdout) == 4, first.stdout
    assert await levels_recorded(sessionmaker, escalated) == ["warning", "overdue", "escalated"]
    assert await levels_recorded(sessionmaker, warning) == ["warning"]
    assert await levels_recorded(sessionmaker, quiet) == []
    # The staff timeline shows what was recorded.
    timeline = (await read(client, world, escalated))["events"]
    assert [e["type"] for e in timeline][-3:] == ["supervision"] * 3

    again = await asyncio.to_thread(run_supervise, db_url)

    assert again.returncode == 0, again.stdout + again.stderr
    assert first_number(again.stdout) == 0, again.stdout
    assert await levels_recorded(sessionmaker, escalated) == ["warning", "overdue", "escalated"]
