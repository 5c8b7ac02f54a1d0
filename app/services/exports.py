"""Exports: forms (with the list's filters and visibility) and every statistics view, as .xlsx or .csv.

- CSV is UTF-8 with a BOM, so Excel opens the Chinese headers right; a text cell that Excel would read as a
  formula (starting with ``= + - @``, tab or CR) gets a leading apostrophe.
- .xlsx is written by xlsxwriter in ``constant_memory`` mode (each row goes to disk as it is written):
  times are real Excel datetimes in Asia/Shanghai, numbers are numbers, the header row is frozen, text is
  always written as text (never as a formula).
- Forms are read newest first in keyset pages (by id, like the list), each page in its own short
  transaction: memory stays flat however many forms there are, and on SQLite no export holds the write
  lock for longer than one page.
- What an export shows is what the caller may see in GET /api/v1/forms: the same rows, and submitters'
  names and phones only for the office (masked otherwise). Events are never exported, so internal notes and
  the reply's ``internal_note`` cannot leak into a file.
- A big export can run as a job (``ExportJob``): an asyncio task in this process, opening its own sessions,
  writing under ``Settings.export_dir`` and reporting rows written as it goes.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import TZ
from app.db import transaction
from app.errors import Conflict, Invalid, NotFound, PermissionDenied
from app.models import (
    STATUS_LABELS,
    ExportJob,
    ExportStatus,
    OpinionForm,
    Role,
    User,
    utcnow,
)
from app.services import deadlines, disclosure, reference
from app.services import forms as form_service
from app.services import stats as stats_service
from app.services import activities as activity_service  # the activities' statistics sheet (issue 20.2)
from app.services.background import BackgroundTasks
from app.services.auth import Principal

log = logging.getLogger("minyi.exports")

# Forms read per page (and per transaction); progress is reported once a page.
PAGE_SIZE = 1000
# A pending or running job not touched for this long belongs to a process that died.
STALE_AFTER = timedelta(minutes=10)
# Finished jobs' files are deleted after this (swept whenever a job starts).
RETENTION = timedelta(hours=24)

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = {"csv": CSV_MEDIA_TYPE, "xlsx": XLSX_MEDIA_TYPE}
# Report jobs (kind "report", issue 20.4) write the brief as Word or PDF.
REPORT_MEDIA_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "pdf": "application/pdf",
}
BOM = "\ufeff"
XLSX_MAX_TEXT = 32767  # Excel's limit for one cell

CHANNEL_LABELS = {
    "workroom": "工作室", "service_point": "流动服务点", "wechat": "微信", "web": "网页", "phone": "电话",
    "other": "其他",
}
SATISFACTION_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
SUPERVISION_LABELS = {"none": "", "warning": "预警", "overdue": "逾期", "escalated": "督办"}


# --- tables ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    kind: str  # text | int | number | percent | datetime
    width: int
    value: Callable[[Any], Any]


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("是" if value else "否")


def form_columns(*, show_personal: bool, now: datetime) -> list[Column]:
    """The columns of a forms export. Personal data is whole only for the office (``sees_personal_data``)."""

    def supervision(form: OpinionForm) -> str:
        level = deadlines.supervision_level(form.due_at, now, open_=form.status == "assigned")
        return SUPERVISION_LABELS.get(level, level)

    def name(form: OpinionForm) -> str | None:
        return form.submitter_name if show_personal else disclosure.mask_name(form.submitter_name)

    def phone(form: OpinionForm) -> str | None:
        return form.submitter_phone if show_personal else disclosure.mask_phone(form.submitter_phone)

    return [
        Column("编号", "text", 16, lambda f: f.tracking_no),
        Column("状态", "text", 9, lambda f: STATUS_LABELS.get(f.status, f.status)),
        Column("提交时间", "datetime", 18, lambda f: f.submitted_at),
        Column("类别", "text", 10, lambda f: f.category.name if f.category else None),
        Column("工作室", "text", 22, lambda f: f.workroom.name if f.workroom else None),
        Column("渠道", "text", 10, lambda f: CHANNEL_LABELS.get(f.channel, f.channel)),
        Column("意见内容", "text", 60, lambda f: f.content),
        Column("提交人", "text", 10, name),
        Column("联系电话", "text", 14, phone),
        Column("地点", "text", 20, lambda f: f.location),
        Column("同意公开", "text", 8, lambda f: _yes_no(f.public)),
        Column("承办单位", "text", 16, lambda f: f.unit.name if f.unit else None),
        Column("批示", "text", 30, lambda f: f.instructions),
        Column("批办时间", "datetime", 18, lambda f: f.assigned_at),
        Column("办理期限", "datetime", 18, lambda f: f.due_at),
        Column("督办", "text", 6, supervision),
        Column("答复", "text", 60, lambda f: f.reply),
        Column("答复时间", "datetime", 18, lambda f: f.answered_at),
        Column("按时答复", "text", 8, lambda f: _yes_no(f.answered_on_time)),
        Column("答复用时（工作日）", "int", 10, lambda f: f.answer_working_days),
        Column("满意度", "text", 8, lambda f: SATISFACTION_LABELS.get(f.satisfaction or "", f.satisfaction)),
        Column("办结时间", "datetime", 18, lambda f: f.closed_at),
        Column("不予受理理由", "text", 30, lambda f: f.decline_reason),
        Column("退回次数", "int", 8, lambda f: f.returned_count or 0),
        Column("重办次数", "int", 8, lambda f: f.reopened_count or 0),
    ]


# The counts of every statistics view, in the order of the JSON (schemas.stats.Counts).
COUNT_COLUMNS = [
    Column("收集数", "int", 8, lambda r: r["collected"]),
    Column("批办数", "int", 8, lambda r: r["assigned"]),
    Column("答复数", "int", 8, lambda r: r["answered"]),
    Column("办结数", "int", 8, lambda r: r["closed"]),
    Column("不予受理数", "int", 10, lambda r: r["declined"]),
    Column("逾期数", "int", 8, lambda r: r["overdue"]),
    Column("答复率", "percent", 9, lambda r: r["answer_rate"]),
    Column("满意数", "int", 8, lambda r: r["satisfied"]),
    Column("基本满意数", "int", 10, lambda r: r["basically_satisfied"]),
    Column("不满意数", "int", 9, lambda r: r["unsatisfied"]),
    Column("满意率", "percent", 9, lambda r: r["satisfaction_rate"]),
    Column("按时答复数", "int", 10, lambda r: r["on_time"]),
    Column("按时答复率", "percent", 10, lambda r: r["on_time_rate"]),
    Column("退回数", "int", 8, lambda r: r["returned"]),
    Column("重办数", "int", 8, lambda r: r["reopened"]),
    Column("平均答复用时（工作日）", "number", 12, lambda r: r["avg_answer_working_days"]),
]


@dataclass(frozen=True)
class StatsView:
    title: str
    function: str  # the function of app.services.stats
    key_columns: tuple[Column, ...] = ()
    extra_columns: tuple[Column, ...] = ()


STATS_VIEWS: dict[str, StatsView] = {
    "summary": StatsView("统计汇总", "summary", extra_columns=(
        Column("预警数", "int", 8, lambda r: r["warning"]),
        Column("督办数", "int", 8, lambda r: r["escalated"]),
    )),
    "by-workroom": StatsView("按工作室统计", "by_workroom", (
        Column("工作室编码", "text", 12, lambda r: r["workroom"]),
        Column("工作室", "text", 24, lambda r: r["name"]),
    )),
    "by-category": StatsView("按类别统计", "by_category", (
        Column("类别编码", "text", 16, lambda r: r["category"]),
        Column("类别", "text", 12, lambda r: r["name"]),
    )),
    "monthly": StatsView("按月统计", "monthly", (Column("月份", "text", 10, lambda r: r["month"]),)),
    "by-unit": StatsView("按承办单位统计", "by_unit", (
        Column("单位编号", "int", 9, lambda r: r["unit_id"]),
        Column("承办单位", "text", 20, lambda r: r["name"]),
    )),
    "by-representative": StatsView("按党代表统计", "by_representative", (
        Column("党代表编号", "int", 10, lambda r: r["representative_id"]),
        Column("党代表", "text", 12, lambda r: r["name"]),
    )),
}


def file_name(title: str, fmt: str, now: datetime) -> str:
    return f"{title}_{now.astimezone(TZ):%Y%m%d-%H%M}.{fmt}"


# --- CSV ---------------------------------------------------------------------------------------------

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        # Excel runs a cell starting with these as a formula (CSV injection): make it plain text.
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    return value


def csv_bytes(rows: Iterable[Sequence[Any]], *, bom: bool = False) -> bytes:
    buffer = io.StringIO()
    if bom:
        buffer.write(BOM)
    writer = csv.writer(buffer)  # RFC 4180: CRLF, quotes where needed (newlines in text stay in their cell)
    for row in rows:
        writer.writerow([csv_value(v) for v in row])
    return buffer.getvalue().encode("utf-8")


# --- xlsx --------------------------------------------------------------------------------------------


class XlsxTable:
    """One sheet written row by row (``constant_memory``: a written row leaves memory). Blocking: call its
    methods from a worker thread when the table is big."""

    def __init__(self, target: Path | io.BytesIO, *, sheet: str, columns: Sequence[Column]) -> None:
        options: dict[str, Any] = {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
        if isinstance(target, io.BytesIO):
            options = {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
        import xlsxwriter  # imported when a workbook is written: ~2 MB a worker otherwise
        self.workbook = xlsxwriter.Workbook(target if isinstance(target, io.BytesIO) else str(target), options)
        self.sheet = self.workbook.add_worksheet(sheet[:31])
        self.kinds = [c.kind for c in columns]
        header = self.workbook.add_format({"bold": True, "bg_color": "#F2F2F2", "border": 1, "valign": "vcenter"})
        self.formats = {
            "datetime": self.workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
            "percent": self.workbook.add_format({"num_format": "0.00%"}),
            "number": self.workbook.add_format({"num_format": "0.00"}),
            "int": self.workbook.add_format({"num_format": "0"}),
        }
        for index, column in enumerate(columns):
            self.sheet.set_column(index, index, column.width)
        self.sheet.freeze_panes(1, 0)
        for index, column in enumerate(columns):
            self.sheet.write_string(0, index, column.header, header)
        self.row = 1

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        sheet, kinds, formats = self.sheet, self.kinds, self.formats
        for values in rows:
            for col, value in enumerate(values):
                if value is None or value == "":
                    continue
                kind = kinds[col]
                if isinstance(value, datetime):
                    # Excel has no time zones: the wall-clock time in Asia/Shanghai, as people read it.
                    sheet.write_datetime(self.row, col, value.astimezone(TZ).replace(tzinfo=None), formats["datetime"])
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    sheet.write_number(self.row, col, value, formats.get(kind))
                else:
                    # Always a string cell: text starting with "=" stays text, never a formula.
                    sheet.write_string(self.row, col, str(value)[:XLSX_MAX_TEXT])
            self.row += 1

    def close(self) -> None:
        if self.row > 1:
            self.sheet.autofilter(0, 0, self.row - 1, len(self.kinds) - 1)
        self.workbook.close()


# --- forms -------------------------------------------------------------------------------------------


async def validate_form_filter(
    session: AsyncSession, *, principal: Principal, filters: form_service.FormQuery
) -> None:
    """Refuse what would silently give an empty export: an unknown workroom or category, a reversed range."""
    principal.require_staff()
    if filters.workroom and await reference.get_workroom(session, filters.workroom) is None:
        raise Invalid(f"工作室 {filters.workroom} 不存在。", code="unknown_workroom")
    if filters.category and await reference.get_category(session, filters.category) is None:
        raise Invalid(f"类别 {filters.category} 不存在。", code="unknown_category")
    if filters.submitted_from and filters.submitted_to and filters.submitted_from > filters.submitted_to:
        raise Invalid("开始日期不能晚于结束日期。", code="invalid_date_range")


async def check_form_query(
    session: AsyncSession, *, principal: Principal, filters: form_service.FormQuery, now: datetime
) -> None:
    """Run the export's query once (one row) in the request's session: whatever the database makes of the
    filters happens before a streamed answer has sent its status (issue 15, point 2). The filters are
    bounded already (app/schemas/dates.py); this is the belt to those braces."""
    query = await form_service.filtered_query(session, principal=principal, filters=filters, now=now)
    await session.scalars(query.limit(1))


def filter_to_json(filters: form_service.FormQuery) -> dict[str, Any]:
    return filters.as_json()


def filter_from_json(values: dict[str, Any]) -> form_service.FormQuery:
    return form_service.FormQuery.model_validate(values)


async def form_pages(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    filters: form_service.FormQuery,
    columns: Sequence[Column],
    now: datetime,
    max_id: int | None = None,
) -> AsyncIterator[list[list[Any]]]:
    """The rows of the forms ``principal`` may see, newest first, one page (and one transaction) at a time."""
    page_size = PAGE_SIZE
    before: int | None = None
    while True:
        async with transaction(sessionmaker) as session:
            query = await form_service.filtered_query(session, principal=principal, filters=filters, now=now)
            if max_id is not None:
                query = query.where(OpinionForm.id <= max_id)
            if before is not None:
                query = query.where(OpinionForm.id < before)
            forms = list((await session.scalars(query.order_by(OpinionForm.id.desc()).limit(page_size))).unique())
            rows = [[column.value(form) for column in columns] for form in forms]
        if rows:
            yield rows
        if len(forms) < page_size:
            return
        before = forms[-1].id


async def stream_forms_csv(
    sessionmaker: async_sessionmaker[AsyncSession], *, principal: Principal, filters: form_service.FormQuery,
    now: datetime,
) -> AsyncIterator[bytes]:
    """The CSV, a page of rows at a time, as the rows are read."""
    columns = form_columns(show_personal=form_service.sees_personal_data(principal), now=now)
    yield csv_bytes([[c.header for c in columns]], bom=True)
    async for rows in form_pages(sessionmaker, principal=principal, filters=filters, columns=columns, now=now):
        yield csv_bytes(rows)


ProgressCallback = Callable[[int], Awaitable[None]]


async def write_forms(
    path: Path,
    fmt: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    filters: form_service.FormQuery,
    now: datetime,
    max_id: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Write the forms export to ``path``; returns the rows written (the header not counted)."""
    columns = form_columns(show_personal=form_service.sees_personal_data(principal), now=now)
    pages = form_pages(sessionmaker, principal=principal, filters=filters, columns=columns, now=now, max_id=max_id)
    written = 0
    if fmt == "csv":
        with path.open("wb") as out:
            out.write(csv_bytes([[c.header for c in columns]], bom=True))
            async for rows in pages:
                out.write(csv_bytes(rows))
                written += len(rows)
                if on_progress is not None:
                    await on_progress(written)
        return written
    table = await anyio.to_thread.run_sync(lambda: XlsxTable(path, sheet="意见征询表", columns=columns))
    try:
        async for rows in pages:
            await anyio.to_thread.run_sync(table.write_rows, rows)
            written += len(rows)
            if on_progress is not None:
                await on_progress(written)
    finally:
        await anyio.to_thread.run_sync(table.close)
    return written


