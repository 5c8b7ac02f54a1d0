"""A representative's record of duty (履职档案, issue 20.3): for one representative and a period, the shifts
kept and missed, the service-point sessions attended, the activities, and the forms they entered with what
became of them; and the same, one row per representative, for a workroom. As JSON, .xlsx and PDF.

Every figure is read the way the rest of the app reads it, never a second way:

- shifts starting in the period: ``rosters.attendance_measures`` (planned, checked in, missed = ended
  without a check-in, as the attendance statistics count them); what has not ended and has no check-in is
  upcoming, so scheduled = kept + missed + upcoming, and the attendance rate is kept over kept + missed;
- sessions: ``service_points.sessions_attended`` (the funnel's ``sessions``);
- activities: ``activities.activity_counts``;
- forms: the ones the representative entered (``entered_by_representative_id``), submitted in the period:
  exactly the forms ``GET /api/v1/stats/by-representative`` counts for them, with the same answered,
  closed and satisfaction counts (``stats.form_vector``; tested equal). Answered on the spot: forms with an
  ``answered_on_spot`` event (``workflow.answer_on_spot``), whatever happened to them afterwards. The rates
  as ``service_points.rates`` gives them (null when the denominator is 0).

A workroom's rows are its members' whole records (the same numbers as each one's own record, shifts at
other workrooms included), so a row and the record it links to never disagree.

Who reads what: a representative their own record only (another's is 403 whether it exists or not, so no
id is confirmed); coordinators and admins any record and any workroom; API clients holding ``stats:read``
the JSON of both; handlers and residents nothing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.config import TZ
from app.errors import Invalid, PermissionDenied
from app.models import (
    ACTIVITY_KIND_LABELS,
    EventType,
    FormEvent,
    FormStatus,
    OpinionForm,
    Representative,
    Role,
    Scope,
    Shift,
    representative_workroom,
    utcnow,
)
from app.services import activities as activity_service
from app.services import documents, periods, reference
from app.services import exports as export_service
from app.services import rosters as roster_service
from app.services import service_points as service_point_service
from app.services.auth import OFFICE_ROLES, Principal
from app.services.exports import Column

MAX_RANGE_DAYS = service_point_service.MAX_RANGE_DAYS
LEVEL_LABELS = {"town": "镇党代表", "district": "区党代表", "city": "市党代表", "province": "省党代表",
                "national": "全国党代表"}
SATISFACTION_LEVELS = service_point_service.SATISFACTION_LEVELS
FORM_COUNTS = ("forms_collected", "answered_on_spot", "answered", "closed", *SATISFACTION_LEVELS)
INT_FIGURES = (
    "shifts_scheduled", "shifts_kept", "shifts_missed", "shifts_upcoming", "service_point_sessions", "activities",
    "activity_attendance", "forms_entered", "answered_on_spot", "answered", "closed", *SATISFACTION_LEVELS,
)


# --- the period ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """The days a record covers: a month, quarter or year (``periods.Period``) or explicit from/to."""

    key: str  # 2026-11, 2026-Q4, 2026, or 2026-11-03_2026-12-05
    kind: str  # month | quarter | year | range
    label: str  # 2026年11月, 2026年第四季度, 2026年, 2026年11月3日至2026年12月5日
    first: date
    last: date

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "label": self.label, "first": self.first, "last": self.last}

    @property
    def dates(self) -> str:
        return f"{self.first.isoformat()} 至 {self.last.isoformat()}"


def _invalid(detail: str, *, code: str, field: str) -> Invalid:
    """A 422 naming the query parameter, as validation errors do."""
    return Invalid(detail, code=code, extra={"errors": [{"loc": ["query", field], "msg": detail, "type": code}]})


def _day(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def this_month(today: date | None = None) -> Span:
    today = today or utcnow().astimezone(TZ).date()
    return of_period(periods.parse(f"{today.year:04d}-{today.month:02d}"))


def of_period(period: periods.Period) -> Span:
    return Span(key=period.key, kind=period.kind, label=period.label, first=period.first, last=period.last)


def resolve_span(
    period: str | None = None, date_from: date | None = None, date_to: date | None = None, *, today: date | None = None
) -> Span:
    """``period`` (2026-11, 2026-Q4, 2026), or ``from`` and ``to`` (local days, both inclusive), or neither:
    this month. Both ways at once, one of from/to alone, a reversed or too long range, or a period written
    otherwise: 422 naming the parameter (``invalid_period`` / ``invalid_range``)."""
    if period is not None and period.strip():
        if date_from is not None or date_to is not None:
            raise _invalid("请只用一种方式指定期间：period，或 from 和 to。", code="invalid_period", field="period")
        try:
            return of_period(periods.parse(period))
        except Invalid as exc:
            raise _invalid(exc.detail, code=exc.code, field="period") from None
    if date_from is None and date_to is None:
        return this_month(today)
    if date_from is None or date_to is None:
        missing = "from" if date_from is None else "to"
        raise _invalid("请同时填写开始日期（from）和结束日期（to）。", code="invalid_range", field=missing)
    if date_to < date_from:
        raise _invalid("结束日期不能早于开始日期。", code="invalid_range", field="to")
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise _invalid(f"日期范围不能超过 {MAX_RANGE_DAYS} 天。", code="invalid_range", field="to")
    return Span(
        key=f"{date_from.isoformat()}_{date_to.isoformat()}", kind="range",
        label=f"{_day(date_from)}至{_day(date_to)}", first=date_from, last=date_to,
    )


def period_choices(current: Span, today: date | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """What a page's period picker offers, newest first: the last 12 months, 8 quarters and 3 years, and
    the period shown when it is none of those."""
    today = today or utcnow().astimezone(TZ).date()
    months, quarters, years = [], [], []
    year, month = today.year, today.month
    for _ in range(12):
        months.append(periods.parse(f"{year:04d}-{month:02d}"))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    year, quarter = today.year, (today.month - 1) // 3 + 1
    for _ in range(8):
        quarters.append(periods.parse(f"{year:04d}-Q{quarter}"))
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    years = [periods.parse(f"{today.year - n:04d}") for n in range(3)]
    groups = [("按月", months), ("按季度", quarters), ("按年", years)]
    choices = [(name, [(p.key, p.label) for p in found]) for name, found in groups]
    if all(current.key != key for _, options in choices for key, _ in options):
        choices.insert(0, ("当前", [(current.key, current.label)]))
    return choices


# --- who may read --------------------------------------------------------------------------------------


def _check_client(principal: Principal, fmt: str) -> bool:
    """True when the caller is an API client allowed this read (``stats:read``, JSON only)."""
    if principal.client is None:
        return False
    principal.require_scope(Scope.stats_read)
    if fmt != "json":
        raise PermissionDenied("接口客户端只能读取 JSON 格式的履职档案。", code="json_only")
    return True


def check_record_reader(principal: Principal, representative_id: int, fmt: str = "json") -> None:
    """A representative reads their own record; the office any; ``stats:read`` clients the JSON. Checked
    before the representative is looked up: another's id answers 403 whether it exists or not."""
    if _check_client(principal, fmt):
        return
    user = principal.require_staff()
    if user.role in OFFICE_ROLES:
        return
    if user.role == Role.representative and user.representative_id == representative_id:
        return
    if user.role == Role.representative:
        raise PermissionDenied("只能查看本人的履职档案。", code="not_your_record")
    raise PermissionDenied("当前账号无权查看履职档案。", code="forbidden")


