"""Deadlines in working days on the Chinese calendar, and the supervision ladder over them.

Which days are working days is the office's calendar (holidays and make-up workdays 调休, seeded from the
``chinese-calendar`` package and then entered from the State Council's yearly notice), read through the
one working-day index of ``services.working_days``: every function here is a few bisects, never a walk
day by day, whatever the dates. A deadline is the end of its last working day, local time: an office
answers "within 10 working days", not "within 240 hours".

Callers that hold a session call ``working_days.load(session)`` first (the form services, the workflow,
the counts and rotas do), so these functions read that database's calendar; without it they read the
package's data and the statutory rules (``working_days.builtin``).

A deadline a person or client sets (assignment, extension) must lie within two years of today
(``check_due_at``); deadlines already stored, however absurd, are still read and shown at the same cost.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from app.config import TZ as SHANGHAI
from app.errors import Invalid
from app.models import Supervision
from app.services import working_days

WARNING_WORKING_DAYS = 2
ESCALATION_WORKING_DAYS = 5
DUE_WINDOW_YEARS = 2




def is_working_day(day: date) -> bool:
    return working_days.current().is_working_day(day)


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself never counts)."""
    return working_days.current().add(start, days)


def subtract_working_days(start: date, days: int) -> date:
    """The ``days``-th working day before ``start`` (``start`` itself never counts)."""
    return working_days.current().subtract(start, days)


def working_days_between(start: date, end: date) -> int:
    """Working days in (start, end]; negative when end is before start."""
    return working_days.current().between(start, end)


def end_of_day(day: date, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz)


def due_at_after(start: datetime, working_days_count: int, tz: ZoneInfo = SHANGHAI) -> datetime:
    return end_of_day(add_working_days(start.astimezone(tz).date(), working_days_count), tz)


def _cutoffs(today: date) -> tuple[int, int]:
    return working_days.current().cutoffs(
        today, warning_days=WARNING_WORKING_DAYS, escalation_days=ESCALATION_WORKING_DAYS)


def _day(ordinal: int) -> date:
    if not working_days.ORD_MIN <= ordinal <= working_days.ORD_MAX:
        raise working_days.OutOfCalendar("the cut-off lies outside 0001-01-01..9999-12-31")
    return date.fromordinal(ordinal)


def last_warning_day(today: date) -> date:
    """The latest due day that is within the warning window on ``today`` (≤ 2 working days ahead)."""
    return _day(_cutoffs(today)[0])


def last_escalated_day(today: date) -> date:
    """The latest due day already escalated on ``today``: at least 5 working days in (due day, today]."""
    return _day(_cutoffs(today)[1])


def supervision_level(due_at: datetime | None, now: datetime, *, open_: bool, tz: ZoneInfo = SHANGHAI) -> Supervision:
    """The form's rung on the ladder, from the two cut-offs of ``today`` (the same ones the counts and the
    list filters use): O(1) for any stored deadline, 0001 or 9999 alike."""
    if not open_ or due_at is None:
        return Supervision.none
    today = now.astimezone(tz).date()
    try:
        due_day = due_at.astimezone(tz).date()
        late = now > due_at
    except OverflowError:  # a stored deadline at the very edge of the calendar, in another offset
        due_day, late = (date.max, False) if due_at.year > 5000 else (date.min, True)
    warning_through, escalated_through = _cutoffs(today)
    if late:
        return Supervision.escalated if due_day.toordinal() <= escalated_through else Supervision.overdue
    if due_day.toordinal() <= warning_through:
        return Supervision.warning
    return Supervision.none


def due_at_provisional(due_at: datetime | None, *, since: datetime | None = None, tz: ZoneInfo = SHANGHAI) -> bool:
    """Whether the deadline lies in, or was counted across, a year whose notice is not entered yet (its
    make-up workdays are unknown, so the deadline may still move): the years from ``since`` (when it was
    set) to the due day."""
    if due_at is None:
        return False
    try:
        due_day = due_at.astimezone(tz).date()
        first = since.astimezone(tz).date() if since is not None else due_day
    except OverflowError:
        return True
    return working_days.current().provisional(first, due_day)


def latest_due_day(today: date) -> date:
    """The last day a deadline set on ``today`` may fall on: the same date two years on."""
    try:
        return today.replace(year=today.year + DUE_WINDOW_YEARS)
    except ValueError:  # 29 February, or past 9999
        if today.year + DUE_WINDOW_YEARS > date.max.year:
            return date.max
        return today.replace(year=today.year + DUE_WINDOW_YEARS, day=28)


def check_due_at(due_at: datetime, now: datetime, *, tz: ZoneInfo = SHANGHAI, future: bool = True) -> datetime:
    """A deadline a caller sets: later than now (unless ``future`` is False) and within two years of
    today, else 422 (``invalid_due_at`` for the past, ``due_at_out_of_range`` beyond the window)."""
    limit = latest_due_day(now.astimezone(tz).date())
    out_of_range = Invalid(
        f"办理期限须在今天起两年以内（最晚 {limit:%Y-%m-%d}），请重新选择日期。",
        code="due_at_out_of_range", extra={"latest_due_on": limit.isoformat()},
    )
    try:
        due_day = due_at.astimezone(tz).date()
        passed = due_at <= now
    except OverflowError as exc:  # beyond what a datetime holds once moved to local time
        raise out_of_range from exc
    if future and passed:
        raise Invalid("办理期限必须晚于当前时间。", code="invalid_due_at")
    if due_day > limit:
        raise out_of_range
    return due_at
