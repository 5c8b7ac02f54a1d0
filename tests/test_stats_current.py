"""The summary's ``current``: forms in each state now, each equal to the forms list under its filter, and
the days-to-answer distribution (issue 17.1 and 17.5)."""

from __future__ import annotations

from datetime import timedelta

import re

import httpx
from sqlalchemy import select, update

from app.db import transaction
from app.models import OpinionForm, StatCell, utcnow
from app.services import stats as stats_service
from app.services import stats_current
from tests.factories import World, act, answered_form, assigned_form, build_world, submit
from tests.support.logins import sign_in


async def summary(client: httpx.AsyncClient, world: World, **headers: str) -> httpx.Response:
    return await client.get("/api/v1/stats/summary", headers={**world.auth("coordinator"), **headers})


async def listed(client: httpx.AsyncClient, world: World, filters: dict[str, object]) -> int:
    params = {k: ("true" if v is True else v) for k, v in filters.items()}
    response = await client.get("/api/v1/forms", params={**params, "limit": 200}, headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return len(response.json()["items"])


async def a_town(client: httpx.AsyncClient, sessionmaker, world: World) -> None:  # type: ignore[no-untyped-def]
    """Forms in every state: 2 waiting, 5 assigned (1 late, 1 escalated, 1 asking for an extension),
    2 answered (one of them closed), 1 declined."""
    for _ in range(2):
        await submit(client, workroom_code="LS-01")
    late, escalated, extension = [await assigned_form(client, world) for _ in range(3)]
    for _ in range(2):
        await assigned_form(client, world, unit="B")
    answered = await answered_form(client, world)
    await answered_form(client, world)
    assert (await act(client, world, "coordinator", answered["id"], "close", {"satisfaction": "satisfied"})).status_code == 200
    declined = await submit(client)
    assert (await act(client, world, "coordinator", declined["id"], "decline", {"reason": "重复"})).status_code == 200
    due = (utcnow() + timedelta(days=40)).isoformat()
    response = await act(client, world, "handler_a", extension["id"], "extension", {"due_at": due, "reason": "需协调"})
    assert response.status_code == 200, response.text
    now = utcnow()
    async with transaction(sessionmaker) as session:
        await session.execute(update(OpinionForm).where(OpinionForm.id == late["id"]).values(due_at=now - timedelta(hours=2)))
        await session.execute(update(OpinionForm).where(OpinionForm.id == escalated["id"]).values(due_at=now - timedelta(days=30)))


async def test_current_counts_the_forms_in_each_state_now(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    await a_town(client, sessionmaker, world)
    body = (await summary(client, world)).json()
    assert body["current"] == {
        "pending_triage": 2, "in_progress": 5, "awaiting_followup": 1, "overdue": 1, "escalated": 1,
        "extension_requested": 1,
    }
    # The cumulative counts stay what they were (the contract): every form that ever reached a step.
    assert (body["collected"], body["assigned"], body["answered"], body["closed"], body["declined"]) == (10, 7, 2, 1, 1)
    assert body["overdue"] == body["current"]["overdue"] + body["current"]["escalated"]


async def test_each_current_count_equals_the_list_filtered_to_that_state(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    await a_town(client, sessionmaker, world)
    current = (await summary(client, world)).json()["current"]
    assert set(current) == set(stats_service.CURRENT_FILTERS)
    for state, filters in stats_service.CURRENT_FILTERS.items():
        assert await listed(client, world, filters) == current[state], state


async def test_the_etag_changes_when_only_a_current_count_changes(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world)
    first = await summary(client, world)
    assert (await summary(client, world, **{"If-None-Match": first.headers["ETag"]})).status_code == 304
    # An extension request changes no cumulative count, only current.extension_requested.
    due = (utcnow() + timedelta(days=40)).isoformat()
    assert (await act(client, world, "handler_a", form["id"], "extension", {"due_at": due, "reason": "需协调"})).status_code == 200
    after = await summary(client, world, **{"If-None-Match": first.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != first.headers["ETag"]
    assert after.json()["current"]["extension_requested"] == 1
    assert {k: v for k, v in after.json().items() if k not in ("current", "as_of")} == \
        {k: v for k, v in first.json().items() if k not in ("current", "as_of")}


async def test_current_follows_the_summary_filters(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    await submit(client, workroom_code="LS-01")
    await submit(client, workroom_code="LS-02")
    await assigned_form(client, world, workroom_code="LS-02")
    response = await client.get("/api/v1/stats/summary", params={"workroom": "LS-02"}, headers=world.auth("coordinator"))
    current = response.json()["current"]
    assert (current["pending_triage"], current["in_progress"]) == (1, 1)


async def test_verify_recounts_the_current_counts_and_reports_a_difference(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    await a_town(client, sessionmaker, world)
    async with sessionmaker() as session:
        assert await stats_current.verify(session) == []
        assert await stats_service.verify(session) == []

    # One gauge drifts in one month cell (as a bug in an action would make it): both checks say so.
    async with transaction(sessionmaker) as session:
        cell = (await session.scalars(select(StatCell).where(StatCell.grain == "m", StatCell.now_assigned > 0))).first()
        cell.now_assigned += 1
    async with sessionmaker() as session:
        differences = await stats_current.verify(session)
        cells = await stats_service.verify(session)
    assert differences == [{"table": "current", "key": "in_progress", "expected": 5, "stored": 6}]
    assert [(c["grain"], c["stored"]["now_assigned"] - c["expected"]["now_assigned"]) for c in cells] == [("m", 1)]


async def test_answer_days_puts_each_answered_form_in_its_bucket(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    # Six forms received 0 to 40 calendar days ago (only the receipt time moves: the counters' cell is the
    # day of submission, which stays), each then answered through the API: the counters take each answer's
    # working days as the workflow computes them.
    forms = [await assigned_form(client, world) for _ in range(6)]
    for form, back in zip(forms, (0, 1, 4, 8, 21, 40), strict=True):
        async with transaction(sessionmaker) as session:
            stored = await session.get(OpinionForm, form["id"])
            stored.submitted_at -= timedelta(days=back)
        reply = await act(client, world, "coordinator", form["id"], "reply", {"reply": "已安排维修，三日内完成。"})
        assert reply.status_code == 200, reply.text
    await assigned_form(client, world)  # not answered: in no bucket
    async with sessionmaker() as session:
        taken = list(await session.scalars(select(OpinionForm.answer_working_days).where(
            OpinionForm.id.in_([f["id"] for f in forms]))))
    expected = [("le1", 0), ("2-3", 0), ("4-7", 0), ("8-15", 0), ("gt15", 0)]
    for days in taken:
        index = next(i for i, (_, _, least, most) in enumerate(stats_service.ANSWER_DAY_BUCKETS)
                     if days >= least and (most is None or days <= most))
        expected[index] = (expected[index][0], expected[index][1] + 1)
    assert sum(1 for _, n in expected if n) >= 4, taken  # the forms fall in most buckets
    first = await client.get("/api/v1/stats/answer-days", headers=world.auth("coordinator"))
    assert first.status_code == 200, first.text
    items = first.json()["items"]
    assert [(i["bucket"], i["answered"]) for i in items] == expected
    assert items[0]["label"] == "1 个工作日内" and items[-1]["max_days"] is None
    again = await client.get("/api/v1/stats/answer-days", headers={**world.auth("coordinator"),
                                                                    "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert (await client.get("/api/v1/stats/answer-days")).status_code == 401


async def test_the_dashboard_tiles_link_to_exactly_their_forms(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    await a_town(client, sessionmaker, world)
    await sign_in(client, "coordinator")
    page = (await client.get("/office")).text
    tiles = re.findall(r'<a class="stat tile[^"]*" href="([^"]+)" data-tile="([a-z_]+)"><b data-stat="[^"]+">(\d+)</b>', page)
    assert {key for _, key, _ in tiles} == {*stats_service.CURRENT_FILTERS, "warning"}
    for href, key, value in tiles:
        listing = await client.get(href.replace("&amp;", "&"))
        assert listing.status_code == 200
        assert f"共 {value} 份" in listing.text, (key, href)  # the list counts exactly what the tile does
    for chart in ("by-workroom", "by-category", "monthly", "answer-days"):
        assert f'data-chart="{chart}"' in page
    assert page.count('<table class="chart-table"') == 4
