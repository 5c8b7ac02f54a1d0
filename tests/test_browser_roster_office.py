"""The office plans a rota in a real Chromium on a phone-sized screen (390×844)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import httpx

from app.config import TZ
from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world


def PREVIEW(url: str) -> bool:
    """The preview is the POST's page, kept and shown at the rota form's own address (app/http/prg.py)."""
    return "/office/rota?" in url and "shown=" in url


async def test_coordinator_previews_a_two_week_rota_sees_the_conflict_and_commits(live_server: str, phone, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    today = datetime.now(TZ).date()
    monday = today + timedelta(days=7 - today.weekday())
    wednesday = monday + timedelta(days=2)
    async with httpx.AsyncClient(base_url=live_server) as http:
        busy = await http.post("/api/v1/workrooms/LS-02/shifts", headers=world.auth("coordinator"), json={
            "representative_id": world.representatives["rep2"].id,
            "starts_at": datetime.combine(wednesday, time(10), TZ).isoformat(),
            "ends_at": datetime.combine(wednesday, time(12), TZ).isoformat()})
        assert busy.status_code == 201, busy.text

    page = await phone.new_page()
    await page.goto(f"{live_server}/login")
    await page.fill("#username", "coordinator")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]:has-text('登录')")
    await page.wait_for_url(f"{live_server}/office")
    await page.click(".office-nav a:has-text('值班')")
    await page.wait_for_url("**/office/rosters")
    await page.click(".roster-tabs a:has-text('排班计划')")
    await page.wait_for_url("**/office/rota")

    await page.fill("#rota-from", monday.isoformat())
    await page.fill("#rota-to", (monday + timedelta(days=13)).isoformat())
    room = page.locator("details[data-workroom='LS-01']")
    await room.locator("input[name='w-LS-01-on']").check()
    for day in ("2", "4", "5"):  # Monday to Friday is the default: keep Monday and Wednesday
        await room.locator(f"input[name='w-LS-01-weekday'][value='{day}']").set_checked(False, force=True)
    await page.fill("#w-LS-01-start", "09:00")
    await page.fill("#w-LS-01-end", "11:30")
    await page.select_option("#w-LS-01-rep-0", str(world.representatives["rep"].id))
    await page.select_option("#w-LS-01-rep-1", str(world.representatives["rep2"].id))
    await page.click("button:has-text('预览排班')")
    await page.wait_for_url(PREVIEW)

    items = page.locator(".rota-preview > li")
    assert await items.count() == 4
    conflict = page.locator(".rota-preview > li.conflict")
    assert await conflict.count() == 1
    assert await conflict.get_attribute("data-day") == wednesday.isoformat()
    assert "石塘湾村党代表工作室" in await conflict.locator(".conflicts").inner_text()
    assert await page.locator("form[data-form=rota-commit] button").is_disabled()
    await screenshot(page, "roster-preview")

    # Back to the form with the pattern kept; a shorter morning no longer collides with rep2's shift.
    await page.click("button:has-text('返回修改')")
    await page.wait_for_url(lambda url: "/office/rota?" in url and "shown=" not in url)
    assert await page.input_value("#w-LS-01-rep-1") == str(world.representatives["rep2"].id)
    await page.fill("#w-LS-01-end", "10:00")
    await page.click("button:has-text('预览排班')")
    await page.wait_for_url(PREVIEW)
    assert await page.locator(".rota-preview > li.conflict").count() == 0
    await page.click("form[data-form=rota-commit] button:has-text('确认写入')")
    await page.wait_for_url("**/office/rosters?**created=4")

    assert await page.locator("[data-created='4']").is_visible()
    week = page.locator(f".roster-week[data-week='{monday.isoformat()}']")
    assert await week.locator(f"li[data-day='{monday.isoformat()}'] [data-shift-id]").count() == 1
    wed = week.locator(f"li[data-day='{wednesday.isoformat()}'] [data-shift-id]")
    assert await wed.count() == 1 and "李代表" in await wed.inner_text()
    await screenshot(page, "roster-week")
