"""The small things people notice (issue 17.6), in real Chromium at a phone's 390×844 and a desk's
1440×900: the home page's 我要反映 and its tap targets, the favicon, the representative's text box on the
first screen, an error page with no English, and an ended service point that points to its workroom."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.async_api import expect

from app.db import transaction
from app.models import ServicePoint, utcnow
from tests.conftest import screenshot
from tests.factories import build_world
from tests.test_browser_rep import sign_in

SIZES = {"phone": (390, 844), "desktop": (1440, 900)}
ENGLISH = re.compile(r"[A-Za-z]{3,}")


# Pairwise: each test runs once per engine and once per screen, SQLite at the phone's size and PostgreSQL
# at the desk's (what a page shows does not depend on the engine; each combination would cost a browser run).
ENGINE_SIZE = {"sqlite": "phone", "postgresql": "desktop"}


@pytest.fixture
async def sized(db_engine: str, browser):  # type: ignore[no-untyped-def]
    """A browser context at the size paired with this run's engine: (name, context, height)."""
    name = ENGINE_SIZE[db_engine]
    width, height = SIZES[name]
    phone = name == "phone"
    context = await browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=2 if phone else 1, is_mobile=phone,
        has_touch=phone, locale="zh-CN", timezone_id="Asia/Shanghai",
    )
    try:
        yield name, context, height
    finally:
        await context.close()


async def test_home_s_big_button_and_workroom_links_are_easy_to_tap(live_server, sized, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    name, context, _ = sized
    await build_world(sessionmaker)
    page = await context.new_page()
    await page.goto(f"{live_server}/")
    button = page.locator("a.button.primary")
    await expect(button).to_have_count(1)
    await expect(button).to_have_text("我要反映")
    box = await button.bounding_box()
    assert box and box["height"] >= 44, box
    links = page.locator("#workrooms a.workroom-link")
    assert await links.count() == 3  # two workrooms and 直接网上提交
    for i in range(await links.count()):
        link_box = await links.nth(i).bounding_box()
        assert link_box and link_box["height"] >= 44, (i, link_box)
    assert await page.locator("#duty-today").get_by_text("今日无值班安排").count() == 1
    await screenshot(page, f"small-things-home-{name}")
    await button.click()
    await expect(page.locator("#workrooms")).to_be_in_viewport()


async def test_the_favicon_loads(live_server, sized) -> None:  # type: ignore[no-untyped-def]
    name, context, _ = sized
    page = await context.new_page()
    icons: list[int] = []
    page.on("response", lambda r: icons.append(r.status) if "favicon" in r.url else None)
    await page.goto(f"{live_server}/track")
    href = await page.locator("link[rel=icon]").get_attribute("href")
    assert href == "/static/img/favicon.svg"
    answer = await page.request.get(f"{live_server}/favicon.ico")
    assert answer.ok
    assert "image/svg+xml" in answer.headers["content-type"]
    # The icon draws: an <img> of it has its natural size.
    width = await page.evaluate("""() => new Promise((resolve) => {
      const img = new Image(); img.onload = () => resolve(img.naturalWidth); img.onerror = () => resolve(0);
      img.src = "/favicon.ico";
    })""")
    assert width > 0
    assert 404 not in icons


async def test_the_rep_text_box_is_on_the_first_screen(live_server, sized, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    name, context, height = sized
    await build_world(sessionmaker)
    page = await context.new_page()
    await sign_in(page, live_server)
    await expect(page.locator("#my-duty")).to_be_attached()
    await page.wait_for_load_state("networkidle")  # 我的值班 loaded in its place, below the form
    box = await page.locator("#f-content").bounding_box()
    assert box and box["y"] + 48 <= height, box  # at least its first lines above the fold, before scrolling
    duty = await page.locator("#my-duty").bounding_box()
    assert duty and duty["y"] > box["y"]
    await screenshot(page, f"small-things-rep-{name}")


async def test_an_error_page_has_no_english(live_server, sized) -> None:  # type: ignore[no-untyped-def]
    name, context, _ = sized
    page = await context.new_page()
    response = await page.goto(f"{live_server}/no-such-page")
    assert response and response.status == 404
    text = await page.locator("main").inner_text() + " " + await page.title()
    assert "页面不存在" in text and not ENGLISH.findall(text), ENGLISH.findall(text)
    await screenshot(page, f"small-things-error-{name}")


async def test_an_ended_point_points_to_its_workroom(live_server, sized, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    name, context, _ = sized
    world = await build_world(sessionmaker)
    ends_at = utcnow() - timedelta(days=1)
    async with transaction(sessionmaker) as session:
        point = ServicePoint(workroom_id=world.workrooms["LS-01"].id, title="洛社菜市场流动服务点", place_type="market",
                             location="洛社菜市场门口", starts_at=ends_at - timedelta(hours=3), ends_at=ends_at)
        session.add(point)
        await session.flush()
        point_id = point.id
    page = await context.new_page()
    await page.goto(f"{live_server}/p/{point_id}")
    await expect(page.locator("textarea[name=content]")).to_have_count(0)
    await expect(page.locator("main")).to_contain_text("已于")
    link = page.locator("a[data-workroom-link]")
    await expect(link).to_have_attribute("href", "/w/LS-01")
    box = await link.bounding_box()
    assert box and box["height"] >= 44
    await screenshot(page, f"small-things-ended-point-{name}")
    await link.click()
    await page.wait_for_url(f"{live_server}/w/LS-01")
    await expect(page.locator("textarea[name=content]")).to_be_visible()