async def stream_forms_xlsx(
    sessionmaker: async_sessionmaker[AsyncSession], *, principal: Principal, filters: form_service.FormQuery,
    now: datetime, export_dir: Path,
) -> AsyncIterator[bytes]:
    """An .xlsx is a zip, complete only when closed: write it to a temporary file, then send the file."""
    export_dir.mkdir(parents=True, exist_ok=True)
    path = export_dir / f"stream-{secrets.token_hex(8)}.xlsx.part"
    try:
        await write_forms(path, "xlsx", sessionmaker, principal=principal, filters=filters, now=now)
        with path.open("rb") as source:
            while chunk := await anyio.to_thread.run_sync(source.read, 256 * 1024):
                yield chunk
    finally:
        path.unlink(missing_ok=True)


# --- statistics --------------------------------------------------------------------------------------


async def stats_export(
    session: AsyncSession,
    *,
    principal: Principal,
    view: str,
    fmt: str,
    workroom: str | None = None,
    category: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    now: datetime | None = None,
) -> tuple[bytes, str]:
    """One statistics view as a file (a few hundred rows at most, so built in memory); returns the content
    and the file name."""
    principal.require_staff()
    if view == "activities":
        return await _activities_export(session, fmt=fmt, workroom=workroom, category=category,
                                        date_from=date_from, date_to=date_to, now=now or utcnow())
    spec = STATS_VIEWS.get(view)
    if spec is None:
        raise NotFound(f"没有统计视图 {view}。", code="unknown_view")
    now = now or utcnow()
    flt = await stats_service.resolve_filter(
        session, workroom=workroom, category=category, date_from=date_from, date_to=date_to
    )
    result = await getattr(stats_service, spec.function)(session, flt, now=now)
    items = [result] if isinstance(result, dict) else result
    columns = [*spec.key_columns, *COUNT_COLUMNS, *spec.extra_columns]
    rows = [[column.value(item) for column in columns] for item in items]
    if fmt == "csv":
        content = csv_bytes([[c.header for c in columns], *rows], bom=True)
    else:

        def build() -> bytes:
            buffer = io.BytesIO()
            table = XlsxTable(buffer, sheet=spec.title, columns=columns)
            table.write_rows(rows)
            table.close()
            return buffer.getvalue()

        content = await anyio.to_thread.run_sync(build)
    return content, file_name(spec.title, fmt, now)


