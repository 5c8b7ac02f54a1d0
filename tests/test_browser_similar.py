"""A resident on a phone writes an opinion someone already sent: the page says so under the content box
(snippet and status only), and the form is sent all the same (issue 19.2)."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from app.db import transaction
from app.models.similar import TopicMember
from app.services import similar_forms
from tests.conftest import make_settings, screenshot
from tests.factories import build_world

EARLIER = ["三组村口的路灯坏了好几天，晚上黑乎乎的走路怕摔跤。", "3组路灯不亮了，晚上出门看不见，请尽快修一下。"]


async def test_the_submit_page_says_who_reported_it_already_and_still_sends(live_server, sessionmaker, phone, db_url):
    await build_world(sessionmaker)
    async with httpx.AsyncClient(base_url=live_server, timeout=10) as api:
        for content in EARLIER:
            sent = await api.post("/api/v1/forms", json={"content": content, "workroom_code": "LS-01",
                                                         "public": True, "submitter_name": "王大妈"})
            assert sent.status_code == 201, sent.text
    settings = make_settings(db_url)
    for _ in range(50):  # indexed by this call or by the server's own worker, whichever comes first
        await similar_forms.index_round(sessionmaker, settings)
        async with transaction(sessionmaker) as session:
            if await session.scalar(select(func.count()).select_from(TopicMember)) == len(EARLIER):
                break
        await asyncio.sleep(0.1)

    page = await phone.new_page()
    await page.goto(f"{live_server}/w/LS-01")
    await page.fill("#f-content", "三组的路灯坏了，晚上黑漆漆的，走路不安全")
    hint = page.locator("[data-similar-hints]")
    await hint.wait_for(timeout=10_000)
    text = await hint.inner_text()
    assert "已有人反映过" in text and EARLIER[0][:10] in text and "王大妈" not in text
    box = await hint.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    await screenshot(page, "public-similar-hint")
    await page.get_by_role("button", name="提交").click()
    await page.wait_for_url(f"{live_server}/receipt")
    assert (await page.locator("#tracking-no").inner_text()).strip()
