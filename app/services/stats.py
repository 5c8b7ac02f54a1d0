"""Counts the office reports: kept as counters in the same transaction as every action, read cheaply.

"Collected" counts every form; "assigned", "answered", "closed" count forms that ever reached that step;
"declined" counts declined forms (a final state). These live in ``stat_cell`` rows (see the model), so a
read sums a bounded number of cells however many forms exist. "Overdue" depends on the clock, not on an
action, so it is counted live over the partial index of open forms with a deadline: proportional to the
open backlog, never to the whole history.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, and_, delete, func, insert, literal, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.errors import Invalid
from app.models import METRICS, Category, FormStatus, OpinionForm, StatCell, Workroom, utcnow

CellKey = tuple[str, date, int, int]


def month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


# --- writing -----------------------------------------------------------------------------------------


async def record(session: AsyncSession, form: OpinionForm, deltas: Mapping[str, int]) -> None:
    """Add ``deltas`` to the day and month cells of ``form``, in the caller's transaction."""
    deltas = {metric: delta for metric, delta in deltas.items() if delta}
    if not deltas:
        return
    unknown = set(deltas) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {unknown}")
    day = form.submitted_on
    workroom_id = form.workroom_id or 0
    category_id = form.category_id or 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = StatCell.__table__
    # Day cell first, then month cell: every transaction takes these row locks in the same order.
    for grain, period in (("d", day), ("m", month_start(day))):
        values: dict[str, Any] = {metric: 0 for metric in METRICS}
        values.update(deltas)
        statement = insert(table).values(
            grain=grain, period=period, workroom_id=workroom_id, category_id=category_id,
            month=month_start(day), **values,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["grain", "period", "workroom_id", "category_id"],
            set_={metric: table.c[metric] + delta for metric, delta in deltas.items()},
        )
        await session.execute(statement)


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
    conditions.append(_period_condition(flt.date_from, flt.date_to))
    return conditions


def _period_condition(start: date | None, end: date | None) -> ColumnElement[bool]:
    """Month cells for the whole months inside [start, end], day cells for the ragged ends."""
    if start is None and end is None:
        return StatCell.grain == "m"
    # Whole months run from ``months_from`` (inclusive) to ``months_to`` (exclusive).
    months_from = None if start is None else (start if start.day == 1 else _next_month(start))
    months_to = None
    if end is not None:
        months_to = _next_month(end) if end + timedelta(days=1) == _next_month(end) else month_start(end)
    if months_from is not None and months_to is not None and months_from >= months_to:
        # No whole month inside the range: day cells only.
        return and_(StatCell.grain == "d", StatCell.period >= start, StatCell.period <= end)
    month_part = [StatCell.grain == "m"]
    if months_from is not None:
        month_part.append(StatCell.period >= months_from)
    if months_to is not None:
        month_part.append(StatCell.period < months_to)
    parts: list[ColumnElement[bool]] = [and_(*month_part)]
    if start is not None and months_from is not None and start < months_from:
        parts.append(and_(StatCell.grain == "d", StatCell.period >= start, StatCell.period < months_from))
    if end is not None and months_to is not None and months_to <= end:
        parts.append(and_(StatCell.grain == "d", StatCell.period >= months_to, StatCell.period <= end))
    return or_(*parts)


def _sums() -> list[Any]:
    return [func.coalesce(func.sum(StatCell.__table__.c[m]), 0).label(m) for m in METRICS]


def _overdue_query(flt: StatsFilter, now: datetime):  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(OpinionForm).where(
        OpinionForm.status == FormStatus.assigned, OpinionForm.due_at < now
    )
    if flt.workroom_id is not None:
        query = query.where(OpinionForm.workroom_id == flt.workroom_id)
    if flt.category_id is not None:
        query = query.where(OpinionForm.category_id == flt.category_id)
    if flt.date_from is not None:
        query = query.where(OpinionForm.submitted_on >= flt.date_from)
    if flt.date_to is not None:
        query = query.where(OpinionForm.submitted_on <= flt.date_to)
    return query


def _finish(counts: dict[str, int], overdue: int) -> dict[str, Any]:
    counts = {m: int(counts.get(m) or 0) for m in METRICS}
    counts["overdue"] = int(overdue)
    collected = counts["collected"]
    counts["answer_rate"] = round(counts["answered"] / collected, 4) if collected else 0.0
    return counts