ACTIVITIES_TITLE = "活动统计"


async def _activities_export(
    session: AsyncSession, *, fmt: str, workroom: str | None, category: str | None, date_from: date | None,
    date_to: date | None, now: datetime,
) -> tuple[bytes, str]:
    """The activities held in the period (issue 20.2): one row per workroom with activities (场次, 参与人次,
    场次 by kind), then 合计, whose numbers are ``activities.activity_counts`` for the same filters."""
    if category:
        raise Invalid("活动统计不按类别筛选，只支持 workroom、from、to。", code="unsupported_filter")
    flt = await stats_service.resolve_filter(session, workroom=workroom, date_from=date_from, date_to=date_to)
    counts = await activity_service.activity_stats(session, date_from=flt.date_from, date_to=flt.date_to,
                                                   workroom_id=flt.workroom_id)
    kinds = list(activity_service.ACTIVITY_KIND_LABELS)
    columns = [
        Column("工作室编码", "text", 12, None), Column("工作室", "text", 24, None),
        Column("活动场次", "int", 9, None), Column("参与人次", "int", 9, None),
        *(Column(activity_service.kind_label(kind), "int", 12, None) for kind in kinds),
    ]
    rows = [[r["workroom"], r["name"], r["activities"], r["attendance"], *(r["by_kind"][k] for k in kinds)]
            for r in counts["by_workroom"]]
    rows.append(["合计", "", counts["activities"], counts["attendance"], *(counts["by_kind"][k] for k in kinds)])
    if fmt == "csv":
        content = csv_bytes([[c.header for c in columns], *rows], bom=True)
    else:

        def build() -> bytes:
            buffer = io.BytesIO()
            table = XlsxTable(buffer, sheet=ACTIVITIES_TITLE, columns=columns)
            table.write_rows(rows)
            table.close()
            return buffer.getvalue()

        content = await anyio.to_thread.run_sync(build)
    return content, file_name(ACTIVITIES_TITLE, fmt, now)


