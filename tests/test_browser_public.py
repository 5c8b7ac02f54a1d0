"""A resident in real Chromium on a phone: scan the workroom's QR code, submit, keep the receipt, and
later read the office's reply on the tracking page. The submit page stays light and fits 360 px."""

from __future__ import annotations

import httpx

from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world

CONTENT = "小区门口的人行道砖松动了好几块，老人走路容易绊倒，希望尽快修一修。"
REPLY = "镇城建办已派人现场查看，本周五前完成人行道砖修复。"


async def office_answers(base: str, tracking_no: str, unit_id: int) -> None:
    """The office, through the API: the coordinator assigns the form, the unit's handler replies."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as api:
        async def login(username: str) -> dict[str, str]:
            response = await api.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        coordinator, handler = await login("coordinator"), await login("handler_a")
        found = await api.get("/api/v1/forms", params={"q": tracking_no}, headers=coordinator)
        assert found.status_code == 200, found.text
        (form,) = [f for f in found.json()["items"] if f["tracking_no"] == tracking_no]
        assigned = await api.post(f"/api/v1/forms/{form['id']}/assign", json={"unit_id": unit_id}, headers=coordinator)
        assert assigned.status_code == 200, assigned.text
        replied = await api.post(f"/api/v1/forms/{form['id']}/reply",
                                 json={"reply": REPLY, "internal_note": "内部：预算从维修基金列支"}, headers=handler)
        assert replied.status_code == 200, replied.text


async def test_resident_scans_submits_keeps_the_receipt_and_reads_the_reply(live_server, sessionmaker, phone):
    world = await build_world(sessionmaker)
    page = await phone.new_page()

    # The poster shows the QR code and, as text, the very URL it encodes.
    await page.goto(f"{live_server}/w/LS-01/poster")
    qr_url = (await page.locator(".url").inner_text()).strip()
    assert qr_url == f"{live_server}/w/LS-01"
    assert await page.locator(".qr svg").count() == 1
    await screenshot(page, "public-poster")

    # Scanning it opens the workroom's submit page.
    await page.goto(qr_url)
    assert "来源：" in await page.locator(".source").inner_text()
    await page.fill("#f-content", CONTENT)
    await page.locator(".chips label", has_text="城建交通").click()
    assert await page.locator('input[name="category"][value="urban_traffic"]').is_checked()
    await page.fill("#f-submitter_phone", "13812345678")
    await screenshot(page, "public-submit")
    await page.get_by_role("button", name="提交").click()
    await page.wait_for_url(f"{live_server}/receipt")
    number = (await page.locator("#tracking-no").inner_text()).strip()
    code = (await page.locator("#tracking-code").inner_text()).strip()
    assert number and len(code) == 6 and code.isdigit()
    assert code not in page.url
    await screenshot(page, "public-receipt")

    await office_answers(live_server, number, world.units["A"].id)

    # Later: the resident follows the receipt's link to tracking, types the code and reads the reply.
    await page.get_by_role("link", name="查询办理进度").first.click()
    await page.wait_for_url(f"{live_server}/track?no=*")
    assert await page.input_value("#f-no") == number
    await page.fill("#f-code", code)
    await page.get_by_role("button", name="查询").click()
    await page.locator(".track-result").wait_for()
    result = await page.locator(".track-result").inner_text()
    assert REPLY in result and "已答复" in result
    assert "维修基金" not in result
    await screenshot(page, "public-track")


async def test_the_submit_page_weighs_at_most_60_kb_on_a_cold_cache(live_server, sessionmaker, phone):
    await build_world(sessionmaker)
    page = await phone.new_page()
    cdp = await phone.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    sizes: dict[str, int] = {}
    urls: dict[str, str] = {}
    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])))
    await page.goto(f"{live_server}/w/LS-01", wait_until="networkidle")
    loaded = {urls.get(request_id, request_id): size for request_id, size in sizes.items()}
    assert any(url.endswith("/htmx.min.js") for url in loaded), loaded
    assert any(url.endswith("/app.css") for url in loaded), loaded
    total = sum(loaded.values())
    print(f"cold load of the submit page: {total} bytes {loaded}")
    assert total <= 60 * 1024, f"{total} bytes: {loaded}"
    assert await page.evaluate("typeof htmx") == "object"  # htmx really arrived and ran


async def test_public_pages_fit_a_360_px_screen(live_server, sessionmaker, browser):
    world = await build_world(sessionmaker)
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                        locale="zh-CN")
    try:
        page = await context.new_page()
        for path in ("/", "/w/LS-01", "/track", "/w/LS-01/poster"):
            await page.goto(f"{live_server}{path}")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path}: {width}px wide"
        # every visible form control has a label
        await page.goto(f"{live_server}/w/LS-01")
        unlabelled = await page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), textarea')]
            .filter(el => !(el.labels && el.labels.length)).map(el => el.name)""")
        assert unlabelled == []
        await page.get_by_role("button", name="提交").click()  # empty content: the browser asks for it
        assert await page.evaluate("document.querySelector('#f-content').validity.valueMissing")
    finally:
        await context.close()
    assert world
