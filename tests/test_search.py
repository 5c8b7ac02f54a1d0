"""Chinese search (issue 19.1, app/services/search.py): words of the content, reply, location and tracking
number, two-character words and phrases, every word required, by relevance or newest first, the same on
the API and the office's list, within what the caller may see, and no query that fails."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app import migrate
from app.db import transaction
from app.models import OpinionForm, User, utcnow
from app.schemas.forms import FormQuery
from app.services import forms as form_service
from app.services import search as search_service
from app.services.auth import Principal
from tests.conftest import screenshot
from tests.factories import PASSWORD, World, act, build_world, submit
from tests.support.logins import sign_in
from tests.support.problems import assert_problem

# --- helpers -------------------------------------------------------------------------------------------


async def found(client: httpx.AsyncClient, world: World, q: str, who: str = "coordinator", **params: Any) -> list[int]:
    """The ids the API lists for ``q``, every page (cursor after cursor), in order."""
    ids: list[int] = []
    cursor = None
    while True:
        query = {"q": q, **params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/forms", params=query, headers=world.auth(who))
        assert response.status_code == 200, response.text
        ids += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return ids
        assert len(ids) < 500, "pagination does not end"


async def make(client: httpx.AsyncClient, world: World, *contents: str, **fields: Any) -> list[int]:
    return [(await submit(client, headers=world.auth("coordinator"), content=c, **fields))["id"] for c in contents]


# --- tokens (no database) ------------------------------------------------------------------------------


def test_text_is_cut_into_character_pairs_and_words() -> None:
    assert list(search_service.tokens("村口路灯坏了。LS2026-00108 噪音")) == [
        "村口", "口路", "路灯", "灯坏", "坏了", "了", "ls", "2026", "026", "26", "00108", "0108", "108", "08",
        "噪音", "音"]  # a piece of letters or digits, then its suffixes: found from inside too
    phrase = search_service.parse("路灯坏了 灯 LS2026-001")
    assert [w.atoms for w in phrase.words] == [
        (search_service.Atom(("路灯", "灯坏", "坏了")),),
        (search_service.Atom(("灯",), prefix=True),),
        (search_service.Atom(("ls",)), search_service.Atom(("2026",)), search_service.Atom(("001",), prefix=True)),
    ]
    # Nothing a user types reaches FTS5's or tsquery's syntax: only letters and digits, quoted.
    hostile = search_service.parse('"a" OR b* NEAR(c d) -e \'f\'&!g<->h:*^i')
    for text in (search_service.fts5_query_text(hostile), search_service.tsquery_text(hostile)):
        assert not re.search(r"[^\w\s\"'&*:()<>\-]", text), text


def test_the_migration_tokenizes_as_the_app_does() -> None:
    """Migration 0015 filled the index with its own frozen copy of the tokenizer: if the app's changes, the
    stored tokens no longer match what searches look for, and a new migration must tokenize again."""
    path = Path(migrate.__file__).resolve().parent.parent / "alembic" / "versions" / "0015_search.py"
    spec = importlib.util.spec_from_file_location("migration_0015", path)
    assert spec and spec.loader
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    samples = [
        {"content": "村口路灯坏了三盏，晚上走路看不清。😀 a_b 100% Café²", "tracking_no": "LS2026-00108",
         "location": "洛社镇新街 3号", "reply": "已更换灯泡ＡＢＣ１２３。" + "长" * 3000},
        {"content": "x" * 200 + " 'quote' \\ back", "tracking_no": "LS2026-1", "location": None, "reply": None},
    ]
    for fields in samples:
        assert migration.tsvector_text(fields) == search_service.tsvector_text(fields)
        assert migration.fts5_columns(fields) == search_service.fts5_columns(fields)


def test_the_office_sees_the_words_marked_and_nothing_else_as_markup() -> None:
    marked = search_service.highlight("<b>路灯</b>坏了 & 路灯", "路灯 &", 80)
    assert str(marked) == "&lt;b&gt;<mark>路灯</mark>&lt;/b&gt;坏了 <mark>&amp;</mark> <mark>路灯</mark>"
    long = search_service.highlight("一" * 50 + "噪音" + "二" * 50, "噪音", 20)
    assert str(long).startswith("…") and "<mark>噪音</mark>" in str(long) and str(long).endswith("…")


# --- finding -------------------------------------------------------------------------------------------


async def test_two_character_words_phrases_and_every_word_must_match(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lamp, noise, both, light = await make(
        client, world, "村口路灯坏了三盏。", "工业园区夜间噪音扰民。", "路灯下面噪音很大。", "灯光太暗。")

    assert set(await found(client, world, "路灯")) == {lamp, both}
    assert set(await found(client, world, "噪音")) == {noise, both}
    assert await found(client, world, "路灯 噪音") == [both]  # every word
    assert await found(client, world, "路灯　噪音") == [both]  # a full-width space separates words too
    assert await found(client, world, "路灯坏了") == [lamp]  # a phrase: its pairs in a row
    assert await found(client, world, "灯坏路") == []
    assert set(await found(client, world, "灯")) == {lamp, both, light}  # one character
    assert await found(client, world, "暗") == [light]  # the last of a run
    assert await found(client, world, "路灯 扰民") == []


async def test_the_reply_location_and_tracking_number_are_searched(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    placed, = await make(client, world, "垃圾没人清。WiFi信号也差。", location="新开河村东头")
    answered, = await make(client, world, "河边太脏。")
    assert (await act(client, world, "coordinator", answered, "answer-on-spot", {"reply": "已安排保洁员每日清理。"})).status_code == 200
    numbered = (await submit(client, content="别的事。"))["tracking_no"]

    assert await found(client, world, "新开河") == [placed]
    assert await found(client, world, "保洁员") == [answered]
    assert len(await found(client, world, numbered)) == 1
    assert len(await found(client, world, numbered.split("-")[1])) == 1  # the digits after the dash
    assert len(await found(client, world, numbered.lower())) == 1  # any case
    assert len(await found(client, world, numbered[4:])) == 1  # from inside the number, as before: "26-00003"
    assert await found(client, world, "ifi") == [placed]  # from inside a word
    assert await found(client, world, "F") == [placed]  # one letter: the substring test alone


async def test_by_relevance_by_default_and_newest_first_on_request(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    in_reply, once, thrice, other = await make(
        client, world, "晚上黑。", "路灯坏了。", "路灯、路灯、路灯都不亮。", "河道脏。")
    assert (await act(client, world, "coordinator", in_reply, "answer-on-spot", {"reply": "路灯已修好。"})).status_code == 200

    assert await found(client, world, "路灯") == [thrice, once, in_reply]  # more often first; the reply weighs least
    assert await found(client, world, "路灯", sort="newest") == [thrice, once, in_reply]
    newer, = await make(client, world, "路灯一盏不亮。")
    assert await found(client, world, "路灯", sort="newest") == [newer, thrice, once, in_reply]
    assert (await found(client, world, "路灯"))[-1] == in_reply
    assert other not in await found(client, world, "路灯")
    bad = await client.get("/api/v1/forms", params={"q": "路灯", "sort": "oldest"}, headers=world.auth("coordinator"))
    assert_problem(bad, 422)


async def test_every_match_is_reached_page_by_page_past_the_ranked_window(
        client, sessionmaker, monkeypatch) -> None:
    """Relevance ranks the newest WINDOW matches; the cursors then go on newest first. Small numbers here
    (a window of 3, a walk of 4 forms) take the walk, the index and every kind of cursor."""
    monkeypatch.setattr(search_service, "WINDOW", 3)
    monkeypatch.setattr(search_service, "WALK_ROWS_MIN", 4)
    monkeypatch.setattr(search_service, "WALK_ROWS_PER_MATCH", 1)
    world = await build_world(sessionmaker)
    made = await make(client, world, *[("路灯坏了。" + "路灯" * (i % 2)) if i % 3 else "河道脏。" for i in range(12)])
    matches = [i for n, i in enumerate(made) if n % 3]

    ranked = await found(client, world, "路灯", limit=2)
    assert sorted(ranked) == sorted(matches) and len(ranked) == len(set(ranked))
    window = sorted(matches, reverse=True)[:3]
    assert set(ranked[:3]) == set(window)  # the newest three, ranked among themselves
    assert ranked[3:] == sorted(matches, reverse=True)[3:]  # then newest first
    assert await found(client, world, "路灯", limit=2, sort="newest") == sorted(matches, reverse=True)
    assert await found(client, world, "路灯 河道") == []
    forged = await client.get("/api/v1/forms", params={"q": "路灯", "cursor": "cjo5OTk6OTk5"},  # r:999:999
                              headers=world.auth("coordinator"))
    assert_problem(forged, 422, "invalid_cursor")


async def test_the_walk_and_the_index_find_the_same_forms(client, sessionmaker, monkeypatch) -> None:
    """``search.newest`` walks the newest forms one by one, probes the index for older ones, walks on or asks
    the database: whichever way a form is reached, the answer is the filtered list's, newest first."""
    world = await build_world(sessionmaker)
    await make(client, world, *[f"第{i}条：" + ("路灯坏了" if i % 2 else "噪音") + ("，河道" if i % 3 == 0 else "")
                                for i in range(10)])
    async with transaction(sessionmaker) as session:
        principal = Principal(user=await session.get(User, world.user_ids["coordinator"]))
        now = utcnow()
        for q in ("路灯", "路灯 河道", "灯", "第1", "条：噪", "%"):
            filters = FormQuery(q=q)
            base = await form_service.filtered_query(session, principal=principal, filters=filters, now=now,
                                                     with_references=False, text_search=False)
            full = await form_service.filtered_query(session, principal=principal, filters=filters, now=now,
                                                     with_references=False)
            expected = list(await session.scalars(full.with_only_columns(OpinionForm.id).order_by(OpinionForm.id.desc())))
            for rows, probe in ((2, 1), (2, 3), (5, 10_000), (50, 1)):  # the walks, the probe, the rest
                monkeypatch.setattr(search_service, "WALK_ROWS_MIN", rows)
                monkeypatch.setattr(search_service, "WALK_ROWS_MAX", rows)
                monkeypatch.setattr(search_service, "PROBE", probe)
                for n in (1, 3, 20):
                    assert await search_service.newest(session, base, search_service.parse(q), n=n) == expected[:n], (
                        q, rows, probe, n)
                if expected:
                    below = expected[0]
                    assert await search_service.newest(session, base, search_service.parse(q), n=20,
                                                       before=below) == expected[1:]


