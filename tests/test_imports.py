"""Imports of representatives and shifts from .xlsx/.csv (all rows or none, errors named by row and
column), big imports as background jobs, templates, and the roster, attendance and funnel .xlsx exports."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
import openpyxl
import pytest
from sqlalchemy import func, select

from app.config import TZ
from app.db import transaction
from app.models import Representative, Shift
from app.services import exports as export_service
from app.services import imports as import_service
from tests.factories import World, build_world, submit

REP_HEADER = ["姓名", "层级", "电话", "工作室编号"]
SHIFT_HEADER = ["工作室编号", "日期", "开始", "结束", "代表姓名", "代表编号"]


@pytest.fixture
async def world(sessionmaker) -> World:
    return await build_world(sessionmaker)


def csv_bytes(rows: list[list[Any]], *, encoding: str = "utf-8", bom: bool = True) -> bytes:
    text = "\r\n".join(",".join(str(v) for v in row) for row in rows) + "\r\n"
    return (("\ufeff" if bom else "") + text).encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def upload(
    client: httpx.AsyncClient, world: World | None, kind: str, name: str, content: bytes, who: str = "coordinator"
) -> httpx.Response:
    headers = world.auth(who) if world is not None else {}
    return await client.post(
        "/api/v1/imports", data={"kind": kind}, files={"file": (name, content, "application/octet-stream")},
        headers=headers,
    )


async def count(sessionmaker, model: Any) -> int:
    async with transaction(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(model)))


async def representatives(sessionmaker) -> dict[str, Representative]:
    from sqlalchemy.orm import selectinload

    async with transaction(sessionmaker) as session:
        reps = await session.scalars(select(Representative).options(selectinload(Representative.workrooms)))
        return {r.name: r for r in reps}


def csv_rows(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def workbook(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == export_service.XLSX_MEDIA_TYPE
    return openpyxl.load_workbook(io.BytesIO(response.content))


def rows_of(sheet: Any) -> list[list[Any]]:
    return [list(row) for row in sheet.iter_rows(values_only=True)]


class ImportGate:
    """The test's hold on an app's background imports (``ImportRunner.pace``): a job stops after its first
    committed progress step — ``running``, ``import_service.CHUNK`` rows checked, nothing written — until
    ``release()``. No timing: the job cannot move on, nor finish, before the test lets it."""

    HELD_WITHIN = 120  # seconds: only so that a job that never gets there fails the test instead of hanging it

    def __init__(self) -> None:
        self._held = asyncio.Event()
        self._open = asyncio.Event()
        self.steps: list[int] = []  # the progress each step reported, in order

    async def __call__(self, job_id: int, progress: int) -> None:
        self.steps.append(progress)
        self._held.set()
        await self._open.wait()

    async def held(self) -> None:
        """Until a job is stopped at the gate."""
        await asyncio.wait_for(self._held.wait(), self.HELD_WITHIN)

    def release(self) -> None:
        self._open.set()


@contextlib.asynccontextmanager
async def hold_imports(app: Any) -> AsyncIterator[ImportGate]:
    """Background imports ``app`` starts inside the block are held at an ``ImportGate``. On the way out the
    gate opens, and a job still running (a test that failed mid-way) is cancelled, so none outlives its test."""
    runner: import_service.ImportRunner = app.state.imports
    gate = ImportGate()
    runner.pace = gate
    try:
        yield gate
    finally:
        runner.pace = None
        gate.release()
        await runner.shutdown()


# --- representatives ---------------------------------------------------------------------------------

GOOD_REPS = [
    REP_HEADER,
    ["王一", "镇", "13800000001", "LS-01"],
    ["王二", "区", "13800000002", "LS-01、LS-02"],
    ["王三", "national", "", ""],
]


async def test_a_good_representatives_csv_with_bom_imports_every_row(client, world, sessionmaker):
    response = await upload(client, world, "representatives", "代表.csv", csv_bytes(GOOD_REPS))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "done" and job["imported"] == 3 and job["total"] == 3 and job["progress"] == 3
    assert job["errors"] == []
    assert response.headers["location"] == f"/api/v1/imports/{job['id']}"
    reps = await representatives(sessionmaker)
    assert reps["王一"].level == "town" and reps["王一"].phone == "13800000001"
    assert [w.code for w in reps["王二"].workrooms] == ["LS-01", "LS-02"] and reps["王二"].level == "district"
    assert reps["王三"].level == "national" and reps["王三"].phone is None and reps["王三"].workrooms == []
    again = await client.get(f"/api/v1/imports/{job['id']}", headers=world.auth("coordinator"))
    assert again.status_code == 200 and again.json()["status"] == "done"


async def test_a_good_representatives_xlsx_imports_every_row(client, world, sessionmaker):
    rows = [REP_HEADER, ["赵一", "市", 13800000011, "LS-02"], ["赵二", "省", "0510-83331234", "LS-01,LS-02"]]
    response = await upload(client, world, "representatives", "代表.xlsx", xlsx_bytes(rows))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "done" and response.json()["imported"] == 2
    reps = await representatives(sessionmaker)
    assert reps["赵一"].phone == "13800000011" and reps["赵一"].level == "city"
    assert [w.code for w in reps["赵二"].workrooms] == ["LS-01", "LS-02"]


async def test_a_gb18030_csv_as_excel_saves_it_imports(client, world, sessionmaker):
    content = csv_bytes(GOOD_REPS, encoding="gb18030", bom=False)
    response = await upload(client, world, "representatives", "代表.csv", content)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "done" and response.json()["imported"] == 3
    assert {"王一", "王二", "王三"} <= set(await representatives(sessionmaker))


async def test_a_file_with_bad_rows_imports_nothing_and_names_each_row_column_and_reason(client, world, sessionmaker):
    before = await count(sessionmaker, Representative)
    rows = [
        REP_HEADER,
        ["钱一", "镇", "13800000021", "LS-01"],
        ["钱二", "镇", "13800000022", "LS-99"],
        ["钱三", "区", "13800000023", "LS-02"],
        ["钱四", "区", "电话号码", "LS-02"],
    ]
    response = await upload(client, world, "representatives", "代表.csv", csv_bytes(rows))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "failed" and job["imported"] == 0
    assert [(e["row"], e["column"]) for e in job["errors"]] == [(3, "工作室编号"), (5, "电话")]
    assert "LS-99" in job["errors"][0]["reason"] and "不存在" in job["errors"][0]["reason"]
    assert "电话号码" in job["errors"][1]["reason"]
    assert await count(sessionmaker, Representative) == before


async def test_required_fields_levels_and_duplicates_are_checked(client, world, sessionmaker):
    rows = [
        REP_HEADER,
        ["", "镇", "", ""],
        ["孙一", "村", "", ""],
        ["孙二", "", "", ""],
        ["张代表", "镇", "13812345678", ""],  # already in the world
        ["孙三", "镇", "13800000031", ""],
        ["孙三", "镇", "13800000031", ""],
    ]
    job = (await upload(client, world, "representatives", "r.csv", csv_bytes(rows))).json()
    assert job["status"] == "failed"
    assert [(e["row"], e["column"]) for e in job["errors"]] == [
        (2, "姓名"), (3, "层级"), (4, "层级"), (5, "姓名"), (7, "姓名"),
    ]
    assert "第 6 行" in job["errors"][-1]["reason"]


# --- shifts ------------------------------------------------------------------------------------------


async def test_shifts_that_overlap_each_other_or_an_existing_shift_import_nothing_and_name_the_rows(
    client, world, sessionmaker
):
    rep = world.representatives["rep"]
    existing = await client.post("/api/v1/workrooms/LS-01/shifts", headers=world.auth("coordinator"), json={
        "representative_id": rep.id, "starts_at": "2030-06-01T09:00:00+08:00", "ends_at": "2030-06-01T11:00:00+08:00",
    })
    assert existing.status_code == 201, existing.text
    rows = [
        SHIFT_HEADER,
        ["LS-01", "2030-06-02", "09:00", "11:30", "张代表", ""],
        ["LS-02", "2030-06-02", "10:00", "12:00", "张代表", ""],  # overlaps row 2
        ["LS-02", "2030-06-01", "10:00", "12:00", "李代表", ""],  # fine
        ["LS-01", "2030-06-01", "10:30", "12:00", "", str(rep.id)],  # overlaps the existing shift
    ]
    response = await upload(client, world, "shifts", "值班.csv", csv_bytes(rows))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "failed" and job["imported"] == 0
    assert [e["row"] for e in job["errors"]] == [2, 3, 5]
    assert "第 3 行" in job["errors"][0]["reason"] and "第 2 行" in job["errors"][1]["reason"]
    assert str(existing.json()["id"]) in job["errors"][2]["reason"]
    assert await count(sessionmaker, Shift) == 1


async def test_a_good_shifts_xlsx_with_date_and_time_cells_imports(client, world, sessionmaker):
    rows = [
        SHIFT_HEADER,
        ["LS-01", date(2030, 7, 1), time(9, 0), time(11, 30), "张代表", None],
        ["LS-02", datetime(2030, 7, 1), "14:00", "16:00", None, world.representatives["rep2"].id],
        ["LS-02", "2030/7/2", "9:00", "11:00", "张代表", None],
    ]
    response = await upload(client, world, "shifts", "值班.xlsx", xlsx_bytes(rows))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "done" and response.json()["imported"] == 3
    async with transaction(sessionmaker) as session:
        shifts = list(await session.scalars(select(Shift).order_by(Shift.starts_at)))
    assert [s.starts_at.astimezone(TZ).replace(tzinfo=None) for s in shifts] == [
        datetime(2030, 7, 1, 9), datetime(2030, 7, 1, 14), datetime(2030, 7, 2, 9),
    ]
    assert shifts[0].ends_at.astimezone(TZ).time() == time(11, 30)


async def test_bad_shift_rows_are_named(client, world, sessionmaker):
    rows = [
        SHIFT_HEADER,
        ["LS-01", "2030-13-01", "09:00", "11:00", "张代表", ""],
        ["LS-01", "2030-07-01", "9点", "11:00", "张代表", ""],
        ["LS-01", "2030-07-01", "11:00", "10:00", "张代表", ""],
        ["LS-01", "2030-07-01", "12:00", "13:00", "无名氏", ""],
        ["LS-01", "2030-07-01", "12:00", "13:00", "", ""],
    ]
    job = (await upload(client, world, "shifts", "s.csv", csv_bytes(rows))).json()
    assert job["status"] == "failed"
    assert [(e["row"], e["column"]) for e in job["errors"]] == [
        (2, "日期"), (3, "开始"), (4, "结束"), (5, "代表姓名"), (6, "代表姓名"),
    ]
    assert await count(sessionmaker, Shift) == 0


async def test_a_large_shifts_file_runs_as_a_background_job_with_progress(client, app, world, sessionmaker):
    async with transaction(sessionmaker) as session:
        people = [Representative(name=f"代表{i:02d}", level="town") for i in range(10)]
        session.add_all(people)
        await session.flush()
        ids = [p.id for p in people]
    start = date(2030, 1, 1)
    rows: list[list[Any]] = [SHIFT_HEADER]
    for day in range(100):
        for i, rep_id in enumerate(ids):
            code = "LS-01" if i % 2 else "LS-02"
            rows.append([code, (start + timedelta(days=day)).isoformat(), "09:00", "11:30", "", str(rep_id)])
    assert len(rows) == 1001
    async with hold_imports(app) as gate:
        response = await upload(client, world, "shifts", "全年值班.csv", csv_bytes(rows))
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["total"] == 1000 and job["status"] in ("pending", "running")  # answered before the job ends
        await gate.held()
        polled = await client.get(f"/api/v1/imports/{job['id']}", headers=world.auth("coordinator"))
        assert polled.status_code == 200, polled.text
        assert {k: polled.json()[k] for k in ("status", "progress", "total", "imported")} == {
            "status": "running", "progress": import_service.CHUNK, "total": 1000, "imported": 0,
        }
        assert await count(sessionmaker, Shift) == 0  # checked rows are not written until every row is
        gate.release()
        await app.state.imports.join()
    polled = await client.get(f"/api/v1/imports/{job['id']}", headers=world.auth("coordinator"))
    assert polled.status_code == 200, polled.text
    job = polled.json()
    assert job["status"] == "done", job["errors"][:5]
    assert job["progress"] == job["total"] == 1000 and job["imported"] == 1000
    assert gate.steps == list(range(import_service.CHUNK, 1001, import_service.CHUNK))  # progress, chunk by chunk
    assert await count(sessionmaker, Shift) == 1000
    # admin may read it too; another staff member may not
    assert (await client.get(f"/api/v1/imports/{job['id']}", headers=world.auth("admin"))).status_code == 200
    assert (await client.get(f"/api/v1/imports/{job['id']}", headers=world.auth("rep"))).status_code == 403


# --- refusals, templates -----------------------------------------------------------------------------


async def test_only_the_office_may_import(client, world, sessionmaker):
    content = csv_bytes(GOOD_REPS)
    assert (await upload(client, world, "representatives", "r.csv", content, who="rep")).status_code == 403
    anonymous = await upload(client, None, "representatives", "r.csv", content)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert (await upload(client, world, "representatives", "r.csv", content, who="admin")).status_code == 201


@pytest.mark.parametrize("name, content", [
    ("代表.pdf", b"%PDF-1.4 ..."),
    ("代表.xlsx", "姓名,层级\n王一,镇\n".encode()),
    ("代表.xls", b"\xd0\xcf\x11\xe0rest"),
    ("代表.csv", "电话,地址\n1,2\n".encode()),  # no 姓名 / 层级 column
    ("代表.csv", "姓名,层级\n".encode()),  # no data rows
])
async def test_a_wrong_file_is_refused_with_422(client, world, sessionmaker, name, content):
    response = await upload(client, world, "representatives", name, content)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await count(sessionmaker, Representative) == 2


async def test_an_unknown_kind_is_refused(client, world):
    assert (await upload(client, world, "units", "r.csv", csv_bytes(GOOD_REPS))).status_code == 422


@pytest.mark.parametrize("kind, header", [("representatives", REP_HEADER), ("shifts", SHIFT_HEADER)])
async def test_templates_carry_the_header_row(client, kind, header):
    xlsx = workbook(await client.get(f"/api/v1/imports/template/{kind}.xlsx"))
    assert rows_of(xlsx.worksheets[0])[0] == header
    csv_response = await client.get(f"/api/v1/imports/template/{kind}.csv")
    assert csv_response.status_code == 200 and csv_response.content.startswith(b"\xef\xbb\xbf")
    assert csv_response.content.decode("utf-8-sig").splitlines()[0] == ",".join(header)


async def test_a_filled_in_template_imports(client, world, sessionmaker):
    template = (await client.get("/api/v1/imports/template/representatives.xlsx")).content
    response = await upload(client, world, "representatives", "模板.xlsx", template)
    assert response.json()["status"] == "done" and response.json()["imported"] == 1


# --- exports -----------------------------------------------------------------------------------------


async def test_the_roster_export_has_chinese_headers_a_frozen_row_and_typed_cells(client, world, sessionmaker):
    rows = [
        SHIFT_HEADER,
        ["LS-01", "2030-06-03", "09:00", "11:30", "张代表", ""],
        ["LS-02", "2030-06-01", "14:00", "16:00", "李代表", ""],
        ["LS-01", "2030-07-01", "09:00", "11:30", "张代表", ""],  # outside the range
    ]
    assert (await upload(client, world, "shifts", "s.csv", csv_bytes(rows))).json()["status"] == "done"
    params = {"from": "2030-06-01", "to": "2030-06-30"}
    book = workbook(await client.get("/api/v1/rosters/export.xlsx", params=params, headers=world.auth("coordinator")))
    sheet = book.worksheets[0]
    assert sheet.freeze_panes == "A2"
    assert rows_of(sheet) == [
        ["工作室", "日期", "开始", "结束", "代表", "签到时间"],
        ["石塘湾村党代表工作室", datetime(2030, 6, 1), time(14, 0), time(16, 0), "李代表", None],
        ["镇区党代表工作室", datetime(2030, 6, 3), time(9, 0), time(11, 30), "张代表", None],
    ]
    one = workbook(await client.get("/api/v1/rosters/export.xlsx", params={**params, "workroom": "LS-01"},
                                    headers=world.auth("admin")))
    assert [r[0] for r in rows_of(one.worksheets[0])[1:]] == ["镇区党代表工作室"]
    assert (await client.get("/api/v1/rosters/export.xlsx", headers=world.auth("rep"))).status_code == 403
    assert (await client.get("/api/v1/rosters/export.xlsx")).status_code == 401
    unknown = await client.get("/api/v1/rosters/export.xlsx", params={"workroom": "NOPE"}, headers=world.auth("admin"))
    assert unknown.status_code == 404


async def test_the_attendance_export_matches_the_json(client, world, sessionmaker):
    rows = [
        SHIFT_HEADER,
        ["LS-01", "2030-06-03", "09:00", "11:30", "张代表", ""],
        ["LS-01", "2030-06-04", "09:00", "11:30", "张代表", ""],
        ["LS-02", "2030-06-01", "14:00", "16:00", "李代表", ""],
    ]
    assert (await upload(client, world, "shifts", "s.csv", csv_bytes(rows))).json()["status"] == "done"
    params = {"from": "2030-06-01", "to": "2030-06-30", "group": "representative"}
    book = workbook(await client.get("/api/v1/attendance/export.xlsx", params=params, headers=world.auth("coordinator")))
    sheet = book.worksheets[0]
    assert sheet.freeze_panes == "A2"
    rep, rep2 = world.representatives["rep"], world.representatives["rep2"]
    assert rows_of(sheet) == [
        ["代表编号", "代表", "排班数", "签到数", "缺勤数", "签到率"],
        [rep.id, "张代表", 2, 0, 0, 0],
        [rep2.id, "李代表", 1, 0, 0, 0],
    ]
    by_month = workbook(await client.get("/api/v1/attendance/export.xlsx", params={**params, "group": "month"},
                                         headers=world.auth("coordinator")))
    assert rows_of(by_month.worksheets[0])[1] == ["2030-06", 3, 0, 0, 0]
    # The same table as CSV: UTF-8 with a BOM (Excel reads the Chinese), the same rows.
    response = await client.get("/api/v1/attendance/export.csv", params=params, headers=world.auth("coordinator"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert csv_rows(response) == [
        ["代表编号", "代表", "排班数", "签到数", "缺勤数", "签到率"],
        [str(rep.id), "张代表", "2", "0", "0", "0.0"],
        [str(rep2.id), "李代表", "1", "0", "0", "0.0"],
    ]
    assert (await client.get("/api/v1/attendance/export.xlsx", headers=world.auth("rep"))).status_code == 403


async def test_the_funnel_export_is_not_captured_by_the_service_point_route(client, world, sessionmaker):
    rep = world.representatives["rep"]
    point = await client.post("/api/v1/service-points", headers=world.auth("coordinator"), json={
        "workroom_code": "LS-01", "title": "石塘湾集市", "place_type": "market",
        "starts_at": "2030-06-05T08:00:00+08:00", "ends_at": "2030-06-05T11:00:00+08:00",
        "representative_ids": [rep.id],
    })
    assert point.status_code == 201, point.text
    # Entered by 张代表 himself: since issue 20.3 a representative's row counts only the forms they entered
    # (forms a resident submitted at the session count for the session, not for everyone who attended it).
    await submit(client, world.auth("rep"), service_point_id=point.json()["id"])
    await submit(client, world.auth("rep"), service_point_id=point.json()["id"])
    params = {"from": "2030-06-01", "to": "2030-06-30"}
    response = await client.get("/api/v1/service-points/funnel/export.xlsx", params=params,
                                headers=world.auth("coordinator"))
    book = workbook(response)
    sessions, reps = book.worksheets
    assert sessions.title == "按场次" and reps.title == "按代表"
    assert sessions.freeze_panes == "A2" and reps.freeze_panes == "A2"
    assert rows_of(sessions) == [
        ["场次编号", "场次", "地点类型", "开始时间", "工作室编号", "收集数", "答复数", "满意数", "基本满意数",
         "不满意数", "答复率", "满意率"],
        [point.json()["id"], "石塘湾集市", "集市", datetime(2030, 6, 5, 8), "LS-01", 2, 0, 0, 0, 0, 0, None],
    ]
    assert rows_of(reps)[1][:6] == [rep.id, "张代表", 1, 2, 0, 0]
    # As CSV, one table at a time: the sessions (the default) or the representatives.
    by_session = csv_rows(await client.get("/api/v1/service-points/funnel/export.csv", params=params,
                                           headers=world.auth("coordinator")))
    assert by_session[0] == rows_of(sessions)[0]
    assert by_session[1][:6] == [str(point.json()["id"]), "石塘湾集市", "集市", "2030-06-05 08:00:00", "LS-01", "2"]
    by_rep = csv_rows(await client.get("/api/v1/service-points/funnel/export.csv",
                                       params={**params, "by": "representative"}, headers=world.auth("coordinator")))
    assert by_rep[0] == rows_of(reps)[0] and by_rep[1][:4] == [str(rep.id), "张代表", "1", "2"]
    wrong = await client.get("/api/v1/service-points/funnel/export.csv", params={"by": "nobody"},
                             headers=world.auth("coordinator"))
    assert wrong.status_code == 422 and wrong.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/service-points/funnel/export.xlsx", headers=world.auth("rep"))).status_code == 403
