"""The office's working-day calendar (节假日与调休): reading a year, entering, changing and deleting a day,
importing a small CSV file typed from the State Council's yearly notice, and the reminder that next
year's notice is still to be entered.

Admins write; coordinators read. Every write changes ``calendar_revision.token`` in the same transaction,
so every process rebuilds its working-day index (services/working_days.py) at its next transaction after
the commit, and nothing changes if the transaction rolls back. Each write is in the audit log.

The CSV file: a header row with 日期, 类型 and (optional) 名称, then one row per day or per range of days
("2027-10-01至2027-10-07"); 类型 is 放假 or 上班. The file is checked whole: any refused row refuses the
file, with every problem listed by row and column, and nothing is written.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import TZ
from app.errors import Conflict, Invalid, NotFound
from app.models import CalendarDay, CalendarRevision, DayKind, DaySource, Role, utcnow
from app.services import audit as audit_service
from app.services import working_days
from app.services.auth import Principal

FIRST_YEAR = 2000  # the seeded data starts in 2004; earlier years are no deadline's business
AHEAD_YEARS = 5  # a notice is published a few weeks before its year; five years ahead is plenty
NOTICE_FROM = (11, 1)  # from 1 November on, next year's notice is expected (it usually comes in November)
MAX_ROWS = 400
MAX_RANGE_DAYS = 31
MAX_ERRORS = 100
WEEKDAYS = "一二三四五六日"

KIND_LABELS = {DayKind.holiday: "放假", DayKind.workday: "上班（调休）"}
SOURCE_LABELS = {DaySource.seeded: "预置", DaySource.entered: "手工录入", DaySource.imported: "文件导入"}
KIND_WORDS = {
    "放假": DayKind.holiday, "休": DayKind.holiday, "休息": DayKind.holiday, "假": DayKind.holiday,
    "holiday": DayKind.holiday,
    "上班": DayKind.workday, "班": DayKind.workday, "调休上班": DayKind.workday, "补班": DayKind.workday,
    "workday": DayKind.workday,
}
HEADERS = {"日期": "日期", "date": "日期", "类型": "类型", "kind": "类型", "type": "类型", "名称": "名称",
           "节日": "名称", "name": "名称"}


def weekday_label(day: date) -> str:
    return "星期" + WEEKDAYS[day.weekday()]


def notice_title(year: int) -> str:
    return f"国务院办公厅关于{year}年部分节假日安排的通知"


# --- who may ----------------------------------------------------------------------------------------


def require_reader(principal: Principal) -> None:
    principal.require_role(Role.admin, Role.coordinator)


def require_writer(principal: Principal) -> None:
    principal.require_role(Role.admin)


# --- checks -----------------------------------------------------------------------------------------


def year_window(today: date) -> tuple[int, int]:
    return FIRST_YEAR, today.year + AHEAD_YEARS


def day_problem(day: date, kind: str, today: date) -> str | None:
    """Why ``day`` cannot be entered as ``kind`` (a message a person reads), or None."""
    first, last = year_window(today)
    if not first <= day.year <= last:
        return f"只能录入 {first} 年至 {last} 年的日期（{day.isoformat()} 不在此范围内）。"
    if kind == DayKind.workday and day.weekday() < 5:
        return f"上班（调休）日应为周六或周日：{day.isoformat()} 是{weekday_label(day)}。"
    return None


def _check(day: date, kind: str, today: date) -> None:
    if kind not in (DayKind.holiday, DayKind.workday):
        raise Invalid("类型应为 holiday（放假）或 workday（上班）。", code="invalid_day_kind")
    problem = day_problem(day, kind, today)
    if problem is not None:
        code = "calendar_day_out_of_range" if "只能录入" in problem else "workday_not_weekend"
        raise Invalid(problem, code=code)


def _name(value: str | None) -> str:
    name = (value or "").strip()
    if len(name) > 64:
        raise Invalid("名称最多 64 个字。", code="invalid_name")
    return name


# --- reading ----------------------------------------------------------------------------------------


@dataclass
class YearView:
    year: int
    entries: list[CalendarDay]
    entered: bool  # the year has entries: the notice (or the package) decides
    uses_rules: bool  # its statutory days come from the rules (no entries, 2025–2100)
    statutory: list[tuple[date, str]]  # the rules' days for this year (shown for a year without entries)
    missing_statutory: list[tuple[date, str]]  # an entered year whose entries leave out a statutory day
    notice: str | None  # the reminder that next year's notice is still to be entered (from 1 November)


@dataclass(frozen=True)
class NoticeReminder:
    year: int
    title: str
    detail: str


async def notice_reminder(session: AsyncSession, *, today: date) -> NoticeReminder | None:
    """From 1 November on, when next year has no entries: the reminder to enter its notice."""
    if (today.month, today.day) < NOTICE_FROM:
        return None
    year = today.year + 1
    if year > date.max.year or (await working_days.load(session)).has_entries(year):
        return None
    title = notice_title(year)
    return NoticeReminder(
        year=year, title=title,
        detail=(f"尚未录入《{title}》：{year} 年的法定节假日暂按《全国年节及纪念日放假办法》推算，调休上班日未知，"
                f"落在该年的办理期限为暂定。通知发布后请在“节假日”页录入或导入。"),
    )


async def list_year(session: AsyncSession, *, principal: Principal, year: int, today: date | None = None) -> YearView:
    require_reader(principal)
    today = today or utcnow().astimezone(TZ).date()
    calendar = await working_days.load(session)
    entries = list(await session.scalars(
        select(CalendarDay).where(CalendarDay.day_on >= date(year, 1, 1), CalendarDay.day_on <= date(year, 12, 31))
        .order_by(CalendarDay.day_on)))
    in_rule_years = working_days.RULES_FROM <= year <= working_days.RULES_UNTIL
    statutory = list(working_days.statutory_holidays(year)) if in_rule_years else []
    holidays = {e.day_on for e in entries if e.kind == DayKind.holiday}
    missing = [(d, n) for d, n in statutory if d not in holidays] if entries else []
    reminder = await notice_reminder(session, today=today)
    return YearView(
        year=year, entries=entries, entered=bool(entries), uses_rules=calendar.uses_rules(year),
        statutory=statutory, missing_statutory=missing, notice=reminder.detail if reminder else None,
    )


async def get_or_raise(session: AsyncSession, day: date) -> CalendarDay:
    entry = await session.scalar(select(CalendarDay).where(CalendarDay.day_on == day))
    if entry is None:
        raise NotFound(f"日历中没有 {day.isoformat()} 这一天的条目。", code="calendar_day_not_found")
    return entry


# --- writing ----------------------------------------------------------------------------------------


async def _lock(session: AsyncSession) -> CalendarRevision | None:
    """Every write starts here: the revision row locked (PostgreSQL), so two admins' writes queue and the
    second checks what the first wrote (no unique-constraint error half-way)."""
    return await session.get(CalendarRevision, 1, with_for_update=True)


async def _touch(session: AsyncSession, revision: CalendarRevision | None, now: datetime) -> None:
    """A new revision token: every process rebuilds its index after this transaction commits."""
    token = uuid.uuid4().hex
    if revision is None:
        session.add(CalendarRevision(id=1, token=token, changed_at=now))
    else:
        revision.token, revision.changed_at = token, now
    await session.flush()
    working_days.forget(session)


async def _audit(session: AsyncSession, principal: Principal, action: str, target: str | None, ip: str | None,
                 **details: Any) -> None:
    await audit_service.record(session, principal=principal, action=action, target=target, details=details or None,
                               ip=ip)


async def create(
    session: AsyncSession, *, principal: Principal, day: date, kind: str, name: str | None = None,
    ip: str | None = None, now: datetime | None = None,
) -> CalendarDay:
    require_writer(principal)
    now = now or utcnow()
    _check(day, kind, now.astimezone(TZ).date())
    revision = await _lock(session)
    if await session.scalar(select(CalendarDay.id).where(CalendarDay.day_on == day)) is not None:
        raise Conflict(f"{day.isoformat()} 已有条目，请修改或先删除它。", code="calendar_day_exists")
    entry = CalendarDay(day_on=day, kind=kind, name=_name(name), source=DaySource.entered, created_at=now,
                        updated_at=now)
    session.add(entry)
    await _touch(session, revision, now)
    await _audit(session, principal, "calendar_day.create", f"calendar_day:{day.isoformat()}", ip,
                 kind=kind, name=entry.name)
    return entry


async def update(
    session: AsyncSession, *, principal: Principal, day: date, kind: str | None = None, name: str | None = None,
    ip: str | None = None, now: datetime | None = None,
) -> CalendarDay:
    require_writer(principal)
    now = now or utcnow()
    revision = await _lock(session)
    entry = await get_or_raise(session, day)
    new_kind = kind if kind is not None else entry.kind
    _check(day, new_kind, now.astimezone(TZ).date())
    entry.kind = new_kind
    if name is not None:
        entry.name = _name(name)
    entry.source = DaySource.entered
    entry.updated_at = now
    await _touch(session, revision, now)
    await _audit(session, principal, "calendar_day.update", f"calendar_day:{day.isoformat()}", ip,
                 kind=entry.kind, name=entry.name)
    return entry


async def remove(
    session: AsyncSession, *, principal: Principal, day: date, ip: str | None = None, now: datetime | None = None,
) -> None:
    require_writer(principal)
    now = now or utcnow()
    revision = await _lock(session)
    entry = await get_or_raise(session, day)
    await session.delete(entry)
    await _touch(session, revision, now)
    await _audit(session, principal, "calendar_day.delete", f"calendar_day:{day.isoformat()}", ip,
                 kind=entry.kind, name=entry.name)


# --- importing the notice ---------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    years: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    number: int  # as a spreadsheet numbers it: the header is row 1
    day: date
    kind: str
    name: str


_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_RANGE = re.compile(r"\s*(.+?)\s*(?:至|到|~|～|—|--)\s*(.+?)\s*")


def _decode(content: bytes) -> str:
    if content.startswith(codecs.BOM_UTF8):
        content = content[len(codecs.BOM_UTF8):]
    for encoding in ("utf-8", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Invalid("无法识别文件编码，请另存为 UTF-8 或 GB18030 编码的 CSV。", code="unreadable_file")


def _parse_day(text: str) -> date | None:
    """2027-01-01, 2027/1/1 or 2027年1月1日."""
    match = _DATE.fullmatch(text.strip())
    if not match:
        return None
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        return None


def _parse_days(text: str) -> list[date] | None:
    text = text.strip()
    single = _parse_day(text)
    if single is not None:
        return [single]
    match = _RANGE.fullmatch(text)
    if not match:
        return None
    first = _parse_day(match.group(1))
    if first is None:
        return None
    tail = match.group(2)
    last = _parse_day(tail)
    if last is None:  # "2027-10-01至10月7日" or "至7日": the first day's year (and month)
        short = re.fullmatch(r"(?:(\d{1,2})\s*[-/.月]\s*)?(\d{1,2})\s*日?", tail.strip())
        if not short:
            return None
        try:
            last = date(first.year, int(short.group(1) or first.month), int(short.group(2)))
        except ValueError:
            return None
    if last < first or (last - first).days + 1 > MAX_RANGE_DAYS:
        return []
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def read_rows(content: bytes, today: date) -> list[_Row]:
    """The file's days, every row checked; raises ``Invalid`` listing every problem (row, column, reason)."""
    text = _decode(content)
    if "\x00" in text:
        raise Invalid("该文件不是 CSV 文本文件。", code="unsupported_file")
    try:
        table = [row for _, row in zip(range(MAX_ROWS + 2), csv.reader(io.StringIO(text, newline="")), strict=False)]
    except csv.Error as exc:
        raise Invalid(f"CSV 格式有误：{exc}", code="unreadable_file") from exc
    table = [row for row in table if any(cell.strip() for cell in row)]
    if not table:
        raise Invalid("文件是空的：第一行应为表头“日期,类型,名称”。", code="empty_file")
    header = [HEADERS.get(cell.strip().strip("\ufeff").lower(), HEADERS.get(cell.strip(), cell.strip()))
              for cell in table[0]]
    missing = [column for column in ("日期", "类型") if column not in header]
    if missing:
        raise Invalid(f"缺少列：{'、'.join(missing)}（第一行应为表头“日期,类型,名称”）。", code="missing_columns",
                      extra={"errors": [{"row": 1, "column": column, "reason": "缺少此列"} for column in missing]})
    if len(table) - 1 > MAX_ROWS:
        raise Invalid(f"一次最多导入 {MAX_ROWS} 行。", code="too_many_rows")
    if len(table) == 1:
        raise Invalid("文件中没有数据行。", code="empty_file")
    columns = {name: header.index(name) for name in ("日期", "类型", "名称") if name in header}
    errors: list[dict[str, Any]] = []
    rows: list[_Row] = []
    seen: dict[date, int] = {}
    for number, cells in enumerate(table[1:], start=2):
        def cell(name: str) -> str:
            index = columns.get(name)
            return cells[index].strip() if index is not None and index < len(cells) else ""

        def refuse(column: str, reason: str) -> None:
            errors.append({"row": number, "column": column, "reason": reason})

        days = _parse_days(cell("日期"))
        kind = KIND_WORDS.get(cell("类型").lower())
        name = cell("名称")
        if not cell("日期"):
            refuse("日期", "缺少日期。")
        elif days is None:
            refuse("日期", f"日期“{cell('日期')[:40]}”无法识别，应为 2027-01-01 或 2027-10-01至2027-10-07。")
        elif not days:
            refuse("日期", f"日期范围应从早到晚，且最多 {MAX_RANGE_DAYS} 天。")
        if kind is None:
            refuse("类型", f"类型“{cell('类型')[:20]}”无法识别，应为“放假”或“上班”。")
        if len(name) > 64:
            refuse("名称", "名称最多 64 个字。")
        if not days or kind is None or len(name) > 64:
            continue
        for day in days:
            problem = day_problem(day, kind, today)
            if problem is not None:
                refuse("日期", problem)
                break
            if day in seen:
                refuse("日期", f"{day.isoformat()} 与第 {seen[day]} 行重复。")
                break
            seen[day] = number
            rows.append(_Row(number, day, kind, name))
    if errors:
        raise Invalid(f"文件中有 {len(errors)} 处问题，未导入任何内容；请改正后重新上传。", code="calendar_import_invalid",
                      extra={"errors": errors[:MAX_ERRORS]})
    return rows


