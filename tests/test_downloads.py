"""Files download under a Chinese name in every browser (issue 17.3): one Content-Disposition helper
(RFC 6266, RFC 5987's ``filename*``) on every route that yields a file, and every link to such a file in
the pages kept from htmx (``download`` and ``hx-boost="false"``)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from app.http.downloads import ascii_fallback, attachment, clean_name, content_disposition, inline
from tests.factories import build_world, submit
from tests.support.logins import sign_in

DISPOSITION = re.compile(r"""^(attachment|inline); filename="([\x20-\x7e]+)"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)$""")
TEMPLATES = Path(__file__).resolve().parent.parent / "frontend" / "templates"


def parse(header: str) -> tuple[str, str, str]:
    """(disposition, ASCII fallback, the decoded UTF-8 name) of a header the helper wrote."""
    match = DISPOSITION.match(header)
    assert match, header
    kind, fallback, encoded = match.groups()
    assert '"' not in fallback and "\\" not in fallback
    return kind, fallback, unquote(encoded)


# --- the helper ---------------------------------------------------------------------------------------


def test_a_chinese_name_is_percent_encoded_with_an_ascii_fallback() -> None:
    header = content_disposition("意见征询表_20261206-1430.xlsx")
    assert header == ("attachment; filename=\"minyi-20261206-1430.xlsx\"; "
                      "filename*=UTF-8''" + quote("意见征询表") + "_20261206-1430.xlsx")
    assert parse(header) == ("attachment", "minyi-20261206-1430.xlsx", "意见征询表_20261206-1430.xlsx")


def test_an_all_chinese_name_falls_back_to_minyi_with_its_extension() -> None:
    assert ascii_fallback("值班表.csv") == "minyi.csv"
    assert parse(attachment("值班表.csv")["Content-Disposition"])[1:] == ("minyi.csv", "值班表.csv")


def test_an_ascii_name_is_its_own_fallback_and_an_explicit_one_wins() -> None:
    assert parse(content_disposition("minyi-audit-1.csv"))[1] == "minyi-audit-1.csv"
    assert parse(content_disposition("节假日.csv", fallback="working-calendar.csv"))[1] == "working-calendar.csv"


@pytest.mark.parametrize("name", [
    'a"b.csv', "a\r\nSet-Cookie: x=1.csv", "a\\b.csv", "../../etc/passwd", "工作室\t\x00\x7f.svg", '"', "", " . ",
])
def test_quotes_newlines_and_separators_never_reach_the_header(name: str) -> None:
    header = content_disposition(name)
    kind, fallback, decoded = parse(header)  # one line, a quoted ASCII fallback, a clean encoded name
    assert kind == "attachment" and decoded == clean_name(name) and decoded
    for bad in ('"', "\\", "\r", "\n", "\x00", "/"):
        assert bad not in decoded and bad not in fallback


def test_inline_names_the_file_too() -> None:
    assert parse(inline("二维码-镇区党代表工作室.svg")["Content-Disposition"]) == (
        "inline", "minyi.svg", "二维码-镇区党代表工作室.svg")


# --- every route that yields a file -------------------------------------------------------------------


def assert_file(response: httpx.Response, *, starts: str, ext: str, kind: str = "attachment") -> str:
    assert response.status_code == 200, response.text[:300]
    got_kind, fallback, name = parse(response.headers["content-disposition"])
    assert got_kind == kind
    assert name.startswith(starts) and name.endswith(f".{ext}"), name
    assert fallback.endswith(f".{ext}")
    return name


async def test_every_api_file_route_sets_the_chinese_name(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    await submit(client, workroom_code="LS-01")
    coordinator, admin = world.auth("coordinator"), world.auth("admin")
    for fmt in ("csv", "xlsx"):
        assert_file(await client.get(f"/api/v1/forms/export.{fmt}", headers=coordinator), starts="意见征询表", ext=fmt)
        for view in ("summary", "by-workroom", "by-category", "monthly"):
            response = await client.get(f"/api/v1/stats/{view}/export.{fmt}", headers=coordinator)
            assert CHINESE.search(assert_file(response, starts="", ext=fmt))
    for kind, fmt, title in (("representatives", "xlsx", "党代表导入模板"), ("shifts", "xlsx", "值班表导入模板"),
                             ("shifts", "csv", "值班表导入模板")):
        assert_file(await client.get(f"/api/v1/imports/template/{kind}.{fmt}"), starts=title, ext=fmt)
    for fmt in ("xlsx", "csv"):
        for path, title in (("/api/v1/rosters/export", "值班表"), ("/api/v1/attendance/export", "值班出勤"),
                            ("/api/v1/service-points/funnel/export", "流动服务点成效")):
            assert_file(await client.get(f"{path}.{fmt}", headers=coordinator), starts=title, ext=fmt)
    by_representative = await client.get("/api/v1/service-points/funnel/export.csv", params={"by": "representative"},
                                         headers=coordinator)
    assert_file(by_representative, starts="流动服务点成效_按代表", ext="csv")
    assert_file(await client.get("/api/v1/audit/export.csv", headers=admin), starts="审计日志", ext="csv")
    template = await client.get("/api/v1/working-calendar/template.csv")
    assert assert_file(template, starts="节假日", ext="csv") == "节假日.csv"
    assert parse(template.headers["content-disposition"])[1] == "working-calendar.csv"  # as before

    job = await client.post("/api/v1/exports", json={"format": "csv"}, headers=coordinator)
    assert job.status_code == 202
    for _ in range(100):
        state = (await client.get(job.headers["location"], headers=coordinator)).json()
        if state["status"] == "done":
            break
    assert state["status"] == "done", state
    assert_file(await client.get(f"{job.headers['location']}/download", headers=coordinator), starts="意见征询表", ext="csv")


CHINESE = re.compile(r"[\u4e00-\u9fff]")


async def test_calendar_feeds_download_as_named_ics_files(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    url = (await client.get("/api/v1/calendars/workrooms/LS-01", headers=world.auth("coordinator"))).json()["url"]
    feed = await client.get(urlsplit(url).path + "?" + urlsplit(url).query)
    assert assert_file(feed, starts="值班日历", ext="ics") == "值班日历-LS-01.ics"
    assert feed.headers["referrer-policy"] == "no-referrer" and feed.content.startswith(b"BEGIN:VCALENDAR")
    rep = world.representatives["rep"].id
    url = (await client.get(f"/api/v1/calendars/representatives/{rep}", headers=world.auth("coordinator"))).json()["url"]
    feed = await client.get(urlsplit(url).path + "?" + urlsplit(url).query)
    assert assert_file(feed, starts="值班日历", ext="ics") == f"值班日历-代表{rep}.ics"


async def test_a_qr_code_shows_in_place_and_downloads_with_download_1(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    shown = await client.get("/w/LS-01/qr.svg")
    assert assert_file(shown, starts="二维码", ext="svg", kind="inline") == "二维码-镇区党代表工作室.svg"
    saved = await client.get("/w/LS-01/qr.svg?download=1")
    assert assert_file(saved, starts="二维码", ext="svg") == "二维码-镇区党代表工作室.svg"
    assert saved.content == shown.content and saved.content.startswith(b"<?xml")
    assert (await client.get("/w/LS-01/qr.svg?download=nonsense")).headers["content-disposition"].startswith("inline")
    poster = await client.get("/w/LS-01/poster")
    assert 'href="/w/LS-01/qr.svg?download=1" download hx-boost="false"' in poster.text


async def test_a_failed_import_offers_its_problems_as_a_csv(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    bad = "工作室编号,日期,开始,结束,代表姓名,代表编号\nNO-SUCH,2026-13-45,25:00,09:00,无此人,\n".encode()
    response = await client.post("/office/imports", data={"kind": "shifts", "csrf_token": token},
                                 files={"file": ("值班.csv", bad, "text/csv")})
    assert response.status_code == 303
    job_page = await client.get(response.headers["location"])
    errors_url = f"{response.headers['location']}/errors.csv"
    assert f'href="{errors_url}" download hx-boost="false"' in job_page.text
    errors = await client.get(errors_url)
    assert assert_file(errors, starts="值班表导入问题", ext="csv")
    lines = errors.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "行,列,原因" and len(lines) - 1 == job_page.text.count("<tr data-row=")
    assert errors.headers["cache-control"] == "no-store"


async def test_the_forms_list_exports_its_current_filters(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    await sign_in(client, "coordinator")
    page = await client.get("/office/forms", params={"status": "submitted", "workroom": "LS-01", "q": "路灯"})
    for fmt in ("xlsx", "csv"):
        assert f'href="/api/v1/forms/export.{fmt}?status=submitted&amp;workroom=LS-01&amp;q=%E8%B7%AF%E7%81%AF" download hx-boost="false"' in page.text
    # The links htmx fetches beside the list when the filters change: the same reading of the filters
    # (an unknown workroom is ignored, as the list ignores it).
    links = await client.get("/office/exports/forms", params={"status": "assigned", "workroom": "NOPE"},
                             headers={"HX-Request": "true"})
    assert links.status_code == 200 and links.text.lstrip().startswith('<p class="export-current"')
    assert 'href="/api/v1/forms/export.csv?status=assigned" download' in links.text
    # The office's cookie session reads the export it links to.
    export = await client.get("/api/v1/forms/export.csv?status=assigned")
    assert assert_file(export, starts="意见征询表", ext="csv")


# --- the pages' links ---------------------------------------------------------------------------------

FILE_HREF = re.compile(r"""<a\b[^>]*href="[^"]*(?:export|template|\.csv|\.xlsx|\.ics|qr\.svg|errors\.csv|\{\{ url \}\})[^"]*"[^>]*>""")


def test_every_file_link_in_the_templates_downloads_and_escapes_htmx() -> None:
    found = 0
    for path in TEMPLATES.rglob("*.html"):
        for tag in FILE_HREF.findall(path.read_text(encoding="utf-8")):
            if "roster_calendar" not in path.name and "{{ url }}" in tag:
                continue  # the poster's link to the submit page
            found += 1
            assert " download" in tag and 'hx-boost="false"' in tag, f"{path.name}: {tag}"
    assert found >= 3  # the rest go through the macro below (imports, the forms list, the dashboard)
    macros = (TEMPLATES / "macros.html").read_text(encoding="utf-8")
    assert '{% macro download_link(href, label, cls="") %}<a href="{{ href }}" download hx-boost="false"' in macros
