"""Every link that yields a file downloads it, in a real Chromium (issue 17.3): on every office page that
has such links, at 390×844 and at 1440×900, each click gives a download with a Chinese name and the right
extension, the file is what it says, and the page stays where it was (htmx never swaps the file's bytes
into it). "导出当前列表" exports exactly the rows the filtered list shows."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import openpyxl
import pytest

from app.config import TZ
from tests.conftest import screenshot
from tests.factories import PASSWORD, act, build_world, submit

CHINESE = re.compile(r"[\u4e00-\u9fff]")
VIEWPORTS = {
    "phone": dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True),
    "desktop": dict(viewport={"width": 1440, "height": 900}),
}


def check_file(name: str, data: bytes) -> str:
    """The file's extension, once its name and content agree with it."""
    assert CHINESE.search(name), name
    ext = name.rsplit(".", 1)[-1]
    if ext == "csv":
        text = data.decode("utf-8-sig")
        header = next(csv.reader(io.StringIO(text)))
        assert len(header) >= 2 and all(header), header
    elif ext == "xlsx":
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            assert "xl/worksheets/sheet1.xml" in book.namelist()
    elif ext == "ics":
        assert data.startswith(b"BEGIN:VCALENDAR"), data[:60]
    elif ext == "svg":
        assert data.lstrip().startswith((b"<?xml", b"<svg")), data[:60]
    else:
        raise AssertionError(f"unexpected file {name}")
    return ext


