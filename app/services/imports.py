"""Imports of representatives, duty rosters and activities (issue 20.2) from the offices' spreadsheets, and
roster, attendance, service point funnel and activity exports to .xlsx (the activities' in the import's own
columns, so an export imports back).

Imports
- A file is .xlsx (read with openpyxl in read-only mode) or CSV (UTF-8 with or without BOM, else GB18030,
  which is what Excel on a Chinese Windows saves). The first row holds Chinese headers (see ``HEADERS``);
  rows are numbered as the spreadsheet numbers them (header = 1); wholly blank rows are skipped.
- Every row is checked — required fields, formats, references (workrooms, representatives), and for
  shifts the overlap rule against each other and the database (``rosters.check_shifts``) — before anything
  is written. Any bad row: nothing is written and the job ends ``failed`` with ``errors``, a list of
  ``{"row", "column", "reason"}``. A good file is written in one transaction (``rosters.add_shifts``
  again checks, with the representatives' rows locked, so a shift added meanwhile still refuses the file).
- A job runs with its own sessions (``run_job`` takes ids and parsed rows): inline for small files, as an
  asyncio task (``ImportRunner``) for big ones. Checking advances ``progress`` a chunk at a time, each step
  in its own short transaction; the write and the job's ``done`` commit together, so ``done`` means written.
- A test may hold a background job's pace (``ImportRunner.pace``, awaited after each committed progress
  step) to see it mid-way; unset, as it always is outside tests, a job only yields to the event loop there.
- A job the process stopped touching (a restart) is failed when read, as export jobs are.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from app.config import TZ
from app.db import transaction
from app.errors import Conflict, Invalid, NotFound, PermissionDenied
from app.models import ImportJob, Representative, Role, Shift, User, Workroom, utcnow
from app.models.reference import RepresentativeLevel
from app.schemas import dates
from app.schemas.reference import PHONE_PATTERN
from app.services import exports as export_service
from app.services import activities as activity_service  # the register of activities (issue 20.2)
from app.models import Activity, ServicePoint  # the register of activities (issue 20.2)
from app.services import reference as reference_service
from app.services import rosters as roster_service
from app.services import service_points as service_point_service
from app.services.auth import Principal
from app.services.background import BackgroundTasks
from app.services.exports import Column

log = logging.getLogger("minyi.imports")

KINDS = ("representatives", "shifts", "activities")
OFFICE = (Role.admin, Role.coordinator)
INLINE_MAX_ROWS = 200  # up to this many rows the request waits for the import; more run as a job
MAX_ROWS = 20_000  # the request body limit (MINYI_MAX_BODY_BYTES, 1 MiB) is reached well before this
CHUNK = 100  # rows checked between two progress reports
MAX_ERRORS = 500  # errors kept on a job (a wholly wrong file would otherwise store one per cell)
STALE_AFTER = timedelta(minutes=10)

# Awaited with (job id, rows checked so far) after each progress step of a background job is committed.
Pace = Callable[[int, int], Awaitable[None]]

# The template's headers, in order. Shifts name their representative by 代表姓名 or 代表编号 (either).
HEADERS: dict[str, list[str]] = {
    "representatives": ["姓名", "层级", "电话", "工作室编号"],
    "shifts": ["工作室编号", "日期", "开始", "结束", "代表姓名", "代表编号"],
    # Activities (issue 20.2): 参加代表 are names separated by 、 (名字#编号 where two share a name);
    # 流动服务点 is a session's number (#12, as exported) or its title; 公开 is 是/否 (blank: 是).
    "activities": ["日期", "类型", "名称", "地点", "工作室", "参加代表", "参与人数", "活动简述", "流动服务点", "公开"],
}
REQUIRED_HEADERS: dict[str, list[str]] = {
    "representatives": ["姓名", "层级"],
    "shifts": ["工作室编号", "日期", "开始", "结束"],
    "activities": ["日期", "名称", "工作室"],
}
# Other words offices use for the same columns.
HEADER_ALIASES = {
    "名字": "姓名", "代表": "姓名", "级别": "层级", "联系电话": "电话", "手机": "电话", "手机号": "电话",
    "工作室": "工作室编号", "工作室代码": "工作室编号", "党代表": "代表姓名", "党代表姓名": "代表姓名",
    "党代表编号": "代表编号", "开始时间": "开始", "结束时间": "结束", "值班日期": "日期",
}
LEVELS = {
    "镇": "town", "镇级": "town", "乡镇": "town", "镇党代表": "town",
    "区": "district", "区级": "district", "县": "district", "区党代表": "district",
    "市": "city", "市级": "city", "市党代表": "city",
    "省": "province", "省级": "province", "省党代表": "province",
    "全国": "national", "国家": "national", "全国党代表": "national",
    **{level.value: level.value for level in RepresentativeLevel},
}
CODE_SEPARATORS = re.compile(r"[、,，;；\s]+")
XLSX_MAGIC = b"PK\x03\x04"


# --- reading a file ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    number: int  # as the spreadsheet numbers it: the header is row 1
    values: dict[str, Any]  # canonical header → the cell (str for CSV; str, number, date, time for .xlsx)


def _header(value: Any, kind: str | None = None) -> str:
    text = "" if value is None else str(value).strip()
    text = text.strip("*＊ ").replace("（", "(").split("(")[0].strip()  # "姓名（必填）" → "姓名"
    return (ACTIVITY_HEADER_ALIASES if kind == "activities" else HEADER_ALIASES).get(text, text)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _xlsx_rows(content: bytes) -> list[list[Any]]:
    import openpyxl  # imported when needed: only imports read spreadsheets

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise Invalid("无法读取该 .xlsx 文件，请用 Excel 另存为 .xlsx 后重试。", code="unreadable_file") from exc
    try:
        sheet = workbook.worksheets[0]
        rows: list[list[Any]] = []
        for values in sheet.iter_rows(values_only=True):
            rows.append(list(values))
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    finally:
        workbook.close()


def _decode(content: bytes) -> str:
    if content.startswith(codecs.BOM_UTF8):
        return content[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise Invalid("无法识别文件编码，请另存为 UTF-8 或 GB18030 编码的 CSV。", code="unreadable_file") from exc


def _csv_rows(content: bytes) -> list[list[Any]]:
    text = _decode(content)
    if "\x00" in text:
        raise Invalid("该文件不是 CSV 文本文件。", code="unsupported_file")
    try:
        return [row for _, row in zip(range(MAX_ROWS + 2), csv.reader(io.StringIO(text, newline="")), strict=False)]
    except csv.Error as exc:
        raise Invalid(f"CSV 格式有误：{exc}", code="unreadable_file") from exc


def read_table(kind: str, file_name: str, content: bytes) -> list[Row]:
    """The data rows of an uploaded file. Blocking (parsing): call it from a worker thread.

    Raises ``Invalid`` for a file that is not .xlsx/.csv, cannot be read, lacks a required column or has
    no data rows; everything about single rows is left to the job."""
    if kind not in KINDS:
        raise Invalid("kind 只能是 representatives、shifts 或 activities。", code="invalid_kind")
    suffix = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if suffix == "xlsx" or (not suffix and content.startswith(XLSX_MAGIC)):
        if not content.startswith(XLSX_MAGIC):
            raise Invalid("文件扩展名为 .xlsx，但内容不是 Excel 工作簿。", code="unsupported_file")
        raw = _xlsx_rows(content)
    elif suffix in ("csv", "txt") or not suffix:
        if content.startswith(XLSX_MAGIC) or content.startswith(b"\xd0\xcf\x11\xe0"):
            raise Invalid("文件内容是 Excel 工作簿，请使用 .xlsx 扩展名上传。", code="unsupported_file")
        raw = _csv_rows(content)
    elif suffix == "xls":
        raise Invalid("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV 后上传。", code="unsupported_file")
    else:
        raise Invalid("只支持 .xlsx 或 .csv 文件。", code="unsupported_file")
    if not raw:
        raise Invalid("文件是空的。", code="empty_file")
    headers = [_header(v, kind) for v in raw[0]]
    known = HEADERS[kind]
    missing = [h for h in REQUIRED_HEADERS[kind] if h not in headers]
    if kind == "shifts" and "代表姓名" not in headers and "代表编号" not in headers:
        missing.append("代表姓名")
    if missing:
        raise Invalid(
            f"缺少必需的列：{'、'.join(missing)}。请使用导入模板（表头：{'、'.join(known)}）。",
            code="missing_columns",
            extra={"errors": [{"row": 1, "column": h, "reason": "缺少此列"} for h in missing]},
        )
    positions = {h: i for i, h in reversed(list(enumerate(headers))) if h in known}  # the first of a repeat
    rows = []
    for number, values in enumerate(raw[1:], start=2):
        cells = {h: (values[i] if i < len(values) else None) for h, i in positions.items()}
        if all(_blank(v) for v in cells.values()):
            continue
        rows.append(Row(number, cells))
    if not rows:
        raise Invalid("文件中没有数据行。", code="empty_file")
    if len(rows) > MAX_ROWS:
        raise Invalid(f"一次最多导入 {MAX_ROWS} 行，请分成几个文件。", code="too_many_rows")
    return rows


def template(kind: str, fmt: str) -> bytes:
    """The header row (and one example row) as .xlsx or .csv (UTF-8 with BOM)."""
    if kind not in KINDS:
        raise NotFound(f"没有 {kind} 类型的导入模板。", code="template_not_found")
    example = {
        "representatives": ["张三", "镇", "13800000000", "LS-01、LS-02"],
        "shifts": ["LS-01", "2026-05-06", "09:00", "11:30", "张三", ""],
        "activities": ["2026-05-06", "集市服务", "洛社菜场党代表集市服务", "洛社菜场东门", "LS-01", "张三、李四", "60",
                       "现场收集意见 12 份，当场答复 5 件。", "", "是"],
    }[kind]
    if fmt == "csv":
        buffer = io.StringIO()
        buffer.write("\ufeff")
        writer = csv.writer(buffer)
        writer.writerow(HEADERS[kind])
        writer.writerow(example)
        return buffer.getvalue().encode("utf-8")
    output = io.BytesIO()
    import xlsxwriter  # imported when a workbook is written: ~2 MB a worker otherwise
    workbook = xlsxwriter.Workbook(output, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False})
    sheet = workbook.add_worksheet("导入模板")
    bold = workbook.add_format({"bold": True, "bg_color": "#F2F2F2", "border": 1})
    text = workbook.add_format({"num_format": "@"})  # phones, codes, dates and times typed as text stay text
    for col, header in enumerate(HEADERS[kind]):
        sheet.set_column(col, col, 16, text)
        sheet.write_string(0, col, header, bold)
        sheet.write_string(1, col, example[col], text)
    sheet.freeze_panes(1, 0)
    workbook.close()
    return output.getvalue()


# --- checking rows -----------------------------------------------------------------------------------


class RowErrors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, row: Row, column: str, reason: str) -> None:
        self.items.append({"row": row.number, "column": column, "reason": reason})

    def sorted(self) -> list[dict[str, Any]]:
        return sorted(self.items, key=lambda e: e["row"])[:MAX_ERRORS]

    def __bool__(self) -> bool:
        return bool(self.items)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a phone or an id typed into a number cell
    return str(value).strip()


def _required_day(row: Any, errors: Any) -> date | None:
    """The row's 日期 (required), or None with the reason added to ``errors`` (the whole bad value quoted,
    cut at 40 characters, when it is a date out of the accepted range)."""
    if _blank(row.values.get("日期")):
        errors.add(row, "日期", "必填")
        return None
    try:
        return _parse_date(row.values.get("日期"))
    except dates.DateRangeError as exc:
        out_of_range = exc.kind == "date_out_of_range"
        errors.add(row, "日期", f"“{_text(row.values.get('日期'))[:40]}”：{exc.message}" if out_of_range
                   else exc.message)
        return None


def _parse_date(value: Any) -> date:
    """A date cell (a real date, or text such as 2026-05-01, 2026/5/1, 2026年5月1日) within the window every
    date input keeps (app/schemas/dates.py); ``dates.DateRangeError`` saying why otherwise."""
    if isinstance(value, datetime):
        return dates.check_date(value.date())
    if isinstance(value, date):
        return dates.check_date(value)
    text = _text(value)
    match = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", text)
    try:
        day = date(*map(int, match.groups())) if match else None
    except ValueError:
        day = None
    if day is None:
        raise dates.DateRangeError("date_invalid", f"“{text[:40]}”不是有效日期，应为 YYYY-MM-DD")
    return dates.check_date(day)


def _parse_time(value: Any) -> time | None:
    if isinstance(value, datetime):
        return value.time().replace(second=0, microsecond=0)
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    if isinstance(value, float) and 0 <= value < 1:  # an Excel time typed as a bare fraction of a day
        minutes = round(value * 24 * 60)
        return time(minutes // 60, minutes % 60)
    match = re.fullmatch(r"(\d{1,2})[:：](\d{2})(?::\d{2})?", _text(value))
    if not match:
        return None
    hours, minutes = map(int, match.groups())
    return time(hours, minutes) if hours < 24 and minutes < 60 else None


def _codes(value: Any) -> list[str]:
    return [c for c in CODE_SEPARATORS.split(_text(value)) if c]


async def _workrooms(session: AsyncSession, codes: set[str]) -> dict[str, Workroom]:
    if not codes:
        return {}
    return {w.code: w for w in await session.scalars(select(Workroom).where(Workroom.code.in_(codes)))}


@dataclass
class RepresentativeItem:
    row: Row
    name: str
    level: str
    phone: str | None
    workroom_codes: list[str]


def check_representative_rows(
    rows: Sequence[Row], errors: RowErrors, *, workrooms: dict[str, Workroom],
    seen: dict[tuple[str, str], int], existing: set[tuple[str, str]],
) -> list[RepresentativeItem]:
    items = []
    for row in rows:
        before = len(errors.items)
        name = _text(row.values.get("姓名"))
        if not name:
            errors.add(row, "姓名", "必填")
        elif len(name) > 64:
            errors.add(row, "姓名", "不能超过 64 个字")
        level_text = _text(row.values.get("层级"))
        level = LEVELS.get(level_text) or LEVELS.get(level_text.lower())
        if not level_text:
            errors.add(row, "层级", "必填")
        elif level is None:
            errors.add(row, "层级", f"“{level_text}”无法识别，应为 镇、区、市、省、全国 之一")
        phone = _text(row.values.get("电话")) or None
        if phone is not None and not re.fullmatch(PHONE_PATTERN, phone):
            errors.add(row, "电话", f"“{phone}”不是有效的电话号码")
        codes = _codes(row.values.get("工作室编号"))
        unknown = [c for c in codes if c not in workrooms]
        if unknown:
            errors.add(row, "工作室编号", f"工作室 {'、'.join(unknown)} 不存在")
        if name and phone:
            key = (name, phone)
            if key in existing:
                errors.add(row, "姓名", f"党代表 {name}（{phone}）已存在")
            elif key in seen:
                errors.add(row, "姓名", f"与第 {seen[key]} 行重复")
            else:
                seen[key] = row.number
        if len(errors.items) == before and level is not None:
            items.append(RepresentativeItem(row, name, level, phone, list(dict.fromkeys(codes))))
    return items


@dataclass
class ShiftItem:
    row: Row
    workroom_id: int
    representative_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass
class People:
    workrooms: dict[str, Workroom]
    by_id: dict[int, Representative]
    by_name: dict[str, list[Representative]]


async def load_people(session: AsyncSession, kind: str, rows: Sequence[Row]) -> People:
    """The workrooms and representatives the file names, in three queries whatever its size."""
    codes = {c for row in rows for c in _codes(row.values.get("工作室编号"))}
    people = People(await _workrooms(session, codes), {}, defaultdict(list))
    if kind == "shifts":
        ids = {int(t) for row in rows if (t := _text(row.values.get("代表编号"))).isdigit() and len(t) < 10}
        names = {n for row in rows if (n := _text(row.values.get("代表姓名")))}
        if ids or names:
            query = select(Representative).where(Representative.id.in_(ids) | Representative.name.in_(names))
            for rep in await session.scalars(query):
                people.by_id[rep.id] = rep
                people.by_name[rep.name].append(rep)
    return people


def check_shift_rows(rows: Sequence[Row], errors: RowErrors, people: People) -> list[ShiftItem]:
    items = []
    for row in rows:
        before = len(errors.items)
        code = _text(row.values.get("工作室编号"))
        workroom = people.workrooms.get(code)
        if not code:
            errors.add(row, "工作室编号", "必填")
        elif workroom is None:
            errors.add(row, "工作室编号", f"工作室 {code} 不存在")
        elif not workroom.active:
            errors.add(row, "工作室编号", f"工作室 {code} 已停用，不能排班")
        day = _required_day(row, errors)
        times = {}
        for column in ("开始", "结束"):
            value = row.values.get(column)
            times[column] = _parse_time(value)
            if _blank(value):
                errors.add(row, column, "必填")
            elif times[column] is None:
                errors.add(row, column, f"“{_text(value)}”不是有效时间，应为 HH:MM")
        if times["开始"] and times["结束"] and times["结束"] <= times["开始"]:
            errors.add(row, "结束", "结束时间必须晚于开始时间")
        representative = _representative(row, errors, people)
        if len(errors.items) == before and workroom and day and representative:
            items.append(ShiftItem(
                row, workroom.id, representative.id,
                datetime.combine(day, times["开始"], tzinfo=TZ), datetime.combine(day, times["结束"], tzinfo=TZ),
            ))
    return items


def _representative(row: Row, errors: RowErrors, people: People) -> Representative | None:
    id_text = _text(row.values.get("代表编号"))
    name = _text(row.values.get("代表姓名"))
    representative: Representative | None = None
    if id_text:
        representative = people.by_id.get(int(id_text)) if id_text.isdigit() and len(id_text) < 10 else None
        if representative is None:
            errors.add(row, "代表编号", f"党代表编号 {id_text} 不存在")
            return None
        if name and name != representative.name:
            errors.add(row, "代表姓名", f"与代表编号 {id_text}（{representative.name}）不符")
            return None
    elif name:
        matches = people.by_name.get(name, [])
        active = [r for r in matches if r.active]
        if not matches:
            errors.add(row, "代表姓名", f"党代表 {name} 不存在")
            return None
        if len(active) > 1:
            errors.add(row, "代表姓名", f"有 {len(active)} 位党代表名为 {name}，请填写代表编号")
            return None
        representative = active[0] if active else matches[0]
    else:
        errors.add(row, "代表姓名", "必填（代表姓名或代表编号填一项）")
        return None
    if not representative.active:
        errors.add(row, "代表姓名" if not id_text else "代表编号", f"党代表 {representative.name} 已停用，不能排班")
        return None
    return representative


def overlap_errors(conflicts: Sequence[dict[str, Any]], items: Sequence[ShiftItem], errors: RowErrors) -> None:
    """``shift_conflict``'s items (their ``index`` is the position in ``items``) as row errors."""
    for conflict in conflicts:
        item = items[conflict["index"]]
        others = sorted(items[i].row.number for i in conflict.get("batch_indexes", []))
        reasons = []
        if others:
            reasons.append(f"与第 {'、'.join(map(str, others))} 行时间重叠")
        if conflict.get("shift_ids"):
            reasons.append(f"与已有值班（编号 {'、'.join(map(str, conflict['shift_ids']))}）时间重叠")
        errors.add(item.row, "开始", "；".join(reasons) + "，同一位代表同一时间不能在两处值班")