def check_workroom_reader(principal: Principal, fmt: str = "json") -> None:
    """A workroom's records: the office; ``stats:read`` clients the JSON."""
    if _check_client(principal, fmt):
        return
    principal.require_role(*OFFICE_ROLES)


# --- the figures ---------------------------------------------------------------------------------------


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def _shifts(session: AsyncSession, ids: Sequence[int], span: Span, now: datetime) -> dict[int, tuple[int, int, int]]:
    query = (
        select(Shift.representative_id, *roster_service.attendance_measures(now))
        .where(Shift.representative_id.in_(ids), *roster_service.starting_in(span.first, span.last))
        .group_by(Shift.representative_id)
    )
    return {row[0]: (int(row.planned), int(row.checked_in), int(row.missed)) for row in await session.execute(query)}


async def _forms(session: AsyncSession, ids: Sequence[int], span: Span) -> dict[int, dict[str, Any]]:
    """The forms each representative entered, submitted in the span, counted as the statistics count them
    (stats.form_vector: answered = ever answered, closed = ever closed, satisfaction of closed forms)."""
    closed = OpinionForm.status == FormStatus.closed
    on_spot = exists().where(FormEvent.form_id == OpinionForm.id, FormEvent.type == EventType.answered_on_spot)
    query = (
        select(
            OpinionForm.entered_by_representative_id.label("representative_id"),
            func.count(OpinionForm.id).label("forms_collected"),
            _count_if(on_spot).label("answered_on_spot"),
            _count_if(OpinionForm.first_answered_at.is_not(None)).label("answered"),
            _count_if(OpinionForm.closed_at.is_not(None)).label("closed"),
            *(_count_if(and_(closed, OpinionForm.satisfaction == level)).label(level) for level in SATISFACTION_LEVELS),
        )
        .where(
            OpinionForm.entered_by_representative_id.in_(ids),
            OpinionForm.submitted_on >= span.first, OpinionForm.submitted_on <= span.last,
        )
        .group_by(OpinionForm.entered_by_representative_id)
    )
    return {row["representative_id"]: dict(row) for row in (await session.execute(query)).mappings()}


