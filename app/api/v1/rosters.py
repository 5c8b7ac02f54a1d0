"""API: duty rosters (值班).

Who may do what:
- reading a workroom's shifts and who is on duty: anyone, the public included (residents look up who is on
  duty); representatives appear with name and level only, never a phone number;
- creating and deleting shifts, planning a rota, approving or refusing swaps, attendance: admin, coordinator;
- asking for a swap: the shift's representative, or admin/coordinator on their behalf; accepting or
  declining: the representative asked; withdrawing: the asker or admin/coordinator;
- checking in: the shift's representative only.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import Query, Response, status

from app.http.deps import CursorQ, IdPath, LimitQ, PrincipalDep, SessionDep
from app.config import TZ
from app.http.routing import GuardedRouter
from app.models import SwapStatus, utcnow
from app.schemas.common import Page, problem
from app.schemas.dates import BoundedDate, BoundedDateTime
from app.schemas.rosters import (
    AttendanceRead,
    AttendanceRow,
    OnDutyRead,
    OnDutyRepresentative,
    RotaCommitted,
    RotaItem,
    RotaPreview,
    RotaRequest,
    ShiftCreate,
    ShiftList,
    ShiftRead,
    SwapCreate,
    SwapRead,
)
from app.services import rosters as roster_service

router = GuardedRouter(tags=["rosters"])

FromQ = Annotated[BoundedDate | None, Query(alias="from", description="first day (Asia/Shanghai), default today")]
ToQ = Annotated[BoundedDate | None, Query(description="last day, inclusive (Asia/Shanghai)")]


def _today() -> date:
    return utcnow().astimezone(TZ).date()


# A representative is never on two shifts at once (services/rosters.py).
OVERLAP = {409: problem("Would overlap a shift the representative has (`shift_conflict`, with `conflicts`)")}


@router.get("/workrooms/{code}/shifts", response_model=ShiftList, summary="A workroom's shifts (public)")
async def list_shifts(
    code: str, session: SessionDep, principal: PrincipalDep, day_from: FromQ = None, to: ToQ = None
) -> ShiftList:
    """Shifts overlapping the Shanghai days from..to (inclusive; default: the seven days from today). A shift
    across midnight appears on both days. At most 93 days at once."""
    day_from = day_from or _today()
    to = to or day_from + timedelta(days=6)
    shifts = await roster_service.list_shifts(session, workroom_code=code, day_from=day_from, day_to=to)
    return ShiftList(items=[ShiftRead.of(s, attendance=principal.is_staff) for s in shifts])


@router.post("/workrooms/{code}/shifts", response_model=ShiftRead, status_code=status.HTTP_201_CREATED,
             responses=OVERLAP)
async def create_shift(code: str, body: ShiftCreate, principal: PrincipalDep, session: SessionDep) -> ShiftRead:
    shift = await roster_service.create_shift(
        session, workroom_code=code, representative_id=body.representative_id, starts_at=body.starts_at,
        ends_at=body.ends_at, principal=principal,
    )
    return ShiftRead.of(shift)


@router.delete("/shifts/{shift_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={409: problem("Checked in: the record stays (`shift_checked_in`)")})
async def delete_shift(shift_id: IdPath, principal: PrincipalDep, session: SessionDep) -> Response:
    await roster_service.delete_shift(session, shift_id=shift_id, principal=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/workrooms/{code}/on-duty", response_model=OnDutyRead, summary="Who is on duty (public)")
async def on_duty(
    code: str, session: SessionDep, at: Annotated[BoundedDateTime | None, Query()] = None
) -> OnDutyRead:
    at = at or utcnow()
    shifts = await roster_service.on_duty(session, workroom_code=code, at=at)
    return OnDutyRead(workroom_code=code, at=at, representatives=[
        OnDutyRepresentative(
            id=s.representative.id, name=s.representative.name, level=s.representative.level, shift_id=s.id,
            starts_at=s.starts_at, ends_at=s.ends_at,
        )
        for s in shifts
    ])


# --- rota --------------------------------------------------------------------------------------------


def _patterns(body: RotaRequest) -> list[roster_service.RotaWorkroom]:
    return [
        roster_service.RotaWorkroom(
            code=w.code, weekdays=w.weekdays, start=w.start, end=w.end, representative_ids=w.representative_ids
        )
        for w in body.workrooms
    ]


@router.post("/rota/preview", response_model=RotaPreview)
async def preview_rota(body: RotaRequest, principal: PrincipalDep, session: SessionDep) -> RotaPreview:
    """The shifts the rota would create, each marked with its conflicts; writes nothing."""
    checked, skipped = await roster_service.preview_rota(
        session, day_from=body.from_, day_to=body.to, workrooms=_patterns(body), skip_holidays=body.skip_holidays,
        principal=principal,
    )
    items = [
        RotaItem(
            index=c.index, workroom_code=c.workroom.code, representative_id=c.representative.id,
            representative_name=c.representative.name, starts_at=c.starts_at, ends_at=c.ends_at,
            conflict=c.conflict, conflicting_shift_ids=c.shift_ids, conflicting_items=c.batch_indexes,
        )
        for c in checked
    ]
    return RotaPreview(
        count=len(items), conflicts=sum(1 for i in items if i.conflict), skipped_holidays=skipped, items=items
    )


@router.post("/rota/commit", response_model=RotaCommitted, status_code=status.HTTP_201_CREATED, responses=OVERLAP)
async def commit_rota(body: RotaRequest, principal: PrincipalDep, session: SessionDep) -> RotaCommitted:
    """Writes the preview's shifts all in one transaction, or none (409 ``shift_conflict`` listing them)."""
    shifts = await roster_service.commit_rota(
        session, day_from=body.from_, day_to=body.to, workrooms=_patterns(body), skip_holidays=body.skip_holidays,
        principal=principal,
    )
    return RotaCommitted(count=len(shifts), items=[ShiftRead.of(s) for s in shifts])