# --- jobs --------------------------------------------------------------------------------------------


async def create_job(
    sessionmaker: async_sessionmaker[AsyncSession], *, principal: Principal, kind: str, file_name: str, total: int
) -> int:
    user = principal.require_role(*OFFICE)
    async with transaction(sessionmaker) as session:
        now = utcnow()
        job = ImportJob(user_id=user.id, kind=kind, file_name=file_name[:255], status="pending", progress=0,
                        total=total, imported=0, created_at=now, updated_at=now)
        session.add(job)
        await session.flush()
        return job.id


async def _update_job(sessionmaker: async_sessionmaker[AsyncSession], job_id: int, **values: Any) -> None:
    async with transaction(sessionmaker) as session:
        job = await session.get(ImportJob, job_id)
        if job is not None:
            for name, value in {**values, "updated_at": utcnow()}.items():
                setattr(job, name, value)


async def _finish(session: AsyncSession, job_id: int, **values: Any) -> None:
    job = await session.get(ImportJob, job_id, populate_existing=True)
    assert job is not None
    now = utcnow()
    for name, value in {**values, "updated_at": now, "finished_at": now}.items():
        setattr(job, name, value)
    await session.flush()


async def _check(
    sessionmaker: async_sessionmaker[AsyncSession], *, job_id: int, kind: str, rows: Sequence[Row], errors: RowErrors,
    pace: Pace | None = None,
) -> list[Any]:
    """Check every row a chunk at a time, reporting progress between chunks; the shifts' overlaps last."""
    if kind == "activities":
        return await _check_activities(sessionmaker, job_id=job_id, rows=rows, errors=errors, pace=pace)
    async with transaction(sessionmaker) as session:
        people = await load_people(session, kind, rows)
        seen: dict[tuple[str, str], int] = {}
        existing: set[tuple[str, str]] = set()
        if kind == "representatives":
            names = {n for row in rows if (n := _text(row.values.get("姓名")))}
            existing = {
                (n, p) for n, p in await session.execute(
                    select(Representative.name, Representative.phone).where(Representative.name.in_(names))
                ) if p
            } if names else set()
    items: list[Any] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        if kind == "representatives":
            items += check_representative_rows(chunk, errors, workrooms=people.workrooms, seen=seen, existing=existing)
        else:
            items += check_shift_rows(chunk, errors, people)
        await _update_job(sessionmaker, job_id, progress=start + len(chunk))
        await asyncio.sleep(0)  # let the requests polling this job in
        if pace is not None:
            await pace(job_id, start + len(chunk))
    if kind == "shifts" and items:
        async with transaction(sessionmaker) as session:
            checked = await roster_service.check_shifts(session, _specs(items), lock=False)
        overlap_errors([c.problem_item() for c in checked if c.conflict], items, errors)
    return items


