"""Mobile service points (流动服务点): outreach sessions at a market, a village, a workshop, with the
representatives who attend, and the funnel of what each session collected and what became of it.

The public reads the upcoming sessions (the town's calendar); coordinators and admins plan them; staff read
the funnel. Every count is one SQL aggregate (GROUP BY), never a loop over forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement

from app.config import TZ
from app.errors import Conflict, Invalid, NotFound
from app.models import (
    FormStatus,
    OpinionForm,
    Representative,
    Satisfaction,
    ServicePoint,
    Workroom,
    service_point_representative,
    utcnow,
)
from app.schemas import dates
from app.services.pagination import paginate

UPCOMING_DAYS = 30  # the public calendar's default horizon
MAX_RANGE_DAYS = 366 * 3  # a funnel or a list never spans more than this, so no query is unbounded in time
SATISFACTION_LEVELS = tuple(level.value for level in Satisfaction)  # satisfied, basically_satisfied, unsatisfied

# --- reading -----------------------------------------------------------------------------------------


def local_midnight(day: date) -> datetime:
    return dates.day_start(day, TZ)


def _check_range(date_from: date | None, date_to: date | None) -> None:
    if date_from and date_to:
        if date_to < date_from:
            raise Invalid("结束日期不能早于开始日期。", code="invalid_range")
        if (date_to - date_from).days > MAX_RANGE_DAYS:
            raise Invalid(f"日期范围不能超过 {MAX_RANGE_DAYS} 天。", code="invalid_range")


def _time_filters(
    date_from: date | None, date_to: date | None, *, now: datetime | None, upcoming: bool
) -> list[ColumnElement[bool]]:
    """``from``/``to`` are local days, both inclusive, on the session's start. Without either, and when
    ``upcoming``: sessions not yet over that start within the next 30 days."""
    _check_range(date_from, date_to)
    filters: list[ColumnElement[bool]] = []
    if date_from is None and date_to is None:
        if upcoming:
            now = now or utcnow()
            filters += [ServicePoint.ends_at > now, ServicePoint.starts_at < now + timedelta(days=UPCOMING_DAYS)]
        return filters
    if date_from is not None:
        filters.append(ServicePoint.starts_at >= local_midnight(date_from))
    if date_to is not None:
        filters.append(ServicePoint.starts_at < local_midnight(dates.next_day(date_to)))
    return filters


async def _workroom_filter(session: AsyncSession, code: str | None) -> list[ColumnElement[bool]]:
    if not code:
        return []
    workroom_id = await session.scalar(select(Workroom.id).where(Workroom.code == code))
    if workroom_id is None:
        raise NotFound(f"工作室 {code} 不存在。", code="workroom_not_found")
    return [ServicePoint.workroom_id == workroom_id]


def _with_people(query: Select[Any]) -> Select[Any]:
    return query.options(selectinload(ServicePoint.workroom), selectinload(ServicePoint.representatives))


async def list_service_points(
    session: AsyncSession,
    *,
    workroom_code: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    place_type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> tuple[Sequence[ServicePoint], str | None]:
    query = _with_people(select(ServicePoint)).order_by(ServicePoint.starts_at, ServicePoint.id)
    filters = _time_filters(date_from, date_to, now=now, upcoming=True)
    filters += await _workroom_filter(session, workroom_code)
    if place_type:
        filters.append(ServicePoint.place_type == place_type)
    return await paginate(session, query.where(*filters), limit=limit, cursor=cursor)


async def get_service_point_or_raise(session: AsyncSession, service_point_id: int) -> ServicePoint:
    point = await session.scalar(_with_people(select(ServicePoint)).where(ServicePoint.id == service_point_id))
    if point is None:
        raise NotFound(f"流动服务点 {service_point_id} 不存在。", code="service_point_not_found")
    return point


LABEL_JOIN = " · "


def label(point: ServicePoint | None, workroom: Workroom | None = None) -> str:
    """How a page names a point with its workroom (or a workroom alone): "洛社菜市场流动服务点 · 洛社镇党代表
    工作室（镇区）". Names already carry full-width brackets of their own, so a parent is never put in
    brackets after its child (that read "…（…（镇区））")."""
    parts = [point.title if point is not None else "", workroom.name if workroom is not None else ""]
    return LABEL_JOIN.join(part for part in parts if part)


def has_ended(point: ServicePoint, *, now: datetime | None = None) -> bool:
    """A session whose end has passed: its page no longer takes forms from residents."""
    return point.ends_at <= (now or utcnow())


async def with_workroom(session: AsyncSession, service_point_id: int) -> tuple[ServicePoint, Workroom]:
    """A point and its workroom (the public point pages), or 404."""
    point = await session.get(ServicePoint, service_point_id)
    workroom = await session.get(Workroom, point.workroom_id) if point else None
    if point is None or workroom is None:
        raise NotFound("该流动服务点不存在。", code="service_point_not_found")
    return point, workroom


async def latest_of_workroom(session: AsyncSession, workroom_id: int, *, limit: int = 20) -> list[ServicePoint]:
    """A workroom's points, the latest first (the workroom's submit page offers them)."""
    return list(await session.scalars(
        select(ServicePoint).where(ServicePoint.workroom_id == workroom_id)
        .order_by(ServicePoint.starts_at.desc()).limit(limit)
    ))


async def running_for(session: AsyncSession, representative: Representative, *, start: datetime,
                      end: datetime) -> list[ServicePoint]:
    """The points running between ``start`` and ``end`` of the representative's workrooms or with them on
    it, in start order (where a representative may say they collected a form)."""
    mine = select(service_point_representative.c.service_point_id).where(
        service_point_representative.c.representative_id == representative.id
    )
    return list(await session.scalars(
        select(ServicePoint)
        .options(selectinload(ServicePoint.workroom))
        .where(
            or_(ServicePoint.workroom_id.in_([w.id for w in representative.workrooms]), ServicePoint.id.in_(mine)),
            ServicePoint.starts_at < end, ServicePoint.ends_at >= start,
        )
        .order_by(ServicePoint.starts_at, ServicePoint.id)
    ))


# --- writing -----------------------------------------------------------------------------------------


async def _active_workroom(session: AsyncSession, code: str) -> Workroom:
    workroom = await session.scalar(select(Workroom).where(Workroom.code == code))
    if workroom is None or not workroom.active:
        raise Invalid(f"工作室 {code} 不存在或已停用。", code="unknown_workroom")
    return workroom


async def _active_representatives(session: AsyncSession, ids: Sequence[int]) -> list[Representative]:
    if not ids:
        return []
    found = {
        r.id: r
        for r in await session.scalars(
            select(Representative).where(Representative.id.in_(ids), Representative.active.is_(True))
        )
    }
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise Invalid(f"党代表不存在或已停用：{'、'.join(missing)}", code="unknown_representative")
    return [found[i] for i in ids]


def _check_times(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise Invalid("结束时间必须晚于开始时间。", code="invalid_time_range")


async def create_service_point(session: AsyncSession, *, data: dict[str, Any]) -> ServicePoint:
    _check_times(data["starts_at"], data["ends_at"])
    point = ServicePoint(
        workroom=await _active_workroom(session, data["workroom_code"]),
        title=data["title"], place_type=str(data["place_type"]), location=data.get("location") or "",
        starts_at=data["starts_at"], ends_at=data["ends_at"],
        representatives=await _active_representatives(session, data.get("representative_ids") or []),
    )
    session.add(point)
    await session.flush()
    return point


async def update_service_point(session: AsyncSession, *, service_point_id: int, data: dict[str, Any]) -> ServicePoint:
    point = await get_service_point_or_raise(session, service_point_id)
    if "workroom_code" in data:
        point.workroom = await _active_workroom(session, data.pop("workroom_code"))
    if "representative_ids" in data:
        point.representatives = await _active_representatives(session, data.pop("representative_ids"))
    _check_times(data.get("starts_at", point.starts_at), data.get("ends_at", point.ends_at))
    for field, value in data.items():
        setattr(point, field, str(value) if field == "place_type" else value)
    await session.flush()
    return point


async def delete_service_point(session: AsyncSession, *, service_point_id: int) -> None:
    point = await get_service_point_or_raise(session, service_point_id)
    linked = await session.scalar(
        select(func.count()).select_from(OpinionForm).where(OpinionForm.service_point_id == point.id)
    )
    if linked:
        raise Conflict(
            f"该流动服务点已收集 {linked} 份意见征询表，不能删除；可修改其信息。", code="service_point_has_forms"
        )
    await session.delete(point)  # its attendance rows go with it (the relationship is loaded)
    await session.flush()


# --- the funnel --------------------------------------------------------------------------------------


def _count_columns() -> list[Any]:
    """Aggregates over ``OpinionForm`` outer-joined to sessions: a session with no form counts 0."""
    closed = OpinionForm.status == FormStatus.closed

    def count_if(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    return [
        func.count(OpinionForm.id).label("forms_collected"),
        count_if(OpinionForm.first_answered_at.is_not(None)).label("answered"),
        *(count_if(and_(closed, OpinionForm.satisfaction == level)).label(level) for level in SATISFACTION_LEVELS),
    ]


def rates(counts: dict[str, Any]) -> dict[str, Any]:
    """The counts as ints, plus ``answer_rate`` and ``satisfaction_rate`` (满意 + 基本满意 over rated forms)."""
    result = {key: int(counts.get(key) or 0) for key in ("forms_collected", "answered", *SATISFACTION_LEVELS)}
    rated = sum(result[level] for level in SATISFACTION_LEVELS)
    collected = result["forms_collected"]
    result["answer_rate"] = round(result["answered"] / collected, 4) if collected else None
    result["satisfaction_rate"] = (
        round((result["satisfied"] + result["basically_satisfied"]) / rated, 4) if rated else None
    )
    return result


async def counts_for(session: AsyncSession, service_point_id: int) -> dict[str, Any]:
    row = (
        await session.execute(select(*_count_columns()).where(OpinionForm.service_point_id == service_point_id))
    ).mappings().one()
    return rates(dict(row))


def _attended(filters: list[ColumnElement[bool]]) -> Select[Any]:
    """(representative_id, sessions attended) of the sessions ``filters`` select."""
    return (
        select(service_point_representative.c.representative_id, func.count(ServicePoint.id.distinct()))
        .join(ServicePoint, ServicePoint.id == service_point_representative.c.service_point_id)
        .where(*filters)
        .group_by(service_point_representative.c.representative_id)
    )


async def sessions_attended(
    session: AsyncSession, *, representative_ids: Sequence[int], date_from: date, date_to: date
) -> dict[int, int]:
    """Per representative: the sessions starting in [from, to] (local days, inclusive) they attended, as the
    funnel's ``sessions`` counts them (their records use this)."""
    filters = _time_filters(date_from, date_to, now=None, upcoming=False)
    query = _attended(filters).where(service_point_representative.c.representative_id.in_(representative_ids))
    return {rep_id: int(count) for rep_id, count in (await session.execute(query)).all()}


