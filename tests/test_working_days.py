"""The one working-day index (services/working_days.py) against a naive day-by-day reference, the
statutory rules for years without entries, and the deadlines and ladder built on it (issue 15, points 1
and 10). The database side (the table, reloading, rotas, the forms list) is in test_calendar_admin.py."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import chinese_calendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import TZ
from app.errors import Invalid
from app.models import DayKind
from app.services import deadlines, working_days
from app.services.deadlines import Supervision
from app.services.working_days import Entry, WorkingCalendar

# --- the naive reference: one day at a time over is_working_day, as deadlines.py used to be -------------


def naive_add(calendar: WorkingCalendar, start: date, days: int) -> date:
    current, remaining = start, days
    while remaining > 0:
        current += timedelta(days=1)
        if calendar.is_working_day(current):
            remaining -= 1
    return current


def naive_subtract(calendar: WorkingCalendar, start: date, days: int) -> date:
    current, remaining = start, days
    while remaining > 0:
        current -= timedelta(days=1)
        if calendar.is_working_day(current):
            remaining -= 1
    return current


def naive_between(calendar: WorkingCalendar, start: date, end: date) -> int:
    if end < start:
        return -naive_between(calendar, end, start)
    count, current = 0, start
    while current < end:
        current += timedelta(days=1)
        count += calendar.is_working_day(current)
    return count


def naive_last_escalated_day(calendar: WorkingCalendar, today: date) -> date:
    count, current = 0, today
    while True:
        if calendar.is_working_day(current):
            count += 1
            if count == deadlines.ESCALATION_WORKING_DAYS:
                return current - timedelta(days=1)
        current -= timedelta(days=1)


def naive_level(calendar: WorkingCalendar, due_at: datetime, now: datetime) -> Supervision:
    """The ladder as defined (DESIGN.md): warning within 2 working days, escalated 5 working days late."""
    today, due_day = now.astimezone(TZ).date(), due_at.astimezone(TZ).date()
    if now > due_at:
        late = naive_between(calendar, due_day, today)
        return Supervision.escalated if late >= 5 else Supervision.overdue
    return Supervision.warning if naive_between(calendar, today, due_day) <= 2 else Supervision.none


# --- strategies -----------------------------------------------------------------------------------

NEAR = st.dates(min_value=date(2023, 1, 1), max_value=date(2031, 12, 31))
# Far enough from both ends that the spans below (±400 days, 40 working days) stay inside the calendar.
ANYWHERE = st.dates(min_value=date(2, 3, 1), max_value=date(9998, 10, 1))


@st.composite
def calendars(draw: st.DrawFn) -> WorkingCalendar:
    """An office's table: random holidays and make-up workdays in 2024–2029, some years left empty (so
    the rules apply there), sometimes the package's seeded data underneath."""
    years = draw(st.sets(st.integers(2024, 2029), max_size=4))
    entries: dict[date, Entry] = {}
    if draw(st.booleans()):
        entries.update((e.day, e) for e in working_days.package_entries())
    for _ in range(draw(st.integers(0, 40))):
        if not years:
            break
        year = draw(st.sampled_from(sorted(years)))
        day = draw(st.dates(min_value=date(year, 1, 1), max_value=date(year, 12, 31)))
        kind = draw(st.sampled_from([DayKind.holiday, DayKind.workday]))
        entries[day] = Entry(day, kind, "测试")
    return WorkingCalendar(entries.values(), token=f"test-{draw(st.integers())}")


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(calendar=calendars(), start=NEAR, days=st.integers(0, 70))
def test_add_and_subtract_agree_with_the_day_by_day_reference(calendar, start, days):
    assert calendar.add(start, days) == naive_add(calendar, start, days)
    assert calendar.subtract(start, days) == naive_subtract(calendar, start, days)


@PROPERTY
@given(calendar=calendars(), start=NEAR, end=NEAR)
def test_between_agrees_with_the_day_by_day_reference(calendar, start, end):
    assert calendar.between(start, end) == naive_between(calendar, start, end)


@PROPERTY
@given(calendar=calendars(), today=NEAR)
def test_last_escalated_day_agrees_with_the_reference(calendar, today):
    with working_days.use(calendar):
        assert deadlines.last_escalated_day(today) == naive_last_escalated_day(calendar, today)
        assert deadlines.last_warning_day(today) == naive_add(calendar, today, 3) - timedelta(days=1)


