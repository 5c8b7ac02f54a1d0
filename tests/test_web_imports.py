"""The office's Excel page: upload through a plain form, the refused rows listed, progress while a big
import runs (htmx polling, or a meta refresh without scripts), and the export links."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import transaction
from app.models import Representative, Shift
from app.services.imports import CHUNK
from tests.conftest import screenshot
from tests.support.serving import serve
from tests.factories import PASSWORD, build_world
from tests.support.logins import csrf_of, login
from tests.test_imports import REP_HEADER, SHIFT_HEADER, csv_bytes, hold_imports


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
    # htmx's poll re-renders the job's block alone: it must carry what it uses (the download link's macro).
    polled = await client.get(response.headers["location"], headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "errors.csv" in polled.text and "<html" not in polled.text
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


@pytest.fixture
async def served_app(app: Any) -> AsyncIterator[str]:
    """The test's own app — the one ``sessionmaker`` writes through and ``hold_imports`` holds — served over
    HTTP (tests/support/serving.py): its base URL. (``live_server`` serves an app of its own, whose import
    runner a test cannot hold.)"""
    async with serve(app) as base:
        yield base


async def test_a_big_import_shows_its_progress_in_the_browser(served_app: str, app, phone, sessionmaker, tmp_path) -> None:  # type: ignore[no-untyped-def]
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
    await page.goto(f"{served_app}/login?next=/office/imports")
    await page.fill("#username", "coordinator")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]:has-text('登录')")
    await page.wait_for_url(f"{served_app}/office/imports")

    # The test holds the real job after its first chunk (running, CHUNK rows checked, nothing written) for
    # as long as it looks at the page, then lets it finish: no race between the import and the browser.
    async with hold_imports(app) as gate:
        await page.check("input[name=kind][value=shifts]")
        await page.set_input_files("#f-file", str(path))
        await page.click("button[type=submit]:has-text('上传并导入')")
        await page.wait_for_url(f"{served_app}/office/imports/*")
        await gate.held()
        # The page may first have shown the job pending, or at 0 rows; it polls every second until it shows this.
        shown = "n => document.querySelector('#import-job[data-status=running] [data-progress]')?.textContent === n"
        await page.wait_for_function(shown, arg=str(CHUNK), timeout=30_000)
        assert await page.get_attribute("#import-progress", "max") == "1500"
        assert await page.get_attribute("#import-progress", "value") == str(CHUNK)
        await screenshot(page, "imports-running")
        assert await _count(sessionmaker, Shift) == 0
        gate.release()
        await app.state.imports.join()  # the job has ended; the page, untouched since, must find out by itself
    await page.wait_for_selector("#import-job[data-status=done], #import-job[data-status=failed]", timeout=30_000)
    assert await page.get_attribute("#import-job", "data-status") == "done", await page.inner_text("#import-job")
    assert await page.inner_text("[data-imported]") == "1500"
    await screenshot(page, "imports-done")
    assert await _count(sessionmaker, Shift) == 1500