def _specs(items: Sequence[ShiftItem]) -> list[roster_service.ShiftSpec]:
    return [(i.workroom_id, i.representative_id, i.starts_at, i.ends_at) for i in items]


async def _write(session: AsyncSession, *, kind: str, items: Sequence[Any], actor: User | None) -> int:
    if kind == "activities":
        return await _write_activities(session, items=items, actor=actor)
    if kind == "representatives":
        for item in items:
            await reference_service.create_representative(session, data={
                "name": item.name, "level": item.level, "phone": item.phone, "workroom_codes": item.workroom_codes,
            })
        return len(items)
    created = await roster_service.add_shifts(session, shifts=_specs(items), actor=actor)
    return len(created)


async def run_job(
    sessionmaker: async_sessionmaker[AsyncSession], *, job_id: int, kind: str, rows: Sequence[Row], actor_id: int,
    pace: Pace | None = None,
) -> None:
    """Check every row, then write all of them in one transaction, or none. Never raises (but for
    cancellation): an unexpected error fails the job. ``pace``: see ``ImportRunner.pace``."""
    try:
        await _update_job(sessionmaker, job_id, status="running", total=len(rows), progress=0)
        errors = RowErrors()
        items = await _check(sessionmaker, job_id=job_id, kind=kind, rows=rows, errors=errors, pace=pace)
        if errors:
            async with transaction(sessionmaker) as session:
                await _finish(session, job_id, status="failed", errors=errors.sorted(), imported=0)
            return
        try:
            async with transaction(sessionmaker) as session:
                actor = await session.get(User, actor_id)
                imported = await _write(session, kind=kind, items=items, actor=actor)
                await _finish(session, job_id, status="done", progress=len(rows), imported=imported, errors=[])
        except Conflict as exc:
            # A shift written between the check and the write (the write re-checks with the rows locked).
            if exc.code != "shift_conflict":
                raise
            overlap_errors(exc.extra.get("conflicts", []), items, errors)
            async with transaction(sessionmaker) as session:
                await _finish(session, job_id, status="failed", errors=errors.sorted(), imported=0)
    except asyncio.CancelledError:
        await _update_job(sessionmaker, job_id, status="failed", finished_at=utcnow(),
                          errors=[{"row": None, "column": None, "reason": "导入中断（服务已停止），未写入任何数据，请重新导入。"}])
        raise
    except Exception:
        log.exception("import job %s failed", job_id)
        await _update_job(sessionmaker, job_id, status="failed", finished_at=utcnow(),
                          errors=[{"row": None, "column": None, "reason": "导入失败（系统错误），未写入任何数据，请重试。"}])