@PROPERTY
@given(calendar=calendars(), today=NEAR, offset=st.integers(-30, 30), hour=st.integers(0, 23),
       due_hour=st.sampled_from([0, 9, 23]))
def test_the_ladder_agrees_with_the_reference(calendar, today, offset, hour, due_hour):
    now = datetime.combine(today, datetime.min.time(), tzinfo=TZ).replace(hour=hour)
    due_day = today + timedelta(days=offset)
    due_at = deadlines.end_of_day(due_day) if due_hour == 23 else datetime.combine(
        due_day, datetime.min.time(), tzinfo=TZ).replace(hour=due_hour)
    with working_days.use(calendar):
        assert deadlines.supervision_level(due_at, now, open_=True) == naive_level(calendar, due_at, now)


@settings(max_examples=80, deadline=None)
@given(start=ANYWHERE, days=st.integers(0, 40), span=st.integers(-400, 400))
def test_the_index_is_right_anywhere_in_the_calendar(start, days, span):
    # 0001 to 9999: weekends only before 2004 and after 2100, the package's data, the rules in between.
    calendar = working_days.builtin()
    assert calendar.add(start, days) == naive_add(calendar, start, days)
    assert calendar.subtract(start, days) == naive_subtract(calendar, start, days)
    assert calendar.between(start, start + timedelta(days=span)) == naive_between(calendar, start, start + timedelta(days=span))


def test_spans_of_the_whole_calendar_cost_no_walk_and_stay_consistent():
    calendar = working_days.builtin()
    first, last = date(1, 1, 1), date(9999, 12, 31)
    before = working_days.meter.years_scanned
    total = calendar.between(first, last)
    # At most one step per year that uses the rules (2025–2100), never one per day.
    assert working_days.meter.years_scanned - before <= working_days.RULES_UNTIL - working_days.RULES_FROM + 1
    assert calendar.between(last, first) == -total
    last_working = last if calendar.is_working_day(last) else calendar.subtract(last, 1)
    assert calendar.add(first, total) == last_working
    first_working = calendar.add(first, 1)  # 0001-01-01 itself never counts
    assert calendar.subtract(last_working, total - 1) == first_working


def test_answers_beyond_the_calendar_are_refused_not_wrapped():
    calendar = working_days.builtin()
    with pytest.raises(working_days.OutOfCalendar):
        calendar.add(date(9999, 12, 29), 5)
    with pytest.raises(working_days.OutOfCalendar):
        calendar.subtract(date(1, 1, 3), 5)
    # The ladder at the very edges still answers.
    edge = datetime(9999, 12, 31, 12, tzinfo=TZ)
    assert deadlines.supervision_level(deadlines.end_of_day(date(9999, 12, 31)), edge, open_=True) == Supervision.warning
    far_past = datetime(1, 1, 1, 8, tzinfo=TZ)
    assert deadlines.supervision_level(far_past, edge, open_=True) == Supervision.escalated


# --- the package's data and the statutory rules ---------------------------------------------------


def test_the_builtin_calendar_is_the_package_for_every_day_it_knows():
    calendar = working_days.builtin()
    day = date(2004, 1, 1)
    while day <= date(2026, 12, 31):
        assert calendar.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


@pytest.mark.parametrize("year", [2025, 2026])
def test_the_rules_give_what_the_notices_gave_for_2025_and_2026(year):
    # Every day the rules compute was a holiday in that year's notice (the package), under that name.
    for day, name in working_days.statutory_holidays(year):
        on_holiday, holiday = chinese_calendar.get_holiday_detail(day)
        assert on_holiday and holiday is not None, day
        assert chinese_calendar.constants.Holiday(holiday).chinese[:2] in name, (day, name, holiday)
    assert len(working_days.statutory_holidays(year)) == 13  # 1 + 4 + 1 + 2 + 1 + 1 + 3