@dataclass
class FunnelResult:
    totals: dict[str, Any]
    sessions: list[dict[str, Any]]
    representatives: list[dict[str, Any]]


async def funnel(
    session: AsyncSession,
    *,
    workroom_code: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> FunnelResult:
    """Sessions that started in [from, to] (local days, inclusive; no bounds = all sessions): the totals
    ("10 sessions, 107 collected, 92 answered"), one row per session, and one row per representative.

    Session rows and totals count every form of the session, whoever entered it. A representative's row
    counts the sessions they attended (``sessions``) and, since issue 20.3, only the forms of those
    sessions in range that they entered themselves (``entered_by_representative_id``): a form is credited to
    the representative who entered it, never to everyone present. So a representative's ``forms_collected``
    here is the forms they entered at service points, the same forms their record (services/records.py)
    and the statistics by representative count, and the rows no longer add up to more than the totals.
    A representative who entered forms at a session they were not listed for has a row with ``sessions`` 0.
    """
    filters = _time_filters(date_from, date_to, now=None, upcoming=False)
    filters += await _workroom_filter(session, workroom_code)
    joined = select(ServicePoint).outerjoin(OpinionForm, OpinionForm.service_point_id == ServicePoint.id)

    total_row = (
        await session.execute(
            joined.with_only_columns(func.count(ServicePoint.id.distinct()).label("sessions"), *_count_columns())
            .where(*filters)
        )
    ).mappings().one()
    totals = {"sessions": int(total_row["sessions"]), **rates(dict(total_row))}

    session_rows = (
        await session.execute(
            joined.join(Workroom, Workroom.id == ServicePoint.workroom_id)
            .with_only_columns(
                ServicePoint.id.label("service_point_id"), ServicePoint.title, ServicePoint.place_type,
                ServicePoint.starts_at, Workroom.code.label("workroom_code"), *_count_columns(),
            )
            .where(*filters)
            .group_by(ServicePoint.id, ServicePoint.title, ServicePoint.place_type, ServicePoint.starts_at, Workroom.code)
            .order_by(ServicePoint.starts_at, ServicePoint.id)
        )
    ).mappings().all()
    sessions = [
        {key: row[key] for key in ("service_point_id", "title", "place_type", "starts_at", "workroom_code")}
        | rates(dict(row))
        for row in session_rows
    ]

    attended = dict((await session.execute(_attended(filters))).all())
    entered = {
        row["representative_id"]: rates(dict(row))
        for row in (
            await session.execute(
                select(OpinionForm.entered_by_representative_id.label("representative_id"), *_count_columns())
                .join(ServicePoint, ServicePoint.id == OpinionForm.service_point_id)
                .where(*filters, OpinionForm.entered_by_representative_id.is_not(None))
                .group_by(OpinionForm.entered_by_representative_id)
            )
        ).mappings()
    }
    people = set(attended) | set(entered)
    names = dict(
        (await session.execute(select(Representative.id, Representative.name).where(Representative.id.in_(people)))).all()
    )
    representatives = sorted(
        (
            {"representative_id": rep_id, "name": names[rep_id], "sessions": int(attended.get(rep_id, 0))}
            | entered.get(rep_id, rates({}))
            for rep_id in people
        ),
        key=lambda row: (-row["forms_collected"], row["representative_id"]),
    )
    return FunnelResult(totals=totals, sessions=sessions, representatives=representatives)