async def import_file(
    session: AsyncSession, *, principal: Principal, content: bytes, replace: bool = False, ip: str | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Every row of the file, or none. ``replace``: the years in the file keep only the file's days (the
    notice is the whole year's truth); otherwise days not in the file stay as they were."""
    require_writer(principal)
    now = now or utcnow()
    rows = read_rows(content, now.astimezone(TZ).date())
    revision = await _lock(session)
    result = ImportResult(years=sorted({row.day.year for row in rows}))
    existing = {e.day_on: e for e in await session.scalars(
        select(CalendarDay).where(CalendarDay.day_on.in_([row.day for row in rows])))}
    for row in rows:
        entry = existing.get(row.day)
        if entry is None:
            session.add(CalendarDay(day_on=row.day, kind=row.kind, name=row.name, source=DaySource.imported,
                                    created_at=now, updated_at=now))
            result.created += 1
        elif (entry.kind, entry.name) != (row.kind, row.name):
            entry.kind, entry.name, entry.source, entry.updated_at = row.kind, row.name, DaySource.imported, now
            result.updated += 1
        else:
            result.unchanged += 1
    if replace:
        keep = [row.day for row in rows]
        for year in result.years:
            removed = await session.execute(delete(CalendarDay).where(
                CalendarDay.day_on >= date(year, 1, 1), CalendarDay.day_on <= date(year, 12, 31),
                CalendarDay.day_on.not_in(keep)))
            result.removed += removed.rowcount or 0
    await _touch(session, revision, now)
    await _audit(session, principal, "calendar_day.import", None, ip, years=result.years, created=result.created,
                 updated=result.updated, removed=result.removed, replace=replace)
    return result


def template_csv() -> bytes:
    """The header row to fill in from the notice (UTF-8 with BOM, so Excel opens it in Chinese). No example
    rows: a template uploaded unchanged must not enter made-up days."""
    return codecs.BOM_UTF8 + "日期,类型,名称\r\n".encode()