def _finish(values: dict[str, Any]) -> dict[str, Any]:
    """The counts of ``values`` as ints, with the rates computed from them (for a row or for totals)."""
    figures: dict[str, Any] = {key: int(values.get(key) or 0) for key in INT_FIGURES}
    figures["activities_by_kind"] = {kind: int((values.get("activities_by_kind") or {}).get(kind, 0))
                                     for kind in ACTIVITY_KIND_LABELS}
    due = figures["shifts_kept"] + figures["shifts_missed"]
    figures["attendance_rate"] = round(figures["shifts_kept"] / due, 4) if due else None
    rated = service_point_service.rates({**figures, "forms_collected": figures["forms_entered"]})
    figures["answer_rate"], figures["satisfaction_rate"] = rated["answer_rate"], rated["satisfaction_rate"]
    return figures


async def figures(
    session: AsyncSession, *, representative_ids: Sequence[int], span: Span, now: datetime | None = None
) -> dict[int, dict[str, Any]]:
    """Each representative's figures for the span: one grouped query each for shifts, sessions and forms,
    and ``activity_counts`` per representative (the one way activities are counted; a workroom has a few
    representatives, so a few small queries)."""
    now = now or utcnow()
    ids = list(dict.fromkeys(representative_ids))
    shifts = await _shifts(session, ids, span, now)
    sessions = await service_point_service.sessions_attended(
        session, representative_ids=ids, date_from=span.first, date_to=span.last)
    forms = await _forms(session, ids, span)
    result: dict[int, dict[str, Any]] = {}
    for rep_id in ids:
        planned, kept, missed = shifts.get(rep_id, (0, 0, 0))
        activities = await activity_service.activity_counts(
            session, date_from=span.first, date_to=span.last, representative_id=rep_id)
        entered = forms.get(rep_id, {})
        result[rep_id] = _finish({
            "shifts_scheduled": planned, "shifts_kept": kept, "shifts_missed": missed,
            "shifts_upcoming": planned - kept - missed,
            "service_point_sessions": sessions.get(rep_id, 0),
            "activities": activities["activities"], "activity_attendance": activities["attendance"],
            "activities_by_kind": activities["by_kind"],
            "forms_entered": entered.get("forms_collected", 0),
            **{key: entered.get(key, 0) for key in FORM_COUNTS[1:]},
        })
    return result


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    summed: dict[str, Any] = {key: sum(int(row[key]) for row in rows) for key in INT_FIGURES}
    summed["activities_by_kind"] = {
        kind: sum(int(row["activities_by_kind"].get(kind, 0)) for row in rows) for kind in ACTIVITY_KIND_LABELS
    }
    return _finish(summed)


def _is_blank(row: dict[str, Any]) -> bool:
    return not any(row[key] for key in INT_FIGURES)


# --- the records ---------------------------------------------------------------------------------------


async def representative_record(
    session: AsyncSession, *, principal: Principal, representative_id: int, span: Span, fmt: str = "json",
    now: datetime | None = None,
) -> dict[str, Any]:
    """``{"representative", "period", "figures", "as_of"}`` for one representative."""
    check_record_reader(principal, representative_id, fmt)
    now = now or utcnow()
    representative = await reference.get_representative_or_raise(session, representative_id)
    found = await figures(session, representative_ids=[representative.id], span=span, now=now)
    return {
        "representative": {
            "id": representative.id, "name": representative.name, "level": representative.level,
            "workroom_codes": [w.code for w in representative.workrooms],
            "workrooms": [f"{w.name}（{w.code}）" for w in representative.workrooms],
        },
        "period": span.as_json(), "span": span, "figures": found[representative.id], "as_of": now,
    }


