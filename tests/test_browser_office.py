"""The office and a handling unit in a real Chromium, on a phone-sized screen (390×844)."""

from __future__ import annotations

import httpx

from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world


async def sign_in(context, base: str, who: str):  # type: ignore[no-untyped-def]
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.fill("#username", who)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]:has-text('登录')")
    return page


async def test_coordinator_assigns_inline_and_the_handler_replies(live_server: str, browser, phone, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    async with httpx.AsyncClient(base_url=live_server) as http:
        created = (await http.post("/api/v1/forms", json={
            "content": "村口路灯坏了三盏，晚上走路看不清，请尽快修复。", "category": "urban_traffic",
            "workroom_code": "LS-01", "submitter_name": "王秀英", "submitter_phone": "13600135000"})).json()

        office = await sign_in(phone, live_server, "coordinator")
        await office.wait_for_url(f"{live_server}/office")
        await office.click("a:has-text('待批办')")
        await office.wait_for_url("**/office/forms?status=submitted")
        row = office.locator(f"li[data-tracking-no='{created['tracking_no']}']")
        await row.locator("select[name=unit_id]").select_option(str(world.units["A"].id))
        await screenshot(office, "office-queue")
        await row.locator("button:has-text('批办')").click()
        await office.locator(f"li[data-tracking-no='{created['tracking_no']}']").wait_for(state="detached")
        assert office.url.endswith("/office/forms?status=submitted")

        unit_context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                 has_touch=True, locale="zh-CN", timezone_id="Asia/Shanghai")
        try:
            handler = await sign_in(unit_context, live_server, "handler_a")
            await handler.wait_for_url(f"{live_server}/office/unit")
            await screenshot(handler, "office-unit-list")
            await handler.click(f"li[data-tracking-no='{created['tracking_no']}'] a:has-text('{created['tracking_no']}')")
            await handler.wait_for_url(f"**/office/forms/{created['id']}")
            # The resident's name and phone are masked for the unit until revealed (audited, issue 15.6).
            contact = handler.locator("#contact")
            assert "王**" in await contact.inner_text() and "王秀英" not in await handler.content()
            await handler.click("#contact button:has-text('查看完整联系方式')")
            await handler.locator("#contact[data-contact=revealed]").wait_for()
            assert "王秀英 13600135000" in await contact.inner_text()
            assert handler.url.endswith(f"/office/forms/{created['id']}")  # swapped in place, no re-post on reload
            await screenshot(handler, "office-form-contact-revealed")
            await handler.fill("#reply-reply", "已安排维修，三日内完成。")
            await screenshot(handler, "office-form-reply")
            await handler.click("form[data-action=reply] button[type=submit]")
            await handler.locator("[data-status=answered]").wait_for()
            await screenshot(handler, "office-form-answered")
        finally:
            await unit_context.close()

        # The resident, on their own phone, reads the reply on the tracking page.
        resident_context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                     has_touch=True, locale="zh-CN", timezone_id="Asia/Shanghai")
        try:
            resident = await resident_context.new_page()
            await resident.goto(f"{live_server}/track")
            await resident.fill("#f-no", created["tracking_no"])
            await resident.fill("#f-code", created["verification_code"])
            await resident.click("button[type=submit]:has-text('查询')")
            await resident.locator(".track-result").wait_for()
            assert "已安排维修，三日内完成。" in await resident.locator(".track-result .reply").inner_text()
            await screenshot(resident, "office-resident-sees-reply")
        finally:
            await resident_context.close()


async def test_dashboard_updates_the_count_without_a_reload(live_server: str, phone, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    async with httpx.AsyncClient(base_url=live_server) as http:
        for _ in range(2):
            assert (await http.post("/api/v1/forms", json={"content": "小区门口垃圾桶不够用。"})).status_code == 201

        page = await sign_in(phone, live_server, "coordinator")
        await page.wait_for_url(f"{live_server}/office")
        collected = page.locator("[data-stat=collected]")
        assert (await collected.text_content()) == "2"
        await page.evaluate("window.__notReloaded = true")

        # A poll while nothing changed gets 304 and leaves the number as it was.
        await page.wait_for_function(
            "() => Number(document.getElementById('dashboard').dataset.notModified || 0) >= 1", timeout=15000)
        assert (await collected.text_content()) == "2"
        assert await page.evaluate("window.minyiDashboard.updated") == 0
        await screenshot(page, "office-dashboard")

        assert (await http.post("/api/v1/forms", json={"content": "路边的树枝挡住了红绿灯。"})).status_code == 201
        await page.wait_for_function(
            "() => document.querySelector('[data-stat=collected]').textContent === '3'", timeout=20000)
        assert await page.evaluate("window.__notReloaded === true")  # the same page: no reload happened
        await screenshot(page, "office-dashboard-updated")
