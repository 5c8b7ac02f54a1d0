"""The office's Excel page: upload through a plain form, the refused rows listed, progress while a big
import runs (htmx polling, or a meta refresh without scripts), and the export links."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from app.db import transaction
from app.models import ImportJob, Representative, Shift, User
from app.models.base import utcnow
from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world
from tests.test_imports import REP_HEADER, SHIFT_HEADER, csv_bytes
from tests.test_web_session import csrf_of, login


async def _upload(client, kind: str, name: str, content: bytes):  # type: ignore[no-untyped-def]
    page = await client.get("/office/imports")
    field = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert field and field.group(1) == csrf_of(page)  # the form itself carries the token
    return await client.post("/office/imports", data={"kind": kind, "csrf_token": field.group(1)},
                             files={"file": (name, content, "text/csv")})


async def _count(sessionmaker, model: Any) -> int:  # type: ignore[no-untyped-def]
    async with transaction(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(model)))


async def test_a_file_with_bad_rows_imports_nothing_and_the_page_lists_them(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await login(client, "coordinator")
    before = await _count(sessionmaker, Representative)
    rows = [REP_HEADER, ["王芳", "镇", "13800000001", "LS-01"], ["赵强", "镇", "13800000002", "LS-99"]]
    response = await _upload(client, "representatives", "名册.csv", csv_bytes(rows))
    assert response.status_code == 303
    job = await client.get(response.headers["location"])
    assert 'data-status="failed"' in job.text and 'data-row="3"' in job.text and "LS-99" in job.text
    assert await _count(sessionmaker, Representative) == before
    good = await _upload(client, "representatives", "名册.csv", csv_bytes(rows[:2]))
    done = await client.get(good.headers["location"])
    assert 'data-status="done"' in done.text and "data-imported>1<" in done.text
    assert await _count(sessionmaker, Representative) == before + 1


async def test_whole_file_problems_rerender_the_form_and_only_the_office_may_import(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await login(client, "coordinator")
    response = await _upload(client, "shifts", "值班.pdf", b"%PDF-1.4")
    assert response.status_code == 422 and 'id="e-file"' in response.text
    no_file = await client.post("/office/imports", data={"kind": "shifts", "csrf_token": client.cookies["minyi_csrf"]})
    assert no_file.status_code == 422 and "请选择要导入的文件" in no_file.text
    forged = await client.post("/office/imports", data={"kind": "shifts"},
                               files={"file": ("a.csv", csv_bytes([SHIFT_HEADER]), "text/csv")})
    assert forged.status_code == 403
    page = await client.get("/office/imports")
    assert "/api/v1/rosters/export.xlsx" in page.text and "/api/v1/attendance/export.xlsx" in page.text
    client.cookies.clear()
    await login(client, "rep")
    assert (await client.get("/office/imports")).status_code == 403


async def test_a_big_import_shows_its_progress_in_the_browser(live_server: str, phone, sessionmaker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        people = [Representative(name=f"代表{i:02d}", level="town") for i in range(10)]
        session.add_all(people)
        await session.flush()
        ids = [p.id for p in people]
    rows: list[list[Any]] = [SHIFT_HEADER]
    for day in range(150):
        for i, rep_id in enumerate(ids):
            rows.append(["LS-01" if i % 2 else "LS-02", (date(2030, 1, 1) + timedelta(days=day)).isoformat(),
                         "09:00", "11:30", "", str(rep_id)])
    path = tmp_path / "全年值班.csv"
    path.write_bytes(csv_bytes(rows))
    page = await phone.new_page()
    await page.goto(f"{live_server}/login?next=/office/imports")
    await page.fill("#username", "coordinator")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]:has-text('登录')")
    await page.wait_for_url(f"{live_server}/office/imports")

    # The page while a job runs, and how it updates itself: the test drives the job's pace by writing the
    # job's state itself (a real import may finish before the browser asks, which made this test flaky).
    async with transaction(sessionmaker) as session:
        coordinator = await session.scalar(select(User).where(User.username == "coordinator"))
        held = ImportJob(user_id=coordinator.id, kind="shifts", file_name="进行中.csv", status="running",
                         total=1500, progress=600)
        session.add(held)
        await session.flush()
        held_id = held.id
    await page.goto(f"{live_server}/office/imports/{held_id}")
    statuses = {await page.get_attribute("#import-job", "data-status")}
    assert await page.inner_text("[data-progress]") == "600"
    async with transaction(sessionmaker) as session:
        job = await session.get(ImportJob, held_id)
        job.status, job.progress, job.imported, job.errors = "done", 1500, 1500, []
        job.finished_at = job.updated_at = utcnow()
    await page.wait_for_selector("#import-job[data-status=done]", timeout=15_000)  # polled every second
    statuses.add(await page.get_attribute("#import-job", "data-status"))
    assert statuses == {"running", "done"}, statuses  # the page showed the job while it ran, then updated itself

    # A real import of the whole file through the page, to its end.
    await page.goto(f"{live_server}/office/imports")
    await page.check("input[name=kind][value=shifts]")
    await page.set_input_files("#f-file", str(path))
    await page.click("button[type=submit]:has-text('上传并导入')")
    await page.wait_for_url(f"{live_server}/office/imports/*")
    await page.wait_for_selector("#import-job[data-status=done], #import-job[data-status=failed]", timeout=60_000)
    assert await page.get_attribute("#import-job", "data-status") == "done", await page.inner_text("#import-job")
    assert await page.inner_text("[data-imported]") == "1500"
    await screenshot(page, "imports-done")
    assert await _count(sessionmaker, Shift) == 1500
