"""Paper forms (issue 20.1): batches of numbered sheets printed as PDF (A4 and A5, Chinese, a serial and a QR
code that opens the serial's entry page on each), typed in at the desk with the next serial offered and a
scan attached, a serial entered once, and reconciliation per batch, session and workroom."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
import segno
from sqlalchemy import func, select

from app.models import Category, FormPhoto, OpinionForm, PaperBatch
from app.services import paper_forms
from tests.factories import World, build_world
from tests.support.documents import pdf_fonts, pdf_page_size_mm, pdf_pages, pdf_text, pdf_to_pngs
from tests.support.logins import csrf_of, sign_in
from tests.test_photos import jpeg, two_colour
from tests.test_web_public import add_point

CONTENT = "菜场门口的下水道一下雨就反水，摊位前全是积水。"
SERIAL = re.compile(r"^P\d{4}-\d{5}$")


async def new_batch(client: httpx.AsyncClient, world: World, who: str = "coordinator", **fields: Any) -> httpx.Response:
    return await client.post("/api/v1/paper-batches", json={"workroom_code": "LS-01", "count": 4, **fields},
                             headers=world.auth(who))


async def batch(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    response = await new_batch(client, world, **fields)
    assert response.status_code == 201, response.text
    return response.json()


async def enter(client: httpx.AsyncClient, world: World, batch_id: int, serial: str, who: str = "coordinator",
                **fields: Any) -> httpx.Response:
    body = {"serial": serial, "content": CONTENT, "category": "environment", **fields}
    return await client.post(f"/api/v1/paper-batches/{batch_id}/forms", json=body, headers=world.auth(who))


def serial(first: str, offset: int) -> str:
    year, number = paper_forms.parse_serial(first)
    return paper_forms.serial_of(year, number + offset)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


# --- serials ---------------------------------------------------------------------------------------------


def test_typed_serials_are_forgiven_their_form_but_not_their_substance() -> None:
    assert paper_forms.normalise(" ｐ２０２６－１７ ") == "P2026-00017"
    assert paper_forms.normalise("2026-00017") == paper_forms.normalise("P202600017") == "P2026-00017"
    for garbage in ("", "   ", "abc", "P2026-00000", "P1999-00001", "P2026-123456", "P2026-1; DROP", "x" * 10_000):
        with pytest.raises(paper_forms.Invalid) as refused:
            paper_forms.normalise(garbage)
        assert refused.value.code == "invalid_paper_serial"
    assert [r.label for r in paper_forms.ranges(2026, [3, 4, 5, 9])] == ["P2026-00003 至 P2026-00005", "P2026-00009"]


async def test_batches_get_serials_of_their_own_even_when_printed_at_once(client: httpx.AsyncClient,
                                                                          sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    point = await add_point(sessionmaker, world, code="LS-02", title="石塘湾集市流动服务点")
    answers = await asyncio.gather(*(new_batch(client, world, count=count) for count in (3, 500, 1, 7)),
                                   new_batch(client, world, workroom_code=None, service_point_id=point, count=2))
    made = []
    for response in answers:
        assert response.status_code == 201, response.text
        made.append(response.json())
    numbers = sorted((paper_forms.parse_serial(b["first_serial"])[1], paper_forms.parse_serial(b["last_serial"])[1])
                     for b in made)
    assert numbers[0][0] == 1 and all(later[0] == earlier[1] + 1 for earlier, later in zip(numbers, numbers[1:]))
    assert numbers[-1][1] == 3 + 500 + 1 + 7 + 2  # contiguous and never overlapping, whatever the order
    by_session = made[-1]
    assert (by_session["workroom_code"], by_session["service_point_id"]) == ("LS-02", point)
    assert by_session["reconciliation"] == {"handed_out": 2, "entered": 0, "voided": 0, "missing": 2, "missing_ranges": [
        {"first": by_session["first_serial"], "last": by_session["last_serial"], "count": 2}]}
    assert by_session["next_serial"] == by_session["first_serial"] and SERIAL.match(by_session["first_serial"])

    # The edges: none, too many, a session of another workroom, nowhere at all, unknown places.
    problem(await new_batch(client, world, count=0), 422, "validation_error")
    big = problem(await new_batch(client, world, count=501), 422, "validation_error")
    assert big["errors"][0]["loc"] == ["body", "count"]
    problem(await new_batch(client, world, count=10**20), 422, "validation_error")
    problem(await new_batch(client, world, page_size="A3"), 422, "validation_error")
    problem(await new_batch(client, world, service_point_id=point), 422, "workroom_mismatch")
    problem(await new_batch(client, world, workroom_code=None), 422, "workroom_required")
    problem(await new_batch(client, world, workroom_code="NO-SUCH"), 422, "unknown_workroom")
    problem(await new_batch(client, world, workroom_code=None, service_point_id=2_147_483_647), 422,
            "unknown_service_point")
    # Only the office prints.
    for who in ("rep", "handler_a"):
        problem(await new_batch(client, world, who=who), 403, "forbidden")
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PaperBatch)) == 5


# --- entering and refusing -------------------------------------------------------------------------------


async def test_a_serial_is_entered_once_and_voided_or_unknown_ones_never(client: httpx.AsyncClient,
                                                                         sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    first, other = await batch(client, world, count=4), await batch(client, world, count=2, workroom_code="LS-02")
    s1, s2, s4 = first["first_serial"], serial(first["first_serial"], 1), first["last_serial"]

    entered = await enter(client, world, first["id"], s1.lower().replace("-", ""), who="rep",
                          submitter_name="王阿姨", submitter_phone="13861700001", public=True)
    assert entered.status_code == 201, entered.text
    created = entered.json()
    assert (created["paper_serial"], created["next_serial"], created["status"]) == (s1, s2, "submitted")
    # The office's reads of the form carry its serial, one form and the list alike.
    read = await client.get(f"/api/v1/forms/{created['id']}", headers=world.auth("coordinator"))
    assert read.status_code == 200 and read.json()["paper_serial"] == s1
    listed = await client.get("/api/v1/forms", headers=world.auth("coordinator"))
    assert {f["paper_serial"] for f in listed.json()["items"] if f["id"] == created["id"]} == {s1}
    again = problem(await enter(client, world, first["id"], s1), 409, "paper_serial_taken")
    assert again["tracking_no"] == created["tracking_no"] and created["tracking_no"] in again["detail"]

    voided = await client.post(f"/api/v1/paper-batches/{first['id']}/voids", headers=world.auth("coordinator"),
                                json={"serials": [s4, s4], "reason": "下雨淋湿，字迹不清"})
    assert voided.status_code == 200, voided.text
    assert [v["serial"] for v in voided.json()["voids"]] == [s4]
    problem(await enter(client, world, first["id"], s4), 409, "paper_serial_voided")
    problem(await client.post(f"/api/v1/paper-batches/{first['id']}/voids", headers=world.auth("coordinator"),
                              json={"serials": [s4], "reason": "再次作废"}), 409, "paper_serial_voided")
    taken = problem(await client.post(f"/api/v1/paper-batches/{first['id']}/voids", headers=world.auth("coordinator"),
                                      json={"serials": [s2, s1], "reason": "遗失"}), 409, "paper_serial_entered")
    assert taken["tracking_no"] == created["tracking_no"]
    problem(await client.post(f"/api/v1/paper-batches/{first['id']}/voids", headers=world.auth("coordinator"),
                              json={"serials": [other["first_serial"]], "reason": "遗失"}), 422, "paper_serial_not_in_batch")
    problem(await client.post(f"/api/v1/paper-batches/{first['id']}/voids", headers=world.auth("rep"),
                              json={"serials": [s2], "reason": "遗失"}), 403, "forbidden")

    problem(await enter(client, world, first["id"], "P2099-00001"), 422, "paper_serial_unknown")
    problem(await enter(client, world, first["id"], "不是编号"), 422, "invalid_paper_serial")
    problem(await enter(client, world, first["id"], other["first_serial"]), 422, "paper_serial_not_in_batch")
    problem(await enter(client, world, first["id"], "P" * 33), 422, "validation_error")
    problem(await enter(client, world, first["id"], s2, content=""), 422, "validation_error")
    problem(await enter(client, world, first["id"], s2, category="no_such"), 422, "unknown_category")
    # Another workroom's papers: 李代表 (LS-02) neither reads nor types in LS-01's; units never.
    problem(await enter(client, world, first["id"], s2, who="rep2"), 403, "paper_batch_forbidden")
    problem(await client.get(f"/api/v1/paper-batches/{first['id']}", headers=world.auth("rep2")), 403,
            "paper_batch_forbidden")
    problem(await enter(client, world, first["id"], s2, who="handler_a"), 403, "forbidden")
    listed = await client.get("/api/v1/paper-batches", headers=world.auth("rep2"))
    assert [b["id"] for b in listed.json()["items"]] == [other["id"]]
    problem(await client.get("/api/v1/paper-batches/999999", headers=world.auth("coordinator")), 404,
            "paper_batch_not_found")
    problem(await client.get("/api/v1/paper-batches/99999999999999999999", headers=world.auth("coordinator")), 422,
            "validation_error")

    async with sessionmaker() as session:
        forms = list(await session.scalars(select(OpinionForm)))
    assert len(forms) == 1  # nothing of a refused entry was written
    (form,) = forms
    assert (form.paper_serial, form.channel, form.public) == (s1, "workroom", True)
    assert form.entered_by_representative_id == world.representatives["rep"].id  # credited to who typed it in


async def test_reconciliation_per_batch_session_and_workroom_and_the_printed_batch(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    point = await add_point(sessionmaker, world)
    daily = await batch(client, world, count=6)
    market = await batch(client, world, count=3, workroom_code=None, service_point_id=point, page_size="A5")
    for offset in (0, 1, 4):
        assert (await enter(client, world, daily["id"], serial(daily["first_serial"], offset))).status_code == 201
    at_market = await enter(client, world, market["id"], serial(market["first_serial"], 1))
    assert at_market.status_code == 201
    await client.post(f"/api/v1/paper-batches/{daily['id']}/voids", headers=world.auth("coordinator"),
                      json={"serials": [serial(daily["first_serial"], 3)], "reason": "填错重领"})

    got = (await client.get(f"/api/v1/paper-batches/{daily['id']}", headers=world.auth("rep"))).json()
    t = got["reconciliation"]
    assert (t["handed_out"], t["entered"], t["voided"], t["missing"]) == (6, 3, 1, 2)
    assert [(r["first"], r["count"]) for r in t["missing_ranges"]] == [
        (serial(daily["first_serial"], 2), 1), (serial(daily["first_serial"], 5), 1)]
    assert got["next_serial"] == serial(daily["first_serial"], 2)

    summary = (await client.get("/api/v1/paper-batches/reconciliation", headers=world.auth("coordinator"))).json()
    assert {k: summary["totals"][k] for k in ("handed_out", "entered", "voided", "missing")} == {
        "handed_out": 9, "entered": 4, "voided": 1, "missing": 4}
    (workroom,) = summary["workrooms"]
    assert (workroom["workroom_code"], workroom["batches"], workroom["entered"]) == ("LS-01", 2, 4)
    (session_row,) = summary["sessions"]
    assert (session_row["service_point_id"], session_row["handed_out"], session_row["entered"]) == (point, 3, 1)
    assert [r["count"] for r in session_row["missing_ranges"]] == [1, 1]
    empty = (await client.get("/api/v1/paper-batches/reconciliation?workroom=LS-02", headers=world.auth("coordinator")))
    assert empty.json()["totals"]["handed_out"] == 0 and empty.json()["workrooms"] == []

    # A form from the market's sheets was collected there, and counts as every form does.
    async with sessionmaker() as session:
        form = await session.scalar(select(OpinionForm).where(OpinionForm.id == at_market.json()["id"]))
    assert (form.channel, form.service_point_id) == ("service_point", point)
    stats = (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).json()
    assert stats["collected"] == 4

    # The market's sheets as printed (A5 by default; its own size asked for as well, below in the PDF test).
    printed = await client.get(f"/api/v1/paper-batches/{market['id']}/pdf", headers=world.auth("rep"))
    assert printed.status_code == 200 and printed.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''" in printed.headers["content-disposition"]
    assert pdf_pages(printed.content) == 3 and pdf_page_size_mm(printed.content) == (148.0, 210.0)
    pdf_to_pngs(printed.content, "paper-forms-a5", last=1)
    again = (await client.get(f"/api/v1/paper-batches/{market['id']}", headers=world.auth("coordinator"))).json()
    assert again["printed_by"] == "rep" and again["printed_at"]
    problem(await client.get(f"/api/v1/paper-batches/{market['id']}/pdf?size=A3", headers=world.auth("rep")), 422,
            "validation_error")
    problem(await client.get(f"/api/v1/paper-batches/{market['id']}/pdf", headers=world.auth("rep2")), 403,
            "paper_batch_forbidden")

    # The office's page shows the same numbers.
    await sign_in(client, "coordinator")
    page = await client.get("/office/paper")
    assert page.status_code == 200
    assert 'data-handed-out="9" data-entered="4" data-voided="1" data-missing="4"' in page.text
    assert serial(daily["first_serial"], 2) in page.text
    one = await client.get(f"/office/paper/{daily['id']}")
    assert f"/api/v1/paper-batches/{daily['id']}/pdf?size=A4" in one.text and "填错重领" in one.text


def test_the_printed_sheets_carry_title_serial_qr_link_and_fields_in_chinese() -> None:
    sheet = paper_forms.Sheet(
        title="意见征询表", place=("镇区党代表工作室", "洛社菜市场流动服务点（2026-12-07）"),
        categories=("城建交通", "环境卫生", "社会治安", "民生保障"), page_size="A4",
        entry_url=lambda s: "https://minyi.example.cn" + paper_forms.entry_path(s))
    serials = ["P2026-00041", "P2026-00042"]
    data = paper_forms.render_pdf(sheet, serials)
    assert pdf_pages(data) == 2 and pdf_page_size_mm(data) == (210.0, 297.0)
    text = pdf_text(data)
    pages = text.split("\f")
    for number, page in zip(serials, pages, strict=False):
        assert "意见征询表" in page and f"编号：{number}" in page
        for words in ("意见内容", "城建交通", "民生保障", "姓名", "电话", "是否愿意公开", "洛社菜市场流动服务点", "个人信息说明"):
            assert words in page, words
    fonts = pdf_fonts(data)
    assert fonts and all(f["emb"] == "yes" for f in fonts)
    # Each QR code is a link to its own serial's entry page, and the code printed there encodes that URL:
    # read back from the rendered page, module by module, it is segno's encoding of the URL.
    for number in serials:
        assert f"/URI (https://minyi.example.cn/office/paper/entry?serial={number})".encode() in data
    pdf_to_pngs(data, "paper-forms-a4", last=1)
    url = f"https://minyi.example.cn/office/paper/entry?serial={serials[0]}"
    assert printed_qr(data, url) == [[bool(m) for m in row] for row in segno.make(url, error="m", mask=2).matrix]


def printed_qr(data: bytes, url: str, dpi: int = 300) -> list[list[bool]]:
    """The QR code linked to ``url`` on the PDF's first page as printed: the page rendered by poppler, each
    module read at its centre inside the link's rectangle (the code fills it, no quiet zone)."""
    from PIL import Image

    annotation = re.search(rb"/URI \(" + re.escape(url.encode()) + rb"\)>>.*?/Rect \[([\d. ]+)\]", data, re.S)
    assert annotation, "no link annotation for " + url
    left, bottom, right, top = (float(v) for v in annotation.group(1).split())
    height = float(re.search(rb"/MediaBox \[0 0 [\d.]+ ([\d.]+)\]", data).group(1))
    modules = len(segno.make(url, error="m", mask=2).matrix)
    scale = dpi / 72
    side = (right - left) * scale / modules
    page = pdf_to_pngs(data, "paper-qr-a4", dpi=dpi, last=1)[0]
    with Image.open(page) as image:
        gray = image.convert("L")
        return [[gray.getpixel((int(left * scale + (c + 0.5) * side), int((height - top) * scale + (r + 0.5) * side))) < 128
                 for c in range(modules)] for r in range(modules)]


