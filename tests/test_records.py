"""A representative's record of duty (履职档案, issue 20.3): the figures on a small town, the funnel crediting a
form to the representative who entered it, the statistics by representative agreeing with the record, who
may read which record, bad periods, the .xlsx and PDF files, and the pages."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import openpyxl

from app.config import TZ
from app.db import transaction
from app.models import Activity, Representative
from app.services import exports as export_service
from tests.factories import World, act, build_world, submit
from tests.support.documents import pdf_fonts, pdf_text, pdf_to_pngs
from tests.support.logins import sign_in
from tests.support.problems import assert_problem

SATISFACTION = ("satisfied", "basically_satisfied", "unsatisfied")


@dataclass
class Town:
    world: World
    today: date
    params: dict[str, str]  # the record's span: today ± 10 days
    ids: dict[str, int] = field(default_factory=dict)

    def rep(self, key: str) -> int:
        return self.world.representatives[key].id


async def _shift(client: httpx.AsyncClient, world: World, who: str, starts: datetime, hours: int,
                 workroom: str = "LS-01") -> int:
    response = await client.post(f"/api/v1/workrooms/{workroom}/shifts", headers=world.auth("coordinator"), json={
        "representative_id": world.representatives[who].id, "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=hours)).isoformat()})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _point(client: httpx.AsyncClient, world: World, title: str, starts: datetime, reps: list[str]) -> int:
    response = await client.post("/api/v1/service-points", headers=world.auth("coordinator"), json={
        "workroom_code": "LS-01", "title": title, "place_type": "market", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=3)).isoformat(),
        "representative_ids": [world.representatives[r].id for r in reps]})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def build_town(client: httpx.AsyncClient, sessionmaker: Any) -> Town:
    """张代表 (rep) and 李代表 (rep2), both of LS-01 (rep2 of LS-02 too), over today ± 10 days:

    - shifts: rep kept one (checked in now), missed one (yesterday), has one to come; rep2 missed one;
    - sessions: the market today with both, one five days ago with rep alone; one 20 days ago (outside);
    - activities: a market day today with both (30 people), a visit 3 days ago with rep (10), a study 15
      days ago (outside);
    - forms at today's market: f1 and f2 entered by rep (f1 answered on the spot, closed 基本满意), f3 by
      rep2 (assigned, answered, closed 满意), f4 by the public; f5 entered by rep at the workroom
      (assigned, answered)."""
    world = await build_world(sessionmaker)
    patch = await client.patch(f"/api/v1/representatives/{world.representatives['rep2'].id}",
                               headers=world.auth("admin"), json={"workroom_codes": ["LS-01", "LS-02"]})
    assert patch.status_code == 200, patch.text
    now = datetime.now(TZ).replace(microsecond=0)
    today = now.date()
    town = Town(world, today, {"from": (today - timedelta(days=10)).isoformat(),
                               "to": (today + timedelta(days=10)).isoformat()})

    kept = await _shift(client, world, "rep", now - timedelta(hours=1), 2)
    await _shift(client, world, "rep", now - timedelta(hours=30), 2)
    await _shift(client, world, "rep", now + timedelta(hours=48), 2)
    await _shift(client, world, "rep2", now - timedelta(hours=30), 2, workroom="LS-02")
    checked = await client.post(f"/api/v1/shifts/{kept}/check-in", headers=world.auth("rep"))
    assert checked.status_code == 200, checked.text

    market = await _point(client, world, "今日集市", now - timedelta(hours=1), ["rep", "rep2"])
    await _point(client, world, "五天前村口", now - timedelta(days=5), ["rep"])
    await _point(client, world, "二十天前车间", now - timedelta(days=20), ["rep"])
    town.ids["market"] = market

    async with transaction(sessionmaker) as session:
        rep, rep2 = (await session.get(Representative, town.rep("rep"))), (await session.get(Representative, town.rep("rep2")))
        for kind, title, held_on, people, attendance in (
            ("market", "集市服务", today, [rep, rep2], 30), ("visit", "走访困难户", today - timedelta(days=3), [rep], 10),
            ("study", "学习", today - timedelta(days=15), [rep], 8),
        ):
            session.add(Activity(kind=kind, title=title, held_on=held_on, workroom_id=world.workrooms["LS-01"].id,
                                 attendance=attendance, representatives=people))

    f1 = await submit(client, world.auth("rep"), service_point_id=market)
    await submit(client, world.auth("rep"), service_point_id=market)
    f3 = await submit(client, world.auth("rep2"), service_point_id=market)
    await submit(client, service_point_id=market)
    f5 = await submit(client, world.auth("rep"), workroom_code="LS-01")
    for who, form, action, body in (
        ("rep", f1, "answer-on-spot", {"reply": "已当场解释政策。"}),
        ("coordinator", f1, "close", {"satisfaction": "basically_satisfied"}),
        ("coordinator", f3, "assign", {"unit_id": world.units["A"].id}),
        ("coordinator", f3, "reply", {"reply": "已修复。"}),
        ("coordinator", f3, "close", {"satisfaction": "satisfied"}),
        ("coordinator", f5, "assign", {"unit_id": world.units["A"].id}),
        ("handler_a", f5, "reply", {"reply": "已安排。"}),
    ):
        answer = await act(client, world, who, form["id"], action, body)
        assert answer.status_code == 200, (action, answer.text)
    return town


REP_FIGURES = {
    "shifts_scheduled": 3, "shifts_kept": 1, "shifts_missed": 1, "shifts_upcoming": 1, "attendance_rate": 0.5,
    "service_point_sessions": 2, "activities": 2, "activity_attendance": 40,
    "activities_by_kind": {"party_service": 0, "market": 1, "visit": 1, "study": 0, "other": 0},
    "forms_entered": 3, "answered_on_spot": 1, "answered": 2, "closed": 1, "satisfied": 0,
    "basically_satisfied": 1, "unsatisfied": 0, "answer_rate": round(2 / 3, 4), "satisfaction_rate": 1.0,
}
REP2_FIGURES = {
    "shifts_scheduled": 1, "shifts_kept": 0, "shifts_missed": 1, "shifts_upcoming": 0, "attendance_rate": 0.0,
    "service_point_sessions": 1, "activities": 1, "activity_attendance": 30,
    "activities_by_kind": {"party_service": 0, "market": 1, "visit": 0, "study": 0, "other": 0},
    "forms_entered": 1, "answered_on_spot": 0, "answered": 1, "closed": 1, "satisfied": 1,
    "basically_satisfied": 0, "unsatisfied": 0, "answer_rate": 1.0, "satisfaction_rate": 1.0,
}


async def test_the_record_counts_each_representatives_own_duty_and_forms(
    client: httpx.AsyncClient, sessionmaker: Any, db_engine: str
) -> None:
    town = await build_town(client, sessionmaker)
    world, params = town.world, town.params
    mine = await client.get(f"/api/v1/representatives/{town.rep('rep')}/record", params=params,
                            headers=world.auth("rep"))
    assert mine.status_code == 200, mine.text
    record = mine.json()
    assert record["representative"] == {"id": town.rep("rep"), "name": "张代表", "level": "town",
                                        "workroom_codes": ["LS-01"]}
    assert record["period"] == {"key": f"{params['from']}_{params['to']}", "kind": "range",
                                "label": record["period"]["label"], "first": params["from"], "last": params["to"]}
    assert record["figures"] == REP_FIGURES
    theirs = await client.get(f"/api/v1/representatives/{town.rep('rep2')}/record", params=params,
                              headers=world.auth("coordinator"))
    assert theirs.json()["figures"] == REP2_FIGURES

    # The funnel credits a form to the representative who entered it; the session keeps all four forms.
    funnel = (await client.get("/api/v1/service-points/funnel", params=params, headers=world.auth("coordinator"))).json()
    assert (funnel["totals"]["sessions"], funnel["totals"]["forms_collected"], funnel["totals"]["answered"]) == (2, 4, 2)
    market = next(row for row in funnel["sessions"] if row["service_point_id"] == town.ids["market"])
    assert market["forms_collected"] == 4
    people = {row["representative_id"]: row for row in funnel["representatives"]}
    assert (people[town.rep("rep")]["sessions"], people[town.rep("rep")]["forms_collected"],
            people[town.rep("rep")]["answered"], people[town.rep("rep")]["basically_satisfied"]) == (2, 2, 1, 1)
    assert (people[town.rep("rep2")]["sessions"], people[town.rep("rep2")]["forms_collected"],
            people[town.rep("rep2")]["satisfied"]) == (1, 1, 1)

    # The statistics by representative count the same forms, with the same outcomes.
    stats = (await client.get("/api/v1/stats/by-representative", params=params, headers=world.auth("coordinator"))).json()
    for key, figures in (("rep", REP_FIGURES), ("rep2", REP2_FIGURES)):
        row = next(item for item in stats["items"] if item["representative_id"] == town.rep(key))
        assert (row["collected"], row["answered"], row["closed"], *(row[s] for s in SATISFACTION)) == (
            figures["forms_entered"], figures["answered"], figures["closed"], *(figures[s] for s in SATISFACTION))

    # The workroom: one row per representative (each equal to their own record) and the totals.
    room = await client.get("/api/v1/workrooms/LS-01/records", params=params, headers=world.auth("admin"))
    assert room.status_code == 200, room.text
    rows = {row["representative_id"]: row for row in room.json()["items"]}
    assert list(rows) == [town.rep("rep"), town.rep("rep2")]
    assert {k: rows[town.rep("rep2")][k] for k in REP2_FIGURES} == REP2_FIGURES
    totals = room.json()["totals"]
    assert (totals["shifts_scheduled"], totals["shifts_missed"], totals["forms_entered"], totals["closed"],
            totals["attendance_rate"], totals["answer_rate"]) == (4, 2, 4, 2, round(1 / 3, 4), 0.75)

    # As .xlsx: the same rows and the totals, read back.
    sheet = await client.get("/api/v1/workrooms/LS-01/records", params={**params, "format": "xlsx"},
                             headers=world.auth("coordinator"))
    assert sheet.status_code == 200 and sheet.headers["content-type"] == export_service.XLSX_MEDIA_TYPE
    disposition = sheet.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="minyi-') and "filename*=UTF-8''%E5%B1%A5%E8%81%8C" in disposition
    book = openpyxl.load_workbook(io.BytesIO(sheet.content))
    values = [list(r) for r in book.active.iter_rows(values_only=True)]
    header = values[0]
    assert book.active.title == "履职档案" and header[:4] == ["统计期间", "代表编号", "代表", "应值班"]
    assert [r[1:3] for r in values[1:]] == [[town.rep("rep"), "张代表"], [town.rep("rep2"), "李代表"], [None, "合计"]]
    column = {name: i for i, name in enumerate(header)}
    assert [r[column["录入意见"]] for r in values[1:]] == [3, 1, 4]
    assert [r[column["当场答复"]] for r in values[1:]] == [1, 0, 1]
    assert [r[column["活动：集市服务"]] for r in values[1:]] == [1, 1, 2]
    assert values[1][column["出勤率"]] == 0.5

    # PDFs are costly (~0.7 s each) and built from the same figures on both databases: one per engine, the
    # workroom's on PostgreSQL and the representative's on SQLite.
    if db_engine != "sqlite":
        document = await client.get("/api/v1/workrooms/LS-01/records", params={**params, "format": "pdf"},
                                    headers=world.auth("coordinator"))
        assert document.status_code == 200 and document.headers["content-type"] == "application/pdf", document.text
        text = re.sub(r"[ \t]+", " ", pdf_text(document.content))
        for expected in ("党代表履职档案", "工作室：镇区党代表工作室（LS-01）", "服务点场次", "张代表 3 1 1 50.0% 2 2 3 1 2 1 66.7% 100.0%",
                         "李代表 1 0 1 0.0% 1 1 1 0 1 1 100.0% 100.0%", "合计 4 1 2 33.3% 3 3 4 1 3 2 75.0% 100.0%"):
            assert expected in text, (expected, text)
        pdf_to_pngs(document.content, "record-workroom")
        return
    document = await client.get(f"/api/v1/representatives/{town.rep('rep')}/record",
                                params={**params, "format": "pdf"}, headers=world.auth("rep"))
    assert document.status_code == 200, document.text
    assert document.headers["content-type"] == "application/pdf" and document.content.startswith(b"%PDF")
    assert "%E5%BC%A0%E4%BB%A3%E8%A1%A8" in document.headers["content-disposition"]  # 张代表
    text = re.sub(r"[ \t]+", " ", pdf_text(document.content))
    for expected in ("党代表履职档案", "代表：张代表（镇党代表）", "镇区党代表工作室（LS-01）", params["from"],
                     "应值班次数 3", "缺勤（结束仍未签到） 1", "出勤率 50.0%", "参加场次 2", "集市服务 1",
                     "本人录入 3", "当场答复 1", "答复率 66.7%", "基本满意 1", "满意率 100.0%"):
        assert expected in text, (expected, text)
    fonts = pdf_fonts(document.content)
    assert fonts and all(font["emb"] == "yes" for font in fonts), fonts
    pdf_to_pngs(document.content, "record-representative")


async def test_who_may_read_a_record(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    rep, rep2 = world.representatives["rep"].id, world.representatives["rep2"].id
    url = "/api/v1/representatives/{}/record"
    assert (await client.get(url.format(rep), headers=world.auth("rep"))).status_code == 200
    # Another representative's record, or an id that does not exist: the same 403, nothing confirmed.
    assert_problem(await client.get(url.format(rep2), headers=world.auth("rep")), 403, "not_your_record")
    assert_problem(await client.get(url.format(987654), headers=world.auth("rep")), 403, "not_your_record")
    assert_problem(await client.get(url.format(10**20), headers=world.auth("rep")), 422)
    assert_problem(await client.get(url.format(rep), headers=world.auth("handler_a")), 403, "forbidden")
    assert_problem(await client.get(url.format(rep)), 401)
    assert_problem(await client.get(url.format(987654), headers=world.auth("coordinator")), 404,
                   "representative_not_found")
    assert (await client.get(url.format(rep2), headers=world.auth("coordinator"))).status_code == 200
    rooms = "/api/v1/workrooms/LS-01/records"
    assert_problem(await client.get(rooms, headers=world.auth("rep")), 403)
    assert_problem(await client.get(rooms, headers=world.auth("handler_a")), 403)
    assert_problem(await client.get("/api/v1/workrooms/LS-99/records", headers=world.auth("admin")), 404,
                   "workroom_not_found")
    # API clients: the JSON with stats:read, no files; forms:read nothing.
    keys = {}
    for scope in ("stats:read", "forms:read"):
        created = await client.post("/api/v1/api-clients", headers=world.auth("admin"),
                                    json={"name": f"履职{scope}", "scopes": [scope]})
        assert created.status_code == 201, created.text
        keys[scope] = {"X-API-Key": created.json()["key"]}
    assert (await client.get(rooms, headers=keys["stats:read"])).status_code == 200
    assert (await client.get(url.format(rep), headers=keys["stats:read"])).status_code == 200
    assert_problem(await client.get(rooms, params={"format": "xlsx"}, headers=keys["stats:read"]), 403, "json_only")
    assert_problem(await client.get(url.format(rep), headers=keys["forms:read"]), 403, "missing_scope")


BAD_PERIODS = [
    ({"period": "0001"}, "period", "invalid_period"),
    ({"period": "9999-12"}, "period", "invalid_period"),
    ({"period": "garbage"}, "period", "invalid_period"),
    ({"period": "2026-13"}, "period", "invalid_period"),
    ({"period": "2026-11" * 1000}, "period", "invalid_period"),
    ({"period": "2026-11", "from": "2026-11-01"}, "period", "invalid_period"),
    ({"from": "2026-11-01"}, "to", "invalid_range"),
    ({"from": "2026-11-02", "to": "2026-11-01"}, "to", "invalid_range"),
    ({"from": "1900-01-01", "to": "2100-12-31"}, "to", "invalid_range"),
    ({"from": "0001-01-01", "to": "2026-11-01"}, "from", "validation_error"),
    ({"format": "docx"}, "format", "validation_error"),
]


async def test_a_bad_period_is_422_naming_the_parameter(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    for path in (f"/api/v1/representatives/{world.representatives['rep'].id}/record", "/api/v1/workrooms/LS-01/records"):
        for params, field, code in BAD_PERIODS:
            response = await client.get(path, params=params, headers=world.auth("coordinator"))
            body = assert_problem(response, 422, code)
            assert [str(e["loc"][-1]) for e in body["errors"]] == [field], (params, body)
    # The edges of the accepted window are periods like any other.
    for period in ("1900", "2100-Q4", "2100-12"):
        response = await client.get("/api/v1/workrooms/LS-01/records", params={"period": period},
                                    headers=world.auth("coordinator"))
        assert response.status_code == 200 and response.json()["period"]["key"] == period, response.text


async def test_the_pages_show_the_record_to_the_representative_and_the_office(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    rep, rep2 = world.representatives["rep"].id, world.representatives["rep2"].id
    await submit(client, world.auth("rep"), workroom_code="LS-01")
    await submit(client, world.auth("rep"), workroom_code="LS-01")
    month = datetime.now(TZ).strftime("%Y-%m")

    await sign_in(client, "rep")
    assert 'href="/rep/record"' in (await client.get("/rep")).text
    page = await client.get("/rep/record")
    assert page.status_code == 200, page.text
    assert "我的履职档案" in page.text and f'data-period="{month}"' in page.text
    assert '<b data-figure="forms_entered">2</b>' in page.text
    assert f'href="/api/v1/representatives/{rep}/record?period={month}&amp;format=pdf"' in page.text
    bad = await client.get("/rep/record", params={"period": "9999-12"})
    assert bad.status_code == 422 and 'data-error="period"' in bad.text and f'data-period="{month}"' in bad.text
    assert (await client.get(f"/office/records/{rep}")).status_code == 403

    await sign_in(client, "coordinator", fresh=True)
    assert (await client.get("/rep/record")).status_code == 403
    office = await client.get("/office/records", params={"workroom": "LS-01", "period": month})
    assert office.status_code == 200, office.text
    row = re.search(rf'<tr data-representative-id="{rep}">.*?</tr>', office.text, re.S).group(0)  # type: ignore[union-attr]
    assert f'href="/office/records/{rep}?period={month}"' in row and '<td data-col="forms_entered">2</td>' in row
    assert f'data-representative-id="{rep2}"' not in office.text  # 李代表 is of LS-02
    assert f'href="/api/v1/workrooms/LS-01/records?period={month}&amp;format=xlsx"' in office.text
    person = await client.get(f"/office/records/{rep}", params={"period": month})
    assert person.status_code == 200 and "履职档案 · 张代表" in person.text
    unknown = await client.get("/office/records", params={"workroom": "LS-99", "period": "garbage"})
    assert unknown.status_code == 422 and 'data-error="workroom"' in unknown.text and 'data-error="period"' in unknown.text
