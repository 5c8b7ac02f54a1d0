"""Post, redirect, get in Chromium (issue 17.4): after a form that could not be taken, the address bar holds
a page that reloads cleanly with every typed value, the first wrong field has the focus, going back never
posts again, with JavaScript (htmx's boost) and without."""

from __future__ import annotations

from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world, submit
from tests.test_browser_nojs import _sign_in


async def test_a_residents_mistake_reloads_with_what_was_typed_and_the_field_focused(live_server, phone, sessionmaker):
    await build_world(sessionmaker)
    page = await phone.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    await page.goto(f"{live_server}/w/LS-01")
    await page.fill("#f-content", "桥头的护栏松了，孩子上学经过很危险。")
    await page.fill("#f-submitter_name", "王阿姨")
    await page.fill("#f-submitter_phone", "12ab")
    await page.click("form.submit-form button[type=submit]")
    await page.wait_for_url(f"{live_server}/w/LS-01?shown=*")
    await page.locator("#e-submitter_phone").wait_for()
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'f-submitter_phone'")
    await screenshot(page, "prg-resident-mistake")

    await page.reload()
    assert "shown=" in page.url and not dialogs
    assert await page.input_value("#f-content") == "桥头的护栏松了，孩子上学经过很危险。"
    assert await page.input_value("#f-submitter_name") == "王阿姨"
    assert "镇区党代表工作室" in await page.locator("p.source").inner_text()
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'f-submitter_phone'")

    await page.fill("#f-submitter_phone", "13812345678")
    await page.click("form.submit-form button[type=submit]")
    await page.wait_for_url(f"{live_server}/receipt")
    await page.go_back()  # back to the page with the message: shown again, never posted again
    assert not dialogs and "/receipt" not in page.url


async def test_without_javascript_an_office_mistake_redirects_and_an_actions_address_opens_the_form(
        live_server, browser, sessionmaker, client) -> None:
    world = await build_world(sessionmaker)
    form = await submit(client)
    context, office = await _sign_in(browser, live_server, "coordinator")
    try:
        await office.goto(f"{live_server}/office/forms?status=submitted")
        row = office.locator(f"li[data-tracking-no='{form['tracking_no']}']")
        await row.locator("select[name=unit_id]").select_option(str(world.units["A"].id))
        await row.locator("details summary").click()
        await row.locator("textarea[name=instructions]").fill("请三日内核实。")
        await row.locator("input[name=due_at]").fill("2001-01-01")  # long past: refused
        await row.locator("button:has-text('批办')").click()
        await office.wait_for_url(f"{live_server}/office/forms?status=submitted&shown=*")
        row = office.locator(f"li[data-tracking-no='{form['tracking_no']}']")
        assert await row.locator("textarea[name=instructions]").input_value() == "请三日内核实。"
        assert await row.locator(".field-error").count() == 1
        await office.reload()
        assert "shown=" in office.url and await row.locator(".field-error").count() == 1
        await screenshot(office, "prg-office-mistake-nojs")

        await office.goto(f"{live_server}/office/forms/{form['id']}/assign")  # an action's address, typed
        assert office.url == f"{live_server}/office/forms/{form['id']}"
        assert "Method Not Allowed" not in await office.content()
    finally:
        await context.close()
    assert PASSWORD