# --- jobs --------------------------------------------------------------------------------------------

FORMS_TITLE = "意见征询表"


async def create_job(
    session: AsyncSession, *, principal: Principal, fmt: str, filters: form_service.FormQuery,
    now: datetime | None = None,
) -> ExportJob:
    """Record a forms export to run in the background (``ExportRunner.start`` once this has committed)."""
    user = principal.require_staff()
    await validate_form_filter(session, principal=principal, filters=filters)
    now = now or utcnow()
    total = await form_service.count_forms(session, principal=principal, filters=filters, now=now)
    job = ExportJob(
        user_id=user.id, kind="forms", format=fmt, filters=filter_to_json(filters), status=ExportStatus.pending,
        progress=0, total=total, created_at=now, updated_at=now,
    )
    session.add(job)
    await session.flush()
    return job


async def get_job(
    session: AsyncSession, *, principal: Principal, job_id: int, now: datetime | None = None
) -> ExportJob:
    """The job, for the user who asked for it or an admin. A job its process stopped touching is failed."""
    user = principal.require_staff()
    job = await session.get(ExportJob, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"导出任务 {job_id} 不存在。", code="export_not_found")
    if job.user_id != user.id and user.role != Role.admin:
        raise PermissionDenied("这是别人的导出任务。", code="export_forbidden")
    now = now or utcnow()
    if job.status in (ExportStatus.pending, ExportStatus.running) and job.updated_at < now - STALE_AFTER:
        job.status = ExportStatus.failed
        job.error = "导出中断（服务已重启），请重新导出。"
        job.finished_at = now
        await session.flush()
    return job


