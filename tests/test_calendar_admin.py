"""The office's working-day calendar on both databases (issue 15, points 1 and 10): the seeded table, the
admin API and page, the CSV import from the State Council's notice, the index reloaded when the table
changes (in this process or another), rotas, deadlines and the ladder reading it, deadline dates bounded
to two years, forms with absurd stored deadlines listed without any walk over the calendar, and the
reminder that next year's notice is still to be entered."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import chinese_calendar
import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import TZ
from app.db import create_sessionmaker, transaction
from app.models import AuditEvent, CalendarDay, FormEvent, OpinionForm, utcnow
from app.services import deadlines, working_calendar, working_days, workflow
from app.services.deadlines import Supervision
from tests.factories import World, assigned_form, build_world
from tests.support.logins import csrf_of, sign_in
from tests.support.problems import assert_problem
from tests.test_working_days import naive_add, naive_last_escalated_day, naive_level

API = "/api/v1/working-calendar"


def today() -> date:
    return datetime.now(TZ).date()


async def add_day(client: httpx.AsyncClient, world: World, day: str, kind: str, name: str = "",
                  who: str = "admin") -> httpx.Response:
    return await client.post(f"{API}/days", json={"day": day, "kind": kind, "name": name}, headers=world.auth(who))


async def calendar_of(sessionmaker) -> working_days.WorkingCalendar:  # type: ignore[no-untyped-def]
    async with transaction(sessionmaker) as session:
        return await working_days.load(session)


def rota(world: World, day_from: str, day_to: str) -> dict[str, object]:
    return {"from": day_from, "to": day_to, "skip_holidays": True, "workrooms": [{
        "code": "LS-01", "weekdays": [1, 2, 3, 4, 5], "start": "09:00", "end": "11:30",
        "representative_ids": [world.representatives["rep"].id]}]}


# --- the table and the index --------------------------------------------------------------------------


async def test_the_migration_seeds_every_day_the_package_knows(sessionmaker):
    async with sessionmaker() as session:
        rows = (await session.execute(select(CalendarDay.day_on, CalendarDay.kind, CalendarDay.name,
                                             CalendarDay.source))).all()
    assert len(rows) == len(working_days.package_entries())
    assert {r.source for r in rows} == {"seeded"}
    assert (date(2026, 2, 17), "holiday", "春节", "seeded") in rows
    assert (date(2026, 2, 28), "workday", "春节", "seeded") in rows  # the make-up Saturday
    assert min(r.day_on for r in rows).year == 2004 and max(r.day_on for r in rows).year == 2026
    calendar = await calendar_of(sessionmaker)
    day = date(2004, 1, 1)
    while day <= date(2026, 12, 31):
        assert calendar.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


async def test_2027_new_year_is_a_holiday_and_spring_festival_is_computed_without_entries(client, sessionmaker):
    world = await build_world(sessionmaker)
    calendar = await calendar_of(sessionmaker)
    assert not calendar.has_entries(2027)
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert [d for d in (date(2027, 2, 4) + timedelta(days=i) for i in range(6)) if not calendar.is_working_day(d)] \
        == [date(2027, 2, 5), date(2027, 2, 6), date(2027, 2, 7), date(2027, 2, 8)]
    # A rota over 元旦 skips it (the probe's case: it used to schedule a normal day).
    preview = await client.post("/api/v1/rota/preview", json=rota(world, "2026-12-28", "2027-01-08"),
                                headers=world.auth("coordinator"))
    assert preview.status_code == 200, preview.text
    assert preview.json()["skipped_holidays"] == ["2027-01-01"]
    year = await client.get(API, params={"year": 2027}, headers=world.auth("coordinator"))
    assert year.status_code == 200
    body = year.json()
    assert (body["entered"], body["uses_rules"], body["provisional"], body["items"]) == (False, True, True, [])
    assert {"day": "2027-02-05", "weekday": "星期五", "name": "春节"} in body["statutory"]


async def test_an_admin_entered_make_up_workday_counts_in_deadlines(client, sessionmaker):
    world = await build_world(sessionmaker)
    before = await calendar_of(sessionmaker)
    assert before.add(date(2027, 2, 19), 1) == date(2027, 2, 22)  # Friday → Monday
    response = await add_day(client, world, "2027-02-20", "workday", "春节")
    assert response.status_code == 201, response.text
    assert response.json() | {"updated_at": None} == {
        "day": "2027-02-20", "weekday": "星期六", "kind": "workday", "kind_label": "上班（调休）", "name": "春节",
        "source": "entered", "updated_at": None}
    after = await calendar_of(sessionmaker)
    assert after.token != before.token
    assert after.is_working_day(date(2027, 2, 20))
    assert after.add(date(2027, 2, 19), 1) == date(2027, 2, 20)
    async with transaction(sessionmaker) as session:
        await working_days.load(session)
        assert deadlines.add_working_days(date(2027, 2, 19), 1) == date(2027, 2, 20)
        # 2027 now has entries: its notice decides, the rules no longer apply (元旦 must be entered too).
        assert deadlines.is_working_day(date(2027, 1, 1))
        assert not deadlines.due_at_provisional(deadlines.end_of_day(date(2027, 3, 1)),
                                                since=datetime(2027, 1, 5, tzinfo=TZ))


async def test_rotas_skip_an_entered_holiday(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = rota(world, "2030-03-04", "2030-03-08")
    first = (await client.post("/api/v1/rota/preview", json=body, headers=world.auth("coordinator"))).json()
    assert first["skipped_holidays"] == [] and first["count"] == 5
    assert (await add_day(client, world, "2030-03-06", "holiday", "防汛放假")).status_code == 201
    second = (await client.post("/api/v1/rota/preview", json=body, headers=world.auth("coordinator"))).json()
    assert second["skipped_holidays"] == ["2030-03-06"] and second["count"] == 4


async def test_another_process_edit_is_seen_at_the_next_transaction(db_url, sessionmaker):
    """Another process: its own engine writes the table and the token; ours reads it again."""
    ours = await calendar_of(sessionmaker)
    assert ours.is_working_day(date(2030, 3, 6))
    other = create_async_engine(db_url)
    try:
        async with transaction(create_sessionmaker(other)) as session:
            session.add(CalendarDay(day_on=date(2030, 3, 6), kind="holiday", name="测试", source="entered"))
            await session.execute(text("UPDATE calendar_revision SET token = 'from-the-other-process' WHERE id = 1"))
    finally:
        await other.dispose()
    reloaded = await calendar_of(sessionmaker)
    assert reloaded.token == "from-the-other-process"
    assert not reloaded.is_working_day(date(2030, 3, 6))


async def test_a_refused_edit_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    before = await calendar_of(sessionmaker)
    assert_problem(await add_day(client, world, "2027-01-04", "workday"), 422, "workday_not_weekend")
    assert_problem(await add_day(client, world, "2026-10-01", "holiday"), 409, "calendar_day_exists")
    assert_problem(await add_day(client, world, f"{today().year + 6}-01-01", "holiday"), 422,
                   "calendar_day_out_of_range")
    assert_problem(await add_day(client, world, "1999-01-01", "holiday"), 422, "calendar_day_out_of_range")
    for bad in ("9999-12-31", "0001-01-01", "2027-02-30", "明天"):
        assert_problem(await add_day(client, world, bad, "holiday"), 422, "validation_error")
    assert_problem(await add_day(client, world, "2027-01-01", "vacation"), 422, "validation_error")
    assert_problem(await add_day(client, world, "2027-01-01", "holiday", "节" * 65), 422, "validation_error")
    assert (await calendar_of(sessionmaker)).token == before.token
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(CalendarDay).where(
            CalendarDay.source != "seeded")) == 0


async def test_only_admins_write_coordinators_read_others_are_refused(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert (await client.get(API, params={"year": 2026}, headers=world.auth("coordinator"))).status_code == 200
    for who in ("handler_a", "rep"):
        assert_problem(await client.get(API, params={"year": 2026}, headers=world.auth(who)), 403)
    assert_problem(await client.get(API, params={"year": 2026}), 401)
    assert_problem(await add_day(client, world, "2027-01-01", "holiday", "元旦", who="coordinator"), 403)
    assert_problem(await client.get(API, params={"year": 9999}, headers=world.auth("admin")), 422)
    created = await add_day(client, world, "2027-01-01", "holiday", "元旦")
    assert created.status_code == 201
    changed = await client.patch(f"{API}/days/2027-01-01", json={"name": "元旦节"}, headers=world.auth("admin"))
    assert changed.status_code == 200 and changed.json()["name"] == "元旦节"
    assert_problem(await client.patch(f"{API}/days/2027-01-01", json={"kind": "workday"},
                                      headers=world.auth("admin")), 422, "workday_not_weekend")
    assert_problem(await client.delete(f"{API}/days/2027-01-01", headers=world.auth("coordinator")), 403)
    assert (await client.delete(f"{API}/days/2027-01-01", headers=world.auth("admin"))).status_code == 204
    assert_problem(await client.delete(f"{API}/days/2027-01-01", headers=world.auth("admin")), 404,
                   "calendar_day_not_found")
    assert_problem(await client.delete(f"{API}/days/9999-12-31", headers=world.auth("admin")), 422)
    async with sessionmaker() as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("calendar_day.%")).order_by(AuditEvent.id)))
    assert actions == ["calendar_day.create", "calendar_day.update", "calendar_day.delete"]


# --- importing the notice -------------------------------------------------------------------------------

NOTICE_2027 = """日期,类型,名称
2027-01-01至2027-01-03,放假,元旦
2027-02-05至2027-02-11,放假,春节
2027年2月20日,上班,春节
2027/2/21,上班,春节
"""


async def test_a_notice_typed_as_csv_is_imported_and_counts(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post(f"{API}/import", headers=world.auth("admin"),
                                 files={"file": ("2027.csv", NOTICE_2027.encode("gb18030"), "text/csv")})
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 12, "updated": 0, "unchanged": 0, "removed": 0, "years": [2027]}
    calendar = await calendar_of(sessionmaker)
    assert calendar.holiday_name(date(2027, 2, 11)) == "春节"
    assert calendar.is_working_day(date(2027, 2, 21))  # a Sunday made a workday
    assert not calendar.uses_rules(2027)
    # Again, with replace: the same file changes nothing; a shorter one removes what it leaves out.
    again = await client.post(f"{API}/import", headers=world.auth("admin"), data={"replace": "true"},
                              files={"file": ("2027.csv", NOTICE_2027.encode(), "text/csv")})
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 12, "removed": 0, "years": [2027]}
    shorter = "日期,类型,名称\n2027-01-01,放假,元旦\n"
    replaced = await client.post(f"{API}/import", headers=world.auth("admin"), data={"replace": "true"},
                                 files={"file": ("2027.csv", shorter.encode(), "text/csv")})
    assert replaced.json() == {"created": 0, "updated": 0, "unchanged": 1, "removed": 11, "years": [2027]}
    year = (await client.get(API, params={"year": 2027}, headers=world.auth("admin"))).json()
    assert [i["day"] for i in year["items"]] == ["2027-01-01"] and year["items"][0]["source"] == "imported"
    # An entered year that leaves statutory days out says so.
    assert {"day": "2027-02-05", "weekday": "星期五", "name": "春节"} in year["missing_statutory"]


async def test_a_bad_file_is_refused_whole_with_every_problem_by_row(client, sessionmaker):
    world = await build_world(sessionmaker)
    before = await calendar_of(sessionmaker)
    bad = ("日期,类型,名称\n"
           "2027-01-01,放假,元旦\n"
           "2027-13-01,放假,元旦\n"          # row 3: no such month
           "2027-01-04,上班,元旦\n"          # row 4: a Monday as a make-up workday
           "2027-01-01,放假,元旦\n"          # row 5: the same day again
           "2027-02-05,休假吧,春节\n"        # row 6: unknown kind
           "2099-10-01,放假,国庆节\n"        # row 7: beyond the window
           "2027-10-07至2027-10-01,放假,国庆\n")  # row 8: a range backwards
    response = await client.post(f"{API}/import", headers=world.auth("admin"),
                                 files={"file": ("bad.csv", bad.encode(), "text/csv")})
    body = assert_problem(response, 422, "calendar_import_invalid")
    assert [(e["row"], e["column"]) for e in body["errors"]] == [
        (3, "日期"), (4, "日期"), (5, "日期"), (6, "类型"), (7, "日期"), (8, "日期")]
    assert "第 2 行重复" in body["errors"][2]["reason"] and "星期一" in body["errors"][1]["reason"]
    for content, code in ((b"", "empty_file"), ("名称\n元旦\n".encode(), "missing_columns"),
                          ("日期,类型\n".encode(), "empty_file"), (b"\xff\xfe\x00\x00garbage", "unreadable_file")):
        assert_problem(await client.post(f"{API}/import", headers=world.auth("admin"),
                                         files={"file": ("x.csv", content, "text/csv")}), 422, code)
    assert_problem(await client.post(f"{API}/import", headers=world.auth("coordinator"),
                                     files={"file": ("x.csv", NOTICE_2027.encode(), "text/csv")}), 403)
    assert (await calendar_of(sessionmaker)).token == before.token


# --- deadlines: bounded when set, cheap however absurd when stored ---------------------------------------


async def test_deadlines_beyond_two_years_are_refused_and_nothing_changes(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world)
    too_late = (today() + timedelta(days=2 * 366 + 2)).isoformat() + "T18:00:00+08:00"
    body = assert_problem(await client.post(f"/api/v1/forms/{form['id']}/extension", headers=world.auth("handler_a"),
                                            json={"due_at": too_late, "reason": "需要很久。"}), 422,
                          "due_at_out_of_range")
    assert "两年" in body["detail"] and body["latest_due_on"] == deadlines.latest_due_day(today()).isoformat()
    fresh = await client.post("/api/v1/forms", json={"content": "路灯坏了。"})
    assert_problem(await client.post(f"/api/v1/forms/{fresh.json()['id']}/assign", headers=world.auth("coordinator"),
                                     json={"unit_id": world.units["A"].id, "due_at": too_late}), 422,
                   "due_at_out_of_range")
    for absurd in ("9999-12-31T23:59:59", "0001-01-01T00:00:00"):  # refused whoever refuses them first
        response = await client.post(f"/api/v1/forms/{fresh.json()['id']}/assign", headers=world.auth("coordinator"),
                                     json={"unit_id": world.units["A"].id, "due_at": absurd})
        assert response.status_code == 422, response.text
    # An extension stored before the window existed is not approved into a deadline.
    async with transaction(sessionmaker) as session:
        row = await session.get(OpinionForm, form["id"])
        row.extension_due_at, row.extension_reason = datetime(9999, 12, 31, 23, 59, 59, tzinfo=TZ), "旧申请"
    assert_problem(await client.post(f"/api/v1/forms/{form['id']}/extension/approve", json={},
                                     headers=world.auth("coordinator")), 422, "due_at_out_of_range")
    async with sessionmaker() as session:
        row = await session.get(OpinionForm, form["id"])
        assert row.due_at == datetime.fromisoformat(form["due_at"])
        assert row.status == "assigned" and (await fresh_status(session, fresh.json()["id"])) == "submitted"


async def fresh_status(session, form_id: int) -> str:  # type: ignore[no-untyped-def]
    return await session.scalar(select(OpinionForm.status).where(OpinionForm.id == form_id))


async def test_forms_with_extreme_stored_deadlines_list_without_walking_the_calendar(client, sessionmaker):
    world = await build_world(sessionmaker)
    far, past = await assigned_form(client, world), await assigned_form(client, world)
    async with transaction(sessionmaker) as session:
        (await session.get(OpinionForm, far["id"])).due_at = datetime(9999, 12, 31, 23, 59, 59, tzinfo=TZ)
        (await session.get(OpinionForm, past["id"])).due_at = datetime(1, 1, 1, 12, tzinfo=UTC)
    scanned, computed = working_days.meter.years_scanned, working_days.meter.statutory_years_computed
    listed, health = await asyncio.gather(
        client.get("/api/v1/forms", headers=world.auth("coordinator")), client.get("/healthz"))
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert listed.status_code == 200, listed.text
    by_id = {f["id"]: f for f in listed.json()["items"]}
    assert by_id[far["id"]]["supervision"] == "none" and by_id[far["id"]]["due_at"].startswith("9999-12-31T23:59:59")
    assert by_id[far["id"]]["due_at_provisional"] is True
    assert by_id[past["id"]]["supervision"] == "escalated"
    # Every other read of the ladder over them, too: the filters, the counts, the hourly pass, the page.
    escalated = await client.get("/api/v1/forms", params={"supervision": "escalated"}, headers=world.auth("coordinator"))
    assert [f["id"] for f in escalated.json()["items"]] == [past["id"]]
    assert (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).json()["escalated"] == 1
    async with transaction(sessionmaker) as session:
        assert await workflow.supervise(session) >= 3  # the past one climbs warning → overdue → escalated
    token = await sign_in(client, "coordinator")
    assert token and (await client.get("/office/forms")).status_code == 200
    # A walk day by day to 9999 would visit some 2.9 million days; the index visits a few rule years.
    assert working_days.meter.years_scanned - scanned < 500
    assert working_days.meter.statutory_years_computed - computed <= 3


async def test_the_ladder_and_deadlines_read_the_office_calendar_and_agree_with_the_reference(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await assigned_form(client, world)
    due = deadlines.end_of_day(date(2030, 3, 1))  # a Friday
    now = datetime(2030, 3, 8, 12, tzinfo=TZ)  # five working days later
    async with transaction(sessionmaker) as session:
        row = await session.get(OpinionForm, form["id"])
        row.due_at, row.supervision_recorded = due, "overdue"
    async with transaction(sessionmaker) as session:
        calendar = await working_days.load(session)
        assert deadlines.supervision_level(due, now, open_=True) == Supervision.escalated == naive_level(calendar, due, now)
    assert (await add_day(client, world, "2030-03-05", "holiday", "测试假日")).status_code == 201
    async with transaction(sessionmaker) as session:
        calendar = await working_days.load(session)
        assert deadlines.supervision_level(due, now, open_=True) == Supervision.overdue == naive_level(calendar, due, now)
        for offset in range(0, 40, 3):
            day = date(2030, 2, 20) + timedelta(days=offset)
            assert deadlines.last_escalated_day(day) == naive_last_escalated_day(calendar, day)
            assert deadlines.add_working_days(day, 7) == naive_add(calendar, day, 7)
        assert await workflow.supervise(session, now=now) == 0  # still overdue: nothing new
    assert (await client.delete(f"{API}/days/2030-03-05", headers=world.auth("admin"))).status_code == 204
    async with transaction(sessionmaker) as session:
        assert await workflow.supervise(session, now=now) == 1
        levels = list(await session.scalars(select(FormEvent.data).where(
            FormEvent.form_id == form["id"], FormEvent.type == "supervision")))
    assert levels == [{"level": "escalated"}]


async def test_a_deadline_in_a_year_without_its_notice_is_provisional(client, sessionmaker):
    world = await build_world(sessionmaker)
    fresh = await client.post("/api/v1/forms", json={"content": "河道垃圾。"})
    due_on = today() + timedelta(days=400)  # always in a year the seeded data does not cover
    assigned = await client.post(f"/api/v1/forms/{fresh.json()['id']}/assign", headers=world.auth("coordinator"),
                                 json={"unit_id": world.units["A"].id, "due_at": f"{due_on.isoformat()}T18:00:00"})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["due_at_provisional"] is True
    for year in range(today().year, due_on.year + 1):  # the office enters every year's notice
        saturday = next(d for d in (date(year, 6, 1) + timedelta(days=i) for i in range(7)) if d.weekday() == 5)
        if (await calendar_of(sessionmaker)).has_entries(year):
            continue
        assert (await add_day(client, world, saturday.isoformat(), "workday", "端午节")).status_code == 201
    shown = await client.get(f"/api/v1/forms/{fresh.json()['id']}", headers=world.auth("coordinator"))
    assert shown.json()["due_at_provisional"] is False


# --- the reminder: from 1 November, next year's notice --------------------------------------------------


async def test_from_november_the_missing_notice_is_announced_until_entered(client, sessionmaker):
    world = await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        assert await working_calendar.notice_reminder(session, today=date(2026, 10, 31)) is None
        reminder = await working_calendar.notice_reminder(session, today=date(2026, 11, 1))
        assert reminder is not None and reminder.year == 2027
        assert reminder.title == "国务院办公厅关于2027年部分节假日安排的通知" and reminder.title in reminder.detail
        assert await working_calendar.notice_reminder(session, today=date(2025, 12, 31)) is None  # 2026 seeded
    # /readyz and the dashboard say what the service says for today, and stop once next year is entered.
    expected = await _reminder_today(sessionmaker)
    ready = (await client.get("/readyz")).json()
    await sign_in(client, "coordinator")
    dashboard = await client.get("/office")
    if expected is None:
        assert ready["calendar"] == {"status": "ok"} and "data-calendar-notice" not in dashboard.text
    else:
        assert ready["calendar"]["status"] == "notice_missing" and ready["calendar"]["year"] == expected.year
        assert expected.title in dashboard.text
    next_year = today().year + 1
    saturday = next(d for d in (date(next_year, 6, 1) + timedelta(days=i) for i in range(7)) if d.weekday() == 5)
    assert (await add_day(client, world, saturday.isoformat(), "workday", "端午节")).status_code == 201
    assert (await client.get("/readyz")).json()["calendar"] == {"status": "ok"}
    assert "data-calendar-notice" not in (await client.get("/office")).text
    async with transaction(sessionmaker) as session:
        assert await working_calendar.notice_reminder(session, today=date(next_year - 1, 11, 20)) is None


async def _reminder_today(sessionmaker):  # type: ignore[no-untyped-def]
    async with transaction(sessionmaker) as session:
        return await working_calendar.notice_reminder(session, today=utcnow().astimezone(TZ).date())


# --- the page -------------------------------------------------------------------------------------------


async def test_the_calendar_page_adds_edits_deletes_and_imports_for_admins(client, sessionmaker):
    world = await build_world(sessionmaker)
    token = await sign_in(client, "admin")
    page = await client.get("/office/calendar", params={"year": 2027})
    assert page.status_code == 200 and "按规则推算的法定节假日" in page.text and "2027-02-05" in page.text
    added = await client.post("/office/calendar/days", data={"csrf_token": token, "day": "2027-02-20",
                                                             "kind": "workday", "name": "春节", "year": "2027"})
    assert added.status_code == 303 and added.headers["location"].startswith("/office/calendar?year=2027")
    page = await client.get("/office/calendar", params={"year": 2027})
    assert 'data-day="2027-02-20"' in page.text and "本年已有 <b>1</b> 条记录" in page.text
    # Bad input: the page again with the message, nothing saved.
    for day, kind, message in (("2027-01-04", "workday", "应为周六或周日"), ("", "holiday", "请选择日期。"),
                               ("9999-12-31", "holiday", "日期须在"), ("2027-02-20", "holiday", "已有条目")):
        refused = await client.post("/office/calendar/days", data={"csrf_token": token, "day": day, "kind": kind})
        assert refused.status_code in (409, 422) and message in refused.text, (day, refused.text[:300])
    no_csrf = await client.post("/office/calendar/days", data={"day": "2027-03-06", "kind": "workday"})
    assert no_csrf.status_code == 403
    edited = await client.post("/office/calendar/days/2027-02-20/edit", data={"csrf_token": token, "kind": "workday",
                                                                             "name": "春节调休"})
    assert edited.status_code == 303
    wrong = await client.post("/office/calendar/days/2027-02-20/edit", data={"csrf_token": token, "kind": "holiday",
                                                                            "name": "x" * 65})
    assert wrong.status_code == 422 and "名称最多 64 个字" in wrong.text
    imported = await client.post("/office/calendar/import", data={"csrf_token": token, "year": "2027"},
                                 files={"file": ("bad.csv", "日期,类型\n2027-13-01,放假\n".encode(), "text/csv")})
    assert imported.status_code == 422 and "第 2 行「日期」" in imported.text
    good = await client.post("/office/calendar/import", data={"csrf_token": token, "year": "2027"},
                             files={"file": ("2027.csv", NOTICE_2027.encode(), "text/csv")})
    assert good.status_code == 303
    page = await client.get(good.headers["location"])
    assert "已导入" in page.text and 'data-day="2027-02-11"' in page.text
    deleted = await client.post("/office/calendar/days/2027-02-11/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert (await calendar_of(sessionmaker)).entry(date(2027, 2, 11)) is None


async def test_coordinators_read_the_page_and_others_may_not(client, sessionmaker):
    await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    page = await client.get("/office/calendar?year=2026")
    assert page.status_code == 200 and "只有管理员可以修改" in page.text and 'action="/office/calendar/days"' not in page.text
    assert "节假日" in page.text and csrf_of(page) == token
    refused = await client.post("/office/calendar/days", data={"csrf_token": token, "day": "2027-02-20",
                                                               "kind": "workday"})
    assert refused.status_code == 403
    await sign_in(client, "handler_a", fresh=True)
    assert (await client.get("/office/calendar")).status_code == 403


async def test_the_form_page_shows_a_deadline_beyond_two_years_next_to_the_date_and_keeps_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    fresh = (await client.post("/api/v1/forms", json={"content": "桥栏杆松动。"})).json()
    token = await sign_in(client, "coordinator")
    too_late = (today() + timedelta(days=2 * 366 + 2)).isoformat()
    page = await client.post(f"/office/forms/{fresh['id']}/assign", data={
        "csrf_token": token, "unit_id": str(world.units["A"].id), "instructions": "请核实。", "due_at": too_late})
    assert page.status_code == 422 and "办理期限须在今天起两年以内" in page.text
    async with sessionmaker() as session:
        row = await session.get(OpinionForm, fresh["id"])
        assert (row.status, row.unit_id, row.instructions, row.due_at) == ("submitted", None, None, None)
