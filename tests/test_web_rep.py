"""The representatives' pages: quick entry, today's forms, 当场答复 (app/web/rep.py)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.models import OpinionForm
from app.web import rep
from tests.factories import build_world, submit
from tests.support.logins import sign_in

CONTENT = "菜市场门口的下水道堵了，下雨天污水漫到摊位。"


async def form_count(sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)))


async def forms(sessionmaker) -> list[OpinionForm]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(OpinionForm).order_by(OpinionForm.id)))


async def test_the_entry_page_needs_a_signed_in_representative(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    response = await client.get("/rep")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/rep"
    await sign_in(client, "handler_a")
    response = await client.get("/rep")
    assert response.status_code == 403 and "仅供党代表" in response.text
    client.cookies.clear()
    await sign_in(client, "rep")
    page = await client.get("/rep")
    assert page.status_code == 200
    assert 'id="rep-form"' in page.text and 'name="category"' in page.text and "今天我录入的" in page.text
    assert 'value="w:LS-01"' in page.text and 'value="w:LS-02"' not in page.text  # only my workrooms
    assert 'id="pending-count"' in page.text and "/static/js/offline.js" in page.text


async def test_a_post_without_the_csrf_token_is_refused_and_saves_nothing(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await sign_in(client, "rep")
    response = await client.post("/rep/forms", data={"content": CONTENT, "source": "w:LS-01"})
    assert response.status_code == 403
    response = await client.post("/rep/forms", data={"content": CONTENT, "csrf_token": "x" * 43})
    assert response.status_code == 403
    assert await form_count(sessionmaker) == 0


async def test_a_valid_entry_is_saved_as_entered_by_the_representative_and_redirects_with_a_receipt(
    client, sessionmaker
) -> None:
    world = await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    response = await client.post("/rep/forms", data={
        "csrf_token": token, "content": CONTENT, "category": "urban_traffic", "source": "w:LS-01",
        "submitter_name": "王阿姨", "submitter_phone": "13800001111", "location": "菜市场东门",
    })
    assert response.status_code == 303 and response.headers["location"] == "/rep"
    (form,) = await forms(sessionmaker)
    assert form.entered_by_representative_id == world.representatives["rep"].id
    assert form.entered_by_user_id == world.user_ids["rep"]
    assert form.workroom_id == world.workrooms["LS-01"].id and form.submitter_name == "王阿姨"
    page = await client.get("/rep")
    assert form.tracking_no in page.text and 'class="receipt"' in page.text  # the receipt, shown once
    assert 'value="w:LS-01" selected' in page.text  # the source is remembered
    assert 'class="receipt"' not in (await client.get("/rep")).text


async def test_invalid_input_rerenders_with_messages_and_keeps_what_was_typed(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    response = await client.post("/rep/forms", data={
        "csrf_token": token, "content": CONTENT, "submitter_phone": "12ab", "submitter_name": "王阿姨",
        "source": "w:LS-02",  # not my workroom
    })
    assert response.status_code == 422
    assert CONTENT in response.text and 'value="王阿姨"' in response.text and 'value="12ab"' in response.text
    assert "电话号码格式不对" in response.text and "请选择您所在的工作室" in response.text
    response = await client.post("/rep/forms", data={"csrf_token": token, "content": "   "})
    assert response.status_code == 422 and "请填写意见内容" in response.text
    response = await client.post("/rep/forms", data={"csrf_token": token, "content": CONTENT, "category": "nope"},
                                 headers={"Accept": "application/json"})
    assert response.status_code == 422 and "category" in response.json()["errors"]
    assert await form_count(sessionmaker) == 0


async def test_the_same_idempotency_key_twice_writes_exactly_one_form(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    headers = {"Idempotency-Key": "0b7c1e9e-8f7d-4a53-a1f6-2f7f4c8f1d10", "Accept": "application/json",
               "X-CSRF-Token": token}
    body = {"content": CONTENT, "category": "urban_traffic", "source": "w:LS-01"}
    first = await client.post("/rep/forms", data=body, headers=headers)
    again = await client.post("/rep/forms", data=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and first.json()["tracking_no"] == again.json()["tracking_no"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    # the no-JS path: the hidden field carries the key
    plain = {**body, "csrf_token": token, "idempotency_key": "page-key-1"}
    assert (await client.post("/rep/forms", data=plain)).status_code == 303
    assert (await client.post("/rep/forms", data=plain)).status_code == 303
    assert await form_count(sessionmaker) == 2


async def test_today_lists_only_the_forms_i_entered(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    # a resident's form in my workroom (visible to me, but not entered by me) and one of rep2
    await submit(client, content="居民自己提交的意见，在我的工作室。", workroom_code="LS-01")
    await submit(client, headers=world.auth("rep2"), content="李代表录入的意见。")
    token = await sign_in(client, "rep")
    await client.post("/rep/forms", data={"csrf_token": token, "content": CONTENT, "source": "w:LS-01"})
    page = await client.get("/rep")
    today = page.text.split('id="today"', 1)[1]
    assert "今天我录入的（1）" in today and CONTENT[:20] in today
    assert "居民自己提交" not in today and "李代表录入" not in today
    # an htmx refresh of the list answers the block alone
    block = await client.get("/rep", headers={"HX-Request": "true", "HX-Target": "today"})
    assert block.text.lstrip().startswith('<section id="today"') and CONTENT[:20] in block.text


async def test_answer_on_spot_marks_my_form_answered(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    await client.post("/rep/forms", data={"csrf_token": token, "content": CONTENT, "source": "w:LS-01"})
    (form,) = await forms(sessionmaker)
    assert f"/rep/forms/{form.id}/answer-on-spot" in (await client.get("/rep")).text
    empty = await client.post(f"/rep/forms/{form.id}/answer-on-spot", data={"csrf_token": token, "reply": " "})
    assert empty.status_code == 422 and "请填写答复内容" in empty.text
    response = await client.post(f"/rep/forms/{form.id}/answer-on-spot",
                                 data={"csrf_token": token, "reply": "已联系市场管理处，今天下午疏通。"})
    assert response.status_code == 303 and response.headers["location"] == "/rep"
    (form,) = await forms(sessionmaker)
    assert form.status == "answered" and form.reply == "已联系市场管理处，今天下午疏通。"
    page = await client.get("/rep")
    assert "已答复" in page.text and f"/rep/forms/{form.id}/answer-on-spot" not in page.text
    # another representative cannot answer a form of mine
    other = await submit(client, headers=world.auth("rep2"), content="李代表录入的意见。")
    refused = await client.post(f"/rep/forms/{other['id']}/answer-on-spot", data={"csrf_token": token, "reply": "好"})
    assert refused.status_code in (403, 404)


async def test_the_service_worker_is_served_from_the_root_uncached(client) -> None:
    response = await client.get("/sw.js")
    assert response.status_code == 200 and "javascript" in response.headers["content-type"]
    assert response.headers["Service-Worker-Allowed"] == "/" and response.headers["Cache-Control"] == "no-cache"
    assert '"/rep"' in response.text


async def test_the_service_worker_cache_is_named_after_its_assets(tmp_path) -> None:
    """Change a cached script and the worker's cache name changes; leave them and it stays."""
    static = tmp_path / "static"
    (static / "js").mkdir(parents=True)
    (static / "css").mkdir()
    sw = static / "js" / "sw.js"
    sw.write_text(rep.SW_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    for name in ("css/app.css", "js/app.js", "js/offline.js"):
        (static / name).write_text(f"/* {name} */", encoding="utf-8")
    htmx = tmp_path / "htmx"
    htmx.mkdir()
    (htmx / "htmx.min.js").write_text("/* htmx */", encoding="utf-8")
    roots = {"/static/vendor/htmx/": htmx, "/static/": static}

    def name() -> str:
        return re.search(r'var CACHE = "(minyi-rep-[0-9a-f]{16})";', rep.service_worker_source(sw, roots)).group(1)

    first = name()
    assert name() == first
    (static / "js" / "offline.js").write_text("/* offline.js, changed */", encoding="utf-8")
    second = name()
    (htmx / "htmx.min.js").write_text("/* htmx 2.0.9 */", encoding="utf-8")
    assert len({first, second, name()}) == 3
    assert rep.VERSION_MARK not in rep.service_worker_source()
