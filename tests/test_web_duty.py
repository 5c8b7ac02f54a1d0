"""Duty pages (app/web/duty.py): the public duty notice, today's duty on the home page, and 我的值班 on
the representative's phone — check-in and swaps through services.rosters."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import httpx
from sqlalchemy import event, select

from app.config import TZ
from app.models import Shift, ShiftSwap, utcnow
from app.services.duty import today_by_workroom
from tests.factories import World, build_world
from tests.support.logins import login, sign_in


async def add_shift(client: httpx.AsyncClient, world: World, who: str, starts_at: datetime, ends_at: datetime,
                    workroom: str = "LS-01") -> int:
    response = await client.post(
        f"/api/v1/workrooms/{workroom}/shifts", headers=world.auth("coordinator"),
        json={"representative_id": world.representatives[who].id, "starts_at": starts_at.isoformat(),
              "ends_at": ends_at.isoformat()},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def get_shift(sessionmaker, shift_id: int) -> Shift:
    async with sessionmaker() as session:
        return await session.get_one(Shift, shift_id)


async def swaps(sessionmaker) -> list[ShiftSwap]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(ShiftSwap).order_by(ShiftSwap.id)))


def local_now() -> datetime:
    return utcnow().astimezone(TZ)


def this_monday() -> datetime:
    today = local_now().date()
    return datetime.combine(today - timedelta(days=today.weekday()), time(0), tzinfo=TZ)


# --- public ------------------------------------------------------------------------------------------


async def test_the_duty_notice_shows_this_week_and_next_but_not_the_week_after_and_no_phone(
    client, sessionmaker
) -> None:
    world = await build_world(sessionmaker)
    monday = this_monday()
    await add_shift(client, world, "rep", monday + timedelta(hours=9), monday + timedelta(hours=11, minutes=30))
    await add_shift(client, world, "rep2", monday + timedelta(days=9, hours=14), monday + timedelta(days=9, hours=16))
    await add_shift(client, world, "rep", monday + timedelta(days=14, hours=18), monday + timedelta(days=14, hours=20))
    page = await client.get("/w/LS-01/duty")
    assert page.status_code == 200
    text = page.text
    assert "本周" in text and "下周" in text
    assert "09:00–11:30" in text and "张代表" in text and "镇党代表" in text
    assert "14:00–16:00" in text and "李代表" in text and "区党代表" in text
    assert "18:00" not in text  # the week after next week is not published yet
    assert "13812345678" not in text and "13987654321" not in text
    assert (await client.get("/w/NOPE/duty")).status_code == 404


async def test_the_workroom_page_links_to_its_duty_notice(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    page = await client.get("/w/LS-01")
    assert page.status_code == 200 and 'href="/w/LS-01/duty"' in page.text


async def test_home_shows_today_s_duty_for_every_workroom(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    await add_shift(client, world, "rep", now - timedelta(minutes=10), now + timedelta(minutes=50))
    home = await client.get("/")  # rendered on the server: no script needed to see who is on duty
    assert home.status_code == 200 and 'id="duty-today"' in home.text
    assert "张代表" in home.text and "今日无值班安排" in home.text and "13812345678" not in home.text
    fragment = await client.get("/duty/today", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.headers["vary"] == "HX-Request"
    assert "镇区党代表工作室" in fragment.text and "张代表" in fragment.text
    assert "石塘湾村党代表工作室" in fragment.text and "今日无值班安排" in fragment.text
    assert "13812345678" not in fragment.text
    full = await client.get("/duty/today")
    assert "<html" in full.text and "张代表" in full.text


async def test_today_s_duty_is_one_select_for_all_workrooms(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    await add_shift(client, world, "rep", now - timedelta(minutes=10), now + timedelta(minutes=50))
    await add_shift(client, world, "rep2", now - timedelta(minutes=10), now + timedelta(minutes=50), "LS-02")
    statements: list[str] = []
    async with sessionmaker() as session:
        engine = session.get_bind()
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            rows = await today_by_workroom(session, day=now.date())
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert [s for s in statements if s.lstrip().upper().startswith("SELECT")] and len(
        [s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert [(w.code, [s.representative.name for s in shifts]) for w, shifts in rows] == [
        ("LS-01", ["张代表"]), ("LS-02", ["李代表"])]


# --- check-in ----------------------------------------------------------------------------------------


async def test_the_check_in_button_shows_only_inside_the_window_and_records_the_time(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    open_id = await add_shift(client, world, "rep", now - timedelta(minutes=10), now + timedelta(hours=1))
    later_id = await add_shift(client, world, "rep", now + timedelta(hours=3), now + timedelta(hours=5))
    token = await sign_in(client, "rep", fresh=True)
    rep_page = await client.get("/rep")
    assert 'hx-get="/rep/duty"' in rep_page.text and 'href="/rep/duty"' in rep_page.text
    mine = await client.get("/rep/duty", headers={"HX-Request": "true"})
    assert mine.status_code == 200 and "我的值班" in mine.text and "<html" not in mine.text
    assert f'action="/rep/shifts/{open_id}/check-in"' in mine.text
    assert f'action="/rep/shifts/{later_id}/check-in"' not in mine.text  # 3 h ahead: not yet
    assert 'name="next" value="/rep"' in mine.text  # loaded into /rep: the action comes back there

    response = await client.post(f"/rep/shifts/{open_id}/check-in", data={"csrf_token": token, "next": "/rep"})
    assert response.status_code == 303 and response.headers["location"] == "/rep"
    shift = await get_shift(sessionmaker, open_id)
    assert shift.checked_in_at is not None
    page = await client.get("/rep/duty")
    assert f"已签到 {shift.checked_in_at.astimezone(TZ):%H:%M}" in page.text
    assert f'action="/rep/shifts/{open_id}/check-in"' not in page.text
    assert "13812345678" not in page.text


async def test_checking_in_outside_the_window_shows_the_services_message(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    later_id = await add_shift(client, world, "rep", now + timedelta(hours=3), now + timedelta(hours=5))
    token = await sign_in(client, "rep", fresh=True)
    response = await client.post(f"/rep/shifts/{later_id}/check-in", data={"csrf_token": token})
    assert response.status_code == 409 and "签到时间为开始前 30 分钟至结束" in response.text
    toast = await client.post(f"/rep/shifts/{later_id}/check-in", data={"csrf_token": token},
                              headers={"HX-Request": "true"})
    assert toast.status_code == 409 and toast.headers["hx-retarget"] == "#toasts"
    assert (await get_shift(sessionmaker, later_id)).checked_in_at is None


async def test_a_check_in_without_the_csrf_token_is_refused_and_changes_nothing(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    shift_id = await add_shift(client, world, "rep", now - timedelta(minutes=10), now + timedelta(hours=1))
    await sign_in(client, "rep", fresh=True)
    assert (await client.post(f"/rep/shifts/{shift_id}/check-in", data={})).status_code == 403
    assert (await client.post(f"/rep/shifts/{shift_id}/check-in", data={"csrf_token": "x" * 43})).status_code == 403
    assert (await get_shift(sessionmaker, shift_id)).checked_in_at is None


async def test_another_representative_cannot_check_in_someone_else_s_shift(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    shift_id = await add_shift(client, world, "rep", now - timedelta(minutes=10), now + timedelta(hours=1))
    token = await sign_in(client, "rep2", fresh=True)
    response = await client.post(f"/rep/shifts/{shift_id}/check-in", data={"csrf_token": token})
    assert response.status_code == 403 and "只有值班代表本人可以签到" in response.text
    assert "<html" in response.text  # the error page
    assert (await get_shift(sessionmaker, shift_id)).checked_in_at is None


async def test_my_duty_needs_a_signed_in_representative(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    response = await client.get("/rep/duty")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/rep/duty"
    await sign_in(client, "coordinator", fresh=True)
    assert (await client.get("/rep/duty")).status_code == 403


# --- swaps -------------------------------------------------------------------------------------------


async def test_a_swap_request_is_accepted_by_the_other_representative(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    shift_id = await add_shift(client, world, "rep", now + timedelta(days=2), now + timedelta(days=2, hours=2))
    token = await sign_in(client, "rep", fresh=True)
    page = await client.get("/rep/duty")
    assert f'action="/rep/shifts/{shift_id}/swap"' in page.text and "李代表" in page.text
    response = await client.post(f"/rep/shifts/{shift_id}/swap", data={
        "csrf_token": token, "to_representative_id": str(world.representatives["rep2"].id), "note": "当天开会",
        "next": "/rep/duty"})
    assert response.status_code == 303 and response.headers["location"] == "/rep/duty"
    (swap,) = await swaps(sessionmaker)
    assert swap.status == "requested" and swap.note == "当天开会"
    page = await client.get("/rep/duty")
    assert "我请 李代表 替班" in page.text and "待对方确认" in page.text
    assert f'action="/rep/swaps/{swap.id}/cancel"' in page.text
    assert f'action="/rep/shifts/{shift_id}/swap"' not in page.text  # one open request per shift

    token = await sign_in(client, "rep2", fresh=True)
    page = await client.get("/rep/duty")
    assert "张代表 请我替班" in page.text and "当天开会" in page.text
    assert f'action="/rep/swaps/{swap.id}/accept"' in page.text
    response = await client.post(f"/rep/swaps/{swap.id}/accept", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/rep"
    (swap,) = await swaps(sessionmaker)
    assert swap.status == "accepted"
    page = await client.get("/rep/duty")
    assert "待审批" in page.text and f'action="/rep/swaps/{swap.id}/accept"' not in page.text

    await sign_in(client, "rep", fresh=True)
    assert "待审批" in (await client.get("/rep/duty")).text


async def test_a_swap_request_can_be_declined_and_a_pending_one_cancelled(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    shift_id = await add_shift(client, world, "rep", now + timedelta(days=2), now + timedelta(days=2, hours=2))
    rep2 = str(world.representatives["rep2"].id)
    token = await sign_in(client, "rep", fresh=True)
    await client.post(f"/rep/shifts/{shift_id}/swap", data={"csrf_token": token, "to_representative_id": rep2})
    token2 = await sign_in(client, "rep2", fresh=True)
    (swap,) = await swaps(sessionmaker)
    assert (await client.post(f"/rep/swaps/{swap.id}/decline", data={"csrf_token": token2})).status_code == 303
    (swap,) = await swaps(sessionmaker)
    assert swap.status == "declined"
    again = await client.post(f"/rep/swaps/{swap.id}/accept", data={"csrf_token": token2})
    assert again.status_code == 409  # the service's state rule, shown as a message

    token = await sign_in(client, "rep", fresh=True)
    assert "对方已拒绝" in (await client.get("/rep/duty")).text
    await client.post(f"/rep/shifts/{shift_id}/swap", data={"csrf_token": token, "to_representative_id": rep2})
    second = (await swaps(sessionmaker))[-1]
    response = await client.post(f"/rep/swaps/{second.id}/cancel", data={"csrf_token": token})
    assert response.status_code == 303
    assert (await swaps(sessionmaker))[-1].status == "cancelled"
    assert "已撤回" in (await client.get("/rep/duty")).text


async def test_a_swap_form_without_a_representative_is_refused(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = local_now()
    shift_id = await add_shift(client, world, "rep", now + timedelta(days=2), now + timedelta(days=2, hours=2))
    token = await sign_in(client, "rep", fresh=True)
    response = await client.post(f"/rep/shifts/{shift_id}/swap", data={"csrf_token": token, "to_representative_id": ""})
    assert response.status_code == 422 and "请选择换班的代表" in response.text
    assert await swaps(sessionmaker) == []


async def test_a_representative_finds_and_resets_their_calendar_address(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await login(client, "rep")
    page = await client.get("/rep/duty")
    url = re.search(r'id="calendar-url" readonly value="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    feed = await client.get(httpx.URL(url).raw_path.decode())
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    assert re.search(r'id="calendar-url" readonly value="([^"]+)"', (await client.get("/rep/duty")).text).group(1) == (
        url.replace("&", "&amp;"))  # the same address on every visit
    reset = await client.post("/rep/calendar/reset", data={"csrf_token": client.cookies["minyi_csrf"]})
    assert reset.status_code == 303
    assert (await client.get(httpx.URL(url).raw_path.decode())).status_code == 404  # the old address is dead
    fresh = re.search(r'id="calendar-url" readonly value="([^"]+)"', (await client.get("/rep/duty")).text).group(1)
    assert (await client.get(httpx.URL(fresh.replace("&amp;", "&")).raw_path.decode())).status_code == 200
