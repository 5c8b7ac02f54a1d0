"""同意公开 on the HTML forms: residents and representatives choose it (off by default), the office sees it.

Only forms whose submitter agreed are ever published (Open311), so an unticked or missing box must
always store ``public = False``.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import select

from app.db import transaction
from app.models import OpinionForm, ServicePoint, utcnow
from tests.factories import build_world, submit
from tests.support.logins import csrf_of, sign_in

CONTENT = "村口路灯坏了三盏，晚上走路看不清，请尽快修复。"
CONSENT = re.compile(r'<input type="checkbox" id="f-public" name="public" value="true"[^>]*>')


def consent_box(html: str) -> str:
    """The 同意公开 checkbox of a page (exactly one)."""
    boxes = CONSENT.findall(html)
    assert len(boxes) == 1, boxes
    return boxes[0]


def form_of(html: str, marker: str) -> str:
    """The HTML of the <form> whose start tag holds ``marker``."""
    start = html.index(marker)
    return html[start:html.index("</form>", start)]


def is_ticked(html: str) -> bool:
    return re.search(r"\schecked\b", consent_box(html)) is not None


async def stored_forms(sessionmaker) -> list[OpinionForm]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(OpinionForm).order_by(OpinionForm.id)))


async def add_point(sessionmaker, world) -> int:
    async with transaction(sessionmaker) as session:
        now = utcnow()
        point = ServicePoint(workroom_id=world.workrooms["LS-01"].id, title="洛社菜市场流动服务点",
                             place_type="market", location="洛社菜市场门口", starts_at=now,
                             ends_at=now + timedelta(hours=3))
        session.add(point)
        await session.flush()
        return point.id


async def post_public(client: httpx.AsyncClient, page: str, **fields: str) -> httpx.Response:
    """Post the resident's form the way the browser does, from ``page`` (no JavaScript involved)."""
    token = csrf_of(await client.get(page))
    data = {"csrf_token": token, "content": CONTENT, "category": "urban_traffic"}
    data.update(fields)
    return await client.post("/submit", data=data)


# --- residents: /submit, /w/{code}, /p/{id} ----------------------------------------------------------


