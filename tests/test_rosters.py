"""Duty shifts through the API: the overlap rule (also under a race), lists by Shanghai day, who is on
duty, permissions, swaps, check-ins and attendance. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from app.config import TZ
from app.models import Shift, ShiftSwap
from tests.factories import World, build_world
from tests.support.problems import assert_problem

SHIFTS = "/api/v1/workrooms/{}/shifts"


def local(text: str) -> str:
    """A Shanghai wall-clock time as the API writes it (with +08:00)."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ).isoformat()


async def add(
    client: httpx.AsyncClient, world: World, rep: str, starts: str, ends: str, *, workroom: str = "LS-01",
    who: str = "coordinator",
) -> httpx.Response:
    return await client.post(
        SHIFTS.format(workroom), headers=world.auth(who),
        json={"representative_id": world.representatives[rep].id, "starts_at": starts, "ends_at": ends},
    )


async def added(client: httpx.AsyncClient, world: World, rep: str, starts: str, ends: str, **kw: Any) -> dict[str, Any]:
    response = await add(client, world, rep, starts, ends, **kw)
    assert response.status_code == 201, response.text
    return response.json()


async def shift_count(sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Shift))


def iso(moment: datetime) -> str:
    return moment.astimezone(TZ).isoformat()


# --- create, list, delete ----------------------------------------------------------------------------


async def test_coordinator_creates_lists_and_deletes_a_shift(client, sessionmaker):
    world = await build_world(sessionmaker)
    shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    assert shift["workroom_code"] == "LS-01"
    assert shift["representative_name"] == "张代表" and shift["representative_level"] == "town"
    assert (shift["starts_at"], shift["ends_at"]) == (local("2030-03-04T09:00"), local("2030-03-04T11:30"))
    assert shift["checked_in_at"] is None

    listed = await client.get(SHIFTS.format("LS-01"), params={"from": "2030-03-04", "to": "2030-03-04"})
    assert listed.status_code == 200  # public: no token
    assert [s["id"] for s in listed.json()["items"]] == [shift["id"]]
    assert "phone" not in listed.text and "13812345678" not in listed.text

    response = await client.delete(f"/api/v1/shifts/{shift['id']}", headers=world.auth("admin"))
    assert response.status_code == 204
    listed = await client.get(SHIFTS.format("LS-01"), params={"from": "2030-03-04", "to": "2030-03-04"})
    assert listed.json()["items"] == []
    assert_problem(await client.delete(f"/api/v1/shifts/{shift['id']}", headers=world.auth("admin")), 404, "shift_not_found")


async def test_an_offset_in_the_request_is_honoured_and_answered_in_shanghai_time(client, sessionmaker):
    world = await build_world(sessionmaker)
    shift = await added(client, world, "rep", "2030-03-04T01:00:00Z", "2030-03-04T03:00:00Z")
    assert (shift["starts_at"], shift["ends_at"]) == (local("2030-03-04T09:00"), local("2030-03-04T11:00"))


async def test_list_by_shanghai_days_a_night_shift_appears_on_both_days(client, sessionmaker):
    world = await build_world(sessionmaker)
    night = await added(client, world, "rep", "2030-03-04T23:30:00", "2030-03-05T01:00:00")
    morning = await added(client, world, "rep", "2030-03-05T09:00:00", "2030-03-05T10:00:00")
    # 00:00–00:30 local on the 4th is still the 3rd in UTC: it belongs to the 4th.
    early = await added(client, world, "rep", "2030-03-04T00:00:00", "2030-03-04T00:30:00")
    # Ends exactly at midnight: half-open, so not on the 6th.
    late = await added(client, world, "rep", "2030-03-05T23:00:00", "2030-03-06T00:00:00")

    async def ids(day_from: str, day_to: str) -> list[int]:
        response = await client.get(SHIFTS.format("LS-01"), params={"from": day_from, "to": day_to})
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    assert await ids("2030-03-03", "2030-03-03") == []
    assert await ids("2030-03-04", "2030-03-04") == [early["id"], night["id"]]
    assert await ids("2030-03-05", "2030-03-05") == [night["id"], morning["id"], late["id"]]
    assert await ids("2030-03-06", "2030-03-06") == []
    assert await ids("2030-03-04", "2030-03-05") == [early["id"], night["id"], morning["id"], late["id"]]
    # Another workroom's list does not show them.
    response = await client.get(SHIFTS.format("LS-02"), params={"from": "2030-03-04", "to": "2030-03-05"})
    assert response.json()["items"] == []


