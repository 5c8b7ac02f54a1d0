"""Works without JavaScript: the whole round trip of a form in a Chromium with JavaScript switched off
(every action a real link or form, redirect after POST)."""

from __future__ import annotations

from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world


async def _context(browser):  # type: ignore[no-untyped-def]
    return await browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844},
                                     locale="zh-CN", timezone_id="Asia/Shanghai")


async def _sign_in(browser, base: str, who: str):  # type: ignore[no-untyped-def]
    context = await _context(browser)
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.fill("#username", who)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]:has-text('登录')")
    return context, page


async def test_submit_assign_reply_and_track_with_javascript_off(live_server: str, browser, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    resident_context = await _context(browser)
    resident = await resident_context.new_page()
    await resident.goto(f"{live_server}/w/LS-01")
    await resident.click("button[type=submit]:has-text('提交')")  # empty: the browser's own required check
    assert resident.url.endswith("/w/LS-01")
    await resident.fill("#f-content", "桥头的护栏松了，孩子上学经过很危险。")
    await resident.click("label:has-text('城建交通')")
    await resident.click("button[type=submit]:has-text('提交')")
    await resident.wait_for_url(f"{live_server}/receipt")
    number = (await resident.locator("#tracking-no").inner_text()).strip()
    code = (await resident.locator("#tracking-code").inner_text()).strip()

    office_context, office = await _sign_in(browser, live_server, "coordinator")
    await office.goto(f"{live_server}/office/forms?status=submitted")
    row = office.locator(f"li[data-tracking-no='{number}']")
    await row.locator("select[name=unit_id]").select_option(str(world.units["A"].id))
    await row.locator("button:has-text('批办')").click()
    await office.wait_for_load_state()
    assert await office.locator(f"li[data-tracking-no='{number}']").count() == 0
    await office_context.close()

    unit_context, handler = await _sign_in(browser, live_server, "handler_a")
    await handler.click(f"a:has-text('{number}')")
    await handler.fill("#reply-reply", "护栏已加固。")
    await handler.click("form[data-action=reply] button[type=submit]")
    await handler.locator("[data-status=answered]").wait_for()
    await unit_context.close()

    await resident.goto(f"{live_server}/track")
    await resident.fill("#f-no", number)
    await resident.fill("#f-code", code)
    await resident.click("button[type=submit]:has-text('查询')")
    assert "护栏已加固。" in await resident.locator(".track-result").inner_text()
    await screenshot(resident, "nojs-track")
    await resident_context.close()
