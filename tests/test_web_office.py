"""The office's pages and the handling units' pages (httpx on the in-process app)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select

from app.config import TZ
from app.models import FormEvent, OpinionForm
from tests.factories import act, assigned_form, build_world, submit
from tests.support.logins import sign_in


def stat(html: str, name: str) -> str:
    match = re.search(rf'data-stat="{name}"[^>]*>([^<]*)<', html)
    assert match, f"no data-stat={name}"
    return match.group(1).strip()


async def form_row(sessionmaker, form_id: int) -> OpinionForm:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        form = await session.get(OpinionForm, form_id)
        assert form is not None
        return form


async def test_anonymous_visitor_is_sent_to_login(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    for path in ("/office", "/office/forms?status=submitted", "/office/unit", "/office/forms/1"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/office"), response.headers["location"]


async def test_representative_cannot_open_the_office(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    await sign_in(client, "rep")
    for path in ("/office", "/office/forms", "/office/unit"):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "只有" in response.text


async def test_dashboard_shows_the_counts_and_the_bars(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    for _ in range(3):
        await submit(client, workroom_code="LS-01")
    await assigned_form(client, world)
    await sign_in(client, "coordinator")
    response = await client.get("/office")
    assert response.status_code == 200
    assert stat(response.text, "collected") == "4"
    assert stat(response.text, "assigned") == "1"
    assert stat(response.text, "satisfaction_rate").endswith("%")
    assert "镇区党代表工作室" in response.text  # the per-workroom bars
    assert 'class="fill"' in response.text
    assert "/static/js/dashboard.js" in response.text
    # The page's ETag is the stats API's for the same counts: the first poll answers 304.
    etag = re.search(r'data-etag="([^"]+)"', response.text).group(1).replace("&#34;", '"')  # type: ignore[union-attr]
    poll = await client.get("/api/v1/stats/summary", headers={"If-None-Match": etag})
    assert poll.status_code == 304


async def test_filters_narrow_the_list(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    lamp = await submit(client, workroom_code="LS-01", content="村口路灯坏了三盏，请修复。")
    river = await submit(client, workroom_code="LS-02", content="河道里漂着很多垃圾，气味很大。")
    done = await assigned_form(client, world, workroom_code="LS-02", content="菜场门口积水严重。")
    await sign_in(client, "coordinator")

    everything = await client.get("/office/forms")
    for form in (lamp, river, done):
        assert form["tracking_no"] in everything.text

    queue = await client.get("/office/forms", params={"status": "submitted"})
    assert lamp["tracking_no"] in queue.text and river["tracking_no"] in queue.text
    assert done["tracking_no"] not in queue.text

    by_room = await client.get("/office/forms", params={"workroom": "LS-02"})
    assert river["tracking_no"] in by_room.text and done["tracking_no"] in by_room.text
    assert lamp["tracking_no"] not in by_room.text

    by_text = await client.get("/office/forms", params={"q": "河道"})
    assert river["tracking_no"] in by_text.text
    assert lamp["tracking_no"] not in by_text.text and done["tracking_no"] not in by_text.text

    calm = await client.get("/office/forms", params={"supervision": "overdue"})
    assert not any(f["tracking_no"] in calm.text for f in (lamp, river, done))

    # htmx asks for the list block only; a full page otherwise.
    fragment = await client.get("/office/forms", params={"q": "河道"},
                                headers={"HX-Request": "true", "HX-Target": "form-list"})
    assert fragment.text.lstrip().startswith('<section id="form-list"')
    assert river["tracking_no"] in fragment.text and "<html" not in fragment.text
    assert "HX-Request" in fragment.headers["vary"]


async def test_assign_from_the_queue_changes_the_form_and_redirects(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await submit(client)
    token = await sign_in(client, "coordinator")
    response = await client.post(f"/office/forms/{form['id']}/assign", data={
        "csrf_token": token, "unit_id": str(world.units["A"].id), "instructions": "请三日内修复",
        "due_at": "", "next": "/office/forms?status=submitted",
    })
    assert response.status_code == 303
    assert response.headers["location"] == "/office/forms?status=submitted"
    row = await form_row(sessionmaker, form["id"])
    assert row.status == "assigned" and row.unit_id == world.units["A"].id and row.instructions == "请三日内修复"
    queue = await client.get("/office/forms", params={"status": "submitted"})
    assert form["tracking_no"] not in queue.text


async def test_assign_through_htmx_rerenders_the_list(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await submit(client)
    other = await submit(client)
    await sign_in(client, "coordinator")
    csrf = client.cookies["minyi_csrf"]
    response = await client.post(
        f"/office/forms/{form['id']}/assign",
        data={"unit_id": str(world.units["B"].id), "next": "/office/forms?status=submitted"},
        headers={"HX-Request": "true", "HX-Target": "form-list", "X-CSRF-Token": csrf},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="form-list"')
    assert form["tracking_no"] not in response.text and other["tracking_no"] in response.text
    assert (await form_row(sessionmaker, form["id"])).unit_id == world.units["B"].id


async def test_assign_without_a_unit_is_reported_next_to_the_field(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    form = await submit(client)
    token = await sign_in(client, "coordinator")
    response = await client.post(f"/office/forms/{form['id']}/assign", data={
        "csrf_token": token, "unit_id": "", "instructions": "尽快", "next": "/office/forms?status=submitted",
    })
    assert response.status_code == 422
    assert "请选择承办单位。" in response.text
    assert "尽快" in response.text  # what was typed is kept
    assert (await form_row(sessionmaker, form["id"])).status == "submitted"


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await submit(client)
    await sign_in(client, "coordinator")
    response = await client.post(f"/office/forms/{form['id']}/assign", data={"unit_id": str(world.units["A"].id)})
    assert response.status_code == 403
    forged = await client.post(f"/office/forms/{form['id']}/assign",
                               data={"unit_id": str(world.units["A"].id), "csrf_token": "x" * 43})
    assert forged.status_code == 403
    row = await form_row(sessionmaker, form["id"])
    assert row.status == "submitted" and row.unit_id is None


def actions_on(html: str) -> set[str]:
    return set(re.findall(r'data-action="([^"]+)"', html))


async def test_the_coordinator_sees_triage_actions_on_a_submitted_form(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    form = await submit(client)
    await sign_in(client, "coordinator")
    page = await client.get(f"/office/forms/{form['id']}")
    assert page.status_code == 200
    assert actions_on(page.text) == {"assign", "answer-on-spot", "decline", "note"}
    assert f'action="/office/forms/{form["id"]}/assign"' in page.text
    assert "reply" not in actions_on(page.text)


async def test_the_handler_of_the_unit_sees_reply_return_and_extension(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, unit="A")
    await act(client, world, "coordinator", form["id"], "notes", {"note": "居民情绪激动，注意沟通"})
    await sign_in(client, "handler_a")
    page = await client.get(f"/office/forms/{form['id']}")
    assert page.status_code == 200
    assert actions_on(page.text) == {"reply", "return", "extension", "note"}
    assert "居民情绪激动" in page.text and "内部" in page.text  # the internal note, marked


async def test_another_units_handler_cannot_open_or_act_on_the_form(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, unit="A")
    token = await sign_in(client, "handler_b")
    page = await client.get(f"/office/forms/{form['id']}")
    assert page.status_code in (403, 404)
    response = await client.post(f"/office/forms/{form['id']}/reply", data={"csrf_token": token, "reply": "不是我们的"})
    assert response.status_code in (403, 404)
    assert (await form_row(sessionmaker, form["id"])).status == "assigned"


async def test_an_empty_reply_is_refused_with_the_message_next_to_the_field(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, unit="A")
    token = await sign_in(client, "handler_a")
    response = await client.post(f"/office/forms/{form['id']}/reply",
                                 data={"csrf_token": token, "reply": "   ", "internal_note": "已电话联系"})
    assert response.status_code == 422
    assert 'id="reply-reply-e"' in response.text and "请填写答复内容。" in response.text
    assert "已电话联系" in response.text
    assert (await form_row(sessionmaker, form["id"])).status == "assigned"


async def test_the_handler_replies_returns_and_asks_for_more_time(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    first = await assigned_form(client, world, unit="A")
    second = await assigned_form(client, world, unit="A")
    third = await assigned_form(client, world, unit="A")
    token = await sign_in(client, "handler_a")

    replied = await client.post(f"/office/forms/{first['id']}/reply", data={"csrf_token": token, "reply": "已修好。"})
    assert replied.status_code == 303 and replied.headers["location"] == f"/office/forms/{first['id']}"
    assert (await form_row(sessionmaker, first["id"])).reply == "已修好。"

    no_reason = await client.post(f"/office/forms/{second['id']}/return", data={"csrf_token": token, "reason": ""})
    assert no_reason.status_code == 422 and "请填写理由。" in no_reason.text
    returned = await client.post(f"/office/forms/{second['id']}/return",
                                 data={"csrf_token": token, "reason": "属于环保办职责"})
    assert returned.status_code == 303
    assert (await form_row(sessionmaker, second["id"])).status == "submitted"

    in_a_year = (datetime.now(TZ).date() + timedelta(days=365)).isoformat()  # deadlines stay within two years
    asked = await client.post(f"/office/forms/{third['id']}/extension",
                              data={"csrf_token": token, "due_at": in_a_year, "reason": "需要采购材料"})
    assert asked.status_code == 303
    row = await form_row(sessionmaker, third["id"])
    assert row.extension_due_at is not None and row.extension_reason == "需要采购材料"
    page = await client.get(f"/office/forms/{third['id']}")
    assert "extension" not in actions_on(page.text)  # one request at a time


async def test_the_office_closes_with_satisfaction_and_a_refused_action_shows_the_message(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world, unit="A")
    await act(client, world, "handler_a", form["id"], "reply", {"reply": "已处理"})
    token = await sign_in(client, "coordinator")
    page = await client.get(f"/office/forms/{form['id']}")
    assert actions_on(page.text) == {"close", "reopen", "note"}
    assert "基本满意" in page.text
    closed = await client.post(f"/office/forms/{form['id']}/close",
                               data={"csrf_token": token, "satisfaction": "basically_satisfied", "note": "回访"})
    assert closed.status_code == 303
    row = await form_row(sessionmaker, form["id"])
    assert row.status == "closed" and row.satisfaction == "basically_satisfied"
    # Closing twice: the workflow refuses; the page shows its message (htmx: as a toast).
    again = await client.post(f"/office/forms/{form['id']}/close", data={"csrf_token": token})
    assert again.status_code == 409 or again.status_code == 422
    assert "不能" in again.text
    toast = await client.post(f"/office/forms/{form['id']}/close", data={"csrf_token": token},
                              headers={"HX-Request": "true"})
    assert toast.headers.get("hx-retarget") == "#toasts" and "toast" in toast.text
    async with sessionmaker() as session:
        closes = await session.scalar(select(func.count()).select_from(FormEvent).where(
            FormEvent.form_id == form["id"], FormEvent.type == "closed"))
    assert closes == 1


async def test_the_handler_list_shows_its_units_forms_only(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    ours = await assigned_form(client, world, unit="A")
    theirs = await assigned_form(client, world, unit="B")
    waiting = await submit(client)
    await sign_in(client, "handler_a")
    home = await client.get("/office")
    assert home.status_code == 303 and home.headers["location"] == "/office/unit"
    page = await client.get("/office/unit")
    assert page.status_code == 200
    assert ours["tracking_no"] in page.text
    assert theirs["tracking_no"] not in page.text and waiting["tracking_no"] not in page.text
    assert f'href="/office/forms/{ours["id"]}"' in page.text
    assert (await client.get("/office/forms")).status_code == 403  # the triage list is the office's


async def test_the_office_list_takes_the_apis_filters_and_drops_a_bad_value(client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """One filter (FormQuery) for the API, its exports and this list: a filter of the API works here too, and
    a value that does not validate (a stale bookmark) is dropped rather than answered with an error page."""
    world = await build_world(sessionmaker)
    mine = await assigned_form(client, world, "A", workroom_code="LS-01")
    other = await assigned_form(client, world, "B", workroom_code="LS-01")
    await sign_in(client, "coordinator")
    narrowed = await client.get("/office/forms", params={"unit_id": world.units["A"].id})
    assert narrowed.status_code == 200
    assert mine["tracking_no"] in narrowed.text and other["tracking_no"] not in narrowed.text
    stale = await client.get("/office/forms", params={"unit_id": "abc", "submitted_from": "9999-99-99",
                                                      "status": ["assigned", "nonsense"]})
    assert stale.status_code == 200
    assert mine["tracking_no"] in stale.text and other["tracking_no"] in stale.text


async def test_every_page_with_an_id_in_its_path_refuses_an_absurd_one_with_a_page_not_a_500(
        client: httpx.AsyncClient, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """Ids in page paths are bounded like the API's (IdPath): an id past the database's integer answers 422 or
    404 on every engine, never a driver error."""
    await build_world(sessionmaker)
    huge, tries = "9" * 20, []
    for who, method, path in (
        ("coordinator", "GET", f"/office/forms/{huge}"), ("coordinator", "POST", f"/office/forms/{huge}/contact"),
        ("coordinator", "POST", f"/office/forms/{huge}/verification-code"),
        ("coordinator", "POST", f"/office/forms/{huge}/note"), ("coordinator", "GET", f"/office/imports/{huge}"),
        ("coordinator", "POST", f"/office/rosters/shifts/{huge}/delete"),
        ("coordinator", "POST", f"/office/swaps/{huge}/approve"),
        ("rep", "POST", f"/rep/forms/{huge}/verification-code"), ("rep", "POST", f"/rep/forms/{huge}/answer-on-spot"),
    ):
        csrf = await sign_in(client, who, fresh=True)
        response = await client.request(method, path, data={"csrf_token": csrf, "note": "x", "reply": "x"}
                                        if method == "POST" else None)
        tries.append((path, response.status_code))
    assert all(status in (404, 422) for _, status in tries), tries
