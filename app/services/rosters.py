"""Duty rosters (值班): shifts at workrooms, rota planning, swaps between representatives, check-ins and
attendance.

One rule above all: a representative never holds two overlapping shifts, at any workroom. Shifts are
half-open (``starts_at`` ≤ t < ``ends_at``), so one ending at 11:30 and the next starting at 11:30 touch
but do not overlap. Every write that gives a representative a shift (``add_shifts``, ``approve_swap``)
first locks that representative's row (``SELECT … FOR UPDATE``, in id order when there are several),
then checks, then writes, all in the caller's transaction: two racing requests for one person queue on
PostgreSQL and the second sees the first's shift. SQLite serialises write transactions anyway
(``BEGIN IMMEDIATE``, see ``app.db``). Locks are always taken in one order — shift, then swap, then
representatives (by id) — so no two of these writes can deadlock.

Days are Asia/Shanghai days: a list "from 2026-05-01 to 2026-05-01" means every shift that overlaps
[05-01 00:00, 05-02 00:00) local time, so a night shift 23:30–01:00 appears on both days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.config import TZ
from app.errors import Conflict, Invalid, NotFound, PermissionDenied
from app.models import Representative, Role, Shift, ShiftSwap, SwapStatus, User, Workroom, utcnow
from app.schemas import dates
from app.services import reference as reference_service
from app.services import working_days
from app.services.auth import Principal
from app.services.pagination import paginate

MAX_SHIFT = timedelta(hours=24)
MAX_LIST_DAYS = 93  # a quarter: a workroom's roster list stays one bounded answer
MAX_ROTA_DAYS = 366
CHECK_IN_EARLY = timedelta(minutes=30)
OPEN_SWAP = (SwapStatus.requested, SwapStatus.accepted)
OFFICE = (Role.admin, Role.coordinator)

ShiftSpec = tuple[int, int, datetime, datetime]  # (workroom_id, representative_id, starts_at, ends_at)


def local_day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in Asia/Shanghai, as aware datetimes."""
    return dates.local_day_bounds(start, end, TZ)


def _iso(value: datetime) -> str:
    return value.astimezone(TZ).isoformat()


def local_span(starts_at: datetime, ends_at: datetime) -> str:
    """A shift as a person reads it, in Asia/Shanghai: "12月8日 09:00–11:30"; one ending on a later day names
    that day too ("12月8日 22:00–12月9日 06:00")."""
    start, end = starts_at.astimezone(TZ), ends_at.astimezone(TZ)
    right = f"{end:%H:%M}" if end.date() == start.date() else f"{end.month}月{end.day}日 {end:%H:%M}"
    return f"{start.month}月{start.day}日 {start:%H:%M}–{right}"


def _require_office(principal: Principal) -> User:
    return principal.require_role(*OFFICE)


# --- reading shifts ----------------------------------------------------------------------------------


def _with_people(query: Select[Any]) -> Select[Any]:
    return query.options(selectinload(Shift.representative), selectinload(Shift.workroom))


