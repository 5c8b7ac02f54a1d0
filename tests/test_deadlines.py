"""Working-day deadlines on the real Chinese calendar (holidays and make-up workdays 调休)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from app.config import TZ
from app.services.deadlines import (
    Supervision,
    add_working_days,
    due_at_after,
    is_working_day,
    supervision_level,
    working_days_between,
)


def test_spring_festival_2026_is_not_working_days():
    # 2026 Spring Festival holiday: 15–23 February.
    for day in range(15, 24):
        assert not is_working_day(date(2026, 2, day)), day


def test_make_up_saturday_is_a_working_day():
    # 2026-02-28 (Saturday) is a make-up workday for the Spring Festival holiday.
    assert date(2026, 2, 28).weekday() == 5
    assert is_working_day(date(2026, 2, 28))


def test_national_day_2025_is_skipped():
    # 1–8 October 2025 off; Sunday 28 September and Saturday 11 October 2025 are make-up workdays.
    assert not is_working_day(date(2025, 10, 1))
    assert not is_working_day(date(2025, 10, 8))
    assert is_working_day(date(2025, 9, 28))
    assert is_working_day(date(2025, 10, 11))
    # Tuesday 30 September + 1 working day jumps the whole holiday to Thursday 9 October.
    assert add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)


def test_add_working_days_counts_weekends_out():
    # Friday 2026-11-20 + 1 working day = Monday 2026-11-23.
    assert add_working_days(date(2026, 11, 20), 1) == date(2026, 11, 23)
    assert add_working_days(date(2026, 11, 20), 5) == date(2026, 11, 27)


def test_due_at_is_the_end_of_the_last_working_day_in_shanghai():
    start = datetime(2026, 11, 20, 10, 0, tzinfo=TZ)
    due = due_at_after(start, 1)
    assert due == datetime(2026, 11, 23, 23, 59, 59, tzinfo=TZ)


def test_working_days_between_is_signed():
    assert working_days_between(date(2026, 11, 20), date(2026, 11, 27)) == 5
    assert working_days_between(date(2026, 11, 27), date(2026, 11, 20)) == -5


def test_supervision_ladder():
    due = datetime(2026, 11, 25, 23, 59, 59, tzinfo=TZ)  # a Wednesday
    at = lambda y, m, d, h=12: datetime(y, m, d, h, tzinfo=TZ)  # noqa: E731
    assert supervision_level(due, at(2026, 11, 18), open_=True) == Supervision.none
    assert supervision_level(due, at(2026, 11, 23), open_=True) == Supervision.warning
    assert supervision_level(due, at(2026, 11, 25), open_=True) == Supervision.warning
    assert supervision_level(due, at(2026, 11, 26), open_=True) == Supervision.overdue
    # Five working days late: Thu 26, Fri 27, Mon 30, Tue 1, Wed 2 December.
    assert supervision_level(due, at(2026, 12, 1), open_=True) == Supervision.overdue
    assert supervision_level(due, at(2026, 12, 2), open_=True) == Supervision.escalated
    assert supervision_level(due, at(2026, 12, 2), open_=False) == Supervision.none
    assert supervision_level(None, at(2026, 12, 2), open_=True) == Supervision.none
    assert supervision_level(due, due + timedelta(seconds=1), open_=True) == Supervision.overdue


def test_ladder_cut_offs_agree_with_the_ladder_on_every_day_of_two_years():
    # The counts use day cut-offs; the form reads use supervision_level: they must never disagree,
    # weekends, holidays and make-up days included.
    from app.services.deadlines import end_of_day, last_escalated_day, last_warning_day

    start = date(2025, 1, 1)
    for offset in range(0, 730, 3):
        today = start + timedelta(days=offset)
        now = datetime.combine(today, datetime.min.time(), tzinfo=TZ).replace(hour=12)
        for delta in range(-20, 20):
            due_day = today + timedelta(days=delta)
            level = supervision_level(end_of_day(due_day), now, open_=True)
            assert (level == Supervision.escalated) == (due_day <= last_escalated_day(today) and due_day < today)
            if due_day >= today:
                assert (level == Supervision.warning) == (due_day <= last_warning_day(today)), (today, due_day)
