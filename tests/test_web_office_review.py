"""Forms WeChat's content check flagged for the office, on the office's pages: the badge in the lists, the
``review`` filter, the notice on the form page and the dashboard's count (httpx on the in-process app; one
contrast check in Chromium)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.models import FormChange
from app.services import forms as form_service
from app.services.auth import ANONYMOUS
from tests.conftest import screenshot
from tests.factories import PASSWORD, World, act, build_world, submit
from tests.support.changes import read_until
from tests.support.logins import login
from tests.test_browser_a11y import CONTRAST

REVIEWED = {"suggest": "review", "label": 20003, "trace_id": "t-1"}


async def flagged(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, flag: str | None,
    check: dict[str, Any] | None, content: str = "小区门口的广告牌快掉下来了。",
) -> dict[str, Any]:
    """A form written as the WeChat submission writes it, with the content check's flag and answer."""
    async with transaction(sessionmaker) as session:
        form, _code = await form_service.submit(
            session, principal=ANONYMOUS, settings=settings,
            data=form_service.Submission(content=content, review_flag=flag, content_check=check),
        )
        return {"id": form.id, "tracking_no": form.tracking_no}


def row(html: str, form_id: int) -> str:
    """The list item of one form (the page's <li> for it, up to the next one)."""
    match = re.search(rf'<li id="form-{form_id}"(.*?)(?=<li id="form-|</ul>)', html, re.S)
    assert match, f"form {form_id} is not listed"
    return match.group(0)


