"""Counts the office reports: kept as counters in the same transaction as every action, read cheaply.

"Collected" counts every form; "assigned", "answered", "closed" count forms that ever reached that step;
"declined" counts declined forms (a final state). These live in ``stat_cell`` rows (see the model), so a
read sums a bounded number of cells however many forms exist. "Overdue" depends on the clock, not on an
action, so it is counted live over the partial index of open forms with a deadline: proportional to the
open backlog, never to the whole history. The summary's ``current`` (forms in each state now) is counted
live the same way, over the status index (see "forms in each state now" below).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, and_, case, delete, func, insert, literal, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.config import TZ
from app.errors import Invalid
from app.models import (
    ANSWER_BUCKETS,
    METRICS,
    UNREPORTED,
    Category,
    EventType,
    FormEvent,
    FormStatus,
    HandlingUnit,
    OpinionForm,
    Representative,
    StatCell,
    StatOwnerCell,
    Workroom,
    utcnow,
)
from app.services import deadlines, working_days



def month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


# --- writing -----------------------------------------------------------------------------------------

# What a form adds to the counters is a pure function of its state (``contribution``). Every action
# records ``contribution(after) - contribution(before)``, so the counters equal a recount by
# construction, whatever the action changed: status, satisfaction, or the unit responsible.

# Working days from submission to the first answer, in buckets: (key, label, fewest days, most days).
ANSWER_DAY_BUCKETS: tuple[tuple[str, str, int, int | None], ...] = (
    ("le1", "1 个工作日内", 0, 1),
    ("2-3", "2–3 个工作日", 2, 3),
    ("4-7", "4–7 个工作日", 4, 7),
    ("8-15", "8–15 个工作日", 8, 15),
    ("gt15", "超过 15 个工作日", 16, None),
)


ContributionKey = tuple[str, date, int, int]  # ("cell", day, workroom_id, category_id) | (kind, day, owner_id, 0)
Contribution = dict[ContributionKey, dict[str, int]]


def form_vector(form: OpinionForm) -> dict[str, int]:
    closed = form.status == FormStatus.closed
    return {
        "collected": 1,
        "assigned": int(form.first_assigned_at is not None),
        "answered": int(form.first_answered_at is not None),
        "closed": int(form.closed_at is not None),
        "declined": int(form.declined_at is not None),
        "satisfied": int(closed and form.satisfaction == "satisfied"),
        "basically_satisfied": int(closed and form.satisfaction == "basically_satisfied"),
        "unsatisfied": int(closed and form.satisfaction == "unsatisfied"),
        "on_time": int(bool(form.answered_on_time)),
        "returned": form.returned_count or 0,
        "reopened": form.reopened_count or 0,
        "answer_days": form.answer_working_days or 0,
        # Gauges: the form's state now, so that the cells sum to the forms in each state (``current``).
        "now_submitted": int(form.status == FormStatus.submitted),
        "now_assigned": int(form.status == FormStatus.assigned),
        "now_answered": int(form.status == FormStatus.answered),
        "now_extension": int(form.status == FormStatus.assigned and form.extension_due_at is not None),
        **{metric: int(_in_bucket(form.answer_working_days, least, most))
           for metric, (_, _, least, most) in zip(ANSWER_BUCKETS, ANSWER_DAY_BUCKETS, strict=True)},
    }


def _in_bucket(days: int | None, least: int, most: int | None) -> bool:
    return days is not None and days >= least and (most is None or days <= most)


def contribution(form: OpinionForm) -> Contribution:
    """The form's counts, by the keys it is counted under: its workroom and category, the unit now
    responsible for it, and the representative who entered it."""
    vector = form_vector(form)
    day = form.submitted_on
    result: Contribution = {("cell", day, form.workroom_id or 0, form.category_id or 0): vector}
    if form.unit_id is not None:
        # A unit's "returned" counts the returns it made itself (see ``record_return``), not the form's.
        result[("unit", day, form.unit_id, 0)] = {**vector, "returned": 0}
    if form.entered_by_representative_id is not None:
        result[("rep", day, form.entered_by_representative_id, 0)] = vector
    return result


_TABLES = {
    "cell": (StatCell.__table__, ["grain", "period", "workroom_id", "category_id"]),
    "owner": (StatOwnerCell.__table__, ["grain", "period", "kind", "owner_id"]),
}


async def _apply(
    session: AsyncSession, changes: Mapping[ContributionKey, Mapping[str, int]], grains: tuple[str, ...] = ("d", "m")
) -> None:
    """Add each key's deltas to its cells of each grain (day and month): one upsert per table, however
    many keys."""
    rows: dict[str, list[dict[str, Any]]] = {"cell": [], "owner": []}
    # Keys in one fixed order, and the day row before the month row: concurrent transactions take the row
    # locks in the same order, so they queue instead of deadlocking.
    for key in sorted(changes, key=lambda k: (k[0], k[1], k[2], k[3])):
        deltas = {m: d for m, d in changes[key].items() if d}
        if not deltas:
            continue
        kind, day, first, second = key
        for grain in grains:
            row: dict[str, Any] = dict.fromkeys(METRICS, 0)
            row.update(deltas)
            row.update(grain=grain, period=day if grain == "d" else month_start(day), month=month_start(day))
            if kind == "cell":
                row.update(workroom_id=first, category_id=second)
            else:
                row.update(kind=kind, owner_id=first)
            rows["cell" if kind == "cell" else "owner"].append(row)
    for name, table_rows in rows.items():
        if table_rows:
            # Many parameter sets for one statement compiled once (every metric added, most by 0), rather
            # than a multi-row VALUES that would be compiled again for every batch size.
            await session.execute(_upsert_statement(session, name), table_rows)


def _upsert_statement(session: AsyncSession, name: str) -> Any:
    return _upsert_for(session.get_bind().dialect.name, name)


@functools.cache
def _upsert_for(dialect: str, name: str) -> Any:
    """Built once per dialect and table: a statement is immutable, and building this one (its ``excluded``
    alias copies every column of the table) cost more app CPU than executing it for a batch of forms."""
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table, conflict = _TABLES[name]
    statement = insert_(table)
    return statement.on_conflict_do_update(
        index_elements=conflict, set_={metric: table.c[metric] + statement.excluded[metric] for metric in METRICS}
    )


async def record_change(session: AsyncSession, before: Contribution, after: Contribution) -> None:
    """Apply the difference between two contributions of one form, in the caller's transaction."""
    changes: dict[ContributionKey, dict[str, int]] = {}
    for key in set(before) | set(after):
        old, new = before.get(key, {}), after.get(key, {})
        changes[key] = {m: new.get(m, 0) - old.get(m, 0) for m in METRICS}
    await _apply(session, changes)