async def job_file(
    session: AsyncSession, *, principal: Principal, job_id: int, export_dir: Path
) -> tuple[Path, str, str]:
    """The finished file: its path, the name to download it as, and its media type."""
    job = await get_job(session, principal=principal, job_id=job_id)
    if job.status == ExportStatus.expired:
        raise NotFound("导出文件已过期删除，请重新导出。", code="export_expired")
    if job.status != ExportStatus.done or not job.file_name:
        detail = job.error or "导出尚未完成，请稍后再下载。"
        raise Conflict(detail, code="export_failed" if job.status == ExportStatus.failed else "export_not_ready")
    path = export_dir / job.file_name
    if not path.is_file():
        raise NotFound("导出文件已不存在，请重新导出。", code="export_expired")
    if job.kind == "report":  # a brief (services/reports.py): named for its period when the job was made
        return path, str(job.filters.get("download_name") or path.name), REPORT_MEDIA_TYPES[job.format]
    return path, file_name(FORMS_TITLE, job.format, job.created_at), MEDIA_TYPES[job.format]


async def _update_job(sessionmaker: async_sessionmaker[AsyncSession], job_id: int, **values: Any) -> None:
    async with transaction(sessionmaker) as session:
        await session.execute(update(ExportJob).where(ExportJob.id == job_id).values(updated_at=utcnow(), **values))