# --- swaps -------------------------------------------------------------------------------------------


@router.post("/shifts/{shift_id}/swap", response_model=SwapRead, status_code=status.HTTP_201_CREATED,
             responses={409: problem("The shift has started (`shift_started`), or a swap is pending (`swap_pending`)")})
async def request_swap(shift_id: IdPath, body: SwapCreate, principal: PrincipalDep, session: SessionDep) -> SwapRead:
    swap = await roster_service.request_swap(
        session, shift_id=shift_id, to_representative_id=body.to_representative_id, note=body.note,
        principal=principal,
    )
    return SwapRead.model_validate(swap)


@router.get("/swaps", response_model=Page[SwapRead])
async def list_swaps(
    principal: PrincipalDep, session: SessionDep, status_: Annotated[SwapStatus | None, Query(alias="status")] = None,
    limit: LimitQ = 50, cursor: CursorQ = None,
) -> Page[SwapRead]:
    swaps, next_cursor = await roster_service.list_swaps(
        session, principal=principal, status=status_, limit=limit, cursor=cursor
    )
    return Page(items=[SwapRead.model_validate(s) for s in swaps], next_cursor=next_cursor)


@router.post("/swaps/{swap_id}/{action}", response_model=SwapRead, responses={409: problem(
    "Not in the swap's current status (`swap_state`), the shift has started (`shift_started`), or it would overlap "
    "another shift (`shift_conflict`)")})
async def act_on_swap(
    swap_id: IdPath, action: Literal["accept", "decline", "approve", "refuse", "cancel"], principal: PrincipalDep,
    session: SessionDep,
) -> SwapRead:
    if action in ("accept", "decline"):
        swap = await roster_service.answer_swap(
            session, swap_id=swap_id, accept=action == "accept", principal=principal
        )
    elif action in ("approve", "refuse"):
        swap = await roster_service.decide_swap(
            session, swap_id=swap_id, approve=action == "approve", principal=principal
        )
    else:
        swap = await roster_service.cancel_swap(session, swap_id=swap_id, principal=principal)
    return SwapRead.model_validate(swap)


# --- check-in and attendance -------------------------------------------------------------------------


@router.post("/shifts/{shift_id}/check-in", response_model=ShiftRead,
             responses={409: problem("Outside the check-in window (`check_in_window`, with `opens_at` and `closes_at`)")})
async def check_in(shift_id: IdPath, principal: PrincipalDep, session: SessionDep) -> ShiftRead:
    """From 30 minutes before the start until the end; a repeated check-in keeps the first time."""
    return ShiftRead.of(await roster_service.check_in(session, shift_id=shift_id, principal=principal))


@router.get("/attendance", response_model=AttendanceRead, response_model_exclude_none=True)
async def attendance(
    principal: PrincipalDep, session: SessionDep, day_from: FromQ = None, to: ToQ = None,
    group: Literal["representative", "workroom", "month"] = "representative",
) -> AttendanceRead:
    """Shifts starting in the Shanghai days from..to (default: this month so far), by representative,
    workroom or month: planned, checked in, missed (ended without a check-in), rate = checked_in / planned."""
    today = _today()
    day_from = day_from or today.replace(day=1)
    to = to or today
    rows = await roster_service.attendance(session, day_from=day_from, day_to=to, group=group, principal=principal)
    return AttendanceRead(group=group, from_=day_from, to=to, items=[AttendanceRow(**row) for row in rows])

