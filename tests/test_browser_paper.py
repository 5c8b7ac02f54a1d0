"""The paper forms' desk in Chromium (issue 20.1): a sheet's QR code opens its entry page (signing in on the
way), the cursor waits in the content, the keyboard alone picks the category, fills name and phone and
submits with Enter, and the page comes back with the next serial offered and the cursor in the content."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Category, OpinionForm
from app.services import paper_forms
from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world

FOCUSED = "(id) => document.activeElement && document.activeElement.id === id"


@pytest.mark.parametrize("db_engine", ["sqlite"])  # the page is the same on both engines; one browser run
async def test_a_stack_of_sheets_is_typed_in_with_the_keyboard_alone(live_server, browser, sessionmaker, client):
    world = await build_world(sessionmaker)
    made = await client.post("/api/v1/paper-batches", json={"workroom_code": "LS-01", "count": 3},
                             headers=world.auth("coordinator"))
    first = made.json()["first_serial"]
    year, number = paper_forms.parse_serial(first)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                        timezone_id="Asia/Shanghai")
    try:
        page = await context.new_page()
        await page.goto(f"{live_server}/office/paper/entry?serial={first}")  # the sheet's QR code, signed out
        await page.fill("#username", "rep")
        await page.fill("#password", PASSWORD)
        await page.click("form[action='/login'] button[type=submit]")
        await page.wait_for_url(f"**/office/paper/entry?serial={first}")
        await page.wait_for_function(FOCUSED, arg="f-content")

        await page.keyboard.type("村口路灯坏了两盏，晚上接孩子看不清路。")
        await page.keyboard.press("Tab")
        await page.keyboard.press("2")  # the sheet's second category, as the option's number says
        await page.keyboard.press("Tab")
        await page.keyboard.type("李女士")
        await page.keyboard.press("Tab")
        await page.keyboard.type("13861700004")
        await page.keyboard.press("Enter")

        await page.locator(f"p.receipt[data-entered='{first}']").wait_for()
        assert await page.input_value("#f-serial") == paper_forms.serial_of(year, number + 1)  # the next sheet
        await page.wait_for_function(FOCUSED, arg="f-content")
        assert await page.input_value("#f-content") == ""
        await screenshot(page, "paper-desk-next-sheet")
    finally:
        await context.close()
    async with sessionmaker() as session:
        form = await session.scalar(select(OpinionForm).where(OpinionForm.paper_serial == first))
        second = await session.scalar(select(Category).where(Category.active.is_(True))
                                      .order_by(Category.sort_order, Category.id).offset(1).limit(1))
    assert form is not None and form.submitter_name == "李女士" and form.submitter_phone == "13861700004"
    assert form.category_id == second.id and form.entered_by_representative_id == world.representatives["rep"].id