# --- the desk --------------------------------------------------------------------------------------------


async def test_the_desk_offers_the_next_serial_takes_a_scan_and_refuses_a_second_entry(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    made = await batch(client, world, count=3)
    s1, s2, s3 = (serial(made["first_serial"], i) for i in range(3))

    # A sheet's QR code, scanned signed out: sign in, then back to the serial's entry page.
    scanned = await client.get(f"/office/paper/entry?serial={s3}")
    assert scanned.status_code == 303 and scanned.headers["location"].startswith("/login?next=")
    assert s3 in scanned.headers["location"]

    token = await sign_in(client, "rep")
    page = await client.get(f"/office/paper/entry?batch={made['id']}")
    assert page.status_code == 200
    assert f'name="serial" required maxlength="32" autocomplete="off" value="{s1}"' in page.text
    assert re.search(r'<textarea id="f-content"[^>]*autofocus', page.text)  # the cursor waits in the content
    async with sessionmaker() as session:
        categories = list(await session.scalars(select(Category).where(Category.active.is_(True))
                                               .order_by(Category.sort_order, Category.id)))
    assert f'value="{categories[1].code}" >2 {categories[1].name}</option>' in page.text  # "2" picks the second

    sent = await client.post("/office/paper/entry", data={
        "csrf_token": token, "batch": str(made["id"]), "serial": s1, "content": CONTENT,
        "category": "environment", "submitter_name": "王阿姨", "submitter_phone": "13861700001", "public": "true",
    }, files={"photos": ("扫描.jpg", jpeg(two_colour((600, 800))), "image/jpeg")})
    assert sent.status_code == 303, sent.text
    after = await client.get(sent.headers["location"])
    async with sessionmaker() as session:
        form = await session.scalar(select(OpinionForm).where(OpinionForm.paper_serial == s1))
        photos = await session.scalar(select(func.count()).select_from(FormPhoto).where(FormPhoto.form_id == form.id))
    assert photos == 1 and form.submitter_name == "王阿姨" and form.public is True
    assert f'data-tracking-no="{form.tracking_no}"' in after.text
    assert f'value="{s2}"' in after.text and re.search(r'<textarea id="f-content"[^>]*autofocus', after.text)

    # The same sheet again: refused on the page, naming the first one's number; what was typed is kept.
    twice = await client.post("/office/paper/entry", data={
        "csrf_token": csrf_of(after), "batch": str(made["id"]), "serial": s1, "content": "另一段内容"})
    assert twice.status_code == 409
    assert form.tracking_no in twice.text and "另一段内容" in twice.text and 'data-error="serial"' in twice.text
    garbage = await client.post("/office/paper/entry", data={
        "csrf_token": token, "serial": "!!", "content": CONTENT})
    assert garbage.status_code == 422 and "不是有效的编号" in garbage.text
    opened = await client.get(f"/office/paper/entry?serial={s1}")  # scanning an entered sheet says so too
    assert opened.status_code == 409 and form.tracking_no in opened.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 1

    # 李代表 (LS-02) may not type in LS-01's sheets, and a handling unit has no desk.
    await sign_in(client, "rep2", fresh=True)
    assert (await client.get(f"/office/paper/entry?serial={s2}")).status_code == 403
    await sign_in(client, "handler_a", fresh=True)
    assert (await client.get("/office/paper/entry")).status_code == 403
    assert (await client.get("/office/paper")).status_code == 403
