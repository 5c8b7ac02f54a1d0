"""Duty pages in real Chromium: a representative checks in from the phone; the public notice fits 360 px."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import httpx
from playwright.async_api import expect

from app.config import TZ
from app.models import utcnow
from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world


async def add_shift(base: str, token: str, representative_id: int, starts_at: datetime, ends_at: datetime) -> int:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            "/api/v1/workrooms/LS-01/shifts", headers={"Authorization": f"Bearer {token}"},
            json={"representative_id": representative_id, "starts_at": starts_at.isoformat(),
                  "ends_at": ends_at.isoformat()},
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


async def test_a_representative_checks_in_from_the_phone(live_server, phone, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    now = utcnow().astimezone(TZ)
    await add_shift(live_server, world.tokens["coordinator"], world.representatives["rep"].id,
                    now - timedelta(minutes=10), now + timedelta(hours=2))
    page = await phone.new_page()
    await page.goto(f"{live_server}/login?next=/rep")
    await page.fill("#username", "rep")
    await page.fill("#password", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(f"{live_server}/rep")

    mine = page.locator("#my-duty")
    button = mine.get_by_role("button", name="签到")
    await expect(button).to_be_visible()  # the section came in by htmx, with today's shift
    await expect(mine).to_contain_text("镇区党代表工作室")
    box = await button.bounding_box()
    assert box is not None and box["height"] >= 48  # a big touch target
    await button.click()
    await expect(mine.locator(".checked-in")).to_contain_text("已签到")
    await expect(mine.get_by_role("button", name="签到")).to_have_count(0)
    assert page.url == f"{live_server}/rep"
    await screenshot(page, "duty-checkin")
    await page.goto(f"{live_server}/")  # residents see who is on duty today (htmx loads the section)
    await expect(page.locator("#duty-today")).to_contain_text("张代表")


async def test_the_public_duty_notice_fits_a_360_px_screen(live_server, browser, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    today = utcnow().astimezone(TZ).date()
    monday = datetime.combine(today - timedelta(days=today.weekday()), time(0), tzinfo=TZ)
    token = world.tokens["coordinator"]
    for day, who in ((0, "rep"), (2, "rep2"), (4, "rep"), (8, "rep2"), (10, "rep")):
        start = monday + timedelta(days=day, hours=9)
        await add_shift(live_server, token, world.representatives[who].id, start, start + timedelta(hours=3))
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                        locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        page = await context.new_page()
        for path in ("/w/LS-01/duty", "/"):
            await page.goto(f"{live_server}{path}")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path}: {width}px wide"
        await page.goto(f"{live_server}/w/LS-01/duty")
        await expect(page.locator(".duty-day").first).to_contain_text("09:00–12:00")
        await expect(page.locator("body")).not_to_contain_text("13812345678")
        await screenshot(page, "duty-public")
    finally:
        await context.close()
