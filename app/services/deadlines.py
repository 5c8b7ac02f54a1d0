"""Deadlines in working days on the Chinese calendar, and the supervision ladder over them.

Holidays and make-up workdays (调休) come from the ``chinese-calendar`` package, which follows the State
Council's yearly notice. A deadline is the end of its last working day, local time: an office answers
"within 10 working days", not "within 240 hours".
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import chinese_calendar

from app.config import TZ as SHANGHAI

WARNING_WORKING_DAYS = 2
ESCALATION_WORKING_DAYS = 5


class Supervision(StrEnum):
    none = "none"
    warning = "warning"
    overdue = "overdue"
    escalated = "escalated"


def is_working_day(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        # Outside the years the package knows: fall back to Monday–Friday.
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself never counts)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    return current


def subtract_working_days(start: date, days: int) -> date:
    """The ``days``-th working day before ``start`` (``start`` itself never counts)."""
    current = start
    remaining = days
    while remaining > 0:
        current -= timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    return current


def working_days_between(start: date, end: date) -> int:
    """Working days in (start, end]; negative when end is before start."""
    if end < start:
        return -working_days_between(end, start)
    count = 0
    current = start
    while current < end:
        current += timedelta(days=1)
        if is_working_day(current):
            count += 1
    return count


def end_of_day(day: date, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz)


def due_at_after(start: datetime, working_days: int, tz: ZoneInfo = SHANGHAI) -> datetime:
    return end_of_day(add_working_days(start.astimezone(tz).date(), working_days), tz)


def last_warning_day(today: date) -> date:
    """The latest due day that is within the warning window on ``today`` (≤ 2 working days ahead)."""
    return add_working_days(today, WARNING_WORKING_DAYS + 1) - timedelta(days=1)


def last_escalated_day(today: date) -> date:
    """The latest due day already escalated on ``today``: at least 5 working days in (due day, today]."""
    count = 0
    current = today
    while True:
        if is_working_day(current):
            count += 1
            if count == ESCALATION_WORKING_DAYS:
                return current - timedelta(days=1)
        current -= timedelta(days=1)


def supervision_level(due_at: datetime | None, now: datetime, *, open_: bool, tz: ZoneInfo = SHANGHAI) -> Supervision:
    if not open_ or due_at is None:
        return Supervision.none
    today = now.astimezone(tz).date()
    due_day = due_at.astimezone(tz).date()
    if now > due_at:
        late = working_days_between(due_day, today)
        return Supervision.escalated if late >= ESCALATION_WORKING_DAYS else Supervision.overdue
    if working_days_between(today, due_day) <= WARNING_WORKING_DAYS:
        return Supervision.warning
    return Supervision.none