async def test_list_rejects_reversed_and_overlong_ranges_and_unknown_workrooms(client, sessionmaker):
    await build_world(sessionmaker)
    assert_problem(await client.get(SHIFTS.format("LS-01"), params={"from": "2030-03-05", "to": "2030-03-04"}),
                   422, "invalid_range")
    assert_problem(await client.get(SHIFTS.format("LS-01"), params={"from": "2030-01-01", "to": "2030-12-31"}),
                   422, "range_too_long")
    assert_problem(await client.get(SHIFTS.format("XX-99")), 404, "workroom_not_found")
    assert (await client.get(SHIFTS.format("LS-01"))).status_code == 200  # default: this week


async def test_times_must_be_ordered_and_at_most_a_day_long(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert_problem(await add(client, world, "rep", "2030-03-04T11:00:00", "2030-03-04T09:00:00"), 422, "invalid_shift_time")
    assert_problem(await add(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T09:00:00"), 422, "invalid_shift_time")
    assert_problem(await add(client, world, "rep", "2030-03-04T09:00:00", "2030-03-05T09:00:01"), 422, "shift_too_long")
    await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-05T09:00:00")  # exactly 24 h is fine
    assert await shift_count(sessionmaker) == 1


async def test_unknown_or_inactive_representative_and_inactive_workroom_are_refused(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post(SHIFTS.format("LS-01"), headers=world.auth("coordinator"), json={
        "representative_id": 999999, "starts_at": "2030-03-04T09:00:00", "ends_at": "2030-03-04T10:00:00"})
    assert_problem(response, 422, "unknown_representative")
    response = await client.patch(f"/api/v1/representatives/{world.representatives['rep2'].id}",
                                  headers=world.auth("admin"), json={"active": False})
    assert response.status_code == 200, response.text
    assert_problem(await add(client, world, "rep2", "2030-03-04T09:00:00", "2030-03-04T10:00:00"),
                   422, "representative_inactive")
    response = await client.patch("/api/v1/workrooms/LS-02", headers=world.auth("admin"), json={"active": False})
    assert response.status_code == 200, response.text
    assert_problem(await add(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T10:00:00", workroom="LS-02"),
                   422, "workroom_inactive")
    assert_problem(await add(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T10:00:00", workroom="XX-99"),
                   404, "workroom_not_found")
    assert await shift_count(sessionmaker) == 0


# --- permissions -------------------------------------------------------------------------------------


async def test_only_the_office_creates_and_deletes_shifts(client, sessionmaker):
    world = await build_world(sessionmaker)
    for who in ("rep", "handler_a"):
        assert_problem(await add(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T10:00:00", who=who),
                       403, "forbidden")
    response = await client.post(SHIFTS.format("LS-01"), json={
        "representative_id": world.representatives["rep"].id, "starts_at": "2030-03-04T09:00:00",
        "ends_at": "2030-03-04T10:00:00"})
    assert_problem(response, 401, "unauthorized")
    shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T10:00:00", who="admin")

    assert_problem(await client.delete(f"/api/v1/shifts/{shift['id']}"), 401, "unauthorized")
    assert_problem(await client.delete(f"/api/v1/shifts/{shift['id']}", headers=world.auth("rep")), 403, "forbidden")
    assert await shift_count(sessionmaker) == 1


# --- the overlap rule --------------------------------------------------------------------------------


async def test_overlap_at_the_same_workroom_is_409_with_the_conflicting_shift(client, sessionmaker):
    world = await build_world(sessionmaker)
    first = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    problem = assert_problem(await add(client, world, "rep", "2030-03-04T11:00:00", "2030-03-04T12:00:00"),
                             409, "shift_conflict")
    assert problem["conflicting_shift_ids"] == [first["id"]]
    assert problem["conflicts"][0]["shift_ids"] == [first["id"]]
    assert problem["conflicts"][0]["representative_id"] == world.representatives["rep"].id
    # Inside, around: also overlaps.
    assert_problem(await add(client, world, "rep", "2030-03-04T09:30:00", "2030-03-04T10:00:00"), 409, "shift_conflict")
    assert_problem(await add(client, world, "rep", "2030-03-04T08:00:00", "2030-03-04T12:00:00"), 409, "shift_conflict")
    assert await shift_count(sessionmaker) == 1


async def test_overlap_at_another_workroom_is_409_too(client, sessionmaker):
    world = await build_world(sessionmaker)
    first = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00", workroom="LS-01")
    problem = assert_problem(
        await add(client, world, "rep", "2030-03-04T10:00:00", "2030-03-04T12:00:00", workroom="LS-02"),
        409, "shift_conflict")
    assert problem["conflicting_shift_ids"] == [first["id"]]
    assert await shift_count(sessionmaker) == 1


async def test_touching_shifts_do_not_overlap_and_other_people_may_share_the_time(client, sessionmaker):
    world = await build_world(sessionmaker)
    await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    await added(client, world, "rep", "2030-03-04T11:30:00", "2030-03-04T14:00:00", workroom="LS-02")
    await added(client, world, "rep", "2030-03-04T08:00:00", "2030-03-04T09:00:00")
    await added(client, world, "rep2", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    assert await shift_count(sessionmaker) == 4


async def test_two_racing_overlapping_creates_exactly_one_wins(client, sessionmaker):
    world = await build_world(sessionmaker)
    responses = await asyncio.gather(
        add(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:00:00", workroom="LS-01"),
        add(client, world, "rep", "2030-03-04T10:00:00", "2030-03-04T12:00:00", workroom="LS-02"),
    )
    assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 201).json()
    loser = next(r for r in responses if r.status_code == 409)
    assert assert_problem(loser, 409, "shift_conflict")["conflicting_shift_ids"] == [winner["id"]]
    assert await shift_count(sessionmaker) == 1


async def test_many_racing_creates_for_one_person_leave_no_overlap(client, sessionmaker):
    world = await build_world(sessionmaker)
    responses = await asyncio.gather(*(
        add(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T10:00:00", workroom=("LS-01", "LS-02")[i % 2])
        for i in range(6)
    ))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5, [r.text for r in responses]
    assert await shift_count(sessionmaker) == 1


# --- on duty -----------------------------------------------------------------------------------------


async def test_on_duty_at_a_moment_names_the_representatives_without_phones(client, sessionmaker):
    world = await build_world(sessionmaker)
    rep_shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    rep2_shift = await added(client, world, "rep2", "2030-03-04T10:00:00", "2030-03-04T12:00:00")

    async def on_duty(at: str) -> list[tuple[str, int]]:
        response = await client.get("/api/v1/workrooms/LS-01/on-duty", params={"at": at})
        assert response.status_code == 200, response.text
        assert "phone" not in response.text and "1381234" not in response.text
        return [(r["name"], r["shift_id"]) for r in response.json()["representatives"]]

    assert await on_duty("2030-03-04T08:59:59") == []
    assert await on_duty("2030-03-04T09:00:00") == [("张代表", rep_shift["id"])]
    assert await on_duty("2030-03-04T10:30:00") == [("张代表", rep_shift["id"]), ("李代表", rep2_shift["id"])]
    assert await on_duty("2030-03-04T03:45:00Z") == [("李代表", rep2_shift["id"])]  # 11:45 local
    assert await on_duty("2030-03-04T12:00:00") == []  # the end is not included
    response = await client.get("/api/v1/workrooms/LS-01/on-duty")
    assert response.status_code == 200 and response.json()["representatives"] == []  # now
    assert_problem(await client.get("/api/v1/workrooms/XX-99/on-duty"), 404, "workroom_not_found")


async def test_on_duty_now_by_default(client, sessionmaker):
    world = await build_world(sessionmaker)
    now = datetime.now(UTC)
    shift = await added(client, world, "rep", iso(now - timedelta(hours=1)), iso(now + timedelta(hours=1)))
    response = await client.get("/api/v1/workrooms/LS-01/on-duty")
    assert [r["shift_id"] for r in response.json()["representatives"]] == [shift["id"]]
    assert response.json()["representatives"][0]["level"] == "town"


# --- swaps -------------------------------------------------------------------------------------------


async def swap_action(client, world: World, who: str, swap_id: int, action: str) -> httpx.Response:
    return await client.post(f"/api/v1/swaps/{swap_id}/{action}", headers=world.auth(who))


async def ask_swap(client, world: World, shift_id: int, *, who: str = "rep", to: str = "rep2") -> httpx.Response:
    return await client.post(f"/api/v1/shifts/{shift_id}/swap", headers=world.auth(who),
                             json={"to_representative_id": world.representatives[to].id, "note": "家中有事"})


async def holder(sessionmaker, shift_id: int) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(Shift.representative_id).where(Shift.id == shift_id))


async def test_swap_requested_accepted_approved_changes_the_shifts_holder(client, sessionmaker):
    world = await build_world(sessionmaker)
    shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    response = await ask_swap(client, world, shift["id"])
    assert response.status_code == 201, response.text
    swap = response.json()
    assert swap["status"] == "requested" and swap["note"] == "家中有事"
    assert swap["from_representative_id"] == world.representatives["rep"].id

    # Both representatives see it; a coordinator sees all.
    for who in ("rep", "rep2", "coordinator"):
        listed = await client.get("/api/v1/swaps", headers=world.auth(who))
        assert [s["id"] for s in listed.json()["items"]] == [swap["id"]], who
    assert_problem(await client.get("/api/v1/swaps", headers=world.auth("handler_a")), 403, "forbidden")

    response = await swap_action(client, world, "rep2", swap["id"], "accept")
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert response.json()["answered_at"] is not None
    assert await holder(sessionmaker, shift["id"]) == world.representatives["rep"].id  # not yet

    listed = await client.get("/api/v1/swaps", params={"status": "accepted"}, headers=world.auth("coordinator"))
    assert [s["id"] for s in listed.json()["items"]] == [swap["id"]]
    listed = await client.get("/api/v1/swaps", params={"status": "requested"}, headers=world.auth("coordinator"))
    assert listed.json()["items"] == []

    response = await swap_action(client, world, "coordinator", swap["id"], "approve")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    assert response.json()["decided_by_user_id"] == world.user_ids["coordinator"]
    assert await holder(sessionmaker, shift["id"]) == world.representatives["rep2"].id
    listed = await client.get(SHIFTS.format("LS-01"), params={"from": "2030-03-04", "to": "2030-03-04"})
    assert listed.json()["items"][0]["representative_name"] == "李代表"


async def test_swap_transitions_that_are_not_allowed_are_409_swap_state(client, sessionmaker):
    world = await build_world(sessionmaker)
    shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    swap = (await ask_swap(client, world, shift["id"])).json()
    # Not yet accepted: the office cannot decide.
    assert_problem(await swap_action(client, world, "coordinator", swap["id"], "approve"), 409, "swap_state")
    assert_problem(await swap_action(client, world, "coordinator", swap["id"], "refuse"), 409, "swap_state")
    # Only the one asked answers.
    assert_problem(await swap_action(client, world, "rep", swap["id"], "accept"), 403, "not_your_swap")
    assert_problem(await swap_action(client, world, "coordinator", swap["id"], "accept"), 403, "not_your_swap")
    # Only the office decides.
    assert (await swap_action(client, world, "rep2", swap["id"], "accept")).status_code == 200
    assert_problem(await swap_action(client, world, "rep2", swap["id"], "approve"), 403, "forbidden")
    assert_problem(await swap_action(client, world, "rep2", swap["id"], "accept"), 409, "swap_state")
    assert_problem(await swap_action(client, world, "rep2", swap["id"], "decline"), 409, "swap_state")
    response = await swap_action(client, world, "coordinator", swap["id"], "refuse")
    assert response.status_code == 200 and response.json()["status"] == "refused"
    for who, action in (("coordinator", "approve"), ("coordinator", "refuse"), ("rep", "cancel"), ("rep2", "accept")):
        assert_problem(await swap_action(client, world, who, swap["id"], action), 409, "swap_state")
    assert await holder(sessionmaker, shift["id"]) == world.representatives["rep"].id

    # Declined, then nothing more; a fresh request is possible afterwards.
    swap = (await ask_swap(client, world, shift["id"])).json()
    assert_problem(await ask_swap(client, world, shift["id"]), 409, "swap_pending")
    response = await swap_action(client, world, "rep2", swap["id"], "decline")
    assert response.status_code == 200 and response.json()["status"] == "declined"
    assert_problem(await swap_action(client, world, "coordinator", swap["id"], "approve"), 409, "swap_state")
    # Withdrawn by the asker.
    swap = (await ask_swap(client, world, shift["id"])).json()
    assert_problem(await swap_action(client, world, "rep2", swap["id"], "cancel"), 403, "not_your_swap")
    response = await swap_action(client, world, "rep", swap["id"], "cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert_problem(await swap_action(client, world, "rep2", swap["id"], "accept"), 409, "swap_state")
    assert await holder(sessionmaker, shift["id"]) == world.representatives["rep"].id
    assert_problem(await swap_action(client, world, "coordinator", 999999, "approve"), 404, "swap_not_found")


async def test_only_the_holder_or_the_office_asks_for_a_swap(client, sessionmaker):
    world = await build_world(sessionmaker)
    shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    assert_problem(await ask_swap(client, world, shift["id"], who="rep2", to="rep2"), 403, "not_your_shift")
    assert_problem(await ask_swap(client, world, shift["id"], who="handler_a"), 403, "not_your_shift")
    assert_problem(await ask_swap(client, world, shift["id"], to="rep"), 422, "same_representative")
    response = await client.post(f"/api/v1/shifts/{shift['id']}/swap", json={"to_representative_id": 1})
    assert_problem(response, 401, "unauthorized")
    response = await ask_swap(client, world, shift["id"], who="coordinator")  # on the holder's behalf
    assert response.status_code == 201, response.text
    assert response.json()["from_representative_id"] == world.representatives["rep"].id
    # A started shift can no longer be swapped.
    now = datetime.now(UTC)
    running = await added(client, world, "rep", iso(now - timedelta(minutes=5)), iso(now + timedelta(hours=1)))
    assert_problem(await ask_swap(client, world, running["id"]), 409, "shift_started")


async def test_approving_a_swap_that_would_double_book_the_taker_is_409_and_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    swap = (await ask_swap(client, world, shift["id"])).json()
    assert (await swap_action(client, world, "rep2", swap["id"], "accept")).status_code == 200
    # Meanwhile 李代表 is given another shift that overlaps.
    busy = await added(client, world, "rep2", "2030-03-04T11:00:00", "2030-03-04T12:00:00", workroom="LS-02")

    problem = assert_problem(await swap_action(client, world, "coordinator", swap["id"], "approve"), 409, "shift_conflict")
    assert problem["conflicting_shift_ids"] == [busy["id"]]
    assert await holder(sessionmaker, shift["id"]) == world.representatives["rep"].id
    async with sessionmaker() as session:
        assert (await session.get(ShiftSwap, swap["id"])).status == "accepted"
    # Once the other shift is gone, approval works.
    assert (await client.delete(f"/api/v1/shifts/{busy['id']}", headers=world.auth("coordinator"))).status_code == 204
    assert (await swap_action(client, world, "coordinator", swap["id"], "approve")).status_code == 200
    assert await holder(sessionmaker, shift["id"]) == world.representatives["rep2"].id


async def test_approval_racing_a_new_shift_for_the_taker_cannot_double_book_them(client, sessionmaker):
    world = await build_world(sessionmaker)
    shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    swap = (await ask_swap(client, world, shift["id"])).json()
    assert (await swap_action(client, world, "rep2", swap["id"], "accept")).status_code == 200

    approved, created = await asyncio.gather(
        swap_action(client, world, "coordinator", swap["id"], "approve"),
        add(client, world, "rep2", "2030-03-04T10:00:00", "2030-03-04T12:00:00", workroom="LS-02", who="admin"),
    )
    assert sorted([approved.status_code, created.status_code]) == [200, 409], (approved.text, created.text)
    assert_problem(approved if approved.status_code == 409 else created, 409, "shift_conflict")
    expected = "rep2" if approved.status_code == 200 else "rep"
    assert await holder(sessionmaker, shift["id"]) == world.representatives[expected].id


async def test_deleting_a_shift_takes_its_swaps_with_it(client, sessionmaker):
    world = await build_world(sessionmaker)
    shift = await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T11:30:00")
    swap = (await ask_swap(client, world, shift["id"])).json()
    assert (await client.delete(f"/api/v1/shifts/{shift['id']}", headers=world.auth("coordinator"))).status_code == 204
    assert (await client.get("/api/v1/swaps", headers=world.auth("coordinator"))).json()["items"] == []
    assert_problem(await swap_action(client, world, "rep2", swap["id"], "accept"), 404, "swap_not_found")


# --- check-in ----------------------------------------------------------------------------------------


async def test_check_in_window_opens_30_minutes_before_and_closes_at_the_end(client, sessionmaker):
    world = await build_world(sessionmaker)
    now = datetime.now(UTC)
    too_early = await added(client, world, "rep", iso(now + timedelta(minutes=40)), iso(now + timedelta(hours=2)))
    soon = await added(client, world, "rep", iso(now + timedelta(minutes=20)), iso(now + timedelta(minutes=40)),
                       workroom="LS-02")
    over = await added(client, world, "rep", iso(now - timedelta(hours=2)), iso(now - timedelta(seconds=1)))

    problem = assert_problem(await client.post(f"/api/v1/shifts/{too_early['id']}/check-in", headers=world.auth("rep")),
                             409, "check_in_window")
    assert problem["opens_at"] and problem["closes_at"]
    assert_problem(await client.post(f"/api/v1/shifts/{over['id']}/check-in", headers=world.auth("rep")),
                   409, "check_in_window")
    response = await client.post(f"/api/v1/shifts/{soon['id']}/check-in", headers=world.auth("rep"))
    assert response.status_code == 200, response.text
    assert response.json()["checked_in_at"] is not None

    # The public roster says who is on duty, not when each representative arrived: that is the office's.
    day = {"from": soon["starts_at"][:10], "to": soon["ends_at"][:10]}
    public = (await client.get("/api/v1/workrooms/LS-02/shifts", params=day)).json()["items"]
    staff = (await client.get("/api/v1/workrooms/LS-02/shifts", params=day, headers=world.auth("coordinator"))).json()["items"]
    assert [s["checked_in_at"] for s in public if s["id"] == soon["id"]] == [None]
    assert [s["checked_in_at"] is not None for s in staff if s["id"] == soon["id"]] == [True]


async def test_check_in_is_the_holders_and_a_second_one_keeps_the_first_time(client, sessionmaker):
    world = await build_world(sessionmaker)
    now = datetime.now(UTC)
    shift = await added(client, world, "rep", iso(now - timedelta(minutes=10)), iso(now + timedelta(hours=1)))
    url = f"/api/v1/shifts/{shift['id']}/check-in"
    assert_problem(await client.post(url, headers=world.auth("rep2")), 403, "not_your_shift")
    assert_problem(await client.post(url, headers=world.auth("coordinator")), 403, "not_your_shift")
    assert_problem(await client.post(url), 401, "unauthorized")
    first = await client.post(url, headers=world.auth("rep"))
    assert first.status_code == 200, first.text
    await asyncio.sleep(0.01)
    second = await client.post(url, headers=world.auth("rep"))
    assert second.status_code == 200
    assert second.json()["checked_in_at"] == first.json()["checked_in_at"]
    assert_problem(await client.delete(f"/api/v1/shifts/{shift['id']}", headers=world.auth("coordinator")),
                   409, "shift_checked_in")


# --- attendance --------------------------------------------------------------------------------------


async def test_attendance_counts_planned_checked_in_and_missed_by_representative_workroom_and_month(client, sessionmaker):
    world = await build_world(sessionmaker)
    now = datetime.now(UTC)
    # 张代表: one running and checked in, one ended without check-in, one in the future. 李代表: one ended.
    running = await added(client, world, "rep", iso(now - timedelta(minutes=10)), iso(now + timedelta(hours=1)))
    missed_start = now - timedelta(hours=5)
    await added(client, world, "rep", iso(missed_start), iso(now - timedelta(hours=4)), workroom="LS-02")
    await added(client, world, "rep", iso(now + timedelta(hours=2)), iso(now + timedelta(hours=3)))
    await added(client, world, "rep2", iso(now - timedelta(hours=3)), iso(now - timedelta(hours=2)), workroom="LS-02")
    assert (await client.post(f"/api/v1/shifts/{running['id']}/check-in", headers=world.auth("rep"))).status_code == 200
    # Outside the range: not counted.
    await added(client, world, "rep", "2030-03-04T09:00:00", "2030-03-04T10:00:00")

    today = now.astimezone(TZ).date()
    params = {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}

    async def rows(group: str) -> list[dict[str, Any]]:
        response = await client.get("/api/v1/attendance", params={**params, "group": group},
                                    headers=world.auth("coordinator"))
        assert response.status_code == 200, response.text
        assert response.json()["group"] == group and response.json()["from"] == params["from"]
        return response.json()["items"]

    rep_id, rep2_id = world.representatives["rep"].id, world.representatives["rep2"].id
    assert await rows("representative") == [
        {"representative_id": rep_id, "representative_name": "张代表", "planned": 3, "checked_in": 1, "missed": 1,
         "rate": round(1 / 3, 4)},
        {"representative_id": rep2_id, "representative_name": "李代表", "planned": 1, "checked_in": 0, "missed": 1,
         "rate": 0.0},
    ]
    by_workroom = {r["workroom_code"]: (r["planned"], r["checked_in"], r["missed"]) for r in await rows("workroom")}
    assert by_workroom == {"LS-01": (2, 1, 0), "LS-02": (2, 0, 2)}
    by_month = await rows("month")
    assert sum(r["planned"] for r in by_month) == 4 and sum(r["checked_in"] for r in by_month) == 1
    expected_months = {(now + d).astimezone(TZ).strftime("%Y-%m") for d in (
        timedelta(minutes=-10), -timedelta(hours=5), timedelta(hours=2), -timedelta(hours=3))}
    assert {r["month"] for r in by_month} == expected_months

    assert_problem(await client.get("/api/v1/attendance", params=params, headers=world.auth("rep")), 403, "forbidden")
    assert_problem(await client.get("/api/v1/attendance", params=params), 401, "unauthorized")
    response = await client.get("/api/v1/attendance", params={**params, "group": "year"}, headers=world.auth("admin"))
    assert response.status_code == 422


async def test_attendance_month_follows_shanghai_time(client, sessionmaker):
    world = await build_world(sessionmaker)
    # 2030-03-31 23:30 local is still March locally but 15:30 UTC; 2030-04-01 00:30 local is 03-31 16:30 UTC.
    await added(client, world, "rep", "2030-03-31T23:30:00", "2030-04-01T00:15:00")
    await added(client, world, "rep", "2030-04-01T00:30:00", "2030-04-01T01:00:00")
    response = await client.get("/api/v1/attendance", headers=world.auth("coordinator"),
                                params={"from": "2030-03-01", "to": "2030-04-30", "group": "month"})
    assert response.status_code == 200, response.text
    assert [(r["month"], r["planned"]) for r in response.json()["items"]] == [("2030-03", 1), ("2030-04", 1)]