async def download_all(page, scope: str = "main") -> dict[str, tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    """Click every download link in ``scope``: {link text: (suggested name, bytes)}; the page never moves."""
    where = page.url
    links = page.locator(f"{scope} a[download]")
    count = await links.count()
    assert count, f"no download links on {where}"
    files: dict[str, tuple[str, bytes]] = {}
    for index in range(count):
        link = links.nth(index)
        label = (await link.inner_text()).strip()
        async with page.expect_download() as info:
            await link.click()
        download = await info.value
        data = Path(await download.path()).read_bytes()
        check_file(download.suggested_filename, data)
        files[f"{index}:{label}"] = (download.suggested_filename, data)
        assert page.url == where
        await page.locator(scope).first.wait_for()
    return files


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def xlsx_rows(data: bytes) -> list[tuple[object, ...]]:
    return list(openpyxl.load_workbook(io.BytesIO(data), read_only=True).active.iter_rows(values_only=True))


async def _town(base: str, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    async with httpx.AsyncClient(base_url=base) as http:
        for text in ("村口路灯坏了三盏。", "菜场门口积水严重。", "公交站台缺少遮雨棚。"):
            await submit(http, content=text, workroom_code="LS-01")
        assigned = await submit(http, content="河道漂浮垃圾需要清理。", workroom_code="LS-02")
        response = await act(http, world, "coordinator", assigned["id"], "assign", {"unit_id": world.units["A"].id})
        assert response.status_code == 200, response.text
        soon = (datetime.now(TZ).date() + timedelta(days=3)).isoformat()  # "即将举行" lists 30 days
        point = await http.post("/api/v1/service-points", headers=world.auth("coordinator"), json={
            "workroom_code": "LS-01", "title": "洛社菜场流动服务点", "place_type": "market", "location": "洛社菜场东门",
            "starts_at": f"{soon}T08:00:00+08:00", "ends_at": f"{soon}T11:00:00+08:00",
            "representative_ids": [world.representatives["rep"].id]})
        assert point.status_code == 201, point.text


# Pairwise: each engine once, each caller and screen once (every file is downloaded and read on both engines
# through the API in tests/test_downloads.py and tests/test_exports.py): a browser run costs ~8 s.
@pytest.mark.parametrize(("db_engine", "who", "size"),
                         [("sqlite", "coordinator", "phone"), ("postgresql", "admin", "desktop")])
async def test_every_download_link_on_the_office_pages_saves_its_file(
    live_server: str, browser, sessionmaker, who: str, size: str, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    await _town(live_server, sessionmaker)
    context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", accept_downloads=True,
                                        **VIEWPORTS[size])
    try:
        page = await context.new_page()
        await page.goto(f"{live_server}/login")
        await page.fill("#username", who)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]:has-text('登录')")
        await page.wait_for_url(f"{live_server}/office")

        # 导入导出: the three templates and the five exports (issue 17: "all 8 show the raw bytes").
        await page.click("nav a:has-text('导入导出')")
        await page.wait_for_url("**/office/imports")
        files = await download_all(page)
        assert len(files) == 10  # and the activities' template and export (issue 20.2)
        names = [name for name, _ in files.values()]
        assert any(n.startswith("值班表导入模板") and n.endswith(".csv") for n in names), names
        assert any(n.startswith("值班出勤") and n.endswith(".xlsx") for n in names), names
        await screenshot(page, f"downloads-{size}-imports")

        # An import that fails: its rows' problems download as a CSV.
        bad = "工作室编号,日期,开始,结束,代表姓名,代表编号\nNO-SUCH,2026-13-45,25:00,09:00,无此人,\n"
        upload = tmp_path / "值班表.csv"
        upload.write_text(bad, encoding="utf-8")
        await page.check("input[name=kind][value=shifts]")
        await page.set_input_files("#f-file", str(upload))
        await page.click("button:has-text('上传并导入')")
        await page.locator("#import-job[data-status=failed]").wait_for()
        files = await download_all(page)
        ((name, data),) = files.values()
        assert name.endswith(".csv") and "导入问题" in name
        rows = csv_rows(data)
        assert rows[0] == ["行", "列", "原因"] and len(rows) - 1 == await page.locator("tr[data-row]").count()
        await screenshot(page, f"downloads-{size}-import-errors")

        # The dashboard's statistics: four tables, each as .xlsx and CSV.
        await page.goto(f"{live_server}/office")
        await page.click("[data-stats-exports] summary")
        files = await download_all(page, "[data-stats-exports]")
        assert len(files) == 8
        assert {n.rsplit(".", 1)[-1] for n, _ in files.values()} == {"xlsx", "csv"}
        await screenshot(page, f"downloads-{size}-dashboard")

        # The forms list: "导出当前列表" follows the filters htmx applies, and holds exactly the rows shown.
        await page.goto(f"{live_server}/office/forms")
        rows_shown = page.locator("[data-form-id]:visible")  # the desk's table rows, or the phone's cards
        assert await rows_shown.count() == 4
        files = await download_all(page, "[data-export-current]")
        for name, data in files.values():
            assert name.startswith("意见征询表")
            got = csv_rows(data) if name.endswith(".csv") else xlsx_rows(data)
            assert len(got) - 1 == 4, name
        await page.click("label:has(input[name=status][value=assigned])")
        await page.locator("[data-export-current] a[href*='status=assigned']").first.wait_for()
        await page.wait_for_function("() => document.querySelectorAll('.cards [data-form-id]').length === 1")
        files = await download_all(page, "[data-export-current]")
        assert len(files) == 2
        for name, data in files.values():
            got = csv_rows(data) if name.endswith(".csv") else xlsx_rows(data)
            assert len(got) - 1 == await rows_shown.count() == 1, name
            assert "河道漂浮垃圾需要清理。" in {str(cell) for row in got for cell in row}
        await page.select_option("#flt-workroom", "LS-01")
        await page.locator("[data-export-current] a[href*='workroom=LS-01']").first.wait_for()
        await page.wait_for_function("() => document.querySelectorAll('.cards [data-form-id]').length === 0")
        for name, data in (await download_all(page, "[data-export-current]")).values():
            got = csv_rows(data) if name.endswith(".csv") else xlsx_rows(data)
            assert len(got) == 1, name  # the header only: the list shows nothing either
        await screenshot(page, f"downloads-{size}-forms")

        # Attendance and the service points' funnel: the table as the form shows it.
        # The funnel's .xlsx holds both tables; each table has its own CSV.
        for path, stem, count in (("/office/attendance", "值班出勤", 2), ("/office/funnel", "流动服务点成效", 3)):
            await page.goto(f"{live_server}{path}")
            files = await download_all(page, "[data-export-current]")
            assert len(files) == count, files.keys()
            for name, data in files.values():
                assert name.startswith(stem), name
                rows = csv_rows(data) if name.endswith(".csv") else xlsx_rows(data)
                assert rows and all(isinstance(cell, str) and cell for cell in rows[0]), (name, rows[:1])
                if name.endswith(".csv") and path == "/office/funnel":
                    assert rows[0][0] == ("代表编号" if "按代表" in name else "场次编号"), (name, rows[0])
            await screenshot(page, f"downloads-{size}-{path.rsplit('/', 1)[-1]}")

        # A service point's QR code, from the list and from its poster.
        await page.goto(f"{live_server}/office/service-points")
        ((name, _),) = (await download_all(page, "[data-service-point-id]")).values()
        assert name == "二维码-洛社菜场流动服务点.svg"
        await page.click("[data-service-point-id] a[data-link=poster]")
        await page.wait_for_url("**/poster")
        await page.locator("body.poster-page").wait_for()  # the whole page, not swapped into the office's
        ((name, _),) = (await download_all(page, "body")).values()
        assert name == "二维码-洛社菜场流动服务点.svg"
        await screenshot(page, f"downloads-{size}-point-poster")

        # A workroom's poster, its calendar file, the holiday template.
        await page.goto(f"{live_server}/w/LS-01/poster")
        ((name, _),) = (await download_all(page, "body")).values()
        assert name == "二维码-镇区党代表工作室.svg"
        await page.goto(f"{live_server}/office/rosters/calendar?workroom=LS-01")
        ((name, _),) = (await download_all(page)).values()
        assert name == "值班日历-LS-01.ics"
        await screenshot(page, f"downloads-{size}-calendar-feed")
        if who == "admin":  # only an admin enters holidays
            await page.goto(f"{live_server}/office/calendar")
            ((name, _),) = (await download_all(page)).values()
            assert name == "节假日.csv"
    finally:
        await context.close()
