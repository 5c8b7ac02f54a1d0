"""Mobile service points: planning sessions, the public calendar, and the collection funnel."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from app.config import TZ
from app.db import transaction
from app.models import Representative, Workroom
from tests.factories import World, act, build_world, submit


def _local(days: int, hour: int = 9) -> str:
    """A local (Asia/Shanghai) time ``days`` from today, as people in the town write it: no offset."""
    day = datetime.now(TZ).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour).isoformat()


def _body(world: World, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workroom_code": "LS-01", "title": "洛社菜场流动服务点", "place_type": "market", "location": "洛社菜场东门",
        "starts_at": _local(3, 8), "ends_at": _local(3, 11),
        "representative_ids": [world.representatives["rep"].id],
    }
    body.update(fields)
    return body


async def _create(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/service-points", json=_body(world, **fields), headers=world.auth("coordinator"))
    assert response.status_code == 201, response.text
    return response.json()


async def test_coordinator_creates_a_session_and_the_public_reads_it_without_phone_numbers(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    rep, rep2 = world.representatives["rep"], world.representatives["rep2"]
    created = await _create(client, world, representative_ids=[rep.id, rep2.id, rep.id])
    assert created["workroom_code"] == "LS-01" and created["place_type"] == "market"
    assert created["starts_at"] == _local(3, 8) + "+08:00"
    assert [r["id"] for r in created["representatives"]] == [rep.id, rep2.id]
    assert created["forms_collected"] == 0

    listed = await client.get("/api/v1/service-points")
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["items"]] == [created["id"]]
    detail = await client.get(f"/api/v1/service-points/{created['id']}")
    assert detail.status_code == 200
    assert detail.json()["representatives"][0] == {"id": rep.id, "name": "张代表", "level": "town"}
    for text in (listed.text, detail.text):
        assert "1381234" not in text and "5678" not in text and "phone" not in text


async def test_public_calendar_shows_the_next_30_days_by_default_and_filters(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    past = await _create(client, world, title="上周的会场", starts_at=_local(-7), ends_at=_local(-7, 11))
    soon = await _create(client, world, title="村口会场", place_type="village", starts_at=_local(2), ends_at=_local(2, 11))
    later = await _create(client, world, title="下月会场", starts_at=_local(45), ends_at=_local(45, 11))
    other = await _create(client, world, workroom_code="LS-02", title="车间会场", place_type="workshop",
                          starts_at=_local(1), ends_at=_local(1, 11))

    async def ids(**params: Any) -> list[int]:
        response = await client.get("/api/v1/service-points", params=params)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["items"]]

    assert await ids() == [other["id"], soon["id"]]  # upcoming, in order of start, 30 days ahead
    assert await ids(workroom="LS-01") == [soon["id"]]
    assert await ids(place_type="workshop") == [other["id"]]
    day = (datetime.now(TZ).date() + timedelta(days=-7)).isoformat()
    assert await ids(**{"from": day, "to": day}) == [past["id"]]
    far = (datetime.now(TZ).date() + timedelta(days=100)).isoformat()
    assert await ids(**{"from": day, "to": far, "workroom": "LS-01"}) == [past["id"], soon["id"], later["id"]]

    page = await client.get("/api/v1/service-points", params={"limit": 1})
    assert len(page.json()["items"]) == 1 and page.json()["next_cursor"]
    rest = await client.get("/api/v1/service-points", params={"limit": 1, "cursor": page.json()["next_cursor"]})
    assert [p["id"] for p in rest.json()["items"]] == [soon["id"]] and rest.json()["next_cursor"] is None

    assert (await client.get("/api/v1/service-points", params={"place_type": "beach"})).status_code == 422
    assert (await client.get("/api/v1/service-points", params={"workroom": "NOPE"})).status_code == 404


async def test_detail_counts_the_forms_submitted_at_that_session(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    point = await _create(client, world)
    other = await _create(client, world, title="另一场")
    for _ in range(2):
        await submit(client, service_point_id=point["id"])
    await submit(client, service_point_id=other["id"])
    await submit(client, workroom_code="LS-01")  # at the workroom itself: not this session's
    detail = (await client.get(f"/api/v1/service-points/{point['id']}")).json()
    assert detail["forms_collected"] == 2
    assert detail["answered"] == 0 and detail["answer_rate"] == 0.0 and detail["satisfaction_rate"] is None
    assert (await client.get("/api/v1/service-points/999999")).status_code == 404


async def test_invalid_sessions_are_refused_with_422(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        session.add(Workroom(code="LS-99", name="已撤销工作室", active=False))
        retired = Representative(name="退休代表", active=False)
        session.add(retired)
        await session.flush()
        retired_id = retired.id
    headers = world.auth("coordinator")
    cases = {
        "ends_before_start": _body(world, starts_at=_local(3, 11), ends_at=_local(3, 8)),
        "ends_at_start": _body(world, starts_at=_local(3, 8), ends_at=_local(3, 8)),
        "unknown_representative": _body(world, representative_ids=[999_999]),
        "inactive_representative": _body(world, representative_ids=[retired_id]),
        "unknown_workroom": _body(world, workroom_code="LS-77"),
        "inactive_workroom": _body(world, workroom_code="LS-99"),
        "bad_place_type": _body(world, place_type="beach"),
        "empty_title": _body(world, title=""),
        "bad_time": _body(world, starts_at="tomorrow morning"),
    }
    for name, body in cases.items():
        response = await client.post("/api/v1/service-points", json=body, headers=headers)
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    listed = await client.get("/api/v1/service-points", params={"from": "2000-01-01", "to": "2100-01-01"})
    assert listed.status_code == 422  # more than three years in one request
    assert (await client.get("/api/v1/service-points", params={"from": "2000-01-01"})).json()["items"] == []


async def test_only_coordinators_and_admins_plan_sessions(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    assert (await client.post("/api/v1/service-points", json=_body(world))).status_code == 401
    for who in ("rep", "handler_a"):
        response = await client.post("/api/v1/service-points", json=_body(world), headers=world.auth(who))
        assert response.status_code == 403, who
    response = await client.post("/api/v1/service-points", json=_body(world), headers=world.auth("admin"))
    assert response.status_code == 201
    point_id = response.json()["id"]
    patch = await client.patch(f"/api/v1/service-points/{point_id}", json={"title": "改名"}, headers=world.auth("rep"))
    assert patch.status_code == 403
    assert (await client.delete(f"/api/v1/service-points/{point_id}", headers=world.auth("rep"))).status_code == 403
    assert (await client.get("/api/v1/service-points/funnel")).status_code == 401


async def test_coordinator_edits_a_session_and_cannot_delete_one_that_collected_forms(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    headers = world.auth("coordinator")
    point = await _create(client, world)
    url = f"/api/v1/service-points/{point['id']}"
    response = await client.patch(url, json={
        "title": "石塘湾村流动服务点", "place_type": "village", "workroom_code": "LS-02",
        "representative_ids": [world.representatives["rep2"].id],
    }, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "石塘湾村流动服务点" and response.json()["workroom_code"] == "LS-02"
    assert [r["name"] for r in response.json()["representatives"]] == ["李代表"]
    bad = await client.patch(url, json={"ends_at": _local(3, 7)}, headers=headers)  # before the start
    assert bad.status_code == 422
    assert (await client.patch(url, json={"title": None}, headers=headers)).status_code == 422

    await submit(client, service_point_id=point["id"])
    refused = await client.delete(url, headers=headers)
    assert refused.status_code == 409 and refused.json()["code"] == "service_point_has_forms"

    empty = await _create(client, world, title="取消的会场")
    assert (await client.delete(f"/api/v1/service-points/{empty['id']}", headers=headers)).status_code == 204
    assert (await client.get(f"/api/v1/service-points/{empty['id']}")).status_code == 404


async def test_funnel_counts_sessions_collected_answered_and_satisfaction(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    """2 sessions in range, 3 forms: one answered and closed as satisfied. Sessions and totals count every
    form of a session; a representative's row counts the sessions they attended and only the forms they
    entered there.

    Changed by issue 20.3: a representative's row used to credit them with every form of every session they
    attended (here 张代表 2 forms, 李代表 3, though 3 forms were collected in all). A form is now credited to
    the representative who entered it (``entered_by_representative_id``), as their record and the statistics
    by representative count it; the forms nobody entered (the public's) count for the session only."""
    world = await build_world(sessionmaker)
    rep, rep2 = world.representatives["rep"], world.representatives["rep2"]
    market = await _create(client, world, title="菜场", starts_at=_local(-3), ends_at=_local(-3, 11),
                           representative_ids=[rep.id, rep2.id])
    village = await _create(client, world, title="村口", place_type="village", starts_at=_local(-2),
                            ends_at=_local(-2, 11), representative_ids=[rep2.id])
    outside = await _create(client, world, title="范围外", starts_at=_local(-40), ends_at=_local(-40, 11))
    first = await submit(client, world.auth("rep"), service_point_id=market["id"])  # entered by 张代表
    await submit(client, service_point_id=market["id"])  # by a resident: the session's, nobody's own
    await submit(client, world.auth("rep2"), service_point_id=village["id"])  # entered by 李代表
    await submit(client, world.auth("rep2"), service_point_id=outside["id"])
    assign = await act(client, world, "coordinator", first["id"], "assign", {"unit_id": world.units["A"].id})
    assert assign.status_code == 200, assign.text
    reply = await act(client, world, "coordinator", first["id"], "reply", {"reply": "已安排维修，三日内完成。"})
    assert reply.status_code == 200, reply.text
    closed = await act(client, world, "coordinator", first["id"], "close", {"satisfaction": "satisfied"})
    assert closed.status_code == 200, closed.text

    params = {"from": (datetime.now(TZ).date() - timedelta(days=10)).isoformat(),
              "to": datetime.now(TZ).date().isoformat()}
    response = await client.get("/api/v1/service-points/funnel", params=params, headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    funnel = response.json()
    assert funnel["totals"] == {
        "sessions": 2, "forms_collected": 3, "answered": 1, "satisfied": 1, "basically_satisfied": 0,
        "unsatisfied": 0, "answer_rate": round(1 / 3, 4), "satisfaction_rate": 1.0,
    }
    rows = {row["service_point_id"]: row for row in funnel["sessions"]}
    assert list(rows) == [market["id"], village["id"]]
    assert (rows[market["id"]]["forms_collected"], rows[market["id"]]["answered"], rows[market["id"]]["satisfied"]) == (2, 1, 1)
    assert (rows[village["id"]]["forms_collected"], rows[village["id"]]["answered"]) == (1, 0)
    people = {row["representative_id"]: row for row in funnel["representatives"]}
    assert (people[rep.id]["sessions"], people[rep.id]["forms_collected"], people[rep.id]["answered"]) == (1, 1, 1)
    assert people[rep.id]["satisfaction_rate"] == 1.0
    # 李代表 attended both sessions but entered one form (the village's): the market's forms are not his.
    assert (people[rep2.id]["sessions"], people[rep2.id]["forms_collected"], people[rep2.id]["answered"]) == (2, 1, 0)
    assert people[rep2.id]["satisfaction_rate"] is None

    only_ls02 = await client.get("/api/v1/service-points/funnel", params={**params, "workroom": "LS-02"},
                                 headers=world.auth("rep"))
    assert only_ls02.status_code == 200
    assert only_ls02.json()["totals"]["sessions"] == 0 and only_ls02.json()["totals"]["answer_rate"] is None
    everything = await client.get("/api/v1/service-points/funnel", headers=world.auth("admin"))
    assert everything.json()["totals"]["sessions"] == 3 and everything.json()["totals"]["forms_collected"] == 4

    detail = (await client.get(f"/api/v1/service-points/{market['id']}")).json()
    assert (detail["forms_collected"], detail["answered"], detail["satisfied"], detail["satisfaction_rate"]) == (2, 1, 1, 1.0)


async def test_the_public_calendar_page_lists_upcoming_sessions_by_day(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    soon = await _create(client, world, title="石塘湾村口接待", starts_at=_local(2, 9), ends_at=_local(2, 11))
    await _create(client, world, title="去年的集市", starts_at=_local(-400, 9), ends_at=_local(-400, 11))
    await _create(client, world, title="两个月后的活动", starts_at=_local(60, 9), ends_at=_local(60, 11))
    page = await client.get("/service-points")
    assert page.status_code == 200
    assert "石塘湾村口接待" in page.text and f'href="/p/{soon["id"]}"' in page.text
    assert "张代表" in page.text and "13812345678" not in page.text
    assert "去年的集市" not in page.text and "两个月后的活动" not in page.text
    assert (datetime.now(TZ).date() + timedelta(days=2)).isoformat() in page.text
    assert 'href="/service-points"' in (await client.get("/")).text
