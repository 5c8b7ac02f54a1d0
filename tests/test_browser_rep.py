"""Representatives at a stall with no signal, in real Chromium: nothing typed is lost, nothing doubles."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import expect

from tests.conftest import ARTIFACTS, screenshot
from tests.factories import PASSWORD, build_world

READ_OUTBOX = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open("minyi-rep", 1);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const request = open.result.transaction("outbox", "readonly").objectStore("outbox").getAll();
    request.onsuccess = () => resolve(request.result);
  };
})"""
PUT_OUTBOX = """(records) => new Promise((resolve, reject) => {
  const open = indexedDB.open("minyi-rep", 1);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const tx = open.result.transaction("outbox", "readwrite");
    records.forEach((r) => tx.objectStore("outbox").put(r));
    tx.oncomplete = () => resolve(records.length);
  };
})"""

CONTENTS = ["菜场东门的路灯坏了两盏，早市摸黑。", "鱼摊旁边的下水道堵了，污水外溢。", "希望在市场门口加装一个公交站牌。"]


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


async def test_forms_entered_offline_are_sent_once_when_the_network_returns(live_server, phone, sessionmaker) -> None:
    await build_world(sessionmaker)
    page = await phone.new_page()
    await sign_in(page, live_server)
    pending = page.locator("#pending-count")
    await expect(pending).to_be_hidden()

    await phone.set_offline(True)
    for number, content in enumerate(CONTENTS, start=1):
        await page.locator(".rep-chips label").nth(number % 2).click()
        await page.fill("#f-content", content)
        await page.click("#rep-form button[type=submit]")
        await expect(pending).to_have_text(f"{number} 条待发送")
    await expect(pending).to_be_visible()
    await expect(page.locator("#f-content")).to_have_value("")  # ready for the next resident
    await screenshot(page, "rep-offline-pending")
    waiting = await page.evaluate(READ_OUTBOX)
    assert len(waiting) == 3 and len({r["key"] for r in waiting}) == 3
    assert await api_forms(live_server) == []

    await phone.set_offline(False)
    await expect(pending).to_be_hidden(timeout=25_000)  # the `online` event (or the 20 s retry) sent them
    await expect(page.locator("#rep-receipts li.ok")).to_have_count(3)
    await expect(page.locator("#today h2")).to_have_text("今天我录入的（3）")
    await screenshot(page, "rep-online-sent")

    # Answers lost on the way back: the same three forms sent again, twice at once. The keys make it a replay.
    await page.evaluate(PUT_OUTBOX, waiting)
    await page.evaluate("Promise.all([window.minyiOffline.sendAll(), window.minyiOffline.sendAll()])")
    await expect(pending).to_be_hidden()
    assert await page.evaluate(READ_OUTBOX) == []

    forms = await api_forms(live_server)
    assert sorted(f["content"] for f in forms) == sorted(CONTENTS)
    assert all(f["status"] == "submitted" for f in forms)


async def test_the_entry_page_opens_offline_after_one_visit(live_server, phone, sessionmaker) -> None:
    await build_world(sessionmaker)
    page = await phone.new_page()
    await sign_in(page, live_server)
    await page.reload()
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    key = await page.input_value("input[name=idempotency_key]")  # a fresh one in every page the server renders

    await phone.set_offline(True)
    response = await page.reload()
    assert response is not None and response.from_service_worker
    assert await page.input_value("input[name=idempotency_key]") == key  # the cached copy, not the server
    await expect(page.locator("#rep-form")).to_be_visible()
    await expect(page.locator("#f-content")).to_be_editable()
    await screenshot(page, "rep-offline-reload")
    # and a form typed there is kept for later
    await page.fill("#f-content", "离线打开页面后录入的意见。")
    await page.click("#rep-form button[type=submit]")
    await expect(page.locator("#pending-count")).to_have_text("1 条待发送")
    await phone.set_offline(False)
    await expect(page.locator("#pending-count")).to_be_hidden(timeout=25_000)
    assert [f["content"] for f in await api_forms(live_server)] == ["离线打开页面后录入的意见。"]


