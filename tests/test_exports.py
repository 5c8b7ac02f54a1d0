"""Exports: forms (the list's filters and visibility) and every statistics view as .csv and .xlsx, and
background export jobs with progress. Files are parsed back (csv module, openpyxl) and compared with the
JSON API's answers for the same question."""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import openpyxl
import pytest
from sqlalchemy import insert, update

from app.config import TZ
from app.db import transaction
from app.models import ExportJob, OpinionForm, utcnow
from app.services import exports as export_service
from tests.conftest import make_settings
from tests.factories import World, act, answered_form, assigned_form, build_world, submit
from tests.support.problems import assert_problem

FORM_HEADERS = [
    "编号", "状态", "提交时间", "类别", "工作室", "渠道", "意见内容", "提交人", "联系电话", "地点", "同意公开",
    "承办单位", "批示", "批办时间", "办理期限", "督办", "答复", "答复时间", "按时答复", "答复用时（工作日）",
    "满意度", "办结时间", "不予受理理由", "退回次数", "重办次数",
]
COUNT_HEADERS = {
    "collected": "收集数", "assigned": "批办数", "answered": "答复数", "closed": "办结数", "declined": "不予受理数",
    "overdue": "逾期数", "answer_rate": "答复率", "satisfied": "满意数", "basically_satisfied": "基本满意数",
    "unsatisfied": "不满意数", "satisfaction_rate": "满意率", "on_time": "按时答复数", "on_time_rate": "按时答复率",
    "returned": "退回数", "reopened": "重办数", "avg_answer_working_days": "平均答复用时（工作日）",
}
STATS_KEYS = {
    "summary": {},
    "by-workroom": {"workroom": "工作室编码", "name": "工作室"},
    "by-category": {"category": "类别编码", "name": "类别"},
    "monthly": {"month": "月份"},
    "by-unit": {"unit_id": "单位编号", "name": "承办单位"},
    "by-representative": {"representative_id": "党代表编号", "name": "党代表"},
}
SECRET_NOTE = "内部备注：此事涉及拆迁补偿，暂勿对外"
SECRET_INTERNAL = "内部说明：答复口径经镇长审定"
NAME, PHONE = "王小明", "13912345678"


@pytest.fixture
def settings(db_url, tmp_path):
    # Export files go to this test's own folder, never to the repository's ./data.
    return make_settings(db_url, export_dir=tmp_path / "exports")


# --- helpers -----------------------------------------------------------------------------------------


