"""群众同意公开 through the representatives' offline queue, in real Chromium: a form saved on the phone
with no signal and sent later keeps the choice, and the box never carries over to the next resident."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world

READ_OUTBOX = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open("minyi-rep", 1);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const request = open.result.transaction("outbox", "readonly").objectStore("outbox").getAll();
    request.onsuccess = () => resolve(request.result);
  };
})"""

AGREED = "菜场东门的路灯坏了两盏，早市摸黑。"
SILENT = "鱼摊旁边的下水道堵了，污水外溢。"


async def sign_in(page, base: str, username: str = "rep") -> None:
    await page.goto(f"{base}/login?next=/rep")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(f"{base}/rep")
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")


async def api_forms(base: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/token",
                                 data={"username": "coordinator", "password": PASSWORD})).json()["access_token"]
        response = await http.get("/api/v1/forms", params={"limit": 200}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        return response.json()["items"]


async def test_the_choice_survives_the_offline_queue(live_server, phone, sessionmaker) -> None:
    await build_world(sessionmaker)
    page = await phone.new_page()
    await sign_in(page, live_server)
    consent = page.locator("#f-public")
    pending = page.locator("#pending-count")
    await expect(consent).not_to_be_checked()  # off by default

    await phone.set_offline(True)
    await page.fill("#f-content", AGREED)
    await page.get_by_label("群众同意公开（不含姓名电话）").check()
    await screenshot(page, "rep-public-ticked")
    await page.click("#rep-form button[type=submit]")
    await expect(pending).to_have_text("1 条待发送")
    await expect(consent).not_to_be_checked()  # the next resident is asked again
    await page.fill("#f-content", SILENT)
    await page.click("#rep-form button[type=submit]")
    await expect(pending).to_have_text("2 条待发送")
    saved = {dict(r["fields"])["content"]: dict(r["fields"]) for r in await page.evaluate(READ_OUTBOX)}
    assert saved[AGREED].get("public") == "true" and "public" not in saved[SILENT]
    assert await api_forms(live_server) == []

    await phone.set_offline(False)
    await expect(pending).to_be_hidden(timeout=25_000)
    await expect(page.locator("#rep-receipts li.ok")).to_have_count(2)
    public = {f["content"]: f["public"] for f in await api_forms(live_server)}
    assert public == {AGREED: True, SILENT: False}


async def test_a_refused_form_put_back_for_correcting_keeps_the_tick(live_server, phone, sessionmaker) -> None:
    await build_world(sessionmaker)
    page = await phone.new_page()
    await sign_in(page, live_server)
    consent = page.locator("#f-public")
    await phone.set_offline(True)
    await page.fill("#f-content", AGREED)
    await page.evaluate("document.querySelector('details.rep-more').open = true")
    await page.fill("#f-submitter_phone", "12")  # the server will refuse it
    await consent.check()
    await page.click("#rep-form button[type=submit]")
    await expect(page.locator("#pending-count")).to_have_text("1 条待发送")
    await phone.set_offline(False)
    refused = page.locator("#rep-refused li")
    await expect(refused).to_have_count(1, timeout=25_000)

    await expect(consent).not_to_be_checked()
    await refused.locator("button").click()
    await expect(page.locator("#f-content")).to_have_value(AGREED)
    await expect(consent).to_be_checked()  # put back exactly as it was typed
    await page.fill("#f-submitter_phone", "13812340000")
    await page.click("#rep-form button[type=submit]")
    await expect(page.locator("#rep-receipts li.ok")).to_have_count(1, timeout=25_000)
    assert [(f["content"], f["public"]) for f in await api_forms(live_server)] == [(AGREED, True)]