async def test_search_shows_only_forms_the_caller_may_see(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    mine, = await make(client, world, "路灯坏了。", workroom_code="LS-01")
    theirs, = await make(client, world, "路灯坏了。", workroom_code="LS-02")
    for form_id, unit in ((mine, "A"), (theirs, "B")):
        assert (await act(client, world, "coordinator", form_id, "assign", {"unit_id": world.units[unit].id})).status_code == 200

    assert await found(client, world, "路灯", who="rep") == [mine]
    assert await found(client, world, "路灯", who="handler_b") == [theirs]
    assert await found(client, world, "路灯", who="handler_b", sort="newest") == [theirs]
    assert set(await found(client, world, "路灯")) == {mine, theirs}


async def test_no_query_fails(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    await make(client, world, '他说"路灯*坏了" OR NEAR(噪音) -扰民 \'引号\' 100% a_b C:\\资料 😀')
    staff = world.auth("coordinator")
    hostile = ['"', '""', '"路灯', "*", "路灯*", "NEAR(路灯 噪音)", "OR", "路灯 OR 噪音", "AND", "-", "-扰民", "^路灯",
               "%", "_", "\\", "\\\\'", "'", "''", "路灯:*", "& | ! <->", "(", ")", "😀", "😀路灯", "𠀀",
               "a" * 100, "路" * 100, "ＡＢＣ", "\u200b", "1 2 3 4 5 6 7 8 9 10"]
    for q in hostile:
        response = await client.get("/api/v1/forms", params={"q": q}, headers=staff)
        assert response.status_code == 200, (q, response.text)
    assert len((await client.get("/api/v1/forms", params={"q": '"路灯*坏了"'}, headers=staff)).json()["items"]) == 1
    assert len((await client.get("/api/v1/forms", params={"q": "C:\\资料"}, headers=staff)).json()["items"]) == 1
    assert_problem(await client.get("/api/v1/forms", params={"q": "a" * 10_000}, headers=staff), 422)
    assert_problem(await client.get("/api/v1/forms", params={"q": "路" * 5_000}, headers=staff), 422)
    assert_problem(await client.get("/api/v1/forms", params={"q": "1 2 3 4 5 6 7 8 9 10 11"}, headers=staff),
                   422, "too_many_words")
    assert_problem(await client.get("/api/v1/forms", params={"q": "路\x00灯"}, headers=staff), 400)
    await sign_in(client, "coordinator")
    for q in ['"路灯', "NEAR(", "%", "1 2 3 4 5 6 7 8 9 10 11 12", "路" * 101]:
        assert (await client.get("/office/forms", params={"q": q})).status_code == 200, q


# --- keeping the index ---------------------------------------------------------------------------------


async def test_the_index_follows_every_change_of_the_text(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    form_id, = await make(client, world, "桥护栏断了。", location="福山村")
    assert (await act(client, world, "coordinator", form_id, "assign", {"unit_id": world.units["A"].id})).status_code == 200
    assert (await act(client, world, "handler_a", form_id, "reply", {"reply": "已更换不锈钢护栏。"})).status_code == 200
    assert await found(client, world, "不锈钢") == [form_id]
    assert (await act(client, world, "coordinator", form_id, "reopen", {"reason": "群众不满意"})).status_code == 200
    assert await found(client, world, "不锈钢") == []  # the reply was withdrawn
    async with transaction(sessionmaker) as session:
        assert await search_service.verify(session, [form_id]) == []


async def test_the_migration_fills_the_index_from_the_forms_and_goes_back(client, sessionmaker, db_url) -> None:
    world = await build_world(sessionmaker)
    made = await make(client, world, "村口路灯坏了。", "河道有垃圾。")
    await migrate.downgrade(db_url, "0014")
    await migrate.upgrade(db_url)
    assert await found(client, world, "路灯") == [made[0]]
    async with transaction(sessionmaker) as session:
        assert await search_service.verify(session, made) == []
    if db_url.startswith("postgresql"):
        # 0020: the GIN index takes each form at once, so no submission ever merges a pending list for others.
        assert await gin_options(sessionmaker) == ["fastupdate=off"]
        await migrate.downgrade(db_url, "0019")
        assert await gin_options(sessionmaker) is None
        await migrate.upgrade(db_url)
        assert await gin_options(sessionmaker) == ["fastupdate=off"]
        assert await found(client, world, "河道") == [made[1]]


async def gin_options(sessionmaker: Any) -> list[str] | None:
    async with transaction(sessionmaker) as session:
        return (await session.execute(text(
            "SELECT reloptions FROM pg_class WHERE relname = 'ix_form_search_document'"))).scalar_one()


# --- the office's list ---------------------------------------------------------------------------------


async def test_the_office_list_searches_alike_and_marks_the_words(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    lamp, replied = await make(client, world, "<script>alert(1)</script>村口路灯坏了。", "晚上太黑。")
    assert (await act(client, world, "coordinator", replied, "answer-on-spot", {"reply": "路灯已修好。"})).status_code == 200
    await sign_in(client, "coordinator")

    page = await client.get("/office/forms", params={"q": "路灯"})
    assert page.status_code == 200
    rows = re.findall(r'<tr data-form-id="(\d+)"', page.text)
    assert rows == [str(lamp), str(replied)]  # by relevance: the content weighs more than the reply
    assert "<mark>路灯</mark>" in page.text and "<script>alert" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;村口<mark>路灯</mark>坏了" in page.text
    assert "答复：<mark>路灯</mark>已修好" in page.text  # found in the reply: shown where
    assert "按相关度排列" in page.text and '<strong aria-current="true">最相关</strong>' in page.text
    newest = await client.get("/office/forms", params={"q": "路灯", "sort": "newest"})
    assert re.findall(r'<tr data-form-id="(\d+)"', newest.text) == [str(replied), str(lamp)]
    assert '<strong aria-current="true">最新</strong>' in newest.text


@pytest.mark.parametrize("db_engine", ["sqlite"])  # the page is the same on both engines; one browser run
async def test_the_marked_words_read_well_on_a_phone_and_at_a_desk(live_server, browser, sessionmaker, client,
                                                                   db_engine) -> None:
    world = await build_world(sessionmaker)
    await make(client, world, "新开河村东头的路灯坏了三盏，晚上走路看不清，老人孩子出门都不方便，希望尽快维修路灯。",
               "工业园区夜间噪音扰民，路灯也太暗。")
    for width, height in ((390, 844), (1440, 900)):
        context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                            timezone_id="Asia/Shanghai")
        try:
            page = await context.new_page()
            await page.goto(f"{live_server}/login?next=/office/forms")
            await page.fill("#username", "coordinator")
            await page.fill("#password", PASSWORD)
            await page.click("form[action='/login'] button[type=submit]")
            await page.wait_for_url(f"{live_server}/office/forms")
            await page.fill("#flt-q", "路灯 噪音")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**q=**")
            shown = page.locator("table.desk-table mark" if width > 1000 else ".cards mark")
            await shown.first.wait_for()
            assert await shown.count() == 2  # 路灯 and 噪音 in the one form with both
            colour = await shown.first.evaluate("(m) => getComputedStyle(m).backgroundColor")
            assert colour != "rgba(0, 0, 0, 0)"
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            assert await page.locator(".sort-choice").is_visible()
            await screenshot(page, f"search-marked-{width}")
        finally:
            await context.close()