async def test_every_resident_form_offers_the_choice_unticked_with_its_explanation(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await add_point(sessionmaker, world)
    for path in ("/submit", "/w/LS-01", f"/p/{point_id}"):
        page = await client.get(path)
        assert page.status_code == 200
        assert not is_ticked(page.text), path
        assert "同意公开我的意见内容及办理答复（不公开姓名和电话）" in page.text
        assert "开放数据平台" in page.text
        assert 'name="public"' in form_of(page.text, 'action="/submit"')


async def test_a_ticked_box_stores_the_resident_form_as_public(client, sessionmaker):
    await build_world(sessionmaker)
    response = await post_public(client, "/w/LS-01", workroom_code="LS-01", public="true")
    assert response.status_code == 303
    (form,) = await stored_forms(sessionmaker)
    assert form.public is True


async def test_an_unticked_box_stores_the_resident_form_as_not_public(client, sessionmaker):
    await build_world(sessionmaker)
    response = await post_public(client, "/w/LS-01", workroom_code="LS-01")  # a browser sends nothing
    assert response.status_code == 303
    (form,) = await stored_forms(sessionmaker)
    assert form.public is False


async def test_only_a_ticked_value_counts_as_agreement(client, sessionmaker):
    await build_world(sessionmaker)
    for value in ("", "false", "no"):
        assert (await post_public(client, "/submit", public=value)).status_code == 303
    assert [form.public for form in await stored_forms(sessionmaker)] == [False, False, False]


async def test_a_ticked_box_from_a_service_point_page_is_kept(client, sessionmaker):
    world = await build_world(sessionmaker)
    point_id = await add_point(sessionmaker, world)
    response = await post_public(client, f"/p/{point_id}", service_point_id=str(point_id), public="true")
    assert response.status_code == 303
    (form,) = await stored_forms(sessionmaker)
    assert form.public is True and form.service_point_id == point_id


async def test_a_page_rerendered_after_a_validation_error_keeps_the_tick(client, sessionmaker):
    await build_world(sessionmaker)
    refused = await post_public(client, "/w/LS-01", workroom_code="LS-01", submitter_phone="12ab", public="true")
    assert refused.status_code == 422
    assert "请填写正确的电话号码" in refused.text
    assert is_ticked(refused.text)
    # and corrected, the same page's form is stored as public
    fixed = await client.post("/submit", data={
        "csrf_token": csrf_of(refused), "content": CONTENT, "workroom_code": "LS-01",
        "submitter_phone": "13812345678", "public": "true",
    })
    assert fixed.status_code == 303
    (form,) = await stored_forms(sessionmaker)
    assert form.public is True


async def test_a_page_rerendered_after_a_validation_error_stays_unticked_when_it_was(client, sessionmaker):
    await build_world(sessionmaker)
    refused = await post_public(client, "/w/LS-01", workroom_code="LS-01", content="   ")
    assert refused.status_code == 422
    assert not is_ticked(refused.text)
    assert await stored_forms(sessionmaker) == []


# --- representatives: /rep ------------------------------------------------------------------------


async def test_the_entry_page_offers_the_choice_unticked(client, sessionmaker):
    await build_world(sessionmaker)
    await sign_in(client, "rep")
    page = await client.get("/rep")
    assert page.status_code == 200
    assert not is_ticked(page.text)
    assert "群众同意公开（不含姓名电话）" in page.text
    assert 'name="public"' in form_of(page.text, 'id="rep-form"')


async def test_a_representative_entry_ticked_is_public_and_unticked_is_not(client, sessionmaker):
    await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    base = {"csrf_token": token, "content": CONTENT, "category": "urban_traffic", "source": "w:LS-01"}
    assert (await client.post("/rep/forms", data={**base, "public": "true"})).status_code == 303
    assert (await client.post("/rep/forms", data=base)).status_code == 303
    ticked, unticked = await stored_forms(sessionmaker)
    assert ticked.public is True and unticked.public is False
    # the page after the receipt is ready for the next resident: the box is unticked again
    assert not is_ticked((await client.get("/rep")).text)


async def test_a_form_sent_later_by_the_offline_queue_keeps_the_choice(client, sessionmaker):
    """offline.js sends the saved fields as a urlencoded body with Accept: application/json."""
    await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    headers = {"X-CSRF-Token": token, "Accept": "application/json"}
    body = {"content": CONTENT, "source": "w:LS-01"}
    agreed = await client.post("/rep/forms", data={**body, "public": "true"},
                               headers={**headers, "Idempotency-Key": "5f0e3c1a-0d8e-4a51-9d7e-8a0c2b9f3e11"})
    silent = await client.post("/rep/forms", data=body,
                               headers={**headers, "Idempotency-Key": "5f0e3c1a-0d8e-4a51-9d7e-8a0c2b9f3e12"})
    assert agreed.status_code == silent.status_code == 201
    by_id = {form.id: form for form in await stored_forms(sessionmaker)}
    assert by_id[agreed.json()["id"]].public is True
    assert by_id[silent.json()["id"]].public is False


async def test_a_rerendered_entry_page_keeps_the_tick(client, sessionmaker):
    await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    response = await client.post("/rep/forms", data={
        "csrf_token": token, "content": CONTENT, "source": "w:LS-01", "submitter_phone": "12ab", "public": "true",
    })
    assert response.status_code == 422 and "电话号码格式不对" in response.text
    assert is_ticked(response.text)
    assert await stored_forms(sessionmaker) == []


# --- the office -----------------------------------------------------------------------------------


async def test_the_office_form_page_says_whether_the_submitter_agreed(client, sessionmaker):
    await build_world(sessionmaker)
    agreed = await submit(client, public=True)
    silent = await submit(client)
    await sign_in(client, "coordinator")
    page = await client.get(f"/office/forms/{agreed['id']}")
    assert page.status_code == 200
    assert re.search(r'<dt>公开</dt><dd data-public="true">同意公开</dd>', page.text)
    page = await client.get(f"/office/forms/{silent['id']}")
    assert page.status_code == 200
    assert re.search(r'<dt>公开</dt><dd data-public="false">不公开</dd>', page.text)
