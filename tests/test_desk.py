"""The office's desk (issue 17.2): the forms list as a sortable table with numbered pages and bulk actions on
the selected rows; the triage queue opens oldest first."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from app.models import FormEvent, OpinionForm
from tests.factories import build_world, submit
from tests.support.logins import sign_in

ROW = re.compile(r'<tr data-form-id="(\d+)" data-tracking-no="([^"]+)"')


def rows(html: str) -> list[str]:
    return [number for _id, number in ROW.findall(html)]


async def make_forms(client, count: int) -> list[dict]:  # type: ignore[no-untyped-def]
    return [await submit(client, content=f"第{i:02d}条：村道路灯不亮。") for i in range(count)]


async def test_the_triage_queue_opens_oldest_first_and_every_column_sorts(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    made = await make_forms(client, 3)
    await sign_in(client, "coordinator")
    queue = await client.get("/office/forms", params={"status": "submitted"})
    assert queue.status_code == 200 and 'class="desk-table"' in queue.text
    assert rows(queue.text) == [f["tracking_no"] for f in made]  # oldest first
    everything = await client.get("/office/forms")
    assert rows(everything.text) == [f["tracking_no"] for f in reversed(made)]  # newest first
    assert 'aria-sort="descending"' in everything.text
    for column in ("number", "received", "workroom", "category", "content", "status", "unit", "due", "supervision"):
        for order in ("asc", "desc"):
            page = await client.get("/office/forms", params={"sort": column, "order": order})
            assert page.status_code == 200 and len(rows(page.text)) == 3, (column, order)
    by_number = await client.get("/office/forms", params={"sort": "number", "order": "asc"})
    assert rows(by_number.text) == sorted(f["tracking_no"] for f in made)
    assert rows((await client.get("/office/forms", params={"sort": "number", "order": "desc"})).text) == sorted(
        (f["tracking_no"] for f in made), reverse=True)
    # A header's link keeps the filters and turns the sorted column round.
    link = re.search(r'<th scope="col" aria-sort="ascending"><a href="([^"]+)"', by_number.text)
    assert link
    query = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)
    assert query["sort"] == ["number"] and query["order"] == ["desc"]
    assert (await client.get("/office/forms", params={"sort": "nonsense", "order": "sideways", "page": "x"})).status_code == 200


async def test_pages_are_numbered_and_a_page_past_the_end_shows_the_last(client, sessionmaker, monkeypatch) -> None:
    from app.web import desk

    monkeypatch.setattr(desk, "PER_PAGE", 2)
    await build_world(sessionmaker)
    made = await make_forms(client, 5)
    await sign_in(client, "coordinator")
    first = await client.get("/office/forms", params={"sort": "number", "order": "asc"})
    assert "共 5 份，第 1 / 3 页" in first.text and rows(first.text) == [f["tracking_no"] for f in made[:2]]
    last = await client.get("/office/forms", params={"sort": "number", "order": "asc", "page": "99"})
    assert "第 3 / 3 页" in last.text and rows(last.text) == [made[4]["tracking_no"]]
    filtered = await client.get("/office/forms", params={"status": "submitted", "q": "第01条"})
    assert "共 1 份" in filtered.text


async def test_a_list_longer_than_the_count_limit_says_more_and_pages_up_to_the_limit(
    client, sessionmaker, monkeypatch
) -> None:
    """At millions of forms the desk counts no further than its limit (issue 18.5): it says "more than",
    pages through what it counted, and a filter that fits under the limit is counted exactly again."""
    from app.models import User
    from app.schemas.forms import FormQuery
    from app.services import forms as form_service
    from app.services.auth import Principal
    from app.web import desk

    monkeypatch.setattr(desk, "PER_PAGE", 2)
    monkeypatch.setattr(form_service, "TABLE_COUNT_LIMIT", 3)
    await build_world(sessionmaker)
    made = await make_forms(client, 5)
    await sign_in(client, "coordinator")
    first = await client.get("/office/forms", params={"sort": "number", "order": "asc"})
    assert "超过 3 份（可用筛选缩小范围），第 1 / 2+ 页" in first.text
    assert rows(first.text) == [f["tracking_no"] for f in made[:2]]
    second = await client.get("/office/forms", params={"sort": "number", "order": "asc", "page": "2"})
    assert rows(second.text) == [f["tracking_no"] for f in made[2:4]] and "下一页" not in second.text
    past = await client.get("/office/forms", params={"sort": "number", "order": "asc", "page": "3"})
    assert "第 2 / 2+ 页" in past.text  # past what was counted: the last counted page
    narrow = await client.get("/office/forms", params={"q": "第01条"})
    assert "共 1 份，第 1 / 1 页" in narrow.text
    # Over the limit, an order no index serves (here the content) would sort every matching form for one
    # page: the list comes in received order instead, and says so; a sort an index serves is kept.
    by_content = await client.get("/office/forms", params={"sort": "content", "order": "desc"})
    assert "不能按“内容”排序，已按收到时间排列" in by_content.text
    assert rows(by_content.text) == [f["tracking_no"] for f in reversed(made)][:2]
    assert 'aria-sort="descending"><a href="/office/forms?sort=received' in by_content.text.replace("&amp;", "&")
    by_number = await client.get("/office/forms", params={"sort": "number", "order": "desc"})
    assert "不能按" not in by_number.text and 'aria-sort="descending"><a href="/office/forms?sort=number' in (
        by_number.text.replace("&amp;", "&"))
    under = await client.get("/office/forms", params={"sort": "content", "order": "asc", "q": "第01条"})
    assert "不能按" not in under.text  # under the limit every column sorts
    assert form_service.indexed_sort("number", FormQuery(workroom="LS-01"))
    assert not form_service.indexed_sort("number", FormQuery(status=("submitted",)))  # one state clusters in time
    assert form_service.indexed_sort("received", FormQuery(status=("submitted",)))
    assert form_service.indexed_sort("due", FormQuery(overdue=True))
    assert form_service.indexed_sort("due", FormQuery(status=("assigned",)))
    assert not form_service.indexed_sort("due", FormQuery())
    assert not form_service.indexed_sort("workroom", FormQuery(overdue=True))
    # The count itself stops one past the limit, whatever the list's length.
    async with sessionmaker() as session:
        office = await session.scalar(select(User).where(User.role == "coordinator"))
        everyone = Principal(user=office)
        assert await form_service.count_forms(session, principal=everyone, filters=FormQuery()) == 5
        assert await form_service.count_forms(session, principal=everyone, filters=FormQuery(), at_most=3) == 4
        assert await form_service.count_forms(session, principal=everyone, filters=FormQuery(), at_most=10) == 5


async def test_bulk_assign_and_urge_act_on_the_selected_rows_and_name_the_ones_refused(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    made = await make_forms(client, 3)
    token = await sign_in(client, "coordinator")
    ids = [str(f["id"]) for f in made[:2]]
    assigned = await client.post("/office/forms/bulk", data={
        "csrf_token": token, "op": "assign", "unit_id": str(world.units["A"].id), "ids": ids,
        "next": "/office/forms?status=submitted"})
    assert assigned.status_code == 303 and assigned.headers["location"] == "/office/forms?status=submitted"
    page = await client.get(assigned.headers["location"])
    assert "已批办 2 份。" in page.text and rows(page.text) == [made[2]["tracking_no"]]
    async with sessionmaker() as session:
        statuses = dict((await session.execute(select(OpinionForm.id, OpinionForm.status))).all())
    assert [statuses[f["id"]] for f in made] == ["assigned", "assigned", "submitted"]

    # 催办 the two assigned and the one still waiting: two urged, the third named with why.
    urged = await client.post("/office/forms/bulk", data={
        "csrf_token": token, "op": "urge", "ids": [str(f["id"]) for f in made], "next": "/office/forms"})
    message = (await client.get(urged.headers["location"])).text
    assert "已催办 2 份。1 份未能催办" in message
    async with sessionmaker() as session:
        events = list(await session.scalars(select(FormEvent.form_id).where(FormEvent.type == "urged")))
    assert sorted(events) == sorted(f["id"] for f in made[:2])

    nothing = await client.post("/office/forms/bulk", data={"csrf_token": token, "op": "assign", "ids": ids})
    assert "请先选择承办单位" in (await client.get(nothing.headers["location"])).text
    none = await client.post("/office/forms/bulk", data={"csrf_token": token, "op": "urge"})
    assert "请先勾选" in (await client.get(none.headers["location"])).text


async def test_bulk_export_is_exactly_the_selected_forms(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    made = await make_forms(client, 3)
    token = await sign_in(client, "coordinator")
    exported = await client.post("/office/forms/bulk", data={
        "csrf_token": token, "op": "export-csv", "ids": [str(made[0]["id"]), str(made[2]["id"])]})
    assert exported.status_code == 303
    location = exported.headers["location"]
    assert location.startswith("/api/v1/forms/export.csv?ids=")
    csv_text = (await client.get(location)).text
    assert made[0]["tracking_no"] in csv_text and made[2]["tracking_no"] in csv_text
    assert made[1]["tracking_no"] not in csv_text


async def test_only_the_office_acts_in_bulk(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    made = await make_forms(client, 1)
    token = await sign_in(client, "handler_a")
    refused = await client.post("/office/forms/bulk", data={
        "csrf_token": token, "op": "assign", "unit_id": str(world.units["A"].id), "ids": [str(made[0]["id"])]})
    assert refused.status_code == 403
