"""The office's desk in Chromium (issue 17.2): at 1440×900 a dense table with the filters beside it, sortable,
rows selected and assigned at once; at 390×844 the cards as before."""

from __future__ import annotations

from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world, submit


async def _office(browser, base: str, width: int, height: int):  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                        timezone_id="Asia/Shanghai")
    page = await context.new_page()
    await page.goto(f"{base}/login?next=/office/forms?status=submitted")
    await page.fill("#username", "coordinator")
    await page.fill("#password", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(f"{base}/office/forms?status=submitted")
    return context, page


async def test_at_a_desk_the_queue_is_a_table_and_rows_are_assigned_together(live_server, browser, sessionmaker, client):
    world = await build_world(sessionmaker)
    made = [await submit(client, content=f"第{i}条：菜场门口的排水沟堵了。") for i in range(4)]
    context, page = await _office(browser, live_server, 1440, 900)
    try:
        table = page.locator("table.desk-table")
        assert await table.is_visible() and not await page.locator(".form-list .cards").is_visible()
        numbers = await table.locator("tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.trackingNo)")
        assert numbers == [f["tracking_no"] for f in made]  # the triage queue: oldest first
        filters = await page.locator("form.filters").bounding_box()
        listed = await table.bounding_box()
        assert filters and listed and filters["x"] + filters["width"] <= listed["x"]  # filters beside the table
        await screenshot(page, "desk-queue-1440")

        await page.click("th a:has-text('编号')")  # sort by number, then turn it round
        await page.wait_for_url("**sort=number**")
        await page.click("th a:has-text('编号')")
        await page.wait_for_url("**order=desc**")
        numbers = await table.locator("tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.trackingNo)")
        assert numbers == sorted((f["tracking_no"] for f in made), reverse=True)

        for form in made[:3]:
            await page.check(f"#sel-{form['id']}")
        await page.select_option("#bulk-unit", str(world.units["A"].id))
        await page.click(".bulk-bar button[value=assign]")
        await page.locator("p.receipt:has-text('已批办 3 份')").wait_for()
        remaining = await page.locator("table.desk-table tbody tr").evaluate_all(
            "(rows) => rows.map((r) => r.dataset.trackingNo)")
        assert remaining == [made[3]["tracking_no"]]
        await screenshot(page, "desk-after-bulk-assign-1440")
    finally:
        await context.close()

    context, page = await _office(browser, live_server, 390, 844)
    try:
        assert not await page.locator("table.desk-table").is_visible()
        assert await page.locator(f".cards li[data-tracking-no='{made[3]['tracking_no']}']").is_visible()
        await screenshot(page, "desk-queue-390")
    finally:
        await context.close()