async def get_shift(session: AsyncSession, shift_id: int, *, for_update: bool = False) -> Shift:
    query = select(Shift).where(Shift.id == shift_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    shift = await session.scalar(query)
    if shift is None:
        raise NotFound(f"值班安排 {shift_id} 不存在。", code="shift_not_found")
    return shift


async def get_shift_read(session: AsyncSession, shift_id: int) -> Shift:
    """The shift with its workroom and representative loaded (for the API's answer)."""
    shift = await session.scalar(
        _with_people(select(Shift).where(Shift.id == shift_id)).execution_options(populate_existing=True)
    )
    if shift is None:
        raise NotFound(f"值班安排 {shift_id} 不存在。", code="shift_not_found")
    return shift


async def list_shifts(session: AsyncSession, *, workroom_code: str, day_from: date, day_to: date) -> Sequence[Shift]:
    """The workroom's shifts overlapping the Shanghai days [day_from, day_to], in start order."""
    if day_to < day_from:
        raise Invalid("结束日期不能早于开始日期。", code="invalid_range")
    if (day_to - day_from).days + 1 > MAX_LIST_DAYS:
        raise Invalid(f"一次最多查询 {MAX_LIST_DAYS} 天。", code="range_too_long")
    workroom = await reference_service.get_workroom_or_raise(session, workroom_code)
    lower, upper = local_day_bounds(day_from, day_to)
    query = (
        select(Shift)
        .where(Shift.workroom_id == workroom.id, Shift.starts_at < upper, Shift.ends_at > lower)
        .order_by(Shift.starts_at, Shift.id)
    )
    return list(await session.scalars(_with_people(query)))


async def on_duty(session: AsyncSession, *, workroom_code: str, at: datetime) -> Sequence[Shift]:
    """The shifts running at ``at`` (starts_at ≤ at < ends_at) at the workroom."""
    workroom = await reference_service.get_workroom_or_raise(session, workroom_code)
    query = (
        select(Shift)
        .where(Shift.workroom_id == workroom.id, Shift.starts_at <= at, Shift.ends_at > at)
        .order_by(Shift.starts_at, Shift.representative_id)
    )
    return list(await session.scalars(_with_people(query)))


# --- the overlap rule --------------------------------------------------------------------------------


@dataclass
class Checked:
    """One proposed shift and what it collides with: existing shift ids and other items of the batch."""

    index: int
    workroom: Workroom
    representative: Representative
    starts_at: datetime
    ends_at: datetime
    shift_ids: list[int] = field(default_factory=list)
    batch_indexes: list[int] = field(default_factory=list)
    # The existing shifts it collides with, as a person names them: (workroom name, starts_at, ends_at).
    others: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    @property
    def conflict(self) -> bool:
        return bool(self.shift_ids or self.batch_indexes)

    def problem_item(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "workroom_code": self.workroom.code,
            "representative_id": self.representative.id,
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "shift_ids": self.shift_ids,
            "batch_indexes": self.batch_indexes,
        }


def _validate_times(starts_at: datetime, ends_at: datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise Invalid("时间必须带时区。", code="invalid_shift_time")
    if ends_at <= starts_at:
        raise Invalid("值班结束时间必须晚于开始时间。", code="invalid_shift_time")
    if ends_at - starts_at > MAX_SHIFT:
        raise Invalid("一次值班最长 24 小时。", code="shift_too_long")


async def _load_people(
    session: AsyncSession, workroom_ids: set[int], representative_ids: set[int], *, lock: bool
) -> tuple[dict[int, Workroom], dict[int, Representative]]:
    workrooms = {w.id: w for w in await session.scalars(select(Workroom).where(Workroom.id.in_(workroom_ids)))}
    for workroom_id in sorted(workroom_ids):
        workroom = workrooms.get(workroom_id)
        if workroom is None:
            raise Invalid(f"工作室 {workroom_id} 不存在。", code="unknown_workroom")
        if not workroom.active:
            raise Invalid(f"工作室 {workroom.code} 已停用，不能排班。", code="workroom_inactive")
    # The lock that makes the overlap check safe: representatives' rows, in id order (no deadlocks between
    # two batches naming the same people in different orders).
    query = select(Representative).where(Representative.id.in_(representative_ids)).order_by(Representative.id)
    if lock:
        query = query.with_for_update()
    representatives = {r.id: r for r in await session.scalars(query)}
    for representative_id in sorted(representative_ids):
        representative = representatives.get(representative_id)
        if representative is None:
            raise Invalid(f"党代表 {representative_id} 不存在。", code="unknown_representative")
        if not representative.active:
            raise Invalid(f"党代表 {representative.name} 已停用，不能排班。", code="representative_inactive")
    return workrooms, representatives


async def check_shifts(
    session: AsyncSession, shifts: Sequence[ShiftSpec], *, lock: bool, exclude_shift_id: int | None = None
) -> list[Checked]:
    """Validate each proposed shift and find its overlaps, against the database and inside the batch.

    With ``lock``, the representatives' rows are locked first (callers that will write)."""
    for _, _, starts_at, ends_at in shifts:
        _validate_times(starts_at, ends_at)
    if not shifts:
        return []
    workrooms, representatives = await _load_people(
        session, {s[0] for s in shifts}, {s[1] for s in shifts}, lock=lock
    )
    checked = [
        Checked(index=i, workroom=workrooms[w], representative=representatives[r], starts_at=s, ends_at=e)
        for i, (w, r, s, e) in enumerate(shifts)
    ]
    # Against the database: every shift of these people inside the batch's overall window, one query.
    lower = min(c.starts_at for c in checked)
    upper = max(c.ends_at for c in checked)
    query = (
        select(Shift.id, Shift.representative_id, Shift.starts_at, Shift.ends_at, Workroom.name)
        .join(Workroom, Workroom.id == Shift.workroom_id)
        .where(Shift.representative_id.in_(list(representatives)), Shift.starts_at < upper, Shift.ends_at > lower)
        .order_by(Shift.starts_at, Shift.id)
    )
    if exclude_shift_id is not None:
        query = query.where(Shift.id != exclude_shift_id)
    existing: dict[int, list[tuple[int, datetime, datetime, str]]] = defaultdict(list)
    for shift_id, representative_id, starts_at, ends_at, workroom_name in (await session.execute(query)).all():
        existing[representative_id].append((shift_id, starts_at, ends_at, workroom_name))
    by_person: dict[int, list[Checked]] = defaultdict(list)
    for item in checked:
        for shift_id, starts_at, ends_at, workroom_name in existing[item.representative.id]:
            if starts_at < item.ends_at and ends_at > item.starts_at:
                item.shift_ids.append(shift_id)
                item.others.append((workroom_name, starts_at, ends_at))
        item.shift_ids.sort()
        by_person[item.representative.id].append(item)
    # Inside the batch: per person, sorted by start; an item overlaps every later one starting before it ends.
    for items in by_person.values():
        items.sort(key=lambda c: (c.starts_at, c.index))
        for i, first in enumerate(items):
            for second in items[i + 1:]:
                if second.starts_at >= first.ends_at:
                    break
                first.batch_indexes.append(second.index)
                second.batch_indexes.append(first.index)
    for item in checked:
        item.batch_indexes.sort()
    return checked


def shift_conflict(conflicts: Sequence[Checked]) -> Conflict:
    shift_ids = sorted({i for c in conflicts for i in c.shift_ids})
    if len(conflicts) == 1 and not conflicts[0].batch_indexes:
        # The other shift named as the office knows it, its workroom and local time; the ids stay in
        # ``conflicting_shift_ids`` for programs.
        c = conflicts[0]
        others = "、".join(f"{name} {local_span(starts_at, ends_at)}" for name, starts_at, ends_at in c.others)
        detail = f"{c.representative.name}与 {others} 的值班冲突，同一时间不能在两处值班。"
    else:
        detail = f"有 {len(conflicts)} 个班次与已有安排或彼此时间重叠，同一位代表同一时间不能在两处值班；未写入任何班次。"
    return Conflict(
        detail, code="shift_conflict",
        extra={"conflicting_shift_ids": shift_ids, "conflicts": [c.problem_item() for c in conflicts]},
    )


async def add_shifts(
    session: AsyncSession, *, shifts: Sequence[ShiftSpec], actor: User | None, now: datetime | None = None
) -> list[Shift]:
    """Add shifts all or nothing: each item is checked against the database and against the others,
    with the representatives' rows locked in id order; any overlap raises ``shift_conflict`` (listing
    every conflict) before anything is written."""
    now = now or utcnow()
    checked = await check_shifts(session, shifts, lock=True)
    conflicts = [c for c in checked if c.conflict]
    if conflicts:
        raise shift_conflict(conflicts)
    created = [
        Shift(
            workroom_id=c.workroom.id, representative_id=c.representative.id, starts_at=c.starts_at,
            ends_at=c.ends_at, created_at=now, created_by_user_id=actor.id if actor else None,
        )
        for c in checked
    ]
    session.add_all(created)
    await session.flush()
    return created


async def create_shift(
    session: AsyncSession, *, workroom_code: str, representative_id: int, starts_at: datetime, ends_at: datetime,
    principal: Principal, now: datetime | None = None,
) -> Shift:
    user = _require_office(principal)
    workroom = await reference_service.get_workroom_or_raise(session, workroom_code)
    (shift,) = await add_shifts(
        session, shifts=[(workroom.id, representative_id, starts_at, ends_at)], actor=user, now=now
    )
    return await get_shift_read(session, shift.id)


async def delete_shift(session: AsyncSession, *, shift_id: int, principal: Principal) -> None:
    _require_office(principal)
    shift = await get_shift(session, shift_id, for_update=True)
    if shift.checked_in_at is not None:
        raise Conflict("该班次已签到，签到记录需保留，不能删除。", code="shift_checked_in")
    # Its swaps go with it (ON DELETE CASCADE).
    await session.delete(shift)
    await session.flush()


# --- rota planning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RotaWorkroom:
    code: str
    weekdays: Sequence[int]  # ISO: Monday 1 … Sunday 7
    start: time
    end: time
    representative_ids: Sequence[int]


def is_public_holiday(day: date) -> bool:
    """A statutory holiday (节假日, e.g. 国庆, weekend days inside the holiday included), not an ordinary
    weekend: from the office's calendar through the working-day index (``working_days.load`` first), a
    year without entries by the statutory rules."""
    return working_days.current().holiday_name(day) is not None


@dataclass
class Rota:
    items: list[tuple[RotaWorkroom, date, int]]  # the workroom's pattern, the day, the representative
    skipped_holidays: list[date]


def generate_rota(*, day_from: date, day_to: date, workrooms: Sequence[RotaWorkroom], skip_holidays: bool) -> Rota:
    """One session per matching day per workroom, representatives taking turns in the given order; the
    turn carries over from week to week, and a skipped holiday uses no turn."""
    if day_to < day_from:
        raise Invalid("结束日期不能早于开始日期。", code="invalid_range")
    if (day_to - day_from).days + 1 > MAX_ROTA_DAYS:
        raise Invalid(f"一次最多排 {MAX_ROTA_DAYS} 天。", code="range_too_long")
    items: list[tuple[RotaWorkroom, date, int]] = []
    skipped: set[date] = set()
    for pattern in workrooms:
        if pattern.end <= pattern.start:
            raise Invalid(f"工作室 {pattern.code} 的结束时间必须晚于开始时间。", code="invalid_shift_time")
        weekdays = set(pattern.weekdays)
        turn = 0
        day = day_from
        while day <= day_to:
            if day.isoweekday() in weekdays:
                if skip_holidays and is_public_holiday(day):
                    skipped.add(day)
                else:
                    items.append((pattern, day, pattern.representative_ids[turn % len(pattern.representative_ids)]))
                    turn += 1
            day += timedelta(days=1)
    items.sort(key=lambda item: (item[1], item[0].start, item[0].code))
    return Rota(items=items, skipped_holidays=sorted(skipped))


async def _rota_specs(session: AsyncSession, rota: Rota) -> list[ShiftSpec]:
    codes = list(dict.fromkeys(pattern.code for pattern, _, _ in rota.items))
    by_code = {w.code: w for w in await reference_service.workrooms_by_codes(session, codes)}
    return [
        (
            by_code[pattern.code].id, representative_id,
            datetime.combine(day, pattern.start, tzinfo=TZ), datetime.combine(day, pattern.end, tzinfo=TZ),
        )
        for pattern, day, representative_id in rota.items
    ]


async def preview_rota(
    session: AsyncSession, *, day_from: date, day_to: date, workrooms: Sequence[RotaWorkroom], skip_holidays: bool,
    principal: Principal,
) -> tuple[list[Checked], list[date]]:
    """The shifts a rota would create, each marked with its conflicts; nothing is written."""
    _require_office(principal)
    await reference_service.workrooms_by_codes(session, [w.code for w in workrooms])
    await working_days.load(session)
    rota = generate_rota(day_from=day_from, day_to=day_to, workrooms=workrooms, skip_holidays=skip_holidays)
    return await check_shifts(session, await _rota_specs(session, rota), lock=False), rota.skipped_holidays


async def commit_rota(
    session: AsyncSession, *, day_from: date, day_to: date, workrooms: Sequence[RotaWorkroom], skip_holidays: bool,
    principal: Principal, now: datetime | None = None,
) -> list[Shift]:
    """The same shifts as the preview, written all or nothing."""
    user = _require_office(principal)
    await reference_service.workrooms_by_codes(session, [w.code for w in workrooms])
    await working_days.load(session)
    rota = generate_rota(day_from=day_from, day_to=day_to, workrooms=workrooms, skip_holidays=skip_holidays)
    created = await add_shifts(session, shifts=await _rota_specs(session, rota), actor=user, now=now)
    if not created:
        return []
    query = _with_people(select(Shift).where(Shift.id.in_([s.id for s in created]))).order_by(Shift.starts_at, Shift.id)
    return list(await session.scalars(query.execution_options(populate_existing=True)))


# --- swaps -------------------------------------------------------------------------------------------


async def get_swap(session: AsyncSession, swap_id: int, *, for_update: bool = False) -> ShiftSwap:
    query = select(ShiftSwap).where(ShiftSwap.id == swap_id)
    if for_update:
        # populate_existing: the row as it is once locked, not as this session read it before.
        query = query.with_for_update().execution_options(populate_existing=True)
    swap = await session.scalar(query)
    if swap is None:
        raise NotFound(f"换班申请 {swap_id} 不存在。", code="swap_not_found")
    return swap


SWAP_LABELS = {
    SwapStatus.requested: "待对方确认", SwapStatus.accepted: "待审批", SwapStatus.approved: "已批准",
    SwapStatus.declined: "对方已拒绝", SwapStatus.refused: "未获批准", SwapStatus.cancelled: "已撤回",
}
SWAP_ACTIONS = {"accept": "接受", "decline": "拒绝", "approve": "批准", "refuse": "不批准", "cancel": "撤回"}


def _require_swap_status(swap: ShiftSwap, action: str, *allowed: str) -> None:
    if swap.status not in allowed:
        raise Conflict(
            f"换班申请当前状态为“{SWAP_LABELS.get(swap.status, swap.status)}”，不能{SWAP_ACTIONS[action]}。",
            code="swap_state", extra={"current_status": swap.status, "action": action},
        )


def _representative_id(principal: Principal) -> int | None:
    user = principal.user
    return user.representative_id if user is not None and user.role == Role.representative else None


async def request_swap(
    session: AsyncSession, *, shift_id: int, to_representative_id: int, note: str | None, principal: Principal,
    now: datetime | None = None,
) -> ShiftSwap:
    """The shift's holder (or the office on their behalf) asks another representative to take it."""
    now = now or utcnow()
    principal.require_staff()
    shift = await get_shift(session, shift_id, for_update=True)
    if not principal.is_office and _representative_id(principal) != shift.representative_id:
        raise PermissionDenied("只有值班代表本人或组织办可以申请换班。", code="not_your_shift")
    if shift.starts_at <= now:
        raise Conflict("该班次已开始，不能再换班。", code="shift_started")
    if to_representative_id == shift.representative_id:
        raise Invalid("不能与自己换班。", code="same_representative")
    target = await session.get(Representative, to_representative_id)
    if target is None or not target.active:
        raise Invalid(f"党代表 {to_representative_id} 不存在或已停用。", code="unknown_representative")
    pending = await session.scalar(
        select(ShiftSwap.id).where(ShiftSwap.shift_id == shift.id, ShiftSwap.status.in_(OPEN_SWAP))
    )
    if pending is not None:
        raise Conflict(f"该班次已有未完成的换班申请（编号 {pending}）。", code="swap_pending", extra={"swap_id": pending})
    swap = ShiftSwap(
        shift_id=shift.id, from_representative_id=shift.representative_id, to_representative_id=to_representative_id,
        status=SwapStatus.requested, note=note, requested_at=now,
    )
    session.add(swap)
    await session.flush()
    return swap


async def answer_swap(
    session: AsyncSession, *, swap_id: int, accept: bool, principal: Principal, now: datetime | None = None
) -> ShiftSwap:
    """The asked representative accepts or declines."""
    now = now or utcnow()
    principal.require_staff()
    swap = await get_swap(session, swap_id, for_update=True)
    if _representative_id(principal) != swap.to_representative_id:
        raise PermissionDenied("只有被邀请换班的代表本人可以答复。", code="not_your_swap")
    _require_swap_status(swap, "accept" if accept else "decline", SwapStatus.requested)
    swap.status = SwapStatus.accepted if accept else SwapStatus.declined
    swap.answered_at = now
    await session.flush()
    return swap


async def cancel_swap(
    session: AsyncSession, *, swap_id: int, principal: Principal, now: datetime | None = None
) -> ShiftSwap:
    """The asking representative (or the office) withdraws a swap not yet decided."""
    now = now or utcnow()
    user = principal.require_staff()
    swap = await get_swap(session, swap_id, for_update=True)
    if not principal.is_office and _representative_id(principal) != swap.from_representative_id:
        raise PermissionDenied("只有申请人或组织办可以撤回换班申请。", code="not_your_swap")
    _require_swap_status(swap, "cancel", *OPEN_SWAP)
    swap.status = SwapStatus.cancelled
    swap.decided_at = now
    swap.decided_by_user_id = user.id
    await session.flush()
    return swap


async def decide_swap(
    session: AsyncSession, *, swap_id: int, approve: bool, principal: Principal, now: datetime | None = None
) -> ShiftSwap:
    """A coordinator approves (the shift changes hands) or refuses an accepted swap.

    On approval the overlap rule is checked for the new holder at that moment, with their row locked."""
    now = now or utcnow()
    user = _require_office(principal)
    # Lock order shift → swap, as deleting a shift does (its swaps go by cascade): no deadlock between the two.
    shift_id = (await get_swap(session, swap_id)).shift_id
    shift = await get_shift(session, shift_id, for_update=True)
    swap = await get_swap(session, swap_id, for_update=True)
    _require_swap_status(swap, "approve" if approve else "refuse", SwapStatus.accepted)
    if approve:
        if shift.representative_id != swap.from_representative_id:
            raise Conflict("该班次已换人，这份换班申请已失效。", code="swap_state",
                           extra={"current_status": swap.status, "action": "approve"})
        if shift.starts_at <= now:
            raise Conflict("该班次已开始，不能再换班。", code="shift_started")
        checked = await check_shifts(
            session, [(shift.workroom_id, swap.to_representative_id, shift.starts_at, shift.ends_at)],
            lock=True, exclude_shift_id=shift.id,
        )
        if checked[0].conflict:
            raise shift_conflict(checked)
        shift.representative_id = swap.to_representative_id
    swap.status = SwapStatus.approved if approve else SwapStatus.refused
    swap.decided_at = now
    swap.decided_by_user_id = user.id
    await session.flush()
    return swap


async def list_swaps(
    session: AsyncSession, *, principal: Principal, status: str | None, limit: int, cursor: str | None
) -> tuple[Sequence[ShiftSwap], str | None]:
    """The office sees every swap; a representative sees the swaps they asked for or were asked."""
    user = principal.require_staff()
    query = select(ShiftSwap).order_by(ShiftSwap.id.desc())
    if not principal.is_office:
        if user.role != Role.representative or user.representative_id is None:
            raise PermissionDenied("当前账号无权查看换班申请。", code="forbidden")
        query = query.where(
            (ShiftSwap.from_representative_id == user.representative_id)
            | (ShiftSwap.to_representative_id == user.representative_id)
        )
    if status is not None:
        query = query.where(ShiftSwap.status == status)
    return await paginate(session, query, limit=limit, cursor=cursor)


# --- check-in and attendance -------------------------------------------------------------------------


async def check_in(session: AsyncSession, *, shift_id: int, principal: Principal, now: datetime | None = None) -> Shift:
    """The representative on the shift signs in, from 30 minutes before the start until the end. A second
    check-in changes nothing (the first time stays)."""
    now = now or utcnow()
    principal.require_staff()
    shift = await get_shift(session, shift_id, for_update=True)
    if _representative_id(principal) != shift.representative_id:
        raise PermissionDenied("只有值班代表本人可以签到。", code="not_your_shift")
    if shift.checked_in_at is None:
        if not shift.starts_at - CHECK_IN_EARLY <= now < shift.ends_at:
            raise Conflict(
                f"签到时间为开始前 30 分钟至结束（{local_span(shift.starts_at - CHECK_IN_EARLY, shift.ends_at)}）。",
                code="check_in_window",
                extra={"opens_at": _iso(shift.starts_at - CHECK_IN_EARLY), "closes_at": _iso(shift.ends_at)},
            )
        shift.checked_in_at = now
        await session.flush()
    return await get_shift_read(session, shift.id)


ATTENDANCE_GROUPS = ("representative", "workroom", "month")


def _local_month(session: AsyncSession) -> Any:
    # Constants inlined, not bound: PostgreSQL must see the GROUP BY expression equal to the selected one.
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(literal_column("'Asia/Shanghai'"), Shift.starts_at), literal_column("'YYYY-MM'"))
    # SQLite stores naive UTC; Asia/Shanghai has had no daylight saving since 1991, so local is +8 h.
    return func.strftime(literal_column("'%Y-%m'"), Shift.starts_at, literal_column("'+8 hours'"))


def attendance_measures(now: datetime) -> tuple[Any, Any, Any]:
    """The one reading of attendance over ``Shift`` rows, as SQL aggregates: ``planned`` (every shift),
    ``checked_in`` and ``missed`` (ended by ``now`` without a check-in). A shift not yet ended and not
    checked in is neither: it is still to come (the representatives' records call it upcoming)."""
    return (
        func.count(Shift.id).label("planned"),
        func.count(Shift.checked_in_at).label("checked_in"),
        func.coalesce(
            func.sum(case((and_(Shift.checked_in_at.is_(None), Shift.ends_at <= now.astimezone(UTC)), 1), else_=0)), 0
        ).label("missed"),
    )


def starting_in(day_from: date, day_to: date) -> tuple[Any, Any]:
    """Shifts that start in the Shanghai days [day_from, day_to] (attendance counts a shift on its first day)."""
    lower, upper = local_day_bounds(day_from, day_to)
    return Shift.starts_at >= lower, Shift.starts_at < upper


async def attendance(
    session: AsyncSession, *, day_from: date, day_to: date, group: str, principal: Principal,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Planned shifts starting in the Shanghai days [day_from, day_to], those checked in, those missed
    (ended without a check-in) and the rate checked_in / planned, grouped in SQL."""
    now = now or utcnow()
    _require_office(principal)
    if day_to < day_from:
        raise Invalid("结束日期不能早于开始日期。", code="invalid_range")
    if group not in ATTENDANCE_GROUPS:
        raise Invalid("group 只能是 representative、workroom 或 month。", code="invalid_group")
    measures = attendance_measures(now)
    where = starting_in(day_from, day_to)
    if group == "representative":
        query = (
            select(Representative.id, Representative.name, *measures)
            .join(Shift, Shift.representative_id == Representative.id)
            .where(*where).group_by(Representative.id, Representative.name).order_by(Representative.id)
        )
        keys = lambda row: {"representative_id": row[0], "representative_name": row[1]}  # noqa: E731
    elif group == "workroom":
        query = (
            select(Workroom.code, Workroom.name, *measures)
            .join(Shift, Shift.workroom_id == Workroom.id)
            .where(*where).group_by(Workroom.code, Workroom.name).order_by(Workroom.code)
        )
        keys = lambda row: {"workroom_code": row[0], "workroom_name": row[1]}  # noqa: E731
    else:
        month = _local_month(session).label("month")
        query = select(month, *measures).where(*where).group_by(month).order_by(month)
        keys = lambda row: {"month": row[0]}  # noqa: E731
    rows = []
    for row in (await session.execute(query)).all():
        planned, checked_in, missed = int(row.planned), int(row.checked_in), int(row.missed)
        rows.append({
            **keys(row), "planned": planned, "checked_in": checked_in, "missed": missed,
            "rate": round(checked_in / planned, 4) if planned else None,
        })
    return rows