async def summary(session: AsyncSession, flt: StatsFilter, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    row = (await session.execute(select(*_sums()).where(*_cell_conditions(flt)))).mappings().one()
    overdue = await session.scalar(_overdue_query(flt, now))
    return _finish(dict(row), overdue or 0)


async def _grouped(
    session: AsyncSession, flt: StatsFilter, key: Any, overdue_key: Any, now: datetime
) -> dict[Any, dict[str, Any]]:
    rows = await session.execute(select(key.label("k"), *_sums()).where(*_cell_conditions(flt)).group_by(key))
    counts: dict[Any, dict[str, int]] = {r.k: dict(r._mapping) for r in rows}
    overdue_rows = await session.execute(
        _overdue_query(flt, now).with_only_columns(overdue_key.label("k"), func.count()).group_by(overdue_key)
    )
    overdue: dict[Any, int] = defaultdict(int)
    for k, n in overdue_rows:
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


async def recount(session: AsyncSession) -> dict[CellKey, dict[str, int]]:
    """Every cell as it should be, recounted from the forms themselves."""
    rows = await session.execute(
        select(
            OpinionForm.submitted_on,
            func.coalesce(OpinionForm.workroom_id, 0),
            func.coalesce(OpinionForm.category_id, 0),
            func.count().label("collected"),
            func.count(OpinionForm.first_assigned_at).label("assigned"),
            func.count(OpinionForm.first_answered_at).label("answered"),
            func.count(OpinionForm.closed_at).label("closed"),
            func.count(OpinionForm.declined_at).label("declined"),
        ).group_by(OpinionForm.submitted_on, OpinionForm.workroom_id, OpinionForm.category_id)
    )
    cells: dict[CellKey, dict[str, int]] = defaultdict(lambda: {m: 0 for m in METRICS})
    for day, workroom_id, category_id, *values in rows:
        for grain, period in (("d", day), ("m", month_start(day))):
            cell = cells[(grain, period, workroom_id, category_id)]
            for metric, value in zip(METRICS, values, strict=True):
                cell[metric] += value
    return dict(cells)


async def stored(session: AsyncSession) -> dict[CellKey, dict[str, int]]:
    cells = {}
    for cell in await session.scalars(select(StatCell)):
        values = {m: getattr(cell, m) for m in METRICS}
        if any(values.values()):
            cells[(cell.grain, cell.period, cell.workroom_id, cell.category_id)] = values
    return cells


async def verify(session: AsyncSession) -> list[dict[str, Any]]:
    """The differences between the counters and a recount; empty when they agree."""
    expected, actual = await recount(session), await stored(session)
    zero = {m: 0 for m in METRICS}
    differences = []
    for key in sorted(set(expected) | set(actual), key=lambda k: (k[0], k[1], k[2], k[3])):
        want, have = expected.get(key, zero), actual.get(key, zero)
        if want != have:
            grain, period, workroom_id, category_id = key
            differences.append({
                "grain": grain, "period": period.isoformat(), "workroom_id": workroom_id,
                "category_id": category_id, "expected": want, "stored": have,
            })
    return differences


# --- rebuilding --------------------------------------------------------------------------------------


def _month_of(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.cast(func.date_trunc("month", column), Date)
    return func.date(column, "start of month")


async def rebuild(session: AsyncSession) -> int:
    """Recompute every cell from the forms, set-based, in the caller's transaction.

    For bulk loads (benchmarks, imports) and as the repair after ``verify`` finds a difference. Takes
    the counters' lock for the whole table, so run it when no one is submitting. Returns the cell count.
    """
    dialect = session.get_bind().dialect.name
    table = StatCell.__table__
    if dialect == "postgresql":
        await session.execute(text("LOCK TABLE stat_cell IN EXCLUSIVE MODE"))
    await session.execute(delete(StatCell))
    day_rows = select(
        literal("d"),
        OpinionForm.submitted_on,
        func.coalesce(OpinionForm.workroom_id, 0),
        func.coalesce(OpinionForm.category_id, 0),
        _month_of(OpinionForm.submitted_on, dialect),
        func.count(),
        func.count(OpinionForm.first_assigned_at),
        func.count(OpinionForm.first_answered_at),
        func.count(OpinionForm.closed_at),
        func.count(OpinionForm.declined_at),
    ).group_by(OpinionForm.submitted_on, OpinionForm.workroom_id, OpinionForm.category_id)
    columns = ["grain", "period", "workroom_id", "category_id", "month", *METRICS]
    await session.execute(insert(table).from_select(columns, day_rows))
    month_rows = select(
        literal("m"), table.c.month, table.c.workroom_id, table.c.category_id, table.c.month,
        *[func.sum(table.c[m]) for m in METRICS],
    ).where(table.c.grain == "d").group_by(table.c.month, table.c.workroom_id, table.c.category_id)
    await session.execute(insert(table).from_select(columns, month_rows))
    return int(await session.scalar(select(func.count()).select_from(StatCell)) or 0)
