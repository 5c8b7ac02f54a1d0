"""The office's roster and service point pages (httpx on the in-process app)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import httpx
from sqlalchemy import func, select

from app.config import TZ
from app.models import Shift
from tests.factories import build_world, submit
from tests.support.logins import login, sign_in

PAGES = ("/office/rosters", "/office/rota", "/office/swaps", "/office/attendance", "/office/service-points",
         "/office/funnel")


def next_monday() -> date:
    today = datetime.now(TZ).date()
    return today + timedelta(days=7 - today.weekday())


async def shift_count(sessionmaker) -> int:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Shift)))


async def api_shift(client: httpx.AsyncClient, world, who: str, starts: datetime, ends: datetime,  # type: ignore[no-untyped-def]
                    workroom: str = "LS-01") -> dict:
    response = await client.post(f"/api/v1/workrooms/{workroom}/shifts", headers=world.auth("coordinator"), json={
        "representative_id": world.representatives[who].id, "starts_at": starts.isoformat(),
        "ends_at": ends.isoformat()})
    assert response.status_code == 201, response.text
    return response.json()


def rota_form(world, token: str, monday: date, **extra: str) -> dict:  # type: ignore[no-untyped-def]
    """Two weeks at LS-01, Monday and Wednesday 09:00–11:30, rep then rep2 in turn."""
    return {"csrf_token": token, "planned": "1", "from": monday.isoformat(),
            "to": (monday + timedelta(days=13)).isoformat(), "w-LS-01-on": "1", "w-LS-01-weekday": ["1", "3"],
            "w-LS-01-start": "09:00", "w-LS-01-end": "11:30",
            "w-LS-01-rep": [str(world.representatives["rep"].id), str(world.representatives["rep2"].id), ""],
            **extra}


async def test_anonymous_is_sent_to_login_and_a_representative_is_refused(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=/office"), path
    await sign_in(client, "rep")
    for path in PAGES:
        assert (await client.get(path)).status_code == 403, path
    token = client.cookies["minyi_csrf"]
    refused = await client.post("/office/rosters/shifts", data={"csrf_token": token, "workroom": "LS-01"})
    assert refused.status_code == 403


async def test_the_office_tabs_lead_to_rosters_and_service_points(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    await sign_in(client, "coordinator")
    page = await client.get("/office")
    assert 'href="/office/rosters"' in page.text and 'href="/office/service-points"' in page.text


async def test_a_shift_added_on_the_page_appears_in_the_week_grid(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    monday = next_monday()
    day = monday + timedelta(days=2)
    response = await client.post("/office/rosters/shifts", data={
        "csrf_token": token, "workroom": "LS-01", "week": monday.isoformat(),
        "representative_id": str(world.representatives["rep"].id), "day": day.isoformat(), "start": "09:00",
        "end": "11:30"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/office/rosters?workroom=LS-01&week={monday.isoformat()}"
    page = await client.get(response.headers["location"])
    cell = re.search(rf'data-day="{day.isoformat()}".*?</li>\s*</ul>', page.text, re.S)
    assert cell and "09:00–11:30" in cell.group(0) and "张代表" in cell.group(0)
    assert await shift_count(sessionmaker) == 1
    # and deleted from the grid
    shift_id = re.search(r'data-shift-id="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    deleted = await client.post(f"/office/rosters/shifts/{shift_id}/delete",
                                data={"csrf_token": token, "next": response.headers["location"]})
    assert deleted.status_code == 303 and await shift_count(sessionmaker) == 0


async def test_an_overlapping_shift_is_409_next_to_the_form_and_nothing_is_written(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    day = next_monday()
    await api_shift(client, world, "rep", datetime.combine(day, datetime.min.time().replace(hour=9), TZ),
                    datetime.combine(day, datetime.min.time().replace(hour=11), TZ), workroom="LS-02")
    token = await sign_in(client, "coordinator")
    response = await client.post("/office/rosters/shifts", data={
        "csrf_token": token, "workroom": "LS-01", "representative_id": str(world.representatives["rep"].id),
        "day": day.isoformat(), "start": "10:00", "end": "12:00"})
    assert response.status_code == 409
    assert 'data-error="shift_conflict"' in response.text and "同一时间不能在两处值班" in response.text
    assert 'value="10:00"' in response.text and 'value="12:00"' in response.text  # the input is kept
    assert await shift_count(sessionmaker) == 1


async def test_a_bad_shift_form_is_422_with_the_input_kept(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    response = await client.post("/office/rosters/shifts", data={
        "csrf_token": token, "workroom": "LS-01", "representative_id": "", "day": "2026-05-06", "start": "10:00",
        "end": "09:00"})
    assert response.status_code == 422 and "请选择代表" in response.text and 'value="2026-05-06"' in response.text
    assert await shift_count(sessionmaker) == 0


async def test_a_post_without_csrf_is_refused_and_changes_nothing(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    data = rota_form(world, token, next_monday())
    del data["csrf_token"]
    assert (await client.post("/office/rota/commit", data=data)).status_code == 403
    response = await client.post("/office/rosters/shifts", data={
        "workroom": "LS-01", "representative_id": str(world.representatives["rep"].id),
        "day": next_monday().isoformat(), "start": "09:00", "end": "10:00"})
    assert response.status_code == 403 and "页面已过期" in response.text
    assert await shift_count(sessionmaker) == 0


async def test_rota_preview_marks_the_conflict_and_writes_nothing(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    monday = next_monday()
    wednesday = monday + timedelta(days=2)  # rep2's turn in the rota; rep2 is busy at LS-02 then
    busy = await api_shift(client, world, "rep2", datetime.combine(wednesday, datetime.min.time().replace(hour=10), TZ),
                           datetime.combine(wednesday, datetime.min.time().replace(hour=12), TZ), workroom="LS-02")
    token = await sign_in(client, "coordinator")
    form_page = await client.get("/office/rota")
    assert form_page.status_code == 200 and 'name="w-LS-01-rep"' in form_page.text
    response = await client.post("/office/rota/preview", data=rota_form(world, token, monday))
    assert response.status_code == 200
    assert 'data-count="4"' in response.text and 'data-conflicts="1"' in response.text
    conflicted = re.findall(r'<li class="conflict"[^>]*data-day="([^"]+)"', response.text)
    assert conflicted == [wednesday.isoformat()]
    assert f'data-conflicting-shift-id="{busy["id"]}"' in response.text and "石塘湾村党代表工作室" in response.text
    # the pattern is carried in hidden fields
    assert '<input type="hidden" name="w-LS-01-weekday" value="3">' in response.text
    assert await shift_count(sessionmaker) == 1


async def test_rota_commit_writes_every_shift_and_redirects_with_the_count(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    monday = next_monday()
    token = await sign_in(client, "coordinator")
    response = await client.post("/office/rota/commit", data=rota_form(world, token, monday))
    assert response.status_code == 303
    assert response.headers["location"] == f"/office/rosters?workroom=LS-01&week={monday.isoformat()}&created=4"
    assert await shift_count(sessionmaker) == 4
    page = await client.get(response.headers["location"])
    assert 'data-created="4"' in page.text and page.text.count("data-shift-id=") == 2  # first week: Mon, Wed


async def test_rota_commit_with_a_conflict_rerenders_the_preview_and_writes_nothing(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    monday = next_monday()
    await api_shift(client, world, "rep", datetime.combine(monday, datetime.min.time().replace(hour=8), TZ),
                    datetime.combine(monday, datetime.min.time().replace(hour=10), TZ), workroom="LS-02")
    token = await sign_in(client, "coordinator")
    response = await client.post("/office/rota/commit", data=rota_form(world, token, monday))
    assert response.status_code == 409
    assert 'data-error="shift_conflict"' in response.text and 'data-conflicts="1"' in response.text
    assert await shift_count(sessionmaker) == 1


async def test_a_bad_rota_form_is_422_with_messages_and_values_kept(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    data = rota_form(world, token, next_monday(), **{"w-LS-01-end": "08:00"})
    response = await client.post("/office/rota/preview", data=data)
    assert response.status_code == 422 and "结束时间必须晚于开始时间" in response.text
    assert 'value="08:00"' in response.text
    data = rota_form(world, token, next_monday(), **{"w-LS-01-rep": ""})
    response = await client.post("/office/rota/preview", data=data)
    assert response.status_code == 422 and "请至少选择一位代表" in response.text


async def test_a_swap_approved_on_the_page_changes_the_shifts_representative(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    day = next_monday()
    shift = await api_shift(client, world, "rep", datetime.combine(day, datetime.min.time().replace(hour=9), TZ),
                            datetime.combine(day, datetime.min.time().replace(hour=11), TZ))
    asked = await client.post(f"/api/v1/shifts/{shift['id']}/swap", headers=world.auth("rep"),
                              json={"to_representative_id": world.representatives["rep2"].id, "note": "家里有事"})
    assert asked.status_code == 201, asked.text
    swap_id = asked.json()["id"]
    assert (await client.post(f"/api/v1/swaps/{swap_id}/accept", headers=world.auth("rep2"))).status_code == 200
    token = await sign_in(client, "coordinator")
    page = await client.get("/office/swaps")
    assert f'data-swap-id="{swap_id}" data-status="accepted"' in page.text and "家里有事" in page.text
    response = await client.post(f"/office/swaps/{swap_id}/approve", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/office/swaps"
    async with sessionmaker() as session:
        assert (await session.get(Shift, shift["id"])).representative_id == world.representatives["rep2"].id
    page = await client.get("/office/swaps")
    assert f'data-swap-id="{swap_id}" data-status="approved"' in page.text


async def test_attendance_shows_planned_checked_in_missed_and_the_rate(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    now = datetime.now(UTC)
    running = await api_shift(client, world, "rep", now - timedelta(hours=1), now + timedelta(hours=1))
    await api_shift(client, world, "rep", now - timedelta(hours=4), now - timedelta(hours=3))
    assert (await client.post(f"/api/v1/shifts/{running['id']}/check-in", headers=world.auth("rep"))).status_code == 200
    await sign_in(client, "coordinator")
    today = datetime.now(TZ).date()
    page = await client.get(f"/office/attendance?from={today - timedelta(days=1)}&to={today}&group=representative")
    assert page.status_code == 200
    row = re.search(rf'data-row="{world.representatives["rep"].id}".*?</tr>', page.text, re.S).group(0)  # type: ignore[union-attr]
    assert '<td data-col="planned">2</td>' in row and '<td data-col="checked_in">1</td>' in row
    assert '<td data-col="missed">1</td>' in row and '<td data-col="rate">50%</td>' in row
    by_workroom = await client.get(f"/office/attendance?from={today - timedelta(days=1)}&to={today}&group=workroom")
    assert 'data-row="LS-01"' in by_workroom.text


async def test_a_service_point_created_on_the_page_is_in_the_public_calendar(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    tomorrow = datetime.now(TZ).date() + timedelta(days=1)
    response = await client.post("/office/service-points", data={
        "csrf_token": token, "workroom_code": "LS-01", "title": "石塘湾集市流动服务点", "place_type": "market",
        "location": "石塘湾菜场门口", "starts_at": f"{tomorrow}T08:00", "ends_at": f"{tomorrow}T10:00",
        "representative_ids": [str(world.representatives["rep"].id), str(world.representatives["rep2"].id)]})
    assert response.status_code == 303, response.text
    point_id = int(response.headers["location"].rsplit("=", 1)[1])
    public = (await client.get("/api/v1/service-points")).json()["items"]
    assert [(p["id"], p["title"], p["place_type"], len(p["representatives"])) for p in public] == [
        (point_id, "石塘湾集市流动服务点", "market", 2)]
    page = await client.get(response.headers["location"])
    assert f'href="/p/{point_id}"' in page.text and f'href="/p/{point_id}/poster"' in page.text
    assert "集市" in page.text


async def test_a_bad_service_point_form_is_422_with_values_kept(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    response = await client.post("/office/service-points", data={
        "csrf_token": token, "workroom_code": "LS-01", "title": "", "place_type": "market", "location": "村口",
        "starts_at": "2026-06-01T10:00", "ends_at": "2026-06-01T09:00"})
    assert response.status_code == 422 and "请填写主题" in response.text and 'value="村口"' in response.text
    assert (await client.get("/api/v1/service-points?from=2026-01-01&to=2026-12-31")).json()["items"] == []


async def test_the_funnel_shows_sessions_collected_and_answered(client, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    now = datetime.now(TZ)
    point = await client.post("/api/v1/service-points", headers=world.auth("coordinator"), json={
        "workroom_code": "LS-01", "title": "车间流动服务点", "place_type": "workshop",
        "starts_at": (now - timedelta(hours=2)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "representative_ids": [world.representatives["rep"].id]})
    assert point.status_code == 201, point.text
    # Two entered by 张代表, one by a resident: since issue 20.3 his row counts the two he entered (it used to
    # credit him with all three, every form of a session he attended); the session and totals count three.
    forms = [await submit(client, headers, service_point_id=point.json()["id"])
             for headers in (world.auth("rep"), world.auth("rep"), None)]
    assigned = await client.post(f"/api/v1/forms/{forms[0]['id']}/answer-on-spot", headers=world.auth("coordinator"),
                                 json={"reply": "已当场答复。"})
    assert assigned.status_code == 200, assigned.text
    await sign_in(client, "coordinator")
    page = await client.get(f"/office/funnel?from={now.date() - timedelta(days=1)}&to={now.date()}")
    assert page.status_code == 200
    assert "1 场，收集 3 件，答复 1 件" in page.text
    row = re.search(rf'data-representative-id="{world.representatives["rep"].id}".*?</tr>', page.text, re.S).group(0)  # type: ignore[union-attr]
    assert '<td data-col="collected">2</td>' in row and '<td data-col="answered">1</td>' in row


async def test_the_office_finds_and_resets_a_workrooms_calendar_address(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await login(client, "coordinator")
    week = await client.get("/office/rosters?workroom=LS-01")
    assert 'href="/office/rosters/calendar?workroom=LS-01"' in week.text
    page = await client.get("/office/rosters/calendar?workroom=LS-01")
    url = re.search(r'id="calendar-url" readonly value="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    path = url.split("127.0.0.1", 1)[-1].split("testserver", 1)[-1]
    feed = await client.get(path)
    assert feed.status_code == 200 and "BEGIN:VCALENDAR" in feed.text
    reset = await client.post("/office/rosters/calendar/reset",
                              data={"workroom": "LS-01", "csrf_token": client.cookies["minyi_csrf"]})
    assert reset.status_code == 303
    assert (await client.get(path)).status_code == 404
    assert (await client.get("/office/rosters/calendar?workroom=LS-99")).status_code == 404