async def workroom_records(
    session: AsyncSession, *, principal: Principal, code: str, span: Span, fmt: str = "json",
    now: datetime | None = None,
) -> dict[str, Any]:
    """``{"workroom", "period", "items", "totals", "as_of"}``: one row per representative of the workroom
    (active ones, and inactive ones with anything to show), in id order, and their totals."""
    check_workroom_reader(principal, fmt)
    now = now or utcnow()
    workroom = await reference.get_workroom_or_raise(session, code)
    members = list(await session.scalars(
        select(Representative)
        .join(representative_workroom, representative_workroom.c.representative_id == Representative.id)
        .where(representative_workroom.c.workroom_id == workroom.id)
        .order_by(Representative.id)
    ))
    found = await figures(session, representative_ids=[r.id for r in members], span=span, now=now)
    items = [
        {"representative_id": r.id, "name": r.name, "level": r.level, "active": r.active, **found[r.id]}
        for r in members
        if r.active or not _is_blank(found[r.id])
    ]
    return {
        "workroom": {"code": workroom.code, "name": workroom.name}, "period": span.as_json(), "span": span,
        "items": items, "totals": totals(items), "as_of": now,
    }


# --- files ---------------------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


# (header, xlsx kind, width, key): the columns of a record's row, in the order of the JSON.
FIGURE_COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    ("应值班", "int", 8, "shifts_scheduled"), ("已签到", "int", 8, "shifts_kept"),
    ("缺勤", "int", 6, "shifts_missed"), ("待值班", "int", 8, "shifts_upcoming"),
    ("出勤率", "percent", 9, "attendance_rate"), ("服务点场次", "int", 10, "service_point_sessions"),
    ("活动场次", "int", 9, "activities"), ("活动参与人次", "int", 12, "activity_attendance"),
    *((f"活动：{label}", "int", 12, f"kind:{kind}") for kind, label in ACTIVITY_KIND_LABELS.items()),
    ("录入意见", "int", 9, "forms_entered"), ("当场答复", "int", 9, "answered_on_spot"),
    ("已答复", "int", 8, "answered"), ("已办结", "int", 8, "closed"), ("满意", "int", 6, "satisfied"),
    ("基本满意", "int", 9, "basically_satisfied"), ("不满意", "int", 8, "unsatisfied"),
    ("答复率", "percent", 9, "answer_rate"), ("满意率", "percent", 9, "satisfaction_rate"),
)
KEY_COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    ("统计期间", "text", 16, "period"), ("代表编号", "int", 9, "representative_id"), ("代表", "text", 12, "name"),
)


def _value(row: dict[str, Any], key: str) -> Any:
    if key.startswith("kind:"):
        return row["activities_by_kind"].get(key.removeprefix("kind:"), 0)
    return row.get(key)


def _xlsx(rows: list[dict[str, Any]]) -> bytes:
    spec = KEY_COLUMNS + FIGURE_COLUMNS
    buffer = io.BytesIO()
    table = export_service.XlsxTable(buffer, sheet="履职档案", columns=[Column(h, k, w, None) for h, k, w, _ in spec])
    table.write_rows([[_value(row, key) for *_, key in spec] for row in rows])
    table.close()
    return buffer.getvalue()


def record_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a record's sheet: one for a representative; a workroom's rows then 合计."""
    label = record["span"].label
    if "representative" in record:
        person = record["representative"]
        return [{"period": label, "representative_id": person["id"], "name": person["name"], **record["figures"]}]
    return [{"period": label, **row} for row in record["items"]] + [
        {"period": label, "representative_id": None, "name": "合计", **record["totals"]}]


async def xlsx(record: dict[str, Any]) -> bytes:
    return await anyio.to_thread.run_sync(_xlsx, record_rows(record))


def file_title(record: dict[str, Any]) -> str:
    who = record["representative"]["name"] if "representative" in record else record["workroom"]["code"]
    return f"履职档案_{who}_{record['span'].key}"


def _figure_lines(figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, item, value) for a representative's PDF table."""
    by_kind = "，".join(f"{label} {figures['activities_by_kind'].get(kind, 0)}"
                       for kind, label in ACTIVITY_KIND_LABELS.items() if figures["activities_by_kind"].get(kind))
    return [
        ("值班", "应值班次数", str(figures["shifts_scheduled"])),
        ("值班", "已签到（履职）", str(figures["shifts_kept"])),
        ("值班", "缺勤（结束仍未签到）", str(figures["shifts_missed"])),
        ("值班", "尚未到期", str(figures["shifts_upcoming"])),
        ("值班", "出勤率", _percent(figures["attendance_rate"])),
        ("流动服务点", "参加场次", str(figures["service_point_sessions"])),
        ("活动", "参加活动场次", str(figures["activities"]) + (f"（{by_kind}）" if by_kind else "")),
        ("活动", "群众参与人次", str(figures["activity_attendance"])),
        ("意见征询表", "本人录入", str(figures["forms_entered"])),
        ("意见征询表", "当场答复", str(figures["answered_on_spot"])),
        ("意见征询表", "已答复", str(figures["answered"])),
        ("意见征询表", "已办结", str(figures["closed"])),
        ("意见征询表", "答复率", _percent(figures["answer_rate"])),
        ("满意度", "满意", str(figures["satisfied"])),
        ("满意度", "基本满意", str(figures["basically_satisfied"])),
        ("满意度", "不满意", str(figures["unsatisfied"])),
        ("满意度", "满意率", _percent(figures["satisfaction_rate"])),
    ]


