"""Residents' pages (no login): workrooms, submit forms per workroom and service point, the receipt,
public tracking, QR codes and posters."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select

from app.config import TZ
from app.db import transaction
from app.models import OpinionForm, ServicePoint, Workroom, utcnow
from tests.factories import act, build_world, submit

CONTENT = "村口路灯坏了三盏，晚上走路看不清，请尽快修复。"


async def csrf_token(client: httpx.AsyncClient, path: str = "/") -> str:
    page = await client.get(path)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


async def count_forms(sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


async def add_point(sessionmaker, world, code: str = "LS-01", title: str = "洛社菜市场流动服务点") -> int:
    async with transaction(sessionmaker) as session:
        now = utcnow()
        point = ServicePoint(workroom_id=world.workrooms[code].id, title=title, place_type="market",
                             location="洛社菜市场门口", starts_at=now, ends_at=now + timedelta(hours=3))
        session.add(point)
        await session.flush()
        return point.id


async def post_submit(client: httpx.AsyncClient, page: str = "/w/LS-01", **fields: str) -> httpx.Response:
    token = await csrf_token(client, page)
    data = {"csrf_token": token, "content": CONTENT, "category": "urban_traffic", "workroom_code": "LS-01"}
    data.update(fields)
    return await client.post("/submit", data={k: v for k, v in data.items() if v is not None})


async def test_home_lists_active_workrooms_and_links_tracking(client, sessionmaker):
    await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        session.add(Workroom(code="LS-99", name="已停用的工作室", address="", area="", active=False))
    page = await client.get("/")
    assert page.status_code == 200
    assert 'href="/w/LS-01"' in page.text and "镇区党代表工作室" in page.text
    assert 'href="/w/LS-02"' in page.text
    assert "已停用的工作室" not in page.text
    assert 'href="/track"' in page.text


async def test_workroom_page_has_the_form_with_category_chips_and_its_service_points(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await add_point(sessionmaker, world)
    page = await client.get("/w/LS-01")
    assert page.status_code == 200
    assert 'class="chips"' in page.text
    assert page.text.count('type="radio" name="category"') >= 3
    assert 'value="urban_traffic"' in page.text
    assert '<input type="hidden" name="workroom_code" value="LS-01">' in page.text
    assert "来源：" in page.text and "镇区党代表工作室" in page.text
    assert f'href="/p/{point_id}"' in page.text
    for name in ("content", "submitter_name", "submitter_phone", "location"):
        assert f'for="f-{name}"' in page.text  # every field has its label


async def test_service_point_page_fills_in_its_source(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await add_point(sessionmaker, world)
    page = await client.get(f"/p/{point_id}")
    assert page.status_code == 200
    assert f'<input type="hidden" name="service_point_id" value="{point_id}">' in page.text
    assert "来源：" in page.text and "洛社菜市场流动服务点" in page.text


async def test_unknown_workroom_or_point_is_a_404_page(client, sessionmaker):
    await build_world(sessionmaker)
    assert (await client.get("/w/NOPE-1")).status_code == 404
    assert (await client.get("/p/999999")).status_code == 404
    assert (await client.get("/w/NOPE-1/qr.svg")).status_code == 404


async def test_valid_submission_creates_one_form_and_the_receipt_shows_number_and_code(client, sessionmaker):
    await build_world(sessionmaker)
    response = await post_submit(client, submitter_phone="13812345678", submitter_name="王阿姨", location="村口")
    assert response.status_code == 303
    assert response.headers["location"] == "/receipt"  # the code never travels in a URL
    assert await count_forms(sessionmaker) == 1
    async with sessionmaker() as session:
        form = await session.scalar(select(OpinionForm))
        assert form.content == CONTENT and form.submitter_phone == "13812345678" and form.location == "村口"
        assert form.workroom_id is not None and form.channel == "workroom"
    receipt = await client.get("/receipt")
    assert receipt.status_code == 200
    assert receipt.headers["cache-control"] == "no-store"
    number = re.search(r'<p class="big" id="tracking-no">([^<]+)</p>', receipt.text).group(1)
    code = re.search(r'<p class="big" id="tracking-code">(\d{6})</p>', receipt.text).group(1)
    assert number == form.tracking_no
    assert "/track" in receipt.text
    # the number and the code found on the receipt really track the form
    tracked = await client.get(f"/api/v1/track/{number}", params={"code": code})
    assert tracked.status_code == 200


async def test_submission_from_a_service_point_is_recorded_there(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await add_point(sessionmaker, world)
    response = await post_submit(client, page=f"/p/{point_id}", workroom_code=None, service_point_id=str(point_id))
    assert response.status_code == 303
    async with sessionmaker() as session:
        form = await session.scalar(select(OpinionForm))
        assert form.service_point_id == point_id and form.channel == "service_point"
        assert form.workroom_id == world.workrooms["LS-01"].id


async def test_missing_content_is_422_with_a_message_and_keeps_what_was_typed(client, sessionmaker):
    await build_world(sessionmaker)
    response = await post_submit(client, content="   ", submitter_phone="13812345678", location="桥头")
    assert response.status_code == 422
    assert "请填写您的意见或建议" in response.text
    assert 'id="e-content"' in response.text
    assert 'value="13812345678"' in response.text and 'value="桥头"' in response.text
    assert 'value="urban_traffic" checked' in response.text
    assert '<input type="hidden" name="workroom_code" value="LS-01">' in response.text
    assert await count_forms(sessionmaker) == 0


async def test_bad_phone_is_422_next_to_the_phone_field(client, sessionmaker):
    await build_world(sessionmaker)
    response = await post_submit(client, submitter_phone="call me")
    assert response.status_code == 422
    assert 'id="e-submitter_phone"' in response.text and "电话号码" in response.text
    assert CONTENT in response.text  # the content typed is kept
    assert await count_forms(sessionmaker) == 0


async def test_unknown_category_is_422_next_to_the_chips(client, sessionmaker):
    await build_world(sessionmaker)
    response = await post_submit(client, category="no_such_thing")
    assert response.status_code == 422
    assert 'id="e-category"' in response.text
    assert await count_forms(sessionmaker) == 0


async def test_post_without_csrf_token_is_403_and_saves_nothing(client, sessionmaker):
    await build_world(sessionmaker)
    await client.get("/w/LS-01")  # the cookie is there, the token is not sent
    response = await client.post("/submit", data={"content": CONTENT, "workroom_code": "LS-01"})
    assert response.status_code == 403
    assert await count_forms(sessionmaker) == 0


async def test_receipt_without_or_with_a_forged_cookie_shows_nothing(client, sessionmaker):
    await build_world(sessionmaker)
    response = await client.get("/receipt")
    assert response.status_code == 404 and "回执已过期" in response.text
    client.cookies.set("minyi_receipt", "eyJubyI6IkxTMjAyNi0wMDAwMSIsImNvZGUiOiIxMjM0NTYiLCJleHAiOjk5OTk5OTk5OTl9.00")
    response = await client.get("/receipt")
    assert response.status_code == 404 and "123456" not in response.text


async def test_tracking_shows_status_and_public_reply_but_never_internal_notes(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    assert (await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})).status_code == 200
    assert (await act(client, world, "coordinator", form["id"], "notes", {"note": "内部备注：该路段属县道"})).status_code == 200
    replied = await act(client, world, "handler_a", form["id"], "reply",
                        {"reply": "已安排维修，三日内完成。", "internal_note": "仅内部：材料费由村里出"})
    assert replied.status_code == 200
    token = await csrf_token(client, "/track")
    page = await client.post("/track", data={"csrf_token": token, "no": form["tracking_no"],
                                             "code": form["verification_code"]})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "已答复" in page.text
    assert "已安排维修，三日内完成。" in page.text
    assert "已转交承办单位办理" in page.text  # the public timeline
    assert "该路段属县道" not in page.text and "材料费由村里出" not in page.text


async def test_tracking_shows_the_deadline_while_assigned(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    due_on = (datetime.now(TZ) + timedelta(days=200)).date()  # deadlines stay within two years
    assigned = await act(client, world, "coordinator", form["id"], "assign",
                         {"unit_id": world.units["A"].id, "due_at": f"{due_on.isoformat()}T18:00:00+08:00"})
    assert assigned.status_code == 200
    token = await csrf_token(client, "/track")
    page = await client.post("/track", data={"csrf_token": token, "no": form["tracking_no"],
                                             "code": form["verification_code"]})
    assert page.status_code == 200 and "办理期限" in page.text and due_on.isoformat() in page.text


async def test_tracking_with_a_wrong_code_or_unknown_number_is_a_friendly_404(client, sessionmaker):
    await build_world(sessionmaker)
    form = await submit(client)
    wrong = "000000" if form["verification_code"] != "000000" else "111111"
    token = await csrf_token(client, "/track")
    for no, code in ((form["tracking_no"], wrong), ("LS2099-99999", "123456")):
        page = await client.post("/track", data={"csrf_token": token, "no": no, "code": code})
        assert page.status_code == 404
        assert "查询码不正确" in page.text
        assert CONTENT not in page.text
    empty = await client.post("/track", data={"csrf_token": token, "no": "", "code": ""})
    assert empty.status_code == 422 and "请填写查询编号" in empty.text


async def test_track_page_prefills_the_number_from_the_receipt_link(client, sessionmaker):
    page = await client.get("/track", params={"no": "LS2026-00001"})
    assert page.status_code == 200 and 'value="LS2026-00001"' in page.text


async def test_qr_codes_are_valid_svg_of_the_submit_page(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await add_point(sessionmaker, world)
    for path in ("/w/LS-01/qr.svg", f"/p/{point_id}/qr.svg"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(response.content)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}path") is not None
    title = ET.fromstring((await client.get("/w/LS-01/qr.svg")).content).find("{http://www.w3.org/2000/svg}title")
    assert title is not None and title.text == "http://testserver/w/LS-01"


async def test_posters_show_the_qr_the_name_and_the_instructions_for_a4(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await add_point(sessionmaker, world)
    page = await client.get("/w/LS-01/poster")
    assert page.status_code == 200
    assert "<svg" in page.text and "镇区党代表工作室" in page.text
    assert "扫码反映您的意见建议" in page.text and "查询编号和查询码" in page.text
    assert 'class="poster-page"' in page.text  # printed on A4: the rule is in the stylesheet (no inline style, CSP)
    assert "size: A4" in (await client.get("/static/css/app.css")).text
    assert "http://testserver/w/LS-01" in page.text
    page = await client.get(f"/p/{point_id}/poster")
    assert page.status_code == 200 and "<svg" in page.text and "洛社菜市场流动服务点" in page.text
    assert f"http://testserver/p/{point_id}" in page.text


async def test_qr_codes_posters_and_calendars_use_the_configured_public_address(db_url, sessionmaker) -> None:
    """Behind a proxy the request's own host may be an internal one: MINYI_PUBLIC_URL is what gets printed."""
    import httpx as _httpx

    from tests.support.apps import build_app
    from tests.conftest import make_settings

    world = await build_world(sessionmaker)
    app = build_app(make_settings(db_url, public_url="https://minyi.luoshe.gov.cn"))
    try:
        async with _httpx.AsyncClient(transport=_httpx.ASGITransport(app=app), base_url="http://10.0.0.5:8000") as http:
            svg = await http.get("/w/LS-01/qr.svg")
            assert "https://minyi.luoshe.gov.cn/w/LS-01" in svg.text and "10.0.0.5" not in svg.text
            poster = await http.get("/w/LS-01/poster")
            assert "https://minyi.luoshe.gov.cn/w/LS-01" in poster.text
            rep_id = world.representatives["rep"].id
            feed = await http.get(f"/api/v1/calendars/representatives/{rep_id}", headers=world.auth("coordinator"))
            assert feed.json()["url"].startswith(f"https://minyi.luoshe.gov.cn/api/v1/calendars/representatives/{rep_id}.ics?token=")
    finally:
        await app.state.engine.dispose()