async def test_a_form_the_server_refuses_is_kept_word_for_word_for_correcting(live_server, phone, sessionmaker) -> None:
    """Typed offline with a mistyped phone number: the server refuses it (422) once the network is back;
    the form stays on the phone, and one tap puts every word back into the entry form."""
    await build_world(sessionmaker)
    page = await phone.new_page()
    await sign_in(page, live_server)
    long_text = "村东头的排水沟常年堵塞，" * 8  # longer than any preview line
    await phone.set_offline(True)
    await page.fill("#f-content", long_text)
    await page.evaluate("document.querySelector('details.rep-more').open = true")
    await page.fill("#f-submitter_phone", "12")
    await page.fill("#f-submitter_name", "陈阿姨")
    await page.click("#rep-form button[type=submit]")
    await expect(page.locator("#pending-count")).to_have_text("1 条待发送")
    await phone.set_offline(False)
    refused = page.locator("#rep-refused li")
    await expect(refused).to_have_count(1, timeout=25_000)
    await expect(page.locator("#pending-count")).to_be_hidden()
    assert "电话" in await refused.inner_text()
    assert len(await page.evaluate(READ_OUTBOX)) == 1  # still on the phone
    await screenshot(page, "rep-refused-kept")
    await refused.locator("button").click()
    await expect(page.locator("#f-content")).to_have_value(long_text)
    await expect(page.locator("#f-submitter_name")).to_have_value("陈阿姨")
    await expect(page.locator("#f-submitter_phone")).to_have_value("12")
    assert await page.evaluate(READ_OUTBOX) == []
    await page.fill("#f-submitter_phone", "13812340000")
    await page.click("#rep-form button[type=submit]")
    await expect(page.locator("#rep-receipts li.ok")).to_have_count(1, timeout=25_000)
    forms = await api_forms(live_server)
    assert [f["content"] for f in forms] == [long_text.strip()]


READ_CACHES = """() => caches.keys().then((names) => Promise.all(names.map((name) => caches.open(name)
  .then((cache) => cache.keys()).then((requests) => [name, requests.map((r) => new URL(r.url).pathname)]))))"""


async def test_signing_out_leaves_nothing_of_the_representative_on_a_shared_phone(
        live_server, phone, sessionmaker) -> None:
    """A representative signs out on a phone others use: their cached /rep pages, their waiting forms (after
    asking, since one is unsent) and the remembered source go; another user's waiting form stays."""
    await build_world(sessionmaker)
    page = await phone.new_page()
    await sign_in(page, live_server)
    await page.reload()
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    cached = dict(await page.evaluate(READ_CACHES))
    assert any(name.startswith("minyi-rep-") and "/rep" in paths for name, paths in cached.items()), cached
    assert "minyi-rep-__ASSETS_VERSION__" not in cached  # the server named it after the assets

    await phone.route("**/rep/forms", lambda route: route.abort())  # sends fail: the form stays waiting
    await page.fill("#f-content", "退出前还没发出去的意见。")
    await page.click("#rep-form button[type=submit]")
    await expect(page.locator("#pending-count")).to_have_text("1 条待发送")
    mine = await page.evaluate(READ_OUTBOX)
    someone_elses = {"key": "other-user-form", "user": "999999", "fields": [["content", "别人的意见"]], "created": 1}
    await page.evaluate(PUT_OUTBOX, [someone_elses])
    await page.evaluate("localStorage.setItem('minyi.rep.source', 'market')")

    asked: list[str] = []
    answered = asyncio.Event()

    def answer(accept: bool):
        async def handle(dialog) -> None:
            asked.append(dialog.message)
            await (dialog.accept() if accept else dialog.dismiss())
            answered.set()
        return handle

    page.once("dialog", answer(False))
    await page.click("form[action='/logout'] button")
    await asyncio.wait_for(answered.wait(), 20)
    assert "1 条意见没有发送" in asked[0]
    await expect(page.locator("#pending-count")).to_have_text("1 条待发送")
    assert page.url == f"{live_server}/rep"  # declined: still signed in, nothing removed
    assert len(await page.evaluate(READ_OUTBOX)) == 2

    answered.clear()
    page.once("dialog", answer(True))
    await page.click("form[action='/logout'] button")
    await asyncio.wait_for(answered.wait(), 20)
    await page.wait_for_url(f"{live_server}/")
    assert len(asked) == 2
    assert await page.evaluate(READ_OUTBOX) == [someone_elses]  # only the other user's form is left
    assert mine and mine[0]["user"] != someone_elses["user"]
    assert not [name for name in await page.evaluate("caches.keys()") if name.startswith("minyi-rep-")]
    assert await page.evaluate("localStorage.getItem('minyi.rep.source')") is None

    # Offline, the phone has no copy of their entry page left to show.
    await phone.unroute("**/rep/forms")
    await phone.set_offline(True)
    offline = await phone.new_page()
    await offline.goto(f"{live_server}/rep")
    assert "请联网后再打开此页" in await offline.content()
    assert "退出前还没发出去的意见" not in await offline.content()
    await phone.set_offline(False)