NOTE = ("说明：值班按开始时间计入期间，缺勤指班次结束仍未签到；意见征询表按提交日期计入期间，只计本人录入的"
        "（流动服务点上的意见记在录入人名下）；满意率 =（满意 + 基本满意）÷ 已评价的办结件数。")
ROW_COLUMNS: tuple[tuple[str, float, str], ...] = (
    ("代表", 26, "name"), ("应值班", 16, "shifts_scheduled"), ("已签到", 16, "shifts_kept"),
    ("缺勤", 14, "shifts_missed"), ("出勤率", 18, "attendance_rate"), ("服务点场次", 22, "service_point_sessions"),
    ("活动场次", 18, "activities"), ("录入意见", 18, "forms_entered"), ("当场答复", 18, "answered_on_spot"),
    ("已答复", 16, "answered"), ("已办结", 16, "closed"), ("答复率", 18, "answer_rate"),
    ("满意率", 18, "satisfaction_rate"),
)


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if key.endswith("_rate"):
        return _percent(value)
    return str(value if value is not None else "")


def _pdf(record: dict[str, Any], font: Path | None) -> bytes:
    from fpdf.fonts import FontFace

    span: Span = record["span"]
    person = record.get("representative")
    subject = person["name"] if person else record["workroom"]["name"]
    pdf = documents.new_pdf(
        page_format="A4", orientation="portrait" if person else "landscape", configured_font=font,
        title=f"党代表履职档案 · {subject} · {span.label}",
    )
    pdf.add_page()
    pdf.set_font(documents.FAMILY, "B", 18)
    pdf.cell(0, 12, "党代表履职档案", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(documents.FAMILY, "", 11)
    if person:
        level = LEVEL_LABELS.get(person["level"], person["level"])
        pdf.cell(0, 8, f"代表：{person['name']}（{level}）", new_x="LMARGIN", new_y="NEXT")
        if person["workrooms"]:
            pdf.multi_cell(0, 8, f"所属工作室：{'、'.join(person['workrooms'])}", new_x="LMARGIN", new_y="NEXT")
    else:
        workroom = record["workroom"]
        pdf.cell(0, 8, f"工作室：{workroom['name']}（{workroom['code']}）", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, f"统计期间：{span.label}（{span.dates}）", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    heading = FontFace(emphasis="BOLD", fill_color=(242, 242, 242))
    if person:
        with pdf.table(col_widths=(40, 80, 60), text_align=("LEFT", "LEFT", "RIGHT"), headings_style=heading,
                       line_height=8) as table:
            table.row(("类别", "项目", "数量"))
            for line in _figure_lines(record["figures"]):
                table.row(line)
    else:
        pdf.set_font(documents.FAMILY, "", 10)
        with pdf.table(col_widths=tuple(w for _, w, _ in ROW_COLUMNS), headings_style=heading, line_height=7,
                       text_align=("LEFT", *("RIGHT",) * (len(ROW_COLUMNS) - 1))) as table:
            table.row(tuple(h for h, _, _ in ROW_COLUMNS))
            for row in record["items"]:
                table.row(tuple(_cell(row, key) for _, _, key in ROW_COLUMNS))
            table.row(tuple(_cell({"name": "合计", **record["totals"]}, key) for _, _, key in ROW_COLUMNS),
                      style=FontFace(emphasis="BOLD"))
        if not record["items"]:
            pdf.ln(2)
            pdf.cell(0, 8, "该工作室暂无党代表。", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(documents.FAMILY, "", 9)
    pdf.multi_cell(0, 5, NOTE, new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, f"生成时间：{record['as_of'].astimezone(TZ):%Y-%m-%d %H:%M}（北京时间）· 民意", new_x="LMARGIN",
             new_y="NEXT")
    return documents.pdf_bytes(pdf)


async def pdf(record: dict[str, Any], *, font: Path | None) -> bytes:
    """The record as an A4 PDF (a workroom's in landscape, for its table): fonts embedded, Chinese text."""
    documents.cjk_font(font)  # 503 cjk_font_missing before any work, in the request
    return await anyio.to_thread.run_sync(_pdf, record, font)