async def record_new(session: AsyncSession, forms: Sequence[Any]) -> None:
    """Count newly written forms (mapped, or `forms.NewForm`): their contributions summed, one upsert per
    cell they touch."""
    changes: dict[ContributionKey, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for form in forms:
        for key, vector in contribution(form).items():
            total = changes[key]
            for metric, value in vector.items():
                total[metric] += value
    await _apply(session, changes)


async def record_return(session: AsyncSession, form: OpinionForm, unit_id: int) -> None:
    """A unit returned a form (退回): count it against that unit."""
    await _apply(session, {("unit", form.submitted_on, unit_id, 0): {"returned": 1}})


# --- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsFilter:
    workroom_id: int | None = None
    category_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None


async def resolve_filter(
    session: AsyncSession,
    *,
    workroom: str | None = None,
    category: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> StatsFilter:
    workroom_id = category_id = None
    if workroom:
        workroom_id = await session.scalar(select(Workroom.id).where(Workroom.code == workroom))
        if workroom_id is None:
            raise Invalid(f"工作室 {workroom} 不存在。", code="unknown_workroom")
    if category:
        category_id = await session.scalar(select(Category.id).where(Category.code == category))
        if category_id is None:
            raise Invalid(f"类别 {category} 不存在。", code="unknown_category")
    if date_from and date_to and date_from > date_to:
        raise Invalid("开始日期不能晚于结束日期。", code="invalid_date_range")
    return StatsFilter(workroom_id, category_id, date_from, date_to)


def _cell_conditions(flt: StatsFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.workroom_id is not None:
        conditions.append(StatCell.workroom_id == flt.workroom_id)
    if flt.category_id is not None:
        conditions.append(StatCell.category_id == flt.category_id)
    conditions.append(_period_condition(StatCell, flt.date_from, flt.date_to))
    return conditions


def _period_condition(model: Any, start: date | None, end: date | None) -> ColumnElement[bool]:
    """Month cells for the whole months inside [start, end], day cells for the ragged ends."""
    if start is None and end is None:
        return model.grain == "m"
    # Whole months run from ``months_from`` (inclusive) to ``months_to`` (exclusive).
    months_from = None if start is None else (start if start.day == 1 else _next_month(start))
    months_to = None
    if end is not None:
        months_to = _next_month(end) if end + timedelta(days=1) == _next_month(end) else month_start(end)
    if months_from is not None and months_to is not None and months_from >= months_to:
        # No whole month inside the range: day cells only.
        return and_(model.grain == "d", model.period >= start, model.period <= end)
    month_part = [model.grain == "m"]
    if months_from is not None:
        month_part.append(model.period >= months_from)
    if months_to is not None:
        month_part.append(model.period < months_to)
    parts: list[ColumnElement[bool]] = [and_(*month_part)]
    if start is not None and months_from is not None and start < months_from:
        parts.append(and_(model.grain == "d", model.period >= start, model.period < months_from))
    if end is not None and months_to is not None and months_to <= end:
        parts.append(and_(model.grain == "d", model.period >= months_to, model.period <= end))
    return or_(*parts)


def _sums(model: Any = StatCell) -> list[Any]:
    return [func.coalesce(func.sum(model.__table__.c[m]), 0).label(m) for m in METRICS]


def _open_forms(flt: StatsFilter) -> Any:
    return _form_conditions(
        select(func.count()).select_from(OpinionForm).where(OpinionForm.status == FormStatus.assigned), flt)


def _form_conditions(query: Any, flt: StatsFilter) -> Any:
    """``query`` narrowed to the forms ``flt`` selects, read from the forms themselves (not the counters)."""
    if flt.workroom_id is not None:
        query = query.where(OpinionForm.workroom_id == flt.workroom_id)
    if flt.category_id is not None:
        query = query.where(OpinionForm.category_id == flt.category_id)
    if flt.date_from is not None:
        query = query.where(OpinionForm.submitted_on >= flt.date_from)
    if flt.date_to is not None:
        query = query.where(OpinionForm.submitted_on <= flt.date_to)
    return query


def _overdue_query(flt: StatsFilter, now: datetime) -> Any:
    return _open_forms(flt).where(OpinionForm.due_at < now)


def _rate(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


def _finish(counts: Mapping[str, Any], overdue: int) -> dict[str, Any]:
    values = {m: int(counts.get(m) or 0) for m in METRICS if m not in UNREPORTED}
    answer_days = values.pop("answer_days")
    rated = values["satisfied"] + values["basically_satisfied"] + values["unsatisfied"]
    return {
        **values,
        "overdue": int(overdue),
        "answer_rate": _rate(values["answered"], values["collected"]),
        # 满意率: satisfied and basically satisfied among the closed forms whose satisfaction was recorded.
        "satisfaction_rate": _rate(values["satisfied"] + values["basically_satisfied"], rated),
        # 按时答复率: first answers on or before the deadline, among answered forms.
        "on_time_rate": _rate(values["on_time"], values["answered"]),
        "avg_answer_working_days": round(answer_days / values["answered"], 2) if values["answered"] else 0.0,
    }


async def summary(session: AsyncSession, flt: StatsFilter, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    row = (await session.execute(select(*_sums()).where(*_cell_conditions(flt)))).mappings().one()
    overdue = await session.scalar(_overdue_query(flt, now))
    result = _finish(row, overdue or 0)
    # The rest of the supervision ladder, counted like overdue over the open forms' deadline index.
    today = now.astimezone(TZ).date()
    await working_days.load(session)
    warning_until = deadlines.end_of_day(deadlines.last_warning_day(today))
    escalated_before = deadlines.end_of_day(deadlines.last_escalated_day(today))
    result["warning"] = int(await session.scalar(
        _open_forms(flt).where(OpinionForm.due_at >= now, OpinionForm.due_at <= warning_until)) or 0)
    result["escalated"] = int(await session.scalar(
        _open_forms(flt).where(OpinionForm.due_at <= escalated_before, OpinionForm.due_at < now)) or 0)
    result["current"] = _current(row, late=result["overdue"], escalated=result["escalated"])
    return result


# --- forms in each state now -------------------------------------------------------------------------

# What the office acts on: forms in a state now, beside the cumulative counts above. Each equals the total
# of the forms list filtered as ``CURRENT_FILTERS`` says (the dashboard's tiles link there; a test holds
# them equal). The three open statuses and the pending extensions are gauges in the same counter cells
# (``form_vector``'s ``now_*``), so they cost what the cumulative counts cost, whatever the backlog; the
# supervision levels depend on the clock and come from the deadline counts the summary makes anyway.

CURRENT_STATES: tuple[str, ...] = (
    "pending_triage", "in_progress", "awaiting_followup", "overdue", "escalated", "extension_requested",
)

# The forms list's filter (``FormQuery``) that gives exactly the forms of each state.
CURRENT_FILTERS: dict[str, dict[str, Any]] = {
    "pending_triage": {"status": [FormStatus.submitted]},
    "in_progress": {"status": [FormStatus.assigned]},
    "awaiting_followup": {"status": [FormStatus.answered]},
    "overdue": {"supervision": "overdue"},
    "escalated": {"supervision": "escalated"},
    "extension_requested": {"extension_requested": True},
}

_BY_STATUS = {
    FormStatus.submitted: "pending_triage", FormStatus.assigned: "in_progress", FormStatus.answered: "awaiting_followup",
}


def pending_extension_condition() -> ColumnElement[bool]:
    """An assigned form whose unit asked for more time and awaits the office's answer (the forms list's
    ``extension_requested=true``)."""
    return and_(OpinionForm.status == FormStatus.assigned, OpinionForm.extension_due_at.is_not(None))


def _current(cells: Mapping[str, Any], *, late: int, escalated: int) -> dict[str, int]:
    """``cells``: the summed counter cells; ``late``: open forms past their deadline; ``escalated``: those
    of them escalated (督办). The overdue rung (逾期) is the late forms not yet escalated, as the list's
    ``supervision=overdue`` filter has it. ``stats_current.verify`` holds these against the list."""
    return {
        "pending_triage": int(cells["now_submitted"] or 0),
        "in_progress": int(cells["now_assigned"] or 0),
        "awaiting_followup": int(cells["now_answered"] or 0),
        "overdue": late - escalated,
        "escalated": escalated,
        "extension_requested": int(cells["now_extension"] or 0),
    }


# --- days to answer ----------------------------------------------------------------------------------


async def answer_days(session: AsyncSession, flt: StatsFilter, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """How long first answers took: answered forms per bucket of working days, summed from the counter
    cells (``ANSWER_BUCKETS``) like every other count, whatever the number of forms."""
    row = (await session.execute(
        select(*[func.coalesce(func.sum(StatCell.__table__.c[m]), 0).label(m) for m in ANSWER_BUCKETS])
        .where(*_cell_conditions(flt))
    )).mappings().one()
    return [
        {"bucket": key, "label": label, "min_days": least, "max_days": most, "answered": int(row[metric])}
        for metric, (key, label, least, most) in zip(ANSWER_BUCKETS, ANSWER_DAY_BUCKETS, strict=True)
    ]


async def _grouped(
    session: AsyncSession, flt: StatsFilter, key: Any, overdue_key: Any, now: datetime, model: Any = StatCell,
    conditions: list[ColumnElement[bool]] | None = None,
) -> dict[Any, dict[str, Any]]:
    where = _cell_conditions(flt) if conditions is None else conditions
    rows = await session.execute(select(key.label("k"), *_sums(model)).where(*where).group_by(key))
    counts: dict[Any, dict[str, int]] = {r.k: dict(r._mapping) for r in rows}
    overdue_rows = await session.execute(
        _overdue_query(flt, now).with_only_columns(overdue_key.label("k"), func.count()).group_by(overdue_key)
    )
    overdue: dict[Any, int] = defaultdict(int)
    for k, n in overdue_rows:
        if k is not None:
            overdue[k] += n
    return {k: _finish(counts.get(k, {}), overdue.get(k, 0)) for k in set(counts) | set(overdue)}


async def by_workroom(session: AsyncSession, flt: StatsFilter, *, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    grouped = await _grouped(
        session, flt, StatCell.workroom_id, func.coalesce(OpinionForm.workroom_id, 0), now
    )
    workrooms = (await session.scalars(select(Workroom).order_by(Workroom.code))).all()
    items = []
    for workroom in workrooms:
        if flt.workroom_id is not None and workroom.id != flt.workroom_id:
            continue
        if not workroom.active and workroom.id not in grouped:
            continue
        items.append({"workroom": workroom.code, "name": workroom.name, **grouped.get(workroom.id, _finish({}, 0))})
    if 0 in grouped:
        items.append({"workroom": None, "name": "线上及其他", **grouped[0]})
    return items


async def by_category(session: AsyncSession, flt: StatsFilter, *, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    grouped = await _grouped(
        session, flt, StatCell.category_id, func.coalesce(OpinionForm.category_id, 0), now
    )
    categories = (await session.scalars(select(Category).order_by(Category.sort_order, Category.id))).all()
    items = []
    for category in categories:
        if flt.category_id is not None and category.id != flt.category_id:
            continue
        items.append({"category": category.code, "name": category.name, **grouped.get(category.id, _finish({}, 0))})
    if 0 in grouped:
        items.append({"category": None, "name": "未分类", **grouped[0]})
    return items


async def _by_owner(
    session: AsyncSession, flt: StatsFilter, now: datetime | None, *, kind: str, model: Any, form_owner: Any,
    key: str,
) -> list[dict[str, Any]]:
    if flt.workroom_id is not None or flt.category_id is not None:
        raise Invalid("按承办单位或党代表统计只支持 from/to 筛选。", code="unsupported_filter")
    grouped = await _grouped(
        session, flt, StatOwnerCell.owner_id, form_owner, now or utcnow(), model=StatOwnerCell,
        conditions=[StatOwnerCell.kind == kind, _period_condition(StatOwnerCell, flt.date_from, flt.date_to)],
    )
    owners = (await session.scalars(select(model).order_by(model.id))).all()
    return [
        {key: owner.id, "name": owner.name, **grouped.get(owner.id, _finish({}, 0))}
        for owner in owners
        if owner.active or owner.id in grouped
    ]


async def by_unit(session: AsyncSession, flt: StatsFilter, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per handling unit: the forms each unit is now responsible for; "returned" counts its own returns."""
    return await _by_owner(session, flt, now, kind="unit", model=HandlingUnit, form_owner=OpinionForm.unit_id,
                           key="unit_id")


async def by_representative(session: AsyncSession, flt: StatsFilter, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per representative: the forms each one entered (at a workroom, a service point or by phone)."""
    return await _by_owner(session, flt, now, kind="rep", model=Representative,
                           form_owner=OpinionForm.entered_by_representative_id, key="representative_id")


async def monthly(session: AsyncSession, flt: StatsFilter, *, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    cell_rows = await session.execute(
        select(StatCell.month.label("k"), *_sums()).where(*_cell_conditions(flt)).group_by(StatCell.month)
    )
    counts = {r.k: dict(r._mapping) for r in cell_rows}
    # Overdue forms are few: group their submission days by month here rather than in dialect-specific SQL.
    overdue: dict[date, int] = defaultdict(int)
    day_rows = await session.execute(
        _overdue_query(flt, now)
        .with_only_columns(OpinionForm.submitted_on, func.count())
        .group_by(OpinionForm.submitted_on)
    )
    for day, n in day_rows:
        overdue[month_start(day)] += n
    months = sorted(set(counts) | set(overdue))
    return [{"month": m.strftime("%Y-%m"), **_finish(counts.get(m, {}), overdue.get(m, 0))} for m in months]


def etag_for(payload: Any) -> str:
    """A weak ETag over the counts alone (not ``as_of``), so it changes only when a count changes."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f'W/"{digest}"'


# --- verifying ---------------------------------------------------------------------------------------

CellId = tuple[str, str, date, Any, int]  # (table "cell" | "unit" | "rep", grain, period, first key, second key)


# What ``contribution`` reads of a form: the recount streams these columns, not whole ORM objects.
_RECOUNTED = (
    "status", "first_assigned_at", "first_answered_at", "closed_at", "declined_at", "satisfaction",
    "answered_on_time", "returned_count", "reopened_count", "answer_working_days", "extension_due_at",
    "submitted_on", "workroom_id", "category_id", "unit_id", "entered_by_representative_id",
)


async def recount(
    session: AsyncSession, *, start: date | None = None, end: date | None = None
) -> dict[CellId, dict[str, int]]:
    """Every cell as it should be, recounted from the forms (and the returns recorded as events); with
    ``start``/``end`` (first days of months), only the cells of forms submitted in ``[start, end)``."""
    cells: dict[CellId, dict[str, int]] = defaultdict(lambda: {m: 0 for m in METRICS})

    def add(key: ContributionKey, vector: Mapping[str, int]) -> None:
        kind, day, first, second = key
        for grain, period in (("d", day), ("m", month_start(day))):
            cell = cells[(kind, grain, period, first, second)]
            for metric in METRICS:
                cell[metric] += vector.get(metric, 0)

    def within(query: Any) -> Any:
        if start is not None:
            query = query.where(OpinionForm.submitted_on >= start)
        if end is not None:
            query = query.where(OpinionForm.submitted_on < end)
        return query

    columns = [OpinionForm.__table__.c[name] for name in _RECOUNTED]
    forms = await session.stream(within(select(*columns)).execution_options(yield_per=5000))
    async for form in forms:
        for key, vector in contribution(form).items():  # type: ignore[arg-type]
            add(key, vector)
    returns = await session.execute(within(
        select(OpinionForm.submitted_on, FormEvent.unit_id)
        .join(FormEvent, FormEvent.form_id == OpinionForm.id)
        .where(FormEvent.type == EventType.returned, FormEvent.unit_id.is_not(None))
    ))
    for day, unit_id in returns:
        add(("unit", day, unit_id, 0), {"returned": 1})
    return {key: values for key, values in cells.items() if any(values.values())}


async def stored(
    session: AsyncSession, *, start: date | None = None, end: date | None = None
) -> dict[CellId, dict[str, int]]:
    """The cells as stored; with ``start``/``end``, those whose period is in ``[start, end)``."""
    cells: dict[CellId, dict[str, int]] = {}
    for model in (StatCell, StatOwnerCell):
        table = model.__table__
        query = select(*table.c)  # rows, not ORM objects: nothing is left in the session's identity map
        if start is not None:
            query = query.where(table.c.period >= start)
        if end is not None:
            query = query.where(table.c.period < end)
        for cell in await session.execute(query):
            values = {m: getattr(cell, m) for m in METRICS}
            if not any(values.values()):
                continue
            if model is StatCell:
                cells[("cell", cell.grain, cell.period, cell.workroom_id, cell.category_id)] = values
            else:
                cells[(cell.kind, cell.grain, cell.period, cell.owner_id, 0)] = values
    return cells


async def verify(session: AsyncSession) -> list[dict[str, Any]]:
    """The differences between the counters and a recount; empty when they agree. (``minyi stats verify``
    also holds ``current`` against the forms list: ``stats_current.verify``.)

    One month at a time, oldest first: memory holds one month's cells, whatever the number of forms
    (10,000,000: issue 18.5); a stored cell outside every month that has forms is a difference too."""
    zero = {m: 0 for m in METRICS}
    differences = []
    for month in await _months(session):
        following = _next_month(month) if month < date(9999, 12, 1) else None
        expected = await recount(session, start=month, end=following)
        actual = await stored(session, start=month, end=following)
        for key in sorted(set(expected) | set(actual), key=lambda k: (k[0], k[1], k[2], k[3], k[4])):
            want, have = expected.get(key, zero), actual.get(key, zero)
            if want != have:
                table, grain, period, first, second = key
                differences.append({
                    "table": table, "grain": grain, "period": period.isoformat(), "key": [first, second],
                    "expected": want, "stored": have,
                })
    return differences


async def _months(session: AsyncSession) -> list[date]:
    """Every month that has forms or stored cells, oldest first: the cells' months from the (small) counter
    tables, the forms' months one index probe each, never a walk over empty months or a scan of the forms."""
    months = {month_start(m) for model in (StatCell, StatOwnerCell)
              for m in await session.scalars(select(model.period).distinct())}
    day = await session.scalar(select(func.min(OpinionForm.submitted_on)))
    while day is not None:
        month = month_start(day)
        months.add(month)
        if month >= date(9999, 12, 1):
            break
        day = await session.scalar(select(func.min(OpinionForm.submitted_on))
                                   .where(OpinionForm.submitted_on >= _next_month(month)))
    return sorted(months)


# --- rebuilding --------------------------------------------------------------------------------------


def _month_of(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.cast(func.date_trunc("month", column), Date)
    return func.date(column, "start of month")


def _vector_sql() -> list[Any]:
    """``form_vector`` as SQL aggregates: keep the two in step (the rebuild test compares them)."""
    closed_with = lambda value: func.sum(  # noqa: E731
        case((and_(OpinionForm.status == FormStatus.closed, OpinionForm.satisfaction == value), 1), else_=0)
    )
    return [
        func.count(),
        func.count(OpinionForm.first_assigned_at),
        func.count(OpinionForm.first_answered_at),
        func.count(OpinionForm.closed_at),
        func.count(OpinionForm.declined_at),
        closed_with("satisfied"),
        closed_with("basically_satisfied"),
        closed_with("unsatisfied"),
        func.sum(case((OpinionForm.answered_on_time.is_(True), 1), else_=0)),
        func.sum(OpinionForm.returned_count),
        func.sum(OpinionForm.reopened_count),
        func.sum(func.coalesce(OpinionForm.answer_working_days, 0)),
        *[func.sum(case((OpinionForm.status == status, 1), else_=0)) for status in _BY_STATUS],
        func.sum(case((pending_extension_condition(), 1), else_=0)),
        *[func.sum(case((_bucket_sql(least, most), 1), else_=0)) for _, _, least, most in ANSWER_DAY_BUCKETS],
    ]


def _bucket_sql(least: int, most: int | None) -> ColumnElement[bool]:
    days = OpinionForm.answer_working_days
    return and_(days >= least, days <= most) if most is not None else days >= least


async def rebuild(session: AsyncSession) -> int:
    """Recompute every cell from the forms, set-based, in the caller's transaction.

    For bulk loads (benchmarks, imports) and as the repair after ``verify`` finds a difference. Run it when
    no one is submitting (on PostgreSQL it locks the counter tables). Returns the number of cells.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(text("LOCK TABLE stat_cell, stat_owner_cell IN EXCLUSIVE MODE"))
    await session.execute(delete(StatCell))
    await session.execute(delete(StatOwnerCell))
    month = _month_of(OpinionForm.submitted_on, dialect)
    cell = StatCell.__table__
    await session.execute(insert(cell).from_select(
        ["grain", "period", "workroom_id", "category_id", "month", *METRICS],
        select(literal("d"), OpinionForm.submitted_on, func.coalesce(OpinionForm.workroom_id, 0),
               func.coalesce(OpinionForm.category_id, 0), month, *_vector_sql())
        .group_by(OpinionForm.submitted_on, OpinionForm.workroom_id, OpinionForm.category_id),
    ))
    owner = StatOwnerCell.__table__
    owner_columns = ["grain", "period", "kind", "owner_id", "month", *METRICS]
    for kind, column in (("unit", OpinionForm.unit_id), ("rep", OpinionForm.entered_by_representative_id)):
        vector = _vector_sql()
        if kind == "unit":
            vector[METRICS.index("returned")] = literal(0)  # a unit's returns are counted from events below
        await session.execute(insert(owner).from_select(
            owner_columns,
            select(literal("d"), OpinionForm.submitted_on, literal(kind), column, month, *vector)
            .where(column.is_not(None)).group_by(OpinionForm.submitted_on, column),
        ))
    returns = (await session.execute(
        select(OpinionForm.submitted_on, FormEvent.unit_id, func.count())
        .join(FormEvent, FormEvent.form_id == OpinionForm.id)
        .where(FormEvent.type == EventType.returned, FormEvent.unit_id.is_not(None))
        .group_by(OpinionForm.submitted_on, FormEvent.unit_id)
    )).all()
    await _apply(session, {("unit", day, unit_id, 0): {"returned": n} for day, unit_id, n in returns}, grains=("d",))
    for table, keys in ((cell, ["workroom_id", "category_id"]), (owner, ["kind", "owner_id"])):
        await session.execute(insert(table).from_select(
            ["grain", "period", *keys, "month", *METRICS],
            select(literal("m"), table.c.month, *[table.c[k] for k in keys], table.c.month,
                   *[func.sum(table.c[m]) for m in METRICS])
            .where(table.c.grain == "d").group_by(table.c.month, *[table.c[k] for k in keys]),
        ))
    cells = await session.scalar(select(func.count()).select_from(StatCell))
    owners = await session.scalar(select(func.count()).select_from(StatOwnerCell))
    return int(cells or 0) + int(owners or 0)
