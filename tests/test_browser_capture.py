"""Photos and a place in real Chromium on a phone (issue 16, points 4 and 5): a camera photo is shrunk on the
phone before it is sent, a refused file is a message that loses nothing, the position comes from the
browser's geolocation (or a refusal says so), and forms with photos entered offline reach the server once
each, with their photos, through a network that comes and goes."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import httpx
from PIL import Image
from playwright.async_api import expect

from tests.conftest import screenshot
from tests.factories import PASSWORD, build_world
from tests.test_browser_rep import CONTENTS, READ_OUTBOX, sign_in
from tests.test_photos import gps_exif

TARGET = 300 * 1024


def camera_photo(path: Path, side: int = 2000) -> Path:
    """A photo as a phone's camera writes it: about 3 MB (noise does not compress), with the camera's EXIF
    and where it was taken."""
    image = Image.frombytes("RGB", (side, side * 3 // 4), os.urandom(side * (side * 3 // 4) * 3))
    image.save(path, "JPEG", quality=93, exif=gps_exif(orientation=1).tobytes())
    return path


async def forms_with_photos(base: str) -> list[tuple[dict, list[bytes]]]:
    """Every form on the server with its photos' bytes, as the office's API gives them."""
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/token",
                                 data={"username": "coordinator", "password": PASSWORD})).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        forms = (await http.get("/api/v1/forms", params={"limit": 200})).json()["items"]
        result = []
        for form in forms:
            photos = (await http.get(f"/api/v1/forms/{form['id']}/photos")).json()["items"]
            result.append((form, [(await http.get(p["url"])).content for p in photos]))
        return result


async def test_a_camera_photo_is_shrunk_on_the_phone_and_a_bad_file_loses_nothing(live_server, phone, sessionmaker,
                                                                                   tmp_path) -> None:
    await build_world(sessionmaker)
    big = camera_photo(tmp_path / "IMG_0001.jpg")
    assert big.stat().st_size > 2_500_000
    page = await phone.new_page()
    await page.goto(f"{live_server}/w/LS-01")
    await page.fill("#f-content", "菜场门口的井盖松了，踩上去会翻。")
    await page.fill("#f-submitter_name", "王阿姨")

    # Not a photo: a message in Chinese beside the photos, nothing added, what was typed untouched.
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4 a receipt, not a photo")
    await page.set_input_files("#f-photos", str(tmp_path / "notes.pdf"))
    status = page.locator("[data-photo-status]")
    await expect(status).to_contain_text("不是照片")
    await expect(page.locator(".photo-previews li")).to_have_count(0)
    assert await page.input_value("#f-content") == "菜场门口的井盖松了，踩上去会翻。"

    # 30 MB is no phone photo: refused on the phone, before a byte is sent.
    huge = tmp_path / "IMG_HUGE.jpg"
    with huge.open("wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0")
        handle.truncate(30 * 1024 * 1024)
    await page.set_input_files("#f-photos", str(huge))
    await expect(status).to_contain_text("太大（30.0 MB）")
    await expect(page.locator(".photo-previews li")).to_have_count(0)

    await page.set_input_files("#f-photos", str(big))
    await expect(page.locator(".photo-previews li")).to_have_count(1, timeout=15_000)
    await expect(status).to_have_text("已添加 1 张照片。")
    sizes = await page.eval_on_selector("#f-photos", "(input) => Array.from(input.files, (f) => [f.size, f.type])")
    assert len(sizes) == 1 and sizes[0][1] == "image/jpeg" and sizes[0][0] <= TARGET, sizes
    await screenshot(page, "public-photo-chosen")

    await page.click("form.submit-form button[type=submit]")
    await page.wait_for_url(f"{live_server}/receipt")
    (form, photos), = await forms_with_photos(live_server)
    assert form["submitter_name"] == "王阿姨" and len(photos) == 1
    assert len(photos[0]) <= TARGET
    with Image.open(io.BytesIO(photos[0])) as stored:
        assert max(stored.size) <= 1600 and len(stored.getexif()) == 0


async def test_the_position_is_the_phones_and_a_refusal_says_so(live_server, browser, sessionmaker) -> None:
    await build_world(sessionmaker)
    allowed = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True,
                                        permissions=["geolocation"],
                                        geolocation={"latitude": 31.65123, "longitude": 120.25312, "accuracy": 12})
    refused = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    try:
        page = await refused.new_page()
        await page.goto(f"{live_server}/w/LS-01")
        await page.fill("#f-content", "路口红绿灯时间太短，老人过不去。")
        await page.click("[data-locate]")
        await expect(page.locator("[data-locate-status]")).to_contain_text("没有获得定位权限")
        assert await page.input_value("#f-content") == "路口红绿灯时间太短，老人过不去。"
        assert await page.input_value("input[name=latitude]") == ""

        page = await allowed.new_page()
        await page.goto(f"{live_server}/w/LS-01")
        await page.fill("#f-content", "路口红绿灯时间太短，老人过不去。")
        await page.click("[data-locate]")
        await expect(page.locator("[data-locate-status]")).to_contain_text("已记录当前位置（误差约 12 米）")
        await page.click("form.submit-form button[type=submit]")
        await page.wait_for_url(f"{live_server}/receipt")
        (form, _photos), = await forms_with_photos(live_server)
        assert (form["latitude"], form["longitude"]) == (31.65123, 120.25312)
    finally:
        await allowed.close()
        await refused.close()


async def test_three_forms_with_photos_entered_offline_arrive_once_each_through_a_flapping_network(
        live_server, phone, sessionmaker, tmp_path) -> None:
    await build_world(sessionmaker)
    page = await phone.new_page()
    await sign_in(page, live_server)
    await page.reload()
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    pictures = [camera_photo(tmp_path / f"IMG_{i}.jpg", side=900 + 100 * i) for i in range(3)]

    await phone.set_offline(True)
    for number, (content, picture) in enumerate(zip(CONTENTS, pictures, strict=True), start=1):
        await page.locator(".rep-chips label").nth(number % 2).click()
        await page.fill("#f-content", content)
        await page.set_input_files("#f-photos", [str(picture)] * (1 if number != 2 else 2))
        await expect(page.locator(".photo-previews li")).to_have_count(1 if number != 2 else 2, timeout=15_000)
        await page.click("#rep-form button[type=submit]")
        await expect(page.locator("#pending-count")).to_have_text(f"{number} 条待发送")
        await expect(page.locator(".photo-previews li")).to_have_count(0)  # the next resident starts empty
    waiting = await page.evaluate(f"() => ({READ_OUTBOX})().then((all) => all.sort((a, b) => a.created - b.created).map((x) => x.photos.map((p) => p.size)))")
    assert [len(sizes) for sizes in waiting] == [1, 2, 1] and all(s <= TARGET for one in waiting for s in one)

    # A wrong file now is a message beside the photos; the three forms on the phone are untouched.
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4 not a photo")
    await page.set_input_files("#f-photos", str(tmp_path / "scan.pdf"))
    await expect(page.locator("[data-photo-status]")).to_contain_text("不是照片")
    await expect(page.locator("#pending-count")).to_have_text("3 条待发送")

    # The network comes and goes while the queue sends: on, off at once, on again.
    for offline in (False, True, False, True, False):
        await phone.set_offline(offline)
        await page.wait_for_timeout(150)
    await expect(page.locator("#pending-count")).to_be_hidden(timeout=30_000)

    arrived = await forms_with_photos(live_server)
    assert sorted(f["content"] for f, _ in arrived) == sorted(CONTENTS)  # exactly three, none twice
    assert sorted(len(photos) for _, photos in arrived) == [1, 1, 2]
    by_content = {f["content"]: len(photos) for f, photos in arrived}
    assert by_content[CONTENTS[1]] == 2

    await page.reload()  # each code beside its content, after a reload
    rows = page.locator("#today li[data-tracking-no]")
    await expect(rows.locator(".rep-code")).to_have_count(3)
    for form, _ in arrived:
        row = page.locator(f"#today li[data-tracking-no='{form['tracking_no']}']")
        await expect(row).to_contain_text(form["content"][:10])
        await expect(row.locator(".rep-code b")).to_have_text(re.compile(r"^\d{6}$"))
    await screenshot(page, "rep-offline-photos-sent")
