"""Planning a rota: weekday patterns, representatives taking turns across weeks, Chinese public holidays
skipped, a preview that marks conflicts and writes nothing, a commit that writes all or nothing."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

import chinese_calendar
import httpx
from sqlalchemy import func, select

from app.config import TZ
from app.models import Shift
from app.services import rosters as roster_service
from tests.factories import World, build_world
from tests.support.problems import assert_problem


def local(text: str) -> str:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).isoformat()


async def shift_count(sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Shift))


def rota(world: World, day_from: str, day_to: str, *patterns: dict[str, Any], skip_holidays: bool = True) -> dict[str, Any]:
    return {"from": day_from, "to": day_to, "skip_holidays": skip_holidays, "workrooms": list(patterns)}


def pattern(world: World, code: str, weekdays: list[int], reps: list[str], start: str = "09:00", end: str = "11:30") -> dict[str, Any]:
    return {"code": code, "weekdays": weekdays, "start": start, "end": end,
            "representative_ids": [world.representatives[r].id for r in reps]}


async def post(client, world: World, what: str, body: dict[str, Any], who: str = "coordinator") -> httpx.Response:
    return await client.post(f"/api/v1/rota/{what}", json=body, headers=world.auth(who))


def plan(items: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(i["workroom_code"], i["representative_name"], i["starts_at"], i["ends_at"]) for i in items]


async def test_preview_takes_turns_across_weeks_and_writes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = rota(world, "2030-03-04", "2030-03-17", pattern(world, "LS-01", [1, 3, 5], ["rep", "rep2"]))
    response = await post(client, world, "preview", body)
    assert response.status_code == 200, response.text
    preview = response.json()
    assert (preview["count"], preview["conflicts"]) == (6, 0)
    assert plan(preview["items"]) == [
        ("LS-01", name, local(f"2030-03-{day:02d}T09:00"), local(f"2030-03-{day:02d}T11:30"))
        for day, name in ((4, "张代表"), (6, "李代表"), (8, "张代表"), (11, "李代表"), (13, "张代表"), (15, "李代表"))
    ]
    assert all(i["conflict"] is False and i["conflicting_shift_ids"] == [] for i in preview["items"])
    assert await shift_count(sessionmaker) == 0


async def test_commit_writes_the_previewed_shifts_in_one_go(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = rota(world, "2030-03-04", "2030-03-10",
                pattern(world, "LS-01", [1, 3, 5], ["rep", "rep2"]),
                pattern(world, "LS-02", [2, 4], ["rep2", "rep"], start="14:00", end="16:30"))
    preview = (await post(client, world, "preview", body)).json()
    response = await post(client, world, "commit", body)
    assert response.status_code == 201, response.text
    committed = response.json()
    assert committed["count"] == 5 == preview["count"]
    assert plan(committed["items"]) == plan(preview["items"])
    assert await shift_count(sessionmaker) == 5
    listed = await client.get("/api/v1/workrooms/LS-02/shifts", params={"from": "2030-03-04", "to": "2030-03-10"})
    assert [(s["representative_name"], s["starts_at"]) for s in listed.json()["items"]] == [
        ("李代表", local("2030-03-05T14:00")), ("张代表", local("2030-03-07T14:00"))]
    # Committing the same rota again collides with every shift it wrote, and writes nothing.
    problem = assert_problem(await post(client, world, "commit", body), 409, "shift_conflict")
    assert len(problem["conflicts"]) == 5
    assert sorted(problem["conflicting_shift_ids"]) == sorted(s["id"] for s in committed["items"])
    assert await shift_count(sessionmaker) == 5


async def test_preview_marks_conflicts_with_existing_shifts_and_inside_the_batch(client, sessionmaker):
    world = await build_world(sessionmaker)
    existing = await client.post("/api/v1/workrooms/LS-02/shifts", headers=world.auth("coordinator"), json={
        "representative_id": world.representatives["rep"].id,
        "starts_at": "2030-03-06T11:00:00", "ends_at": "2030-03-06T12:00:00"})
    assert existing.status_code == 201, existing.text
    # 张代表 at both workrooms on Monday morning: the two items collide with each other.
    body = rota(world, "2030-03-04", "2030-03-06",
                pattern(world, "LS-01", [1, 3], ["rep"]),
                pattern(world, "LS-02", [1], ["rep"], start="10:00", end="12:00"))
    preview = (await post(client, world, "preview", body)).json()
    assert preview["count"] == 3 and preview["conflicts"] == 3
    by_start = {i["starts_at"]: i for i in preview["items"]}
    monday_1, monday_2 = by_start[local("2030-03-04T09:00")], by_start[local("2030-03-04T10:00")]
    assert monday_1["conflicting_items"] == [monday_2["index"]] and monday_2["conflicting_items"] == [monday_1["index"]]
    assert monday_1["conflicting_shift_ids"] == []
    wednesday = by_start[local("2030-03-06T09:00")]
    assert wednesday["conflict"] and wednesday["conflicting_shift_ids"] == [existing.json()["id"]]
    assert await shift_count(sessionmaker) == 1

    problem = assert_problem(await post(client, world, "commit", body), 409, "shift_conflict")
    assert problem["conflicting_shift_ids"] == [existing.json()["id"]]
    assert len(problem["conflicts"]) == 3
    assert await shift_count(sessionmaker) == 1  # all or nothing: the clean items were not written either


async def test_national_day_holidays_are_skipped_and_use_no_turn(client, sessionmaker):
    # The calendar itself: 2026-10-01..07 are National Day holidays; 10-10 (Saturday) is a make-up workday.
    assert all(chinese_calendar.is_holiday(date(2026, 10, d)) for d in range(1, 8))
    assert chinese_calendar.is_workday(date(2026, 10, 8)) and chinese_calendar.is_workday(date(2026, 10, 10))
    world = await build_world(sessionmaker)
    body = rota(world, "2026-09-28", "2026-10-11", pattern(world, "LS-01", [1, 2, 3, 4, 5], ["rep", "rep2"]))
    preview = (await post(client, world, "preview", body)).json()
    days = [i["starts_at"][:10] for i in preview["items"]]
    # Weekdays only: the make-up Saturday is not in a Monday–Friday pattern.
    assert days == ["2026-09-28", "2026-09-29", "2026-09-30", "2026-10-08", "2026-10-09"]
    assert [i["representative_name"] for i in preview["items"]] == ["张代表", "李代表", "张代表", "李代表", "张代表"]
    assert preview["skipped_holidays"] == ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"]

    # Weekends in the pattern: an ordinary weekend (09-19, 10-11) and the make-up Sunday 09-20 are planned;
    # the Mid-Autumn weekend (2026-09-25..27) and the National Day weekend are public holidays.
    assert chinese_calendar.get_holiday_detail(date(2026, 9, 27))[1] is not None
    weekend = rota(world, "2026-09-19", "2026-10-11", pattern(world, "LS-01", [6, 7], ["rep"]))
    preview = (await post(client, world, "preview", weekend)).json()
    days = [i["starts_at"][:10] for i in preview["items"]]
    assert days == ["2026-09-19", "2026-09-20", "2026-10-10", "2026-10-11"]
    assert preview["skipped_holidays"] == ["2026-09-26", "2026-09-27", "2026-10-03", "2026-10-04"]

    # Asked not to skip: every weekday is planned.
    everything = rota(world, "2026-09-28", "2026-10-11", pattern(world, "LS-01", [1, 2, 3, 4, 5], ["rep"]),
                      skip_holidays=False)
    preview = (await post(client, world, "preview", everything)).json()
    assert preview["count"] == 10 and preview["skipped_holidays"] == []

    response = await post(client, world, "commit", body)
    assert response.status_code == 201 and response.json()["count"] == 5
    assert await shift_count(sessionmaker) == 5


async def test_only_the_office_plans_a_rota(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = rota(world, "2030-03-04", "2030-03-10", pattern(world, "LS-01", [1], ["rep"]))
    for what in ("preview", "commit"):
        assert_problem(await post(client, world, what, body, who="rep"), 403, "forbidden")
        assert_problem(await post(client, world, what, body, who="handler_a"), 403, "forbidden")
        assert_problem(await client.post(f"/api/v1/rota/{what}", json=body), 401, "unauthorized")
    assert (await post(client, world, "commit", body, who="admin")).status_code == 201


async def test_a_malformed_rota_is_422(client, sessionmaker):
    world = await build_world(sessionmaker)
    good = pattern(world, "LS-01", [1], ["rep"])
    cases = [
        rota(world, "2030-03-10", "2030-03-04", good),
        rota(world, "2030-03-04", "2030-03-10", {**good, "weekdays": [8]}),
        rota(world, "2030-03-04", "2030-03-10", {**good, "start": "12:00", "end": "11:00"}),
        rota(world, "2030-03-04", "2030-03-10", {**good, "representative_ids": []}),
        rota(world, "2030-03-04", "2030-03-10"),
    ]
    for body in cases:
        assert (await post(client, world, "preview", body)).status_code == 422, body
    assert_problem(await post(client, world, "preview", rota(world, "2030-01-01", "2031-12-31", good)),
                   422, "range_too_long")
    assert_problem(await post(client, world, "commit", rota(world, "2030-03-04", "2030-03-10", {**good, "code": "XX-99"})),
                   422, "unknown_workroom")
    assert_problem(await post(client, world, "commit", rota(world, "2030-03-04", "2030-03-10",
                                                              {**good, "representative_ids": [999999]})),
                   422, "unknown_representative")
    assert await shift_count(sessionmaker) == 0


async def test_a_rota_commit_racing_a_single_shift_for_the_same_person_cannot_both_win(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = rota(world, "2030-03-04", "2030-03-10", pattern(world, "LS-01", [1, 3, 5], ["rep"]))
    single = client.post("/api/v1/workrooms/LS-02/shifts", headers=world.auth("admin"), json={
        "representative_id": world.representatives["rep"].id,
        "starts_at": "2030-03-06T10:00:00", "ends_at": "2030-03-06T12:00:00"})
    committed, created = await asyncio.gather(post(client, world, "commit", body), single)
    assert sorted([committed.status_code, created.status_code]) == [201, 409], (committed.text, created.text)
    assert await shift_count(sessionmaker) == (3 if committed.status_code == 201 else 1)


async def test_add_shifts_checks_every_item_and_writes_nothing_on_conflict(sessionmaker):
    world = await build_world(sessionmaker)
    ls01, ls02 = world.workrooms["LS-01"].id, world.workrooms["LS-02"].id
    rep, rep2 = world.representatives["rep"].id, world.representatives["rep2"].id
    at = lambda text: datetime.fromisoformat(text).replace(tzinfo=TZ)  # noqa: E731
    items = [
        (ls01, rep2, at("2030-03-04T09:00"), at("2030-03-04T10:00")),
        (ls01, rep, at("2030-03-04T09:00"), at("2030-03-04T10:00")),
        (ls02, rep, at("2030-03-04T09:30"), at("2030-03-04T10:30")),
    ]
    async with sessionmaker() as session, session.begin():
        try:
            await roster_service.add_shifts(session, shifts=items, actor=None)
        except roster_service.Conflict as exc:
            assert exc.code == "shift_conflict"
            assert [(c["index"], c["batch_indexes"]) for c in exc.extra["conflicts"]] == [(1, [2]), (2, [1])]
        else:
            raise AssertionError("expected shift_conflict")
    assert await shift_count(sessionmaker) == 0
    async with sessionmaker() as session, session.begin():
        created = await roster_service.add_shifts(session, shifts=[items[0], items[1]], actor=None)
        assert [s.representative_id for s in created] == [rep2, rep]
    assert await shift_count(sessionmaker) == 2