async def get_job(session: AsyncSession, *, principal: Principal, job_id: int, now: datetime | None = None) -> ImportJob:
    """The job, for the user who started it or an admin. A job its process stopped touching is failed."""
    user = principal.require_staff()
    job = await session.get(ImportJob, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"导入任务 {job_id} 不存在。", code="import_not_found")
    if job.user_id != user.id and user.role != Role.admin:
        raise PermissionDenied("这是别人的导入任务。", code="import_forbidden")
    now = now or utcnow()
    if job.status in ("pending", "running") and job.updated_at < now - STALE_AFTER:
        job.status = "failed"
        job.errors = [{"row": None, "column": None, "reason": "导入中断（服务已重启），未写入任何数据，请重新导入。"}]
        job.finished_at = now
        await session.flush()
    return job


async def read_job(sessionmaker: async_sessionmaker[AsyncSession], *, principal: Principal, job_id: int) -> ImportJob:
    async with transaction(sessionmaker) as session:
        return await get_job(session, principal=principal, job_id=job_id)


async def start_import(
    sessionmaker: async_sessionmaker[AsyncSession], runner: ImportRunner, *, principal: Principal, kind: str,
    file_name: str, content: bytes,
) -> tuple[int, bool]:
    """Read the file (whole-file problems raise Invalid), make the job, and run it: inline when small,
    else in the background. Returns the job id and whether it already finished."""
    user = principal.require_role(*OFFICE)
    rows = await asyncio.to_thread(read_table, kind, file_name, content)
    job_id = await create_job(sessionmaker, principal=principal, kind=kind, file_name=file_name, total=len(rows))
    if len(rows) <= INLINE_MAX_ROWS:
        await run_job(sessionmaker, job_id=job_id, kind=kind, rows=rows, actor_id=user.id)
        return job_id, True
    runner.start(job_id=job_id, kind=kind, rows=rows, actor_id=user.id)
    return job_id, False


