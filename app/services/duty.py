"""What "on duty" means to read (值班): every workroom's shifts on one Shanghai day, and a representative's own
week ("我的值班": shifts, swaps to and from them, who they may ask). The pages in app/web/duty.py and the
home page render these; the rota and the rules of swapping are in services/rosters.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app.config import TZ
from app.models import Representative, Shift, ShiftSwap, User, Workroom, utcnow
from app.models.reference import representative_workroom
from app.services import rosters as roster_service
from app.services.auth import Principal

MY_DAYS = 8  # today and the next 7 days


def now() -> datetime:
    return utcnow()


def day_of(moment: datetime) -> date:
    """The Shanghai day of ``moment``."""
    return moment.astimezone(TZ).date()


def today_in_town() -> date:
    return day_of(now())


async def today_by_workroom(session: AsyncSession, *, day: date) -> list[tuple[Workroom, list[Shift]]]:
    """Every active workroom with its shifts overlapping the Shanghai day, in one SELECT (workroom LEFT JOIN
    shift JOIN representative), workrooms in code order, shifts in start order."""
    lower, upper = roster_service.local_day_bounds(day, day)
    query = (
        select(Workroom, Shift, Representative)
        .outerjoin(Shift, and_(Shift.workroom_id == Workroom.id, Shift.starts_at < upper, Shift.ends_at > lower))
        .outerjoin(Representative, Representative.id == Shift.representative_id)
        .where(Workroom.active.is_(True))
        .order_by(Workroom.code, Shift.starts_at, Shift.id)
    )
    grouped: dict[int, tuple[Workroom, list[Shift]]] = {}
    for workroom, shift, representative in (await session.execute(query)).all():
        _, shifts = grouped.setdefault(workroom.id, (workroom, []))
        if shift is not None:
            # Attach what the join read, without marking the shift changed.
            set_committed_value(shift, "representative", representative)
            set_committed_value(shift, "workroom", workroom)
            shifts.append(shift)
    return list(grouped.values())


def by_day(shifts: Sequence[Shift], first: date, last: date) -> list[tuple[date, list[Shift]]]:
    """Each day of [first, last] with the shifts overlapping it (a night shift shows on both days)."""
    days = []
    day = first
    while day <= last:
        lower, upper = roster_service.local_day_bounds(day, day)
        days.append((day, [s for s in shifts if s.starts_at < upper and s.ends_at > lower]))
        day += timedelta(days=1)
    return days


@dataclass
class MyShift:
    shift: Shift
    can_check_in: bool
    can_swap: bool
    open_swap: ShiftSwap | None


@dataclass
class SwapRow:
    swap: ShiftSwap
    shift: Shift | None
    other: Representative | None


async def my_duty(session: AsyncSession, *, user: User, now: datetime) -> dict[str, Any]:
    """What "我的值班" shows: my shifts today and the next 7 days, the swaps to me and from me, and the
    representatives I may ask to swap with (my workrooms' first)."""
    me = user.representative_id
    if me is None:
        return {"my_shifts": [], "swaps_to_me": [], "swaps_from_me": [], "swap_choices": []}
    today = day_of(now)
    lower, upper = roster_service.local_day_bounds(today, today + timedelta(days=MY_DAYS - 1))
    shifts = list(await session.scalars(
        select(Shift).options(selectinload(Shift.workroom), selectinload(Shift.representative))
        .where(Shift.representative_id == me, Shift.starts_at < upper, Shift.ends_at > lower)
        .order_by(Shift.starts_at, Shift.id)
    ))
    swaps, _ = await roster_service.list_swaps(session, principal=Principal(user=user), status=None, limit=50,
                                               cursor=None)
    swap_shift_ids = {s.shift_id for s in swaps}
    swap_shifts = {s.id: s for s in await session.scalars(
        select(Shift).options(selectinload(Shift.workroom)).where(Shift.id.in_(swap_shift_ids))
    )} if swap_shift_ids else {}
    my_workrooms = select(representative_workroom.c.workroom_id).where(representative_workroom.c.representative_id == me)
    colleagues = select(representative_workroom.c.representative_id).where(
        representative_workroom.c.workroom_id.in_(my_workrooms))
    people = list(await session.scalars(
        select(Representative).where(or_(Representative.active.is_(True),
                                         Representative.id.in_({s.from_representative_id for s in swaps}
                                                               | {s.to_representative_id for s in swaps})))
        .order_by(Representative.id)
    ))
    near = set(await session.scalars(colleagues))
    names = {p.id: p for p in people}
    open_by_shift = {s.shift_id: s for s in swaps if s.status in roster_service.OPEN_SWAP}
    return {
        "my_shifts": [
            MyShift(
                shift=s,
                can_check_in=s.checked_in_at is None and s.starts_at - roster_service.CHECK_IN_EARLY <= now < s.ends_at,
                can_swap=s.starts_at > now and s.id not in open_by_shift,
                open_swap=open_by_shift.get(s.id),
            )
            for s in shifts
        ],
        "swaps_to_me": [SwapRow(s, swap_shifts.get(s.shift_id), names.get(s.from_representative_id))
                        for s in swaps if s.to_representative_id == me],
        "swaps_from_me": [SwapRow(s, swap_shifts.get(s.shift_id), names.get(s.to_representative_id))
                          for s in swaps if s.from_representative_id == me],
        "swap_choices": sorted((p for p in people if p.active and p.id != me), key=lambda p: (p.id not in near, p.id)),
        "swap_near": near,
    }