def test_2027_has_its_statutory_days_without_any_entry():
    calendar = WorkingCalendar([e for e in working_days.package_entries()], token="package")
    assert not calendar.has_entries(2027) and calendar.uses_rules(2027)
    assert not calendar.is_working_day(date(2027, 1, 1))  # 元旦, a Friday
    assert calendar.holiday_name(date(2027, 1, 1)) == "元旦"
    # 春节 2027: 除夕 5 February to 正月初三 8 February, as tyme4py's lunar calendar says.
    from tyme4py.lunar import LunarDay

    first = LunarDay.from_ymd(2027, 1, 1).get_solar_day()
    assert (first.get_year(), first.get_month(), first.get_day()) == (2027, 2, 6)
    spring = [d for d, name in working_days.statutory_holidays(2027) if name == "春节"]
    assert spring == [date(2027, 2, 5), date(2027, 2, 6), date(2027, 2, 7), date(2027, 2, 8)]
    assert not calendar.is_working_day(date(2027, 2, 5)) and not calendar.is_working_day(date(2027, 2, 8))
    assert calendar.holiday_name(date(2027, 2, 6)) == "春节"  # a Saturday inside the holiday
    assert calendar.holiday_name(date(2027, 2, 13)) is None  # an ordinary Saturday
    # 清明 on the solar term (5 April 2027), 端午 9 June, 中秋 15 September, 国庆 1–3 October.
    named = dict(working_days.statutory_holidays(2027))
    assert named[date(2027, 4, 5)] == "清明节"
    assert named[date(2027, 6, 9)] == "端午节" and named[date(2027, 9, 15)] == "中秋节"
    assert [named.get(date(2027, 10, d)) for d in (1, 2, 3, 4)] == ["国庆节", "国庆节", "国庆节", None]
    # Thursday 31 December 2026 + 1 working day jumps 元旦 and the weekend.
    with working_days.use(calendar):
        assert deadlines.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


def test_a_year_with_entries_follows_its_entries_only():
    # Once the office entered 2027's notice, the notice decides: here 元旦 moved to a made-up Monday.
    calendar = WorkingCalendar([Entry(date(2027, 1, 4), DayKind.holiday, "元旦")], token="x")
    assert calendar.is_working_day(date(2027, 1, 1))
    assert not calendar.is_working_day(date(2027, 1, 4))
    assert not calendar.provisional(date(2027, 1, 1), date(2027, 12, 31))
    assert calendar.provisional(date(2027, 12, 1), date(2028, 1, 10))


def test_mid_autumn_on_national_day_is_one_day_with_both_names():
    named = dict(working_days.statutory_holidays(2028))
    assert named[date(2028, 10, 3)] == "中秋节、国庆节"


# --- deadlines a caller sets ----------------------------------------------------------------------


NOW = datetime(2026, 12, 5, 10, tzinfo=TZ)


@pytest.mark.parametrize("due_at", [
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=TZ),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12))),  # overflows in local time
    datetime(2028, 12, 6, 0, 0, tzinfo=TZ),
], ids=["9999", "9999-west-of-utc", "two-years-and-a-day"])
def test_a_deadline_beyond_two_years_is_refused(due_at):
    with pytest.raises(Invalid) as refused:
        deadlines.check_due_at(due_at, NOW)
    assert refused.value.code == "due_at_out_of_range"
    assert "两年" in refused.value.detail and refused.value.extra["latest_due_on"] == "2028-12-05"


def test_a_deadline_at_the_edge_of_the_window_is_accepted_and_one_in_the_past_is_not():
    assert deadlines.check_due_at(deadlines.end_of_day(date(2028, 12, 5)), NOW)
    with pytest.raises(Invalid) as refused:
        deadlines.check_due_at(datetime(1, 1, 1, 8, tzinfo=TZ), NOW)
    assert refused.value.code == "invalid_due_at"
    # 29 February: the window ends on 28 February two years on.
    assert deadlines.latest_due_day(date(2028, 2, 29)) == date(2030, 2, 28)


def test_provisional_deadlines_are_those_counted_in_a_year_without_entries():
    calendar = WorkingCalendar(working_days.package_entries(), token="package")
    with working_days.use(calendar):
        assert not deadlines.due_at_provisional(deadlines.end_of_day(date(2026, 12, 20)), since=NOW)
        assert deadlines.due_at_provisional(deadlines.end_of_day(date(2027, 1, 8)), since=NOW)
        assert deadlines.due_at_provisional(datetime(9999, 12, 31, 23, 59, 59, tzinfo=TZ), since=NOW)
        assert not deadlines.due_at_provisional(None)