class ImportRunner(BackgroundTasks):
    """Import jobs running in this process (cancelled at shutdown, which fails them — nothing is
    half-written, the write is one transaction)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self._sessionmaker = sessionmaker
        # A test's hold on the pace of the jobs started from now on: awaited with (job id, rows checked)
        # after each progress step is committed, so a test can keep a job mid-way (``running``, its
        # progress shown) for as long as it looks, then let it go on. None outside tests.
        self.pace: Pace | None = None

    def start(self, *, job_id: int, kind: str, rows: Sequence[Row], actor_id: int) -> None:
        job = run_job(self._sessionmaker, job_id=job_id, kind=kind, rows=rows, actor_id=actor_id, pace=self.pace)
        self.spawn(job, name=f"import-{job_id}")


# --- exports to .xlsx and CSV ------------------------------------------------------------------------

PLACE_LABELS = {"market": "集市", "village": "村组", "workshop": "车间", "event": "活动", "other": "其他"}
MAX_ROSTER_DAYS = 366


def _xlsx(sheets: Sequence[tuple[str, Sequence[Column], Sequence[Sequence[Any]]]]) -> bytes:
    """Sheets with a bold, frozen header row; dates, times and datetimes as real Excel cells (Asia/Shanghai
    wall clock), numbers as numbers, text always as text. Blocking: call from a worker thread."""
    output = io.BytesIO()
    import xlsxwriter  # imported when a workbook is written: ~2 MB a worker otherwise
    workbook = xlsxwriter.Workbook(output, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False})
    header = workbook.add_format({"bold": True, "bg_color": "#F2F2F2", "border": 1, "valign": "vcenter"})
    formats = {
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "time": workbook.add_format({"num_format": "hh:mm"}),
        "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
        "percent": workbook.add_format({"num_format": "0.00%"}),
        "int": workbook.add_format({"num_format": "0"}),
    }
    for title, columns, rows in sheets:
        sheet = workbook.add_worksheet(title[:31])
        for col, column in enumerate(columns):
            sheet.set_column(col, col, column.width)
            sheet.write_string(0, col, column.header, header)
        sheet.freeze_panes(1, 0)
        for r, values in enumerate(rows, start=1):
            for col, value in enumerate(values):
                kind = columns[col].kind
                if value is None or value == "":
                    continue
                if isinstance(value, datetime):
                    sheet.write_datetime(r, col, value.astimezone(TZ).replace(tzinfo=None), formats["datetime"])
                elif isinstance(value, (date, time)):
                    sheet.write_datetime(r, col, value, formats[kind])
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    sheet.write_number(r, col, value, formats.get(kind))
                else:
                    sheet.write_string(r, col, str(value))
        if rows:
            sheet.autofilter(0, 0, len(rows), len(columns) - 1)
    workbook.close()
    return output.getvalue()


Sheet = tuple[str, Sequence[Column], Sequence[Sequence[Any]]]


async def _render(sheets: Sequence[Sheet], fmt: str) -> bytes:
    """The sheets as one .xlsx, or the first one as CSV (UTF-8 with a BOM, so Excel reads the Chinese)."""
    if fmt == "csv":
        _, columns, rows = sheets[0]
        return export_service.csv_bytes([[column.header for column in columns], *rows], bom=True)
    return await anyio.to_thread.run_sync(_xlsx, sheets)


ROSTER_COLUMNS = [
    Column("工作室", "text", 24, None), Column("日期", "date", 12, None), Column("开始", "time", 8, None),
    Column("结束", "time", 8, None), Column("代表", "text", 12, None), Column("签到时间", "datetime", 20, None),
]


async def roster_file(
    session: AsyncSession, *, principal: Principal, workroom_code: str | None, day_from: date, day_to: date,
    fmt: str = "xlsx",
) -> bytes:
    """Shifts overlapping the Shanghai days [day_from, day_to], of one workroom or all, in start order."""
    principal.require_role(*OFFICE)
    if day_to < day_from:
        raise Invalid("结束日期不能早于开始日期。", code="invalid_range")
    if (day_to - day_from).days + 1 > MAX_ROSTER_DAYS:
        raise Invalid(f"一次最多导出 {MAX_ROSTER_DAYS} 天。", code="range_too_long")
    lower, upper = roster_service.local_day_bounds(day_from, day_to)
    query = select(Shift).where(Shift.starts_at < upper, Shift.ends_at > lower)
    if workroom_code:
        workroom = await reference_service.get_workroom_or_raise(session, workroom_code)
        query = query.where(Shift.workroom_id == workroom.id)
    query = query.options(selectinload(Shift.representative), selectinload(Shift.workroom))
    shifts = list(await session.scalars(query.order_by(Shift.starts_at, Shift.workroom_id, Shift.id)))

    def row(shift: Shift) -> list[Any]:
        starts, ends = shift.starts_at.astimezone(TZ), shift.ends_at.astimezone(TZ)
        return [shift.workroom.name, starts.date(), starts.time().replace(tzinfo=None),
                ends.time().replace(tzinfo=None), shift.representative.name, shift.checked_in_at]

    rows = [row(s) for s in shifts]
    return await _render([("值班表", ROSTER_COLUMNS, rows)], fmt)


ATTENDANCE_KEYS = {
    "representative": [("代表编号", "int", 10, "representative_id"), ("代表", "text", 12, "representative_name")],
    "workroom": [("工作室编号", "text", 12, "workroom_code"), ("工作室", "text", 24, "workroom_name")],
    "month": [("月份", "text", 10, "month")],
}
ATTENDANCE_MEASURES = [
    ("排班数", "int", 8, "planned"), ("签到数", "int", 8, "checked_in"), ("缺勤数", "int", 8, "missed"),
    ("签到率", "percent", 9, "rate"),
]


async def attendance_file(
    session: AsyncSession, *, principal: Principal, day_from: date, day_to: date, group: str, fmt: str = "xlsx"
) -> bytes:
    result = await roster_service.attendance(session, day_from=day_from, day_to=day_to, group=group, principal=principal)
    spec = ATTENDANCE_KEYS[group] + ATTENDANCE_MEASURES
    columns = [Column(h, k, w, None) for h, k, w, _ in spec]
    rows = [[r.get(key) for *_, key in spec] for r in result]
    return await _render([("值班出勤", columns, rows)], fmt)


FUNNEL_MEASURES = [
    ("收集数", "int", 8, "forms_collected"), ("答复数", "int", 8, "answered"), ("满意数", "int", 8, "satisfied"),
    ("基本满意数", "int", 10, "basically_satisfied"), ("不满意数", "int", 9, "unsatisfied"),
    ("答复率", "percent", 9, "answer_rate"), ("满意率", "percent", 9, "satisfaction_rate"),
]
FUNNEL_SESSIONS = [
    ("场次编号", "int", 9, "service_point_id"), ("场次", "text", 24, "title"), ("地点类型", "text", 9, "place_type"),
    ("开始时间", "datetime", 20, "starts_at"), ("工作室编号", "text", 12, "workroom_code"),
]
FUNNEL_REPRESENTATIVES = [("代表编号", "int", 10, "representative_id"), ("代表", "text", 12, "name"),
                          ("场次数", "int", 8, "sessions")]
# A representative's row counts the forms they entered themselves (issue 20.3), not all their sessions' forms.
FUNNEL_REPRESENTATIVE_MEASURES = [("本人录入数", "int", 10, "forms_collected"), *FUNNEL_MEASURES[1:]]


async def funnel_file(
    session: AsyncSession, *, principal: Principal, workroom_code: str | None, day_from: date | None,
    day_to: date | None, fmt: str = "xlsx", by: str = "session",
) -> bytes:
    """Two sheets: one row per service point session (按场次), one per representative (按代表); as CSV, the
    one table ``by`` names (``session`` or ``representative``)."""
    principal.require_role(*OFFICE)
    if day_from and day_to and day_to < day_from:
        raise Invalid("结束日期不能早于开始日期。", code="invalid_range")
    result = await service_point_service.funnel(session, workroom_code=workroom_code, date_from=day_from, date_to=day_to)
    sheets = []
    for title, spec, rows in (
        ("按场次", FUNNEL_SESSIONS + FUNNEL_MEASURES, result.sessions),
        ("按代表", FUNNEL_REPRESENTATIVES + FUNNEL_REPRESENTATIVE_MEASURES, result.representatives),
    ):
        columns = [Column(h, k, w, None) for h, k, w, _ in spec]
        values = [
            [PLACE_LABELS.get(r[key], r[key]) if key == "place_type" else r.get(key) for *_, key in spec] for r in rows
        ]
        sheets.append((title, columns, values))
    if by == "representative":
        sheets.reverse()
    return await _render(sheets, fmt)


# --- activities (issue 20.2): the register's rows in, and out in the same columns --------------------------

ACTIVITY_HEADER_ALIASES = {
    "活动日期": "日期", "举办日期": "日期", "活动类型": "类型", "类别": "类型", "活动名称": "名称", "主题": "名称",
    "活动地点": "地点", "工作室编号": "工作室", "工作室名称": "工作室", "参加的代表": "参加代表", "参加党代表": "参加代表",
    "党代表": "参加代表", "代表": "参加代表", "参加人数": "参与人数", "人数": "参与人数", "参与群众": "参与人数",
    "参与人次": "参与人数", "简述": "活动简述", "活动内容": "活动简述", "内容": "活动简述", "服务点": "流动服务点",
    "流动服务点场次": "流动服务点", "场次": "流动服务点", "是否公开": "公开",
}
# What offices write in 类型, besides the labels and the code words themselves.
ACTIVITY_KIND_WORDS = {
    **{label: kind for kind, label in activity_service.ACTIVITY_KIND_LABELS.items()},
    **{str(kind): str(kind) for kind in activity_service.ACTIVITY_KIND_LABELS},
    "党群服务": "party_service", "党群活动": "party_service", "集市": "market", "集市服务活动": "market",
    "走访活动": "visit", "学习活动": "study", "集中学习": "study", "其它": "other",
}
YES = ("是", "公开", "yes", "y", "true", "1")
NO = ("否", "不公开", "no", "n", "false", "0")
REPRESENTATIVE_WITH_ID = re.compile(r"(.+?)[#＃](\d{1,9})")
SESSION_REFERENCE = re.compile(r"[#＃]?(\d{1,9})(?:\s+(.*))?", re.DOTALL)
_CSV_FORMULA_GUARD = ("'=", "'+", "'-", "'@")  # csv_value's apostrophe before a formula-like text


def _activity_text(value: Any) -> str:
    text = _text(value)
    # The CSV export guards text Excel would run as a formula with an apostrophe: read back as written.
    return text[1:] if text.startswith(_CSV_FORMULA_GUARD) else text


@dataclass
class ActivityReferences:
    workrooms: dict[str, Workroom]  # by code and, when unique, by name
    representatives: dict[str, list[Representative]]  # by name
    representatives_by_id: dict[int, Representative]
    points_by_id: dict[int, Any]
    points_by_title: dict[tuple[int, str], list[Any]]  # (workroom id, title)
    existing: dict[tuple[int, date, str], int]  # (workroom id, day, title) → the activity already recorded


async def _activity_references(session: AsyncSession, rows: Sequence[Row]) -> ActivityReferences:
    """What the file names, read in a few queries whatever its size (workrooms: all of them, a short list)."""
    workrooms: dict[str, Workroom] = {}
    names: dict[str, list[Workroom]] = defaultdict(list)
    for workroom in await session.scalars(select(Workroom)):
        workrooms[workroom.code] = workroom
        names[workroom.name].append(workroom)
    for name, same in names.items():
        if len(same) == 1:  # a name two workrooms share names neither: the code must be written
            workrooms.setdefault(name, same[0])
    rep_names: set[str] = set()
    rep_ids: set[int] = set()
    for row in rows:
        for part in _codes(row.values.get("参加代表")):
            match = REPRESENTATIVE_WITH_ID.fullmatch(part)
            if match:
                rep_ids.add(int(match.group(2)))
            else:
                rep_names.add(part)
    by_name: dict[str, list[Representative]] = defaultdict(list)
    by_id: dict[int, Representative] = {}
    if rep_names or rep_ids:
        for rep in await session.scalars(select(Representative).where(
                Representative.name.in_(rep_names) | Representative.id.in_(rep_ids))):
            by_name[rep.name].append(rep)
            by_id[rep.id] = rep
    point_ids: set[int] = set()
    point_titles: set[str] = set()
    for row in rows:
        text = _activity_text(row.values.get("流动服务点"))
        if not text:
            continue
        match = SESSION_REFERENCE.fullmatch(text)
        if match:
            point_ids.add(int(match.group(1)))
        else:
            point_titles.add(text)
    points_by_id: dict[int, Any] = {}
    points_by_title: dict[tuple[int, str], list[Any]] = defaultdict(list)
    if point_ids or point_titles:
        for point in await session.scalars(select(ServicePoint).where(
                ServicePoint.id.in_(point_ids) | ServicePoint.title.in_(point_titles))):
            points_by_id[point.id] = point
            points_by_title[(point.workroom_id, point.title)].append(point)
    titles = {t for row in rows if (t := _activity_text(row.values.get("名称")))}
    existing: dict[tuple[int, date, str], int] = {}
    if titles:
        for activity_id, workroom_id, held_on, title in await session.execute(
                select(Activity.id, Activity.workroom_id, Activity.held_on, Activity.title)
                .where(Activity.title.in_(titles))):
            existing[(workroom_id, held_on, title)] = activity_id
    return ActivityReferences(workrooms, by_name, by_id, points_by_id, points_by_title, existing)


@dataclass
class ActivityItem:
    row: Row
    data: dict[str, Any]  # what activities.create takes


def _activity_representatives(row: Row, errors: RowErrors, refs: ActivityReferences) -> list[int] | None:
    ids: list[int] = []
    problems: list[str] = []
    for part in _codes(row.values.get("参加代表")):
        match = REPRESENTATIVE_WITH_ID.fullmatch(part)
        if match:
            rep = refs.representatives_by_id.get(int(match.group(2)))
            if rep is None or rep.name != match.group(1).strip():
                problems.append(f"党代表 {part} 不存在（编号与姓名不符）")
                continue
        else:
            matches = refs.representatives.get(part, [])
            active = [r for r in matches if r.active]
            if not matches:
                problems.append(f"党代表 {part} 不存在")
                continue
            if len(active) > 1:
                problems.append(f"有 {len(active)} 位党代表名为 {part}，请写成“{part}#编号”")
                continue
            rep = active[0] if active else matches[0]
        if not rep.active:
            problems.append(f"党代表 {rep.name} 已停用")
            continue
        if rep.id not in ids:
            ids.append(rep.id)
    if len(ids) > activity_service.MAX_REPRESENTATIVES:
        problems.append(f"参加的党代表最多 {activity_service.MAX_REPRESENTATIVES} 位")
    if problems:
        errors.add(row, "参加代表", "；".join(problems))
        return None
    return ids


def _activity_session(row: Row, errors: RowErrors, refs: ActivityReferences, workroom: Workroom | None,
                      day: date | None) -> tuple[bool, int | None]:
    """(fine, the session's id or None): a number (#12, as exported, its title after it optional) or a
    title of one of the workroom's sessions (the one held that day when several share the title)."""
    text = _activity_text(row.values.get("流动服务点"))
    if not text:
        return True, None
    match = SESSION_REFERENCE.fullmatch(text)
    if match:
        point = refs.points_by_id.get(int(match.group(1)))
        title = (match.group(2) or "").strip()
        if point is None:
            errors.add(row, "流动服务点", f"场次 #{match.group(1)} 不存在")
            return False, None
        if title and title != point.title:
            errors.add(row, "流动服务点", f"场次 #{point.id} 的名称是“{point.title}”，与“{title[:40]}”不符")
            return False, None
    else:
        if workroom is None:
            return False, None
        same = refs.points_by_title.get((workroom.id, text), [])
        if len(same) > 1 and day is not None:
            same = [p for p in same if p.starts_at.astimezone(TZ).date() == day] or same
        if not same:
            errors.add(row, "流动服务点", f"{workroom.name}没有名为“{text[:40]}”的场次")
            return False, None
        if len(same) > 1:
            errors.add(row, "流动服务点", f"有 {len(same)} 个名为“{text[:40]}”的场次，请填写场次编号（如 #{same[0].id}）")
            return False, None
        point = same[0]
    if workroom is not None and point.workroom_id != workroom.id:
        errors.add(row, "流动服务点", f"场次 #{point.id}（{point.title}）不属于{workroom.name}")
        return False, None
    return True, point.id


def check_activity_rows(
    rows: Sequence[Row], errors: RowErrors, refs: ActivityReferences, seen: dict[tuple[int, date, str], int],
) -> list[ActivityItem]:
    items = []
    for row in rows:
        before = len(errors.items)
        day = _required_day(row, errors)
        kind_text = _activity_text(row.values.get("类型"))
        kind = (ACTIVITY_KIND_WORDS.get(kind_text) or ACTIVITY_KIND_WORDS.get(kind_text.lower())) if kind_text else "other"
        if kind is None:
            errors.add(row, "类型", f"“{kind_text[:40]}”无法识别，应为 "
                                    f"{'、'.join(activity_service.ACTIVITY_KIND_LABELS.values())} 之一")
        title = _activity_text(row.values.get("名称"))
        if not title:
            errors.add(row, "名称", "必填")
        elif len(title) > activity_service.MAX_TITLE:
            errors.add(row, "名称", f"不能超过 {activity_service.MAX_TITLE} 字（现有 {len(title)} 字）")
        for column, limit in (("地点", activity_service.MAX_PLACE), ("活动简述", activity_service.MAX_ACCOUNT)):
            text = _activity_text(row.values.get(column))
            if len(text) > limit:
                errors.add(row, column, f"不能超过 {limit} 字（现有 {len(text)} 字）")
        workroom_text = _activity_text(row.values.get("工作室"))
        workroom = refs.workrooms.get(workroom_text) if workroom_text else None
        if not workroom_text:
            errors.add(row, "工作室", "必填")
        elif workroom is None:
            errors.add(row, "工作室", f"工作室 {workroom_text[:40]} 不存在（填写编号或名称）")
        elif not workroom.active:
            errors.add(row, "工作室", f"工作室 {workroom_text} 已停用")
            workroom = None
        representative_ids = _activity_representatives(row, errors, refs)
        attendance_cell = row.values.get("参与人数")
        attendance: int | None = 0
        if not _blank(attendance_cell):
            text = _text(attendance_cell)
            attendance = int(text) if text.isdigit() and len(text) <= 6 else None
            if attendance is None or attendance > activity_service.MAX_ATTENDANCE:
                errors.add(row, "参与人数", f"“{text[:40]}”不是 0 至 {activity_service.MAX_ATTENDANCE} 之间的整数")
        public_text = _activity_text(row.values.get("公开")).lower()
        public = True if not public_text or public_text in YES else False if public_text in NO else None
        if public is None:
            errors.add(row, "公开", f"“{public_text[:40]}”应为 是 或 否")
        session_fine, service_point_id = _activity_session(row, errors, refs, workroom, day)
        if workroom is not None and day is not None and title:
            key = (workroom.id, day, title)
            if key in refs.existing:
                errors.add(row, "名称", f"{workroom.name}在 {day.isoformat()} 已登记过同名活动（编号 {refs.existing[key]}）")
            elif key in seen:
                errors.add(row, "名称", f"与第 {seen[key]} 行重复（同一工作室、同一天、同名活动）")
            else:
                seen[key] = row.number
        if len(errors.items) == before and session_fine and workroom and day and kind:
            items.append(ActivityItem(row, {
                "workroom_code": workroom.code, "kind": kind, "title": title, "held_on": day,
                "place": _activity_text(row.values.get("地点")), "attendance": attendance,
                "account": _activity_text(row.values.get("活动简述")), "public": public,
                "representative_ids": representative_ids or [], "service_point_id": service_point_id,
            }))
    return items


async def _check_activities(
    sessionmaker: async_sessionmaker[AsyncSession], *, job_id: int, rows: Sequence[Row], errors: RowErrors,
    pace: Pace | None = None,
) -> list[ActivityItem]:
    async with transaction(sessionmaker) as session:
        refs = await _activity_references(session, rows)
    seen: dict[tuple[int, date, str], int] = {}
    items: list[ActivityItem] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        items += check_activity_rows(chunk, errors, refs, seen)
        await _update_job(sessionmaker, job_id, progress=start + len(chunk))
        await asyncio.sleep(0)  # let the requests polling this job in
        if pace is not None:
            await pace(job_id, start + len(chunk))
    return items


async def _write_activities(session: AsyncSession, *, items: Sequence[ActivityItem], actor: User | None) -> int:
    """Every checked row through the one way an activity is made (activities.create checks each again)."""
    if actor is None:
        raise PermissionDenied("导入者的账号已不存在。", code="forbidden")
    principal = Principal(user=actor)
    for item in items:
        await activity_service.create(session, principal=principal, data=item.data)
    return len(items)


ACTIVITY_COLUMNS = [
    Column("日期", "date", 12, None), Column("类型", "text", 12, None), Column("名称", "text", 28, None),
    Column("地点", "text", 24, None), Column("工作室", "text", 24, None), Column("参加代表", "text", 24, None),
    Column("参与人数", "int", 9, None), Column("活动简述", "text", 48, None), Column("流动服务点", "text", 28, None),
    Column("公开", "text", 6, None),
]


async def activities_file(
    session: AsyncSession, *, principal: Principal, filters: activity_service.ActivityFilter, fmt: str = "xlsx",
) -> bytes:
    """The activities the filters select, oldest first, in the import template's columns: the workroom by
    its name (its code when two share the name), representatives by name (名字#编号 when two active ones
    share it), the session as #编号 and its title, so the file imports again as it is."""
    principal.require_role(*OFFICE)
    activities = await activity_service.for_export(session, principal=principal, filters=filters)
    workroom_names = defaultdict(int)
    for name in await session.scalars(select(Workroom.name)):
        workroom_names[name] += 1
    rep_names = {r.name for a in activities for r in a.representatives}
    shared = defaultdict(int)
    if rep_names:
        for name in await session.scalars(
                select(Representative.name).where(Representative.name.in_(rep_names), Representative.active.is_(True))):
            shared[name] += 1

    def row(activity: Any) -> list[Any]:
        workroom = activity.workroom
        point = activity.service_point
        return [
            activity.held_on, activity_service.kind_label(activity.kind), activity.title, activity.place,
            workroom.name if workroom_names[workroom.name] == 1 else workroom.code,
            "、".join(f"{r.name}#{r.id}" if shared[r.name] > 1 else r.name for r in activity.representatives),
            activity.attendance, activity.account, f"#{point.id} {point.title}" if point else "",
            "是" if activity.public else "否",
        ]

    return await _render([("活动登记", ACTIVITY_COLUMNS, [row(a) for a in activities])], fmt)