def listed(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<li id="form-(\d+)"', html)}


async def three_forms(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One form of each kind: WeChat said review, WeChat could not be asked, WeChat said pass."""
    review = await flagged(sessionmaker, settings, "content_review", REVIEWED)
    unavailable = await flagged(sessionmaker, settings, "check_unavailable", {"error": "unavailable"})
    plain = await flagged(sessionmaker, settings, None, {"suggest": "pass", "label": 100, "trace_id": "t-0"})
    return review, unavailable, plain


async def test_the_list_badges_flagged_forms_and_only_them(client: httpx.AsyncClient, sessionmaker, settings) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    review, unavailable, plain = await three_forms(sessionmaker, settings)
    assert (await login(client, "coordinator")).status_code == 303

    page = await client.get("/office/forms")
    assert page.status_code == 200
    assert listed(page.text) == {review["id"], unavailable["id"], plain["id"]}
    first = row(page.text, review["id"])
    assert 'data-review-flag="content_review"' in first and "待人工审核" in first
    assert 'title="微信内容安全检测建议人工复核"' in first
    second = row(page.text, unavailable["id"])
    assert 'data-review-flag="check_unavailable"' in second and "未能内容检测" in second
    assert 'title="提交时未能连接微信内容安全检测"' in second
    third = row(page.text, plain["id"])
    assert "data-review-flag" not in third and "待人工审核" not in third and "未能内容检测" not in third
    assert "flagged" not in third
    # The queue shows the same badges.
    queue = await client.get("/office/forms", params={"status": "submitted"})
    assert 'data-review-flag="content_review"' in row(queue.text, review["id"])


async def test_the_review_filter_lists_only_flagged_forms_and_stays_in_the_url(client: httpx.AsyncClient, sessionmaker, settings) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    review, unavailable, plain = await three_forms(sessionmaker, settings)
    answered = await act(client, world, "coordinator", unavailable["id"], "answer-on-spot", {"reply": "已核实并答复。"})
    assert answered.status_code == 200, answered.text
    assert (await login(client, "coordinator")).status_code == 303

    only = await client.get("/office/forms", params={"review": "true"})
    assert only.status_code == 200
    assert listed(only.text) == {review["id"], unavailable["id"]}
    assert re.search(r'name="review" value="true"\s+checked', only.text)  # the box stays ticked

    # With the other filters: flagged and still waiting; the inline assign comes back to the same list.
    waiting = await client.get("/office/forms", params={"status": "submitted", "review": "true"})
    assert listed(waiting.text) == {review["id"]}
    assert 'name="next" value="/office/forms?status=submitted&amp;review=true"' in waiting.text

    # htmx refreshes only the list, filtered the same way.
    fragment = await client.get("/office/forms", params={"review": "true"},
                                headers={"HX-Request": "true", "HX-Target": "form-list"})
    assert fragment.text.lstrip().startswith('<section id="form-list"')
    assert listed(fragment.text) == {review["id"], unavailable["id"]}
    assert 'data-review-flag="content_review"' in fragment.text

    # Without the box, or with a value it never sends, nothing is filtered out.
    for params in ({}, {"review": "nonsense"}, {"review": ""}):
        everything = await client.get("/office/forms", params=params)
        assert listed(everything.text) == {review["id"], unavailable["id"], plain["id"]}, params
        assert not re.search(r'name="review" value="true"\s+checked', everything.text)


async def test_the_form_page_says_why_a_form_was_flagged(client: httpx.AsyncClient, sessionmaker, settings) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    review, unavailable, plain = await three_forms(sessionmaker, settings)
    refused = await flagged(sessionmaker, settings, "check_unavailable",
                            {"error": 61010, "errmsg": "user is not active"})
    other = await flagged(sessionmaker, settings, "content_review",
                          {"suggest": "review", "label": 21000, "trace_id": "t-9"})
    assert (await login(client, "coordinator")).status_code == 303

    page = await client.get(f"/office/forms/{review['id']}")
    assert page.status_code == 200
    notice = re.search(r'<section class="review-notice.*?</section>', page.text, re.S)
    assert notice, "no notice on a flagged form"
    assert notice.start() < page.text.index('id="form-detail"')  # above the form
    assert "待人工审核" in notice.group(0) and "微信内容安全检测建议人工复核" in notice.group(0)
    assert "辱骂（20003）" in notice.group(0) and "t-1" in notice.group(0)
    assert "其他（21000）" in (await client.get(f"/office/forms/{other['id']}")).text

    down = await client.get(f"/office/forms/{unavailable['id']}")
    assert 'data-review-flag="check_unavailable"' in down.text and "未能内容检测" in down.text
    assert "未能连接微信内容安全检测" in down.text and "无法连接微信服务器" in down.text
    assert "trace_id" not in down.text  # WeChat gave none
    no = await client.get(f"/office/forms/{refused['id']}")
    assert "错误码 61010" in no.text and "user is not active" in no.text

    calm = await client.get(f"/office/forms/{plain['id']}")
    assert calm.status_code == 200
    assert "review-notice" not in calm.text and "待人工审核" not in calm.text and "t-0" not in calm.text


async def test_the_handler_sees_the_flag_on_its_units_forms(client: httpx.AsyncClient, sessionmaker, settings) -> None:  # type: ignore[no-untyped-def]
    world: World = await build_world(sessionmaker)
    review = await flagged(sessionmaker, settings, "content_review", REVIEWED)
    plain = await submit(client)
    for form in (review, plain):
        response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})
        assert response.status_code == 200, response.text
    assert (await login(client, "handler_a")).status_code == 303

    page = await client.get("/office/unit")
    items = dict(re.findall(r'<li data-form-id="(\d+)"(.*?)</li>', page.text, re.S))
    assert 'data-review-flag="content_review"' in items[str(review["id"])]
    assert "data-review-flag" not in items[str(plain["id"])]
    detail = await client.get(f"/office/forms/{review['id']}")
    assert 'id="review-notice"' in detail.text and "辱骂（20003）" in detail.text


async def test_the_dashboard_counts_flagged_forms_waiting_for_triage(client: httpx.AsyncClient, sessionmaker, settings) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    await submit(client)
    assert (await login(client, "coordinator")).status_code == 303
    quiet = await client.get("/office")
    assert quiet.status_code == 200 and "data-flagged-waiting" not in quiet.text

    review, unavailable, _plain = await three_forms(sessionmaker, settings)
    done = await flagged(sessionmaker, settings, "content_review", REVIEWED)
    response = await act(client, world, "coordinator", done["id"], "assign", {"unit_id": world.units["A"].id})
    assert response.status_code == 200, response.text
    page = await client.get("/office")
    link = re.search(r'<a class="button" href="([^"]+)" data-flagged-waiting="(\d+)">', page.text)
    assert link, "no link to the flagged forms"
    assert link.group(2) == "2"  # the two waiting flagged forms; not the assigned one, not the unflagged ones
    href = link.group(1).replace("&amp;", "&")
    assert href == "/office/forms?status=submitted&review=true"
    target = await client.get(href)
    assert listed(target.text) == {review["id"], unavailable["id"]}


async def test_the_flag_and_the_notice_meet_contrast_in_chromium(live_server: str, browser, sessionmaker, settings) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    review, unavailable, _plain = await three_forms(sessionmaker, settings)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    try:
        page = await context.new_page()
        await page.goto(f"{live_server}/login")
        await page.fill("#username", "coordinator")
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]:has-text('登录')")
        await page.wait_for_url(f"{live_server}/office")
        await page.locator("[data-flagged-waiting]").wait_for()
        for path in ("/office", "/office/forms?review=true", f"/office/forms/{review['id']}",
                     f"/office/forms/{unavailable['id']}"):
            await page.goto(live_server + path)
            result = await page.evaluate(CONTRAST)
            assert result["failures"] == [], (path, result["failures"])
            assert result["unlabelled"] == [], (path, result["unlabelled"])
            if path == f"/office/forms/{review['id']}":
                await screenshot(page, "office-review-notice")
        # The filter by clicking: the box is ticked, the list refreshes and the URL keeps it.
        await page.goto(f"{live_server}/office/forms")
        assert await page.locator("li[data-form-id]").count() == 3
        await page.click("text=只看待审核")
        await page.wait_for_url(lambda url: "review=true" in url)  # htmx pushes the filter form's query
        await page.locator("li[data-form-id]").nth(2).wait_for(state="detached")
        assert await page.locator("li[data-form-id]").count() == 2
        badge = page.locator(f"li[data-form-id='{review['id']}'] .review-flag")
        assert (await badge.inner_text()).startswith("待人工审核")
        await screenshot(page, "office-review-list")
    finally:
        await context.close()


# --- clearing the flag once the office has read the content -------------------------------------------


async def test_the_office_clears_a_flag_through_the_api_and_the_event_stays_internal(
    client: httpx.AsyncClient, sessionmaker, settings
) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    review, _unavailable, plain = await three_forms(sessionmaker, settings)
    url = f"/api/v1/forms/{review['id']}/clear-review"

    assert (await client.post(url, json={}, headers=world.auth("handler_a"))).json()["code"] == "forbidden"
    assert (await client.post(url, json={})).status_code == 401
    unflagged = await client.post(f"/api/v1/forms/{plain['id']}/clear-review", json={}, headers=world.auth("coordinator"))
    assert unflagged.status_code == 409 and unflagged.json()["code"] == "not_flagged"

    cleared = await client.post(url, json={"note": "内容属实，可以办理"}, headers=world.auth("coordinator"))
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert body["review_flag"] is None
    event = body["events"][-1]
    assert event["type"] == "content_reviewed" and event["note"] == "内容属实，可以办理"
    assert (await client.post(url, json={}, headers=world.auth("coordinator"))).status_code == 409  # once only

    flagged_ids = {f["id"] for f in (await client.get("/api/v1/forms?review=true", headers=world.auth("coordinator"))).json()["items"]}
    assert review["id"] not in flagged_ids and len(flagged_ids) == 1
    # Office business: nothing reaches the resident's timeline or the integrators' feed.
    async with sessionmaker() as session:
        written = await session.scalar(select(func.count()).select_from(FormChange))
    changes, _ = await read_until(client, world.auth("admin"), written)  # every change written, once visible
    assert [c["type"] for c in changes if c["form_id"] == review["id"]] == ["form.submitted"]


async def test_the_form_page_offers_clearing_the_flag_to_the_office_only(
    client: httpx.AsyncClient, sessionmaker, settings
) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    review, _unavailable, plain = await three_forms(sessionmaker, settings)
    await login(client, "coordinator")
    page = await client.get(f"/office/forms/{review['id']}")
    assert 'data-action="clear-review"' in page.text
    assert 'data-action="clear-review"' not in (await client.get(f"/office/forms/{plain['id']}")).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    done = await client.post(f"/office/forms/{review['id']}/clear-review",
                             data={"csrf_token": token, "note": ""}, follow_redirects=True)
    assert done.status_code == 200
    assert 'id="review-notice"' not in done.text and 'data-action="clear-review"' not in done.text
    assert "内容审核通过" in done.text  # the timeline keeps who cleared it

    # A handler of the unit sees the flag on an assigned form but cannot clear it.
    await act(client, world, "coordinator", _unavailable["id"], "assign", {"unit_id": world.units["A"].id})
    handler = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")  # type: ignore[attr-defined]
    async with handler:
        await login(handler, "handler_a")
        handler_page = await handler.get(f"/office/forms/{_unavailable['id']}")
        assert 'id="review-notice"' in handler_page.text and 'data-action="clear-review"' not in handler_page.text