async def test_codes_stay_beside_their_forms_all_day_and_the_slip_opens_tracking(
        live_server, phone, sessionmaker) -> None:
    """Issue 16.2: forms sent from the offline queue keep their numbers and codes beside their first words and
    the resident's masked phone in 今天我录入的, through a reload and offline; the slip shows full screen with
    a QR of /track#no=…&code=… (the fragment never reaches the server), which opens that form's tracking;
    signing out takes the codes off the phone."""
    await build_world(sessionmaker)
    page = await phone.new_page()
    await sign_in(page, live_server)
    await page.reload()
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null")

    await phone.set_offline(True)
    await page.locator(".rep-chips label").nth(0).click()
    await page.fill("#f-content", CONTENTS[0])
    await page.click("details.rep-more summary")
    await page.fill("#f-submitter_phone", "13912345678")
    await page.click("#rep-form button[type=submit]")
    await expect(page.locator("#pending-count")).to_have_text("1 条待发送")
    await page.locator(".rep-chips label").nth(1).click()
    await page.fill("#f-content", CONTENTS[1])
    await page.click("#rep-form button[type=submit]")
    await expect(page.locator("#pending-count")).to_have_text("2 条待发送")
    await phone.set_offline(False)
    await expect(page.locator("#pending-count")).to_be_hidden(timeout=25_000)
    await expect(page.locator("#today li .rep-code")).to_have_count(2)

    await page.reload()  # the codes are the phone's: the server keeps only their hashes
    rows = page.locator("#today li[data-tracking-no]")
    await expect(rows.locator(".rep-code")).to_have_count(2)
    first = rows.filter(has_text=CONTENTS[0][:6])
    line = await first.locator(".rep-code").inner_text()
    assert "139****5678" in line, line
    number = await first.get_attribute("data-tracking-no")
    code = await first.locator(".rep-code b").inner_text()
    assert number and len(code) == 6 and code.isdigit()

    await phone.set_offline(True)  # offline, the cached page still shows them
    await page.reload()
    await expect(page.locator(f"#today li[data-tracking-no='{number}'] .rep-code b")).to_have_text(code)
    await page.click(f"#today li[data-tracking-no='{number}'] [data-show-slip]")
    view = page.locator("#slip-view")
    await expect(view).to_be_visible()
    await expect(view.locator("[data-field=no]")).to_have_text(number)
    await expect(view.locator("[data-field=code]")).to_have_text(code)
    qr = await view.locator("img[data-field=qr]").get_attribute("src")
    assert qr and qr.startswith("data:image/svg+xml")
    box = await view.bounding_box()
    assert box and box["width"] >= 380 and box["height"] >= 800  # the whole screen, for a photograph
    await page.screenshot(path=str(ARTIFACTS / "rep-slip-full-screen.png"))  # the screen as the resident sees it
    # Printed: the slip alone, on a 58 mm roll or an A6 sheet (the named pages of app.css), as a PDF shows.
    for mode, width_mm in (("a6", 105), ("58", 58)):
        await page.evaluate("(mode) => document.body.setAttribute('data-print', mode)", mode)
        pdf = await page.pdf(prefer_css_page_size=True)
        (ARTIFACTS / f"rep-slip-{mode}.pdf").write_bytes(pdf)
        boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([0-9.]+) ([0-9.]+)\s*\]", pdf)
        assert len(boxes) == 1, (mode, boxes)  # one slip, one page: no blank pages after it
        assert round(float(boxes[0][0]) / 72 * 25.4) == width_mm, (mode, boxes)
    await page.evaluate("document.body.removeAttribute('data-print')")
    await view.locator("[data-close]").click()
    await expect(view).to_be_hidden()
    await phone.set_offline(False)

    # The QR's address: tracking opens on that form, and the code leaves the address bar.
    resident = await phone.new_page()
    await resident.goto(f"{live_server}/track#no={number}&code={code}")
    await expect(resident.locator(".track-result h2")).to_contain_text(number)
    assert "code" not in resident.url
    await resident.close()

    await page.click("form[action='/logout'] button")
    await page.wait_for_url(f"{live_server}/")
    assert await page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('minyi.rep.codes:'))") == []
