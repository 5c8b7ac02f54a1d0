"""The office dashboard in a real Chromium, on a phone (390×844) and at a desk (1440×900): the tiles of
forms in each state now, each opening exactly its forms, and tiles and charts that follow the polled
counts without a reload (issue 17.1 and 17.5)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world

TILES = {"pending_triage": "待批办", "in_progress": "办理中", "awaiting_followup": "待办结",
         "extension_requested": "延期待审批", "warning": "预警", "overdue": "逾期", "escalated": "督办"}
ROOM = "镇区党代表工作室"


async def sign_in(context, base: str):  # type: ignore[no-untyped-def]
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.fill("#username", "coordinator")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]:has-text('登录')")
    await page.wait_for_url(f"{base}/office")
    return page


async def tile_value(page, key: str) -> str:  # type: ignore[no-untyped-def]
    return (await page.locator(f"[data-tile={key}] b").text_content() or "").strip()


async def assigned_in_chart(page) -> str:  # type: ignore[no-untyped-def]
    row = page.locator(f"[data-chart=by-workroom] tbody tr:has(th:text-is('{ROOM}'))")
    return (await row.locator("td.num").text_content() or "").strip()


# Pairwise: each engine once and each screen once (the page is the same on both engines; the counts behind
# it are tested on both in tests/test_stats_current.py): a browser run costs ~10 s.
@pytest.mark.parametrize(("db_engine", "size"), [("sqlite", "phone"), ("postgresql", "desk")])
async def test_dashboard_tiles_open_their_forms_and_follow_an_assignment(  # type: ignore[no-untyped-def]
    live_server: str, browser, sessionmaker, size: str,
) -> None:
    world = await build_world(sessionmaker)
    viewport = {"width": 390, "height": 844} if size == "phone" else {"width": 1440, "height": 900}
    context = await browser.new_context(viewport=viewport, is_mobile=size == "phone", has_touch=size == "phone",
                                        locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        async with httpx.AsyncClient(base_url=live_server) as http:
            ids = []
            for text in ("村口路灯坏了三盏。", "小区门口垃圾桶不够用。", "路边的树枝挡住了红绿灯。"):
                created = await http.post("/api/v1/forms", json={"content": text, "workroom_code": "LS-01",
                                                                 "category": "urban_traffic"})
                assert created.status_code == 201
                ids.append(created.json()["id"])
            assign = {"unit_id": world.units["A"].id}
            assert (await http.post(f"/api/v1/forms/{ids[0]}/assign", json=assign,
                                    headers=world.auth("coordinator"))).status_code == 200

            page = await sign_in(context, live_server)
            for key, label in TILES.items():
                assert label in await page.locator(f"[data-tile={key}] .tile-label").text_content()
            assert (await tile_value(page, "pending_triage"), await tile_value(page, "in_progress")) == ("2", "1")
            assert await assigned_in_chart(page) == "1"
            # Every chart is a table with its bars, readable without JavaScript or eyes.
            assert await page.locator("table.chart-table").count() == 4
            assert await page.locator("[data-chart=answer-days] tbody tr").count() == 5
            await screenshot(page, f"dashboard-current-{size}")

            # Each tile opens the list of exactly its forms.
            await page.click("[data-tile=pending_triage]")
            await page.wait_for_url("**/office/forms?status=submitted")
            assert "共 2 份" in await page.content()
            await page.goto(f"{live_server}/office")
            await page.click("[data-tile=in_progress]")
            await page.wait_for_url("**/office/forms?status=assigned")
            assert "共 1 份" in await page.content()
            await page.goto(f"{live_server}/office")
            await page.evaluate("window.__notReloaded = true")
            await page.wait_for_function(
                "() => Number(document.getElementById('dashboard').dataset.polls || 0) >= 1", timeout=15000)

            # Assigned through the API while the dashboard is open: tiles and the chart follow, no reload.
            assert (await http.post(f"/api/v1/forms/{ids[1]}/assign", json=assign,
                                    headers=world.auth("coordinator"))).status_code == 200
            await page.wait_for_function(
                "() => document.querySelector('[data-tile=in_progress] b').textContent === '2'", timeout=20000)
            assert await tile_value(page, "pending_triage") == "1"
            await page.wait_for_function(
                f"() => [...document.querySelectorAll('[data-chart=by-workroom] tbody tr')]"
                f".some(r => r.querySelector('th').textContent === '{ROOM}' && r.querySelector('td.num').textContent === '2')",
                timeout=20000)
            assert await page.evaluate("window.__notReloaded === true")
            # The rebuilt bars are the server's markup: one track and two fills per row.
            assert await page.locator("[data-chart=by-workroom] tbody tr").first.locator("rect").count() == 3
            await screenshot(page, f"dashboard-updated-{size}")
    finally:
        await context.close()