async def _save_progress(sessionmaker: async_sessionmaker[AsyncSession], job_id: int, progress: int) -> None:
    await _update_job(sessionmaker, job_id, progress=progress)


async def _sweep(sessionmaker: async_sessionmaker[AsyncSession], export_dir: Path, now: datetime) -> None:
    """Delete the files of jobs finished more than ``RETENTION`` ago."""
    async with transaction(sessionmaker) as session:
        old = (await session.scalars(
            select(ExportJob).where(ExportJob.status == ExportStatus.done, ExportJob.finished_at < now - RETENTION)
        )).all()
        for job in old:
            if job.file_name:
                (export_dir / job.file_name).unlink(missing_ok=True)
            job.status = ExportStatus.expired
            job.updated_at = now
    # Half-written files a stopped process left behind.
    if export_dir.is_dir():
        for part in export_dir.glob("*.part"):
            if datetime.fromtimestamp(part.stat().st_mtime, tz=now.tzinfo) < now - RETENTION:
                part.unlink(missing_ok=True)


async def run_job(sessionmaker: async_sessionmaker[AsyncSession], *, job_id: int, export_dir: Path) -> None:
    """Run one pending job to ``done`` or ``failed``. Takes the id and opens its own sessions."""
    part: Path | None = None
    try:
        now = utcnow()
        async with transaction(sessionmaker) as session:
            job = await session.get(ExportJob, job_id)
            if job is None or job.status != ExportStatus.pending:
                return
            user = await session.get(User, job.user_id)
            if user is None or not user.active:
                raise PermissionDenied("导出任务的账号已停用。", code="export_forbidden")
            principal = Principal(user=user)
            filters = filter_from_json(job.filters)
            fmt = job.format
            # Forms submitted after the job starts are not in it, so ``total`` holds until the end.
            max_id = int(await session.scalar(select(func.max(OpinionForm.id))) or 0)
            job.total = await form_service.count_forms(session, principal=principal, filters=filters, now=now,
                                                       max_id=max_id)
            job.status, job.started_at, job.updated_at = ExportStatus.running, now, now
        await _sweep(sessionmaker, export_dir, now)
        export_dir.mkdir(parents=True, exist_ok=True)
        name = f"export-{job_id}-{secrets.token_hex(8)}.{fmt}"
        part = export_dir / f"{name}.part"
        written = await write_forms(
            part, fmt, sessionmaker, principal=principal, filters=filters, now=now, max_id=max_id,
            on_progress=lambda n: _save_progress(sessionmaker, job_id, n),
        )
        part.rename(export_dir / name)
        part = None
        await _update_job(sessionmaker, job_id, status=ExportStatus.done, progress=written, total=written,
                          file_name=name, finished_at=utcnow())
    except asyncio.CancelledError:
        await _update_job(sessionmaker, job_id, status=ExportStatus.failed, finished_at=utcnow(),
                          error="导出中断（服务已停止），请重新导出。")
        raise
    except Exception as exc:
        log.exception("export job %s failed", job_id)
        detail = exc.detail if isinstance(exc, PermissionDenied) else "导出失败，请重试。"
        await _update_job(sessionmaker, job_id, status=ExportStatus.failed, finished_at=utcnow(), error=detail)
    finally:
        if part is not None:
            part.unlink(missing_ok=True)


class ExportRunner(BackgroundTasks):
    """The export jobs running in this process (cancelled at shutdown, which marks them failed)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], export_dir: Path) -> None:
        super().__init__()
        self._sessionmaker = sessionmaker
        self._export_dir = export_dir

    async def start(self, job_id: int) -> None:
        """Start the job in the background (async only so that it is called on the event loop)."""
        self.spawn(run_job(self._sessionmaker, job_id=job_id, export_dir=self._export_dir), name=f"export-{job_id}")

    async def start_report(self, job_id: int, settings: Any) -> None:
        """Start a report job (kind "report"): the brief of a period as .docx or .pdf (services/reports.py)."""
        self.spawn(self._report(job_id, settings), name=f"report-{job_id}")

    async def _report(self, job_id: int, settings: Any) -> None:
        from app.services import reports  # imported when a brief is first written: python-docx, fpdf2, charts

        await _sweep(self._sessionmaker, self._export_dir, utcnow())
        await reports.run_job(self._sessionmaker, job_id=job_id, export_dir=self._export_dir, settings=settings)
