"""The small things people notice (issue 17.6): names that read cleanly, error pages in Chinese only, an
ended service point that points to its workroom, a favicon, dates with their year, the home page's button
and its one "今日无值班安排", the representative's text box first, roster conflicts named as people know them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import update

from app.config import TZ
from app.db import transaction
from app.models import ServicePoint, Workroom, utcnow
from app.web import roster_office
from app.web.errors import page_text
from tests.factories import build_world, submit
from tests.support.logins import sign_in
from tests.support.problems import assert_problem
from tests.test_web_public import CONTENT, count_forms, csrf_token

BRACKETED = "洛社镇党代表工作室（镇区）"
POINT = "洛社菜市场流动服务点"
ENGLISH = re.compile(r"[A-Za-z]{3,}")


def visible_text(page: str) -> str:
    """The words a person reads in <main> and the title: no tags, attributes, scripts."""
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    main = re.search(r"<main[^>]*>(.*?)</main>", page, re.S)
    text = (title.group(1) if title else "") + " " + (main.group(1) if main else page)
    return re.sub(r"<[^>]+>", " ", text)


async def rename_workroom(sessionmaker, code: str = "LS-01", name: str = BRACKETED) -> None:
    async with transaction(sessionmaker) as session:
        await session.execute(update(Workroom).where(Workroom.code == code).values(name=name))


async def add_point(sessionmaker, world, *, starts_at: datetime, ends_at: datetime, code: str = "LS-01") -> int:
    async with transaction(sessionmaker) as session:
        point = ServicePoint(workroom_id=world.workrooms[code].id, title=POINT, place_type="market",
                             location="洛社菜市场门口", starts_at=starts_at, ends_at=ends_at)
        session.add(point)
        await session.flush()
        return point.id


async def ended_point(sessionmaker, world) -> tuple[int, datetime]:
    ends_at = utcnow() - timedelta(days=2)
    return await add_point(sessionmaker, world, starts_at=ends_at - timedelta(hours=3), ends_at=ends_at), ends_at


# --- 1. names with their parent --------------------------------------------------------------------


async def test_a_point_is_named_with_its_workroom_without_brackets_inside_brackets(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    await rename_workroom(sessionmaker)
    now = utcnow()
    point_id = await add_point(sessionmaker, world, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=2))
    page = await client.get(f"/p/{point_id}")
    assert page.status_code == 200
    assert f"{POINT} · {BRACKETED}" in page.text
    assert "））" not in page.text
    workroom_page = await client.get("/w/LS-01")
    assert f"来源：<b>{BRACKETED}</b>" in workroom_page.text and "（LS-01）" not in workroom_page.text


async def test_the_rep_page_names_today_s_point_with_its_workroom_cleanly(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    await rename_workroom(sessionmaker)
    now = utcnow()
    point_id = await add_point(sessionmaker, world, starts_at=now - timedelta(minutes=30), ends_at=now + timedelta(hours=1))
    await sign_in(client, "rep")
    page = await client.get("/rep")
    assert page.status_code == 200
    select = re.search(r'<select id="f-source".*?</select>', page.text, re.S)
    assert select
    options = dict(re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>', select.group(0)))
    assert options["w:LS-01"] == BRACKETED
    assert options[f"p:{point_id}"] == f"今日服务点：{POINT} · {BRACKETED}"
    assert not any("））" in label for label in options.values())


# --- 2. error pages in Chinese only ----------------------------------------------------------------


async def test_a_missing_page_is_in_chinese_only(client) -> None:
    response = await client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    text = visible_text(response.text)
    assert "页面不存在" in text and not ENGLISH.findall(text), ENGLISH.findall(text)


async def test_a_wrong_method_on_a_page_is_in_chinese_only(client) -> None:
    response = await client.delete("/track", headers={"Accept": "text/html"})
    assert response.status_code == 405
    text = visible_text(response.text)
    assert "不支持此操作" in text and "Method" not in response.text and not ENGLISH.findall(text)


async def test_a_missing_workroom_page_keeps_its_chinese_message(client) -> None:
    response = await client.get("/w/NOPE")
    assert response.status_code == 404
    text = visible_text(response.text)
    assert "工作室 NOPE 不存在或已停用" in text and "Not Found" not in response.text


def test_a_server_error_page_and_an_english_detail_read_in_chinese() -> None:
    crashed = page_text({"status": 500, "title": "服务器内部错误 Internal Server Error", "detail": "boom"})
    assert crashed == {"status": 500, "title": "服务器出错", "detail": "服务器出错，请稍后重试；已保存的内容不受影响。"}
    too_large = page_text({"status": 413, "title": "内容过大 Content Too Large", "detail": "请求内容超过上限（10 字节）。"})
    assert too_large["title"] == "提交的内容太大" and too_large["detail"] == "请求内容超过上限（10 字节）。"
    odd = page_text({"status": 418, "title": "茶壶 I'm a teapot", "detail": "short and stout"})
    assert odd["title"] == "茶壶" and not ENGLISH.search(odd["detail"])


async def test_the_api_still_answers_problem_json_with_its_english_gloss(client) -> None:
    body = assert_problem(await client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert body["title"] == "未找到 Not Found"  # the API's contract is unchanged


# --- 3. an ended service point ---------------------------------------------------------------------


async def test_an_ended_point_s_page_says_so_and_links_to_its_workroom(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    point_id, ends_at = await ended_point(sessionmaker, world)
    page = await client.get(f"/p/{point_id}")
    assert page.status_code == 200
    assert 'action="/submit"' not in page.text and 'name="content"' not in page.text
    assert "已于" in page.text and "结束" in page.text
    local = ends_at.astimezone(TZ)
    assert f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}" in page.text
    assert 'href="/w/LS-01"' in page.text


async def test_a_submission_naming_an_ended_point_is_refused_on_the_page(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    point_id, _ = await ended_point(sessionmaker, world)
    token = await csrf_token(client, "/w/LS-01")
    response = await client.post("/submit", data={"csrf_token": token, "content": CONTENT,
                                                  "service_point_id": str(point_id)})
    assert response.status_code == 422
    assert "该流动服务点已结束，不再接收意见" in response.text and 'href="/w/LS-01"' in response.text
    assert CONTENT in response.text  # what was typed is shown, to be copied to the workroom's page
    assert await count_forms(sessionmaker) == 0


async def test_a_running_point_still_takes_forms(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = utcnow()
    point_id = await add_point(sessionmaker, world, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1))
    page = await client.get(f"/p/{point_id}")
    assert 'action="/submit"' in page.text
    token = await csrf_token(client, f"/p/{point_id}")
    response = await client.post("/submit", data={"csrf_token": token, "content": CONTENT,
                                                   "service_point_id": str(point_id)})
    assert response.status_code == 303 and await count_forms(sessionmaker) == 1


async def test_the_api_still_takes_a_form_for_an_ended_point(client, sessionmaker) -> None:
    # Representatives enter what they collected at a session after it, and imports name past sessions:
    # only the residents' page refuses an ended point (docs/user-guide.md, 值班与流动服务点).
    world = await build_world(sessionmaker)
    point_id, _ = await ended_point(sessionmaker, world)
    form = await submit(client, headers=world.auth("rep"), service_point_id=point_id, channel="service_point")
    assert form["service_point_id"] == point_id


# --- 4. a favicon ----------------------------------------------------------------------------------


async def test_the_favicon_is_linked_and_favicon_ico_answers(client) -> None:
    home = await client.get("/")
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in home.text
    svg = await client.get("/static/img/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.lstrip().startswith("<svg")
    ico = await client.get("/favicon.ico")  # what browsers ask for whatever the page links: the same mark
    assert ico.status_code == 200 and ico.headers["content-type"].startswith("image/svg+xml")
    assert ico.content == svg.content


# --- 5. dates with their year ----------------------------------------------------------------------


def test_office_dates_keep_their_year() -> None:
    assert roster_office.md(datetime(2026, 5, 4, 9, 0, tzinfo=TZ)) == "2026-05-04"


async def test_the_rota_preview_shows_days_with_their_year(client, sessionmaker) -> None:
    from tests.test_web_roster_office import next_monday, rota_form

    world = await build_world(sessionmaker)
    monday = next_monday()
    token = await sign_in(client, "coordinator")
    response = await client.post("/office/rota/preview", data=rota_form(world, token, monday))
    assert response.status_code == 200 and monday.isoformat() in response.text


# --- 6. the home page ------------------------------------------------------------------------------


async def test_home_s_big_button_is_我要反映(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    home = await client.get("/")
    button = re.search(r'<a class="button primary[^"]*" href="([^"]+)">([^<]+)</a>', home.text)
    assert button and button.group(2) == "我要反映" and button.group(1) == "#workrooms"
    assert 'id="workrooms"' in home.text and 'href="/w/LS-01"' in home.text and 'href="/track"' in home.text


async def test_no_duty_today_is_said_once_not_once_per_workroom(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    home = await client.get("/")
    assert home.text.count("今日无值班安排") == 1


async def test_with_one_workroom_on_duty_the_rest_share_one_line(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = datetime.now(TZ)
    response = await client.post("/api/v1/workrooms/LS-01/shifts", headers=world.auth("coordinator"), json={
        "representative_id": world.representatives["rep"].id,
        "starts_at": (now - timedelta(minutes=5)).isoformat(), "ends_at": (now + timedelta(minutes=5)).isoformat()})
    assert response.status_code == 201, response.text
    home = await client.get("/")
    assert home.text.count("今日无值班安排") == 1 and "张代表" in home.text
    line = re.search(r'<p class="muted duty-none">(.*?)</p>', home.text, re.S)
    assert line and "石塘湾村党代表工作室" in line.group(1) and "镇区党代表工作室" not in line.group(1)


# --- 7. the representative's text box first --------------------------------------------------------


async def test_the_rep_page_puts_the_entry_form_before_my_duty(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await sign_in(client, "rep")
    page = await client.get("/rep")
    assert page.status_code == 200
    assert page.text.index('id="f-content"') < page.text.index('id="my-duty"')


# --- 8. roster conflicts named by workroom and local time ------------------------------------------


async def test_a_roster_conflict_names_the_other_shift_by_workroom_and_local_time(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    await rename_workroom(sessionmaker, "LS-02", "洛社镇党代表工作室")
    headers = world.auth("coordinator")
    rep = world.representatives["rep"].id
    first = await client.post("/api/v1/workrooms/LS-02/shifts", headers=headers, json={
        "representative_id": rep, "starts_at": "2030-12-08T09:00:00+08:00", "ends_at": "2030-12-08T11:30:00+08:00"})
    assert first.status_code == 201, first.text
    clash = await client.post("/api/v1/workrooms/LS-01/shifts", headers=headers, json={
        "representative_id": rep, "starts_at": "2030-12-08T01:00:00Z", "ends_at": "2030-12-08T04:00:00Z"})
    body = assert_problem(clash, 409, "shift_conflict")
    assert "与 洛社镇党代表工作室 12月8日 09:00–11:30 的值班冲突" in body["detail"], body["detail"]
    assert "2030-12-08T" not in body["detail"] and "+08:00" not in body["detail"]
    assert "编号" not in body["detail"]
    assert body["conflicting_shift_ids"] == [first.json()["id"]]  # programs still get the id


async def test_the_office_week_page_names_the_conflict_the_same_way(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    first = await client.post("/api/v1/workrooms/LS-02/shifts", headers=world.auth("coordinator"), json={
        "representative_id": world.representatives["rep"].id,
        "starts_at": "2030-12-08T22:00:00+08:00", "ends_at": "2030-12-09T06:00:00+08:00"})
    assert first.status_code == 201, first.text
    token = await sign_in(client, "coordinator")
    response = await client.post("/office/rosters/shifts", data={
        "csrf_token": token, "workroom": "LS-01", "representative_id": str(world.representatives["rep"].id),
        "day": "2030-12-09", "start": "05:00", "end": "08:00"})
    assert response.status_code == 409
    message = re.search(r'data-error="shift_conflict">([^<]+)<', response.text)
    assert message and "与 石塘湾村党代表工作室 12月8日 22:00–12月9日 06:00 的值班冲突" in message.group(1)
    assert "T22:00" not in message.group(1) and "编号" not in message.group(1)


async def test_the_rota_preview_names_a_conflict_without_an_internal_id(client, sessionmaker) -> None:
    from tests.test_web_roster_office import api_shift, next_monday, rota_form

    world = await build_world(sessionmaker)
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    busy = await api_shift(client, world, "rep2", datetime.combine(wednesday, datetime.min.time().replace(hour=10), TZ),
                           datetime.combine(wednesday, datetime.min.time().replace(hour=12), TZ), workroom="LS-02")
    token = await sign_in(client, "coordinator")
    response = await client.post("/office/rota/preview", data=rota_form(world, token, monday))
    item = re.search(rf'<li data-conflicting-shift-id="{busy["id"]}">([^<]+)</li>', response.text)
    assert item and "石塘湾村党代表工作室" in item.group(1)
    assert f"{wednesday.month}月{wednesday.day}日 10:00–12:00" in item.group(1) and "编号" not in item.group(1)