def parse_csv(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv"), response.headers
    assert response.content.startswith(codecs.BOM_UTF8), response.content[:10]
    return list(csv.reader(io.StringIO(response.content[len(codecs.BOM_UTF8):].decode("utf-8"), newline="")))


def parse_xlsx(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == export_service.XLSX_MEDIA_TYPE, response.headers
    return openpyxl.load_workbook(io.BytesIO(response.content)).worksheets[0]


def sheet_rows(sheet: Any) -> list[list[Any]]:
    return [list(row) for row in sheet.iter_rows(values_only=True)]


async def form_csv(client: httpx.AsyncClient, world: World, who: str = "coordinator", params: Any = None) -> list[list[str]]:
    return parse_csv(await client.get("/api/v1/forms/export.csv", params=params, headers=world.auth(who)))


async def listed(client: httpx.AsyncClient, world: World, who: str = "coordinator", params: Any = None) -> list[dict[str, Any]]:
    query = dict(params or {})
    query["limit"] = 200
    response = await client.get("/api/v1/forms", params=query, headers=world.auth(who))
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return response.json()["items"]


def column(rows: list[list[Any]], header: str) -> list[Any]:
    index = rows[0].index(header)
    return [row[index] for row in rows[1:]]


async def seed(client: httpx.AsyncClient, world: World) -> dict[str, dict[str, Any]]:
    """Forms in every state, with personal data, an internal note and a reply's internal_note."""
    forms = {
        "submitted": await submit(client, workroom_code="LS-01", submitter_name=NAME, submitter_phone=PHONE,
                                  location="洛社镇新街"),
        "assigned_a": await assigned_form(client, world, "A", workroom_code="LS-02", submitter_name=NAME,
                                          submitter_phone=PHONE, category="environment"),
        "assigned_b": await assigned_form(client, world, "B", workroom_code="LS-01"),
        "by_rep": await submit(client, headers=world.auth("rep"), workroom_code="LS-01", content="老街排水不畅"),
    }
    answered = await assigned_form(client, world, "A", workroom_code="LS-01", submitter_phone="13700001111")
    response = await act(client, world, "handler_a", answered["id"], "reply",
                         {"reply": "已疏通排水管道。", "internal_note": SECRET_INTERNAL})
    assert response.status_code == 200, response.text
    forms["answered"] = response.json()
    closed = await answered_form(client, world, "A")
    response = await act(client, world, "coordinator", closed["id"], "close", {"satisfaction": "satisfied"})
    assert response.status_code == 200, response.text
    forms["closed"] = response.json()
    response = await act(client, world, "coordinator", forms["assigned_a"]["id"], "notes", {"note": SECRET_NOTE})
    assert response.status_code == 200, response.text
    declined = await submit(client)
    response = await act(client, world, "coordinator", declined["id"], "decline", {"reason": "不属于本镇职责范围"})
    assert response.status_code == 200, response.text
    forms["declined"] = response.json()
    return forms


async def bulk_forms(sessionmaker: Any, count: int, **values: Any) -> None:
    """``count`` plain submitted forms in one INSERT (no counters: exports read forms only)."""
    now = utcnow()
    rows = [
        {"tracking_no": f"BK{now.year}-{i:06d}", "verification_hash": "0" * 64, "content": f"批量导入的意见 {i}",
         "channel": "web", "status": "submitted", "submitted_at": now, "submitted_on": now.astimezone(TZ).date(),
         "updated_at": now, **values}
        for i in range(count)
    ]
    async with transaction(sessionmaker) as session:
        await session.execute(insert(OpinionForm), rows)


async def wait_for_job(client: httpx.AsyncClient, world: World, job_id: int, who: str = "coordinator",
                       until: tuple[str, ...] = ("done", "failed")) -> dict[str, Any]:
    for _ in range(600):
        response = await client.get(f"/api/v1/exports/{job_id}", headers=world.auth(who))
        assert response.status_code == 200, response.text
        if response.json()["status"] in until:
            return response.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"export job {job_id} never reached {until}: {response.json()}")


async def start_job(client: httpx.AsyncClient, world: World, who: str = "coordinator", **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/exports", json={"kind": "forms", **body}, headers=world.auth(who))
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/v1/exports/{response.json()['id']}"
    return response.json()


# --- forms as CSV ------------------------------------------------------------------------------------


async def test_forms_csv_has_bom_chinese_headers_and_the_rows_of_the_list_in_order(client, sessionmaker):
    world = await build_world(sessionmaker)
    forms = await seed(client, world)
    response = await client.get("/api/v1/forms/export.csv", headers=world.auth("coordinator"))
    rows = parse_csv(response)
    assert rows[0] == FORM_HEADERS
    items = await listed(client, world)
    assert column(rows, "编号") == [item["tracking_no"] for item in items]
    assert column(rows, "状态") == [item["status_label"] for item in items]
    assert len(rows) - 1 == len(forms)
    by_no = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    submitted = by_no[forms["submitted"]["tracking_no"]]
    assert submitted["提交人"] == NAME and submitted["联系电话"] == PHONE  # the office sees personal data
    assert submitted["工作室"] == "镇区党代表工作室" and submitted["类别"] == "城建交通" and submitted["地点"] == "洛社镇新街"
    local = datetime.fromisoformat(forms["submitted"]["submitted_at"]).astimezone(TZ)
    assert submitted["提交时间"] == local.strftime("%Y-%m-%d %H:%M:%S")
    closed = by_no[forms["closed"]["tracking_no"]]
    assert closed["满意度"] == "满意" and closed["答复"] == "已安排维修，三日内完成。" and closed["承办单位"] == "镇城建办"
    assert by_no[forms["declined"]["tracking_no"]]["不予受理理由"] == "不属于本镇职责范围"
    assert "filename*=UTF-8''" + quote("意见征询表") in response.headers["content-disposition"]
    assert response.headers["content-disposition"].startswith("attachment;")


async def test_forms_csv_applies_the_same_filters_as_the_list(client, sessionmaker):
    world = await build_world(sessionmaker)
    forms = await seed(client, world)
    cases = [
        {"status": "assigned"},
        {"status": ["answered", "closed"]},
        {"workroom": "LS-01"},
        {"category": "environment"},
        {"unit_id": world.units["A"].id},
        {"q": "排水"},
        {"q": forms["closed"]["tracking_no"]},
        {"overdue": "false"},
        {"supervision": "none"},
        {"workroom": "LS-01", "status": "assigned"},
        {"submitted_from": forms["submitted"]["submitted_at"][:10], "submitted_to": forms["submitted"]["submitted_at"][:10]},
    ]
    for params in cases:
        rows = await form_csv(client, world, params=params)
        # The file lists newest first; a search's list opens by relevance, so it is asked for newest first too.
        newest = {**params, "sort": "newest"} if "q" in params else params
        assert column(rows, "编号") == [i["tracking_no"] for i in await listed(client, world, params=newest)], params
    assert len(await form_csv(client, world, params={"status": "assigned"})) - 1 == 2


async def test_a_handler_exports_only_its_units_forms_with_names_and_phones_masked(client, sessionmaker):
    world = await build_world(sessionmaker)
    forms = await seed(client, world)
    rows = await form_csv(client, world, "handler_a")
    assert column(rows, "编号") == [i["tracking_no"] for i in await listed(client, world, "handler_a")]
    assert set(column(rows, "承办单位")) == {"镇城建办"}
    assert forms["assigned_b"]["tracking_no"] not in column(rows, "编号")
    row = dict(zip(rows[0], rows[1 + column(rows, "编号").index(forms["assigned_a"]["tracking_no"])], strict=True))
    assert row["联系电话"] == "139****5678" and row["提交人"] == "王**"
    assert PHONE not in "".join(",".join(r) for r in rows) and NAME not in "".join(",".join(r) for r in rows)


async def test_a_representative_exports_the_forms_of_its_workrooms_and_those_it_entered(client, sessionmaker):
    world = await build_world(sessionmaker)
    forms = await seed(client, world)
    for who in ("rep", "rep2"):
        rows = await form_csv(client, world, who)
        assert column(rows, "编号") == [i["tracking_no"] for i in await listed(client, world, who)]
    rep_rows = await form_csv(client, world, "rep")
    assert forms["by_rep"]["tracking_no"] in column(rep_rows, "编号")
    assert forms["assigned_a"]["tracking_no"] not in column(rep_rows, "编号")  # LS-02 is not 张代表's
    assert PHONE not in "".join(",".join(r) for r in rep_rows)


async def test_text_that_excel_would_run_as_a_formula_is_quoted_in_csv_and_kept_as_text_in_xlsx(client, sessionmaker):
    world = await build_world(sessionmaker)
    formula = '=HYPERLINK("http://evil.example","点我")'
    await submit(client, content=formula, submitter_name="@SUM(A1)", location="-1+1")
    rows = await form_csv(client, world)
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["意见内容"] == "'" + formula and row["提交人"] == "'@SUM(A1)" and row["地点"] == "'-1+1"
    sheet = parse_xlsx(await client.get("/api/v1/forms/export.xlsx", headers=world.auth("coordinator")))
    cell = sheet.cell(row=2, column=FORM_HEADERS.index("意见内容") + 1)
    assert cell.value == formula and cell.data_type == "s"


# --- forms as xlsx -----------------------------------------------------------------------------------


async def test_forms_xlsx_has_a_frozen_chinese_header_real_datetimes_and_numbers(client, sessionmaker):
    world = await build_world(sessionmaker)
    forms = await seed(client, world)
    response = await client.get("/api/v1/forms/export.xlsx", headers=world.auth("coordinator"))
    sheet = parse_xlsx(response)
    assert "filename*=UTF-8''" + quote("意见征询表") in response.headers["content-disposition"]
    assert sheet.freeze_panes == "A2"
    rows = sheet_rows(sheet)
    assert rows[0] == FORM_HEADERS
    items = await listed(client, world)
    assert column(rows, "编号") == [item["tracking_no"] for item in items]
    by_no = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    answered = by_no[forms["answered"]["tracking_no"]]
    for header, field in (("提交时间", "submitted_at"), ("办理期限", "due_at"), ("答复时间", "answered_at")):
        value = answered[header]
        assert isinstance(value, datetime), (header, value)
        expected = datetime.fromisoformat(forms["answered"][field]).astimezone(TZ).replace(tzinfo=None)
        assert abs(value - expected) < timedelta(seconds=1), (header, value, expected)  # Asia/Shanghai wall clock
    assert isinstance(answered["退回次数"], int) and answered["退回次数"] == 0
    assert isinstance(answered["答复用时（工作日）"], int)
    assert answered["联系电话"] == "13700001111"  # a phone stays text, leading digits and all
    assert by_no[forms["submitted"]["tracking_no"]]["答复时间"] is None


async def test_forms_xlsx_for_a_handler_has_only_its_units_forms(client, sessionmaker):
    world = await build_world(sessionmaker)
    await seed(client, world)
    sheet = parse_xlsx(await client.get("/api/v1/forms/export.xlsx", params={"status": "assigned"},
                                        headers=world.auth("handler_b")))
    rows = sheet_rows(sheet)
    expected = [i["tracking_no"] for i in await listed(client, world, "handler_b", {"status": "assigned"})]
    assert column(rows, "编号") == expected and len(expected) == 1


async def test_an_empty_export_still_has_its_header(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert await form_csv(client, world) == [FORM_HEADERS]
    sheet = parse_xlsx(await client.get("/api/v1/forms/export.xlsx", headers=world.auth("coordinator")))
    assert sheet_rows(sheet) == [FORM_HEADERS] and sheet.freeze_panes == "A2"


# --- internal notes ----------------------------------------------------------------------------------


async def test_internal_notes_and_internal_note_never_appear_in_any_export(client, sessionmaker):
    world = await build_world(sessionmaker)
    await seed(client, world)
    files: list[str] = []
    for who in ("admin", "coordinator", "handler_a"):
        files.append(",".join(",".join(r) for r in await form_csv(client, world, who)))
        sheet = parse_xlsx(await client.get("/api/v1/forms/export.xlsx", headers=world.auth(who)))
        files.append(",".join(str(v) for row in sheet_rows(sheet) for v in row))
    for view in STATS_KEYS:
        response = await client.get(f"/api/v1/stats/{view}/export.csv", headers=world.auth("coordinator"))
        files.append(response.content.decode("utf-8-sig"))
    job = await start_job(client, world, format="csv")
    assert (await wait_for_job(client, world, job["id"]))["status"] == "done"
    download = await client.get(f"/api/v1/exports/{job['id']}/download", headers=world.auth("coordinator"))
    files.append(",".join(",".join(r) for r in parse_csv(download)))
    assert "已疏通排水管道。" in files[0]  # the public reply is there; the notes are not
    for text in files:
        assert SECRET_NOTE not in text and SECRET_INTERNAL not in text
        assert "内部" not in text


# --- bad requests ------------------------------------------------------------------------------------


async def test_bad_export_requests_are_problems_not_files(client, sessionmaker):
    world = await build_world(sessionmaker)
    auth = world.auth("coordinator")
    assert_problem(await client.get("/api/v1/forms/export.csv", params={"status": "bogus"}, headers=auth), 422,
                   "validation_error")
    assert_problem(await client.get("/api/v1/forms/export.xlsx", params={"unit_id": "0"}, headers=auth), 422)
    assert_problem(await client.get("/api/v1/forms/export.csv", params={"submitted_from": "2026-13-01"}, headers=auth), 422)
    assert_problem(await client.get("/api/v1/forms/export.csv", params={"workroom": "NOPE"}, headers=auth), 422,
                   "unknown_workroom")
    assert_problem(await client.get("/api/v1/forms/export.csv", params={"category": "nope"}, headers=auth), 422,
                   "unknown_category")
    assert_problem(await client.get("/api/v1/forms/export.csv",
                                    params={"submitted_from": "2026-02-01", "submitted_to": "2026-01-01"},
                                    headers=auth), 422, "invalid_date_range")
    assert_problem(await client.get("/api/v1/forms/export.pdf", headers=auth), 422)
    assert_problem(await client.get("/api/v1/forms/export.csv"), 401)
    assert_problem(await client.get("/api/v1/stats/nope/export.csv", headers=auth), 422)
    assert_problem(await client.get("/api/v1/stats/summary/export.xls", headers=auth), 422)
    assert_problem(await client.get("/api/v1/stats/summary/export.csv", params={"workroom": "NOPE"}, headers=auth),
                   422, "unknown_workroom")
    assert_problem(await client.get("/api/v1/stats/by-unit/export.csv", params={"workroom": "LS-01"}, headers=auth),
                   422, "unsupported_filter")
    assert_problem(await client.get("/api/v1/stats/monthly/export.csv"), 401)
    # The form routes are untouched: /forms/{id} is still a form.
    form = await submit(client)
    assert (await client.get(f"/api/v1/forms/{form['id']}", headers=auth)).status_code == 200


# --- statistics --------------------------------------------------------------------------------------


def _number(text: str) -> float:
    return float(text)


@pytest.mark.parametrize("view", list(STATS_KEYS))
async def test_stats_exports_match_the_json_view(client, sessionmaker, view):
    world = await build_world(sessionmaker)
    await seed(client, world)
    await submit(client, headers=world.auth("rep2"), workroom_code="LS-02", category="livelihood")
    auth = world.auth("coordinator")
    json_response = await client.get(f"/api/v1/stats/{view}", headers=auth)
    assert json_response.status_code == 200, json_response.text
    body = json_response.json()
    items = [body] if view == "summary" else body["items"]
    keys = STATS_KEYS[view]
    counts = dict(COUNT_HEADERS)
    if view == "summary":
        counts.update({"warning": "预警数", "escalated": "督办数"})
    headers = [*keys.values(), *counts.values()]

    rows = parse_csv(await client.get(f"/api/v1/stats/{view}/export.csv", headers=auth))
    sheet = parse_xlsx(await client.get(f"/api/v1/stats/{view}/export.xlsx", headers=auth))
    cells = sheet_rows(sheet)
    assert rows[0] == headers and list(cells[0]) == headers
    assert sheet.freeze_panes == "A2"
    assert len(rows) - 1 == len(items) == len(cells) - 1 and items
    for item, row, cell_row in zip(items, rows[1:], cells[1:], strict=True):
        for i, key in enumerate([*keys, *counts]):
            want = item[key]
            if isinstance(want, str) or want is None:
                assert row[i] == (want or "") and cell_row[i] == want, (key, row[i], cell_row[i], want)
            else:
                assert _number(row[i]) == pytest.approx(want) and cell_row[i] == pytest.approx(want), key
                assert isinstance(cell_row[i], (int, float)) and not isinstance(cell_row[i], bool)
    assert body and rows[1]  # non-trivial: the seed counted something
    if view == "summary":
        assert int(rows[1][headers.index("收集数")]) == 8


async def test_stats_exports_honour_the_views_filters(client, sessionmaker):
    world = await build_world(sessionmaker)
    await seed(client, world)
    auth = world.auth("coordinator")
    params = {"workroom": "LS-01"}
    summary = (await client.get("/api/v1/stats/summary", params=params, headers=auth)).json()
    rows = parse_csv(await client.get("/api/v1/stats/summary/export.csv", params=params, headers=auth))
    assert int(column(rows, "收集数")[0]) == summary["collected"] == 4
    monthly = (await client.get("/api/v1/stats/monthly", params=params, headers=auth)).json()["items"]
    rows = parse_csv(await client.get("/api/v1/stats/monthly/export.csv", params=params, headers=auth))
    assert [int(v) for v in column(rows, "收集数")] == [m["collected"] for m in monthly]


# --- background jobs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_a_background_export_of_3000_forms_reports_progress_then_downloads(client, sessionmaker, monkeypatch, fmt):
    world = await build_world(sessionmaker)
    await bulk_forms(sessionmaker, 3000)
    monkeypatch.setattr(export_service, "PAGE_SIZE", 500)
    # Hold the job after its second page, so its progress can be seen mid-way.
    reached, release = asyncio.Event(), asyncio.Event()
    save_progress = export_service._save_progress

    async def held(sessionmaker: Any, job_id: int, progress: int) -> None:
        await save_progress(sessionmaker, job_id, progress)
        if progress == 1000:
            reached.set()
            await release.wait()

    monkeypatch.setattr(export_service, "_save_progress", held)

    job = await start_job(client, world, format=fmt)
    assert job["status"] == "pending" and job["progress"] == 0 and job["total"] == 3000
    assert job["download_url"] is None
    await asyncio.wait_for(reached.wait(), timeout=60)
    running = (await client.get(f"/api/v1/exports/{job['id']}", headers=world.auth("coordinator"))).json()
    assert running["status"] == "running" and running["progress"] == 1000 and running["total"] == 3000
    early = await client.get(f"/api/v1/exports/{job['id']}/download", headers=world.auth("coordinator"))
    assert_problem(early, 409, "export_not_ready")
    release.set()

    done = await wait_for_job(client, world, job["id"])
    assert done["status"] == "done", done
    assert done["progress"] == done["total"] == 3000
    assert done["download_url"] == f"/api/v1/exports/{job['id']}/download"
    response = await client.get(done["download_url"], headers=world.auth("coordinator"))
    assert "filename*=UTF-8''" + quote("意见征询表") in response.headers["content-disposition"]
    rows = parse_csv(response) if fmt == "csv" else sheet_rows(parse_xlsx(response))
    assert rows[0] == FORM_HEADERS and len(rows) == 3001
    numbers = column(rows, "编号")
    assert len(set(numbers)) == 3000 and numbers[0] > numbers[-1]  # every form once, newest first
    # An admin may download it too.
    assert (await client.get(done["download_url"], headers=world.auth("admin"))).status_code == 200


async def test_a_background_export_holds_the_visibility_of_the_user_who_asked(client, sessionmaker):
    world = await build_world(sessionmaker)
    await seed(client, world)
    job = await start_job(client, world, "handler_a", format="csv", filters={"status": ["assigned", "answered", "closed"]})
    done = await wait_for_job(client, world, job["id"], "handler_a")
    rows = parse_csv(await client.get(f"/api/v1/exports/{job['id']}/download", headers=world.auth("handler_a")))
    expected = await listed(client, world, "handler_a", {"status": ["assigned", "answered", "closed"]})
    assert column(rows, "编号") == [i["tracking_no"] for i in expected] and done["total"] == len(expected) == 3
    assert "139****5678" in column(rows, "联系电话") and PHONE not in column(rows, "联系电话")
    assert done["filters"] == {"status": ["assigned", "answered", "closed"]}


async def test_export_jobs_belong_to_their_user_and_an_admin(client, sessionmaker, monkeypatch):
    world = await build_world(sessionmaker)
    monkeypatch.setattr(export_service.ExportRunner, "start", lambda self, job_id: None)  # stays pending
    job = await start_job(client, world, "coordinator", format="xlsx")
    url = f"/api/v1/exports/{job['id']}"
    assert_problem(await client.get(url, headers=world.auth("handler_a")), 403, "export_forbidden")
    assert_problem(await client.get(f"{url}/download", headers=world.auth("rep")), 403, "export_forbidden")
    assert (await client.get(url, headers=world.auth("admin"))).json()["status"] == "pending"
    assert_problem(await client.get(f"{url}/download", headers=world.auth("coordinator")), 409, "export_not_ready")
    assert_problem(await client.get("/api/v1/exports/999999", headers=world.auth("coordinator")), 404, "export_not_found")
    assert_problem(await client.get("/api/v1/exports/999999/download", headers=world.auth("admin")), 404)
    assert_problem(await client.get(url), 401)
    assert_problem(await client.post("/api/v1/exports", json={"kind": "forms"}), 401)


async def test_bad_export_job_requests_are_422(client, sessionmaker, monkeypatch):
    world = await build_world(sessionmaker)
    monkeypatch.setattr(export_service.ExportRunner, "start", lambda self, job_id: None)
    auth = world.auth("coordinator")
    for body in (
        {"kind": "stats"},
        {"kind": "forms", "format": "pdf"},
        {"kind": "forms", "filters": {"status": ["bogus"]}},
        {"kind": "forms", "filters": {"colour": "red"}},
        {"kind": "forms", "filters": {"unit_id": 0}},
        {"kind": "forms", "filters": {"q": "x" * 101}},
    ):
        assert_problem(await client.post("/api/v1/exports", json=body, headers=auth), 422, "validation_error")
    for filters, code in (
        ({"workroom": "NOPE"}, "unknown_workroom"),
        ({"submitted_from": "2026-02-01", "submitted_to": "2026-01-01"}, "invalid_date_range"),
    ):
        response = await client.post("/api/v1/exports", json={"kind": "forms", "filters": filters}, headers=auth)
        assert_problem(response, 422, code)


async def test_a_failing_export_job_is_reported_failed_and_cannot_be_downloaded(client, sessionmaker, monkeypatch):
    world = await build_world(sessionmaker)
    await submit(client)

    async def broken(*args: Any, **kwargs: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(export_service, "write_forms", broken)
    job = await start_job(client, world, format="csv")
    failed = await wait_for_job(client, world, job["id"])
    assert failed["status"] == "failed" and failed["error"] and "disk" not in failed["error"]
    assert_problem(await client.get(f"/api/v1/exports/{job['id']}/download", headers=world.auth("coordinator")), 409,
                   "export_failed")


async def test_a_job_whose_process_died_reads_as_failed(client, sessionmaker, monkeypatch):
    world = await build_world(sessionmaker)
    monkeypatch.setattr(export_service.ExportRunner, "start", lambda self, job_id: None)
    job = await start_job(client, world, format="csv")
    async with transaction(sessionmaker) as session:
        await session.execute(update(ExportJob).where(ExportJob.id == job["id"]).values(
            status="running", updated_at=utcnow() - export_service.STALE_AFTER - timedelta(seconds=1)))
    read = (await client.get(f"/api/v1/exports/{job['id']}", headers=world.auth("coordinator"))).json()
    assert read["status"] == "failed" and "重新导出" in read["error"]


async def test_finished_exports_expire_after_the_retention_and_their_files_are_deleted(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    await submit(client)
    old = await start_job(client, world, format="csv")
    assert (await wait_for_job(client, world, old["id"]))["status"] == "done"
    files = list(settings.export_dir.glob("export-*"))
    assert len(files) == 1
    async with transaction(sessionmaker) as session:
        await session.execute(update(ExportJob).where(ExportJob.id == old["id"]).values(
            finished_at=utcnow() - export_service.RETENTION - timedelta(minutes=1)))
    new = await start_job(client, world, format="csv")  # each job sweeps the expired ones when it starts
    assert (await wait_for_job(client, world, new["id"]))["status"] == "done"
    assert (await client.get(f"/api/v1/exports/{old['id']}", headers=world.auth("coordinator"))).json()["status"] == "expired"
    assert_problem(await client.get(f"/api/v1/exports/{old['id']}/download", headers=world.auth("coordinator")), 404,
                   "export_expired")
    assert not files[0].exists()
    assert (await client.get(f"/api/v1/exports/{new['id']}/download", headers=world.auth("coordinator"))).status_code == 200


async def test_an_export_takes_every_filter_of_the_list(client, sessionmaker):  # type: ignore[no-untyped-def]
    """The list's filters and the export's are one model (FormQuery): a filter the list has, the export has."""
    world = await build_world(sessionmaker)
    wang = await submit(client, submitter_phone="13812345678", content="王女士反映：路灯不亮。")
    other = await submit(client, submitter_phone="13900000000", content="李先生反映：垃圾未清运。")
    listed = (await client.get("/api/v1/forms", params={"phone": "13812345678"},
                               headers=world.auth("coordinator"))).json()["items"]
    assert [f["tracking_no"] for f in listed] == [wang["tracking_no"]]
    exported = await client.get("/api/v1/forms/export.csv", params={"phone": "13812345678"},
                                headers=world.auth("coordinator"))
    assert exported.status_code == 200, exported.text
    assert wang["tracking_no"] in exported.text and other["tracking_no"] not in exported.text
    job = await client.post("/api/v1/exports", json={"format": "csv", "filters": {"phone": "13812345678"}},
                            headers=world.auth("coordinator"))
    assert job.status_code == 202, job.text
    assert job.json()["filters"] == {"phone": "13812345678"}
    refused = await client.post("/api/v1/exports", json={"filters": {"village": "石塘湾"}},
                                headers=world.auth("coordinator"))
    assert refused.status_code == 422
