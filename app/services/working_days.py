"""The one working-day index: which days are working days, and arithmetic over them, for any date from
0001-01-01 to 9999-12-31 without ever walking day by day.

A day is a working day when

1. the office's calendar (``calendar_day``) has an entry for it: ``workday`` (调休上班) works, ``holiday``
   (放假) does not;
2. else, in a year from 2025 to 2100 that has *no* entries at all, it is not one of that year's
   statutory holidays computed from the rules (全国年节及纪念日放假办法, as revised in 2024;
   ``statutory_holidays``);
3. else it is Monday to Friday.

Years with entries are what the State Council's notice said (the migration seeded 2004–2026); a year
without entries gets its statutory days but no make-up workdays or days in lieu, which only the notice
can give, so deadlines in it are *provisional* (``WorkingCalendar.provisional``). Other years without
entries count Monday to Friday only: before 2025 (before 2004, in practice) the 2024 rules do not describe
them, and after 2100 the lunar calendar is not settled (the published tables end there; ΔT is unknown),
and no deadline can reach that far (``deadlines.check_due_at``).

Arithmetic is over ordinals: Mondays–Fridays up to a day are counted in O(1) (ordinal 1 is a Monday), and
each exception (an entered holiday on a weekday −1, an entered workday on a weekend +1, a statutory
holiday on a weekday −1) is found by bisecting sorted lists. ``between`` costs O(log E) for the E entries
plus one bisect per rule year spanned (at most the 76 years 2025–2100; each year's statutory days are
computed once per process, ~1.5 ms); ``add``/``subtract`` bisect over ``between``, so O(log span) of
those. Deadlines stay within two years and the supervision ladder only looks around today, so in practice
every call is a handful of bisects.

Per process, an index is built from the table once per version: ``calendar_revision.token`` changes with
every write, ``load(session)`` reads it (one primary-key read per transaction) and rebuilds only when it
differs, so another process's edit is seen by the next transaction here. ``current()`` is the index the
running request loaded (a context variable), else ``builtin()``: the package's data and the rules, which
is also what pure computations and the tests of the arithmetic use.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from threading import Lock

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CalendarDay, CalendarRevision, DayKind

ORD_MIN = date.min.toordinal()  # 1: Monday 0001-01-01
ORD_MAX = date.max.toordinal()
RULES_FROM = 2025  # the first year under the 2024 revision of the holiday rules
RULES_UNTIL = 2100  # the last year whose statutory days are computed (see above)

# The days the rules name, in the notice's words.
NEW_YEAR, SPRING, QINGMING, LABOUR, DRAGON_BOAT, MID_AUTUMN, NATIONAL = (
    "元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节")


class OutOfCalendar(OverflowError):
    """The answer would fall outside 0001-01-01..9999-12-31."""


@dataclass
class Meter:
    """How much work the index did: tests count it to prove no call walks the calendar day by day."""

    years_scanned: int = 0
    statutory_years_computed: int = 0


meter = Meter()


def _weekdays_through(ordinal: int) -> int:
    """Mondays to Fridays among ordinals 1..``ordinal`` (any integer: differences stay right below 1)."""
    return 5 * (ordinal // 7) + min(ordinal % 7, 5)


def _is_weekday(ordinal: int) -> bool:
    return (ordinal - 1) % 7 < 5


def _year_of(ordinal: int) -> int:
    return date.fromordinal(min(max(ordinal, ORD_MIN), ORD_MAX)).year


# --- the statutory rules --------------------------------------------------------------------------


@cache
def statutory_holidays(year: int) -> tuple[tuple[date, str], ...]:
    """The statutory holidays of ``year`` under the 2024 rules, sorted: 元旦 1 January; 春节 除夕 to 正月初三
    (4 days); 清明 on the day of the solar term (Beijing time); 劳动节 1–2 May; 端午 五月初五; 中秋 八月十五;
    国庆 1–3 October. A day two rules name (中秋 on 1–3 October) appears once, with both names.
    Lunar dates and the solar term come from tyme4py (寿星天文历's algorithms)."""
    from tyme4py.lunar import LunarMonth
    from tyme4py.solar import SolarTerm

    meter.statutory_years_computed += 1

    def solar(day: object) -> date:
        return date(day.get_year(), day.get_month(), day.get_day())  # type: ignore[attr-defined]

    def lunar(month: int, day: int) -> date:
        return solar(LunarMonth.from_ym(year, month).get_first_julian_day().get_solar_day()) + timedelta(days=day - 1)

    named: dict[date, list[str]] = {}

    def add(day: date, name: str) -> None:
        if day.year == year and name not in named.setdefault(day, []):
            named[day].append(name)

    add(date(year, 1, 1), NEW_YEAR)
    first = lunar(1, 1)
    for offset in range(-1, 3):  # 除夕, 初一, 初二, 初三
        add(first + timedelta(days=offset), SPRING)
    add(solar(SolarTerm.from_name(year, "清明").get_julian_day().get_solar_day()), QINGMING)
    add(date(year, 5, 1), LABOUR)
    add(date(year, 5, 2), LABOUR)
    add(lunar(5, 5), DRAGON_BOAT)
    add(lunar(8, 15), MID_AUTUMN)
    for day in (1, 2, 3):
        add(date(year, 10, day), NATIONAL)
    return tuple((day, "、".join(names)) for day, names in sorted(named.items()))


@dataclass(frozen=True)
class _RuleYear:
    off_weekdays: tuple[int, ...]  # ordinals of the statutory days that fall on Monday–Friday, sorted
    names: dict[int, str]  # every statutory day (weekends too) → its name


@cache
def _rule_year(year: int) -> _RuleYear:
    days = statutory_holidays(year)
    return _RuleYear(
        off_weekdays=tuple(d.toordinal() for d, _ in days if d.weekday() < 5),
        names={d.toordinal(): name for d, name in days},
    )


# --- the index ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    day: date
    kind: str
    name: str


class WorkingCalendar:
    """An immutable working-day index over a set of entries (the office's table, or the package's data)."""

    def __init__(self, entries: Iterable[Entry], *, token: str = "") -> None:
        self.token = token
        self._entries: dict[int, Entry] = {}
        for entry in entries:
            self._entries[entry.day.toordinal()] = entry
        # Exceptions to Monday–Friday: (ordinal, ±1), with running sums for O(log E) range sums.
        changes = sorted(
            (ordinal, -1 if entry.kind == DayKind.holiday else 1)
            for ordinal, entry in self._entries.items()
            if (entry.kind == DayKind.holiday) == _is_weekday(ordinal)
        )
        self._change_ords = [ordinal for ordinal, _ in changes]
        self._change_sums = [0]
        for _, delta in changes:
            self._change_sums.append(self._change_sums[-1] + delta)
        self.entered_years: tuple[int, ...] = tuple(sorted({e.day.year for e in self._entries.values()}))
        self._entered = frozenset(self.entered_years)
        self._cutoffs: dict[date, tuple[int, int]] = {}

    # -- single days --

    def entry(self, day: date) -> Entry | None:
        return self._entries.get(day.toordinal())

    def entries(self, year: int) -> list[Entry]:
        return sorted((e for e in self._entries.values() if e.day.year == year), key=lambda e: e.day)

    def has_entries(self, year: int) -> bool:
        return year in self._entered

    def uses_rules(self, year: int) -> bool:
        """Whether ``year``'s statutory days come from the rules (no entries, and within 2025–2100)."""
        return RULES_FROM <= year <= RULES_UNTIL and year not in self._entered

    def is_working_day(self, day: date) -> bool:
        ordinal = day.toordinal()
        entry = self._entries.get(ordinal)
        if entry is not None:
            return entry.kind == DayKind.workday
        if self.uses_rules(day.year) and ordinal in _rule_year(day.year).names:
            return False
        return _is_weekday(ordinal)

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name when ``day`` is a statutory holiday (节假日, weekend days inside a holiday
        block included; an ordinary weekend is not one), else None."""
        ordinal = day.toordinal()
        entry = self._entries.get(ordinal)
        if entry is not None:
            return (entry.name or "节假日") if entry.kind == DayKind.holiday else None
        if self.uses_rules(day.year):
            return _rule_year(day.year).names.get(ordinal)
        return None

    # -- counting --

    def _rule_sum(self, low: int, high: int) -> int:
        """The statutory weekdays off (as −1 each) in ordinals (low, high] of years that use the rules."""
        first, last = _year_of(low + 1), _year_of(high)
        total = 0
        for year in range(max(first, RULES_FROM), min(last, RULES_UNTIL) + 1):
            meter.years_scanned += 1
            if year in self._entered:
                continue
            offs = _rule_year(year).off_weekdays
            total -= bisect_right(offs, high) - bisect_right(offs, low)
        return total

    def _between(self, low: int, high: int) -> int:
        """Working days in ordinals (low, high], low ≤ high (either may lie one step outside the range)."""
        if high <= low:
            return 0
        changes = self._change_sums[bisect_right(self._change_ords, high)] - \
            self._change_sums[bisect_right(self._change_ords, low)]
        return _weekdays_through(high) - _weekdays_through(low) + changes + self._rule_sum(low, high)

    def between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        a, b = start.toordinal(), end.toordinal()
        return self._between(a, b) if a <= b else -self._between(b, a)

    # -- moving --

    def _add(self, start: int, days: int) -> int:
        """The ordinal of the ``days``-th working day after ``start`` (days ≥ 1)."""
        low, high = start, start + 2 * days + 64  # between(start, low) < days
        while True:
            if high >= ORD_MAX:
                high = ORD_MAX
                if self._between(start, high) < days:
                    raise OutOfCalendar("working day beyond 9999-12-31")
                break
            if self._between(start, high) >= days:
                break
            low, high = high, start + 2 * (high - start)
        while high - low > 1:  # between(start, low) < days <= between(start, high)
            middle = (low + high) // 2
            if self._between(start, middle) >= days:
                high = middle
            else:
                low = middle
        return high

    def _subtract(self, start: int, days: int) -> int:
        """The ordinal of the ``days``-th working day before ``start`` (days ≥ 1): the latest o with
        ``days`` working days in [o, start)."""
        def count(ordinal: int) -> int:
            return self._between(ordinal - 1, start - 1)

        low, high = start - 2 * days - 64, start  # count(high) = 0 < days
        while True:
            if low <= ORD_MIN:
                low = ORD_MIN
                if count(low) < days:
                    raise OutOfCalendar("working day before 0001-01-01")
                break
            if count(low) >= days:
                break
            low, high = start - 2 * (start - low), low
        while high - low > 1:  # count(low) >= days > count(high)
            middle = (low + high) // 2
            if count(middle) >= days:
                low = middle
            else:
                high = middle
        return low

    def add(self, start: date, days: int) -> date:
        """The ``days``-th working day after ``start`` (``start`` itself never counts); 0 gives ``start``."""
        if days < 0:
            return self.subtract(start, -days)
        if days == 0:
            return start
        return date.fromordinal(self._add(start.toordinal(), days))

    def subtract(self, start: date, days: int) -> date:
        """The ``days``-th working day before ``start`` (``start`` itself never counts)."""
        if days < 0:
            return self.add(start, -days)
        if days == 0:
            return start
        return date.fromordinal(self._subtract(start.toordinal(), days))

    # -- the supervision ladder's cut-offs --

    def cutoffs(self, today: date, *, warning_days: int, escalation_days: int) -> tuple[int, int]:
        """(last warning ordinal, last escalated ordinal) on ``today``: a due day up to the first is at most
        ``warning_days`` working days ahead; one up to the second is ``escalation_days`` working days late.
        Either may lie one step outside the calendar near its ends."""
        key = today
        found = self._cutoffs.get(key)
        if found is None:
            ordinal = today.toordinal()
            try:
                warning = self._add(ordinal, warning_days + 1) - 1
            except OutOfCalendar:
                warning = ORD_MAX
            try:
                escalated = self._subtract(ordinal + 1, escalation_days) - 1
            except OutOfCalendar:
                escalated = ORD_MIN - 1
            found = (warning, escalated)
            if len(self._cutoffs) > 64:
                self._cutoffs.clear()
            self._cutoffs[key] = found
        return found

    # -- what is known --

    def provisional(self, first: date, last: date) -> bool:
        """Whether a year from ``first`` to ``last`` has no entries (its make-up workdays are unknown)."""
        low, high = sorted((first.year, last.year))
        known = bisect_right(self.entered_years, high) - bisect_left(self.entered_years, low)
        return known < high - low + 1


# --- loading, per process --------------------------------------------------------------------------


def package_entries() -> list[Entry]:
    """The chinese-calendar package's days, as migration 0009 seeds them."""
    from chinese_calendar import constants

    def chinese(value: object) -> str:
        try:
            return str(constants.Holiday(value).chinese)
        except ValueError:
            return str(value)[:64]

    entries = [Entry(day, DayKind.holiday, chinese(value)) for day, value in constants.holidays.items()]
    entries += [Entry(day, DayKind.workday, chinese(value)) for day, value in constants.workdays.items()
                if day not in constants.holidays]
    return sorted(entries, key=lambda e: e.day)


@cache
def builtin() -> WorkingCalendar:
    """The index of the package's data and the rules, without a database."""
    entries = package_entries()
    digest = hashlib.sha256(repr([(e.day.isoformat(), e.kind, e.name) for e in entries]).encode()).hexdigest()
    return WorkingCalendar(entries, token="builtin-" + digest[:40])


_current: ContextVar[WorkingCalendar | None] = ContextVar("minyi_working_calendar", default=None)
_by_token: OrderedDict[str, WorkingCalendar] = OrderedDict()
_by_token_lock = Lock()
_KEEP = 8  # indexes kept per process: one per database in production; tests use many databases
_SESSION_KEY = "minyi.working_calendar"


def current() -> WorkingCalendar:
    """The index this request (or task) loaded with ``load``, else ``builtin()``."""
    return _current.get() or builtin()


@contextmanager
def use(calendar: WorkingCalendar) -> Iterator[WorkingCalendar]:
    """Make ``calendar`` current inside the block (computations over a calendar not in any database)."""
    token = _current.set(calendar)
    try:
        yield calendar
    finally:
        _current.reset(token)


def _remember(calendar: WorkingCalendar) -> None:
    with _by_token_lock:
        _by_token[calendar.token] = calendar
        _by_token.move_to_end(calendar.token)
        while len(_by_token) > _KEEP:
            _by_token.popitem(last=False)


async def _token(session: AsyncSession) -> str:
    return await session.scalar(select(CalendarRevision.token).where(CalendarRevision.id == 1)) or ""


async def load(session: AsyncSession) -> WorkingCalendar:
    """The index of the calendar in ``session``'s database, made current for this request or task.

    Checked once per transaction (a primary-key read of the revision token); rebuilt only when the token
    is new to this process."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_SESSION_KEY)
    if cached is not None and cached[0] is transaction:
        calendar: WorkingCalendar = cached[1]
    else:
        token = await _token(session)
        with _by_token_lock:
            calendar = _by_token.get(token)  # type: ignore[assignment]
        if calendar is None:
            rows = (await session.execute(select(CalendarDay.day_on, CalendarDay.kind, CalendarDay.name))).all()
            calendar = WorkingCalendar((Entry(day, kind, name or "") for day, kind, name in rows), token=token)
            # Keep it only if no edit committed between the two reads (PostgreSQL's READ COMMITTED reads
            # each statement at its own moment): then the rows are exactly that token's.
            if await _token(session) == token:
                _remember(calendar)
        session.info[_SESSION_KEY] = (session.sync_session.get_transaction(), calendar)
    _current.set(calendar)
    return calendar


def forget(session: AsyncSession) -> None:
    """After a write to the calendar in ``session``: its next ``load`` reads the table again."""
    session.info.pop(_SESSION_KEY, None)
