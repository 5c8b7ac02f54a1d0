"""Pages: duty rosters (值班) for residents and for representatives on their phones.

Public, no account: ``GET /w/{code}/duty`` is the workroom's duty notice for this week and next
(Monday-based Asia/Shanghai weeks, "published in advance, as offices do"): day, time, name and level,
never a phone number. ``GET /duty/today`` is today's duty at every workroom, read in one SELECT; the
home page loads it as a fragment (htmx), and without JavaScript its link opens it as a page.

Representatives: ``GET /rep/duty`` is "我的值班" — my shifts today and the next 7 days, a big 签到
button while the check-in window is open, a 申请换班 form on shifts not yet started, and the swap
requests to me and from me. ``/rep`` loads the same section as a fragment. Every action is a plain POST
(CSRF-checked) through ``services.rosters`` and a 303 back to the page it came from; the services keep
every rule (window, holder, states) and their errors show as the error page or, under htmx, a toast.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from app.http.deps import public_url_for
from app.config import TZ
from app.http.deps import SessionDep
from app.errors import Invalid, NotFound, PermissionDenied
from app.http.routing import GuardedRouter
from app.models import Role, Shift, User
from app.schemas.common import MAX_ID
from app.services import duty, reference
from app.services import calendars as calendar_service
from app.services import rosters as roster_service
from app.services.calendars import FeedKind
from app.services.auth import Principal
from app.web.render import is_htmx, redirect, render, templates
from app.web.session import CheckedForm, SignedIn, safe_next

router = GuardedRouter()

WorkroomCode = Annotated[str, Path(max_length=32)]
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
NOTE_MAX = 500
LEVEL_LABELS = {"town": "镇党代表", "district": "区党代表", "city": "市党代表", "province": "省党代表",
                "national": "全国党代表"}
WEEKDAYS = "一二三四五六日"


def _hm(value: datetime | None) -> str:
    return value.astimezone(TZ).strftime("%H:%M") if value else ""


def _day_label(day: date) -> str:
    return f"{day.month}月{day.day}日 星期{WEEKDAYS[day.weekday()]}"


def _span(shift: Shift, day: date | None = None) -> str:
    """"09:00–11:30"; a shift crossing midnight says which day it ends (or began) on."""
    start, end = shift.starts_at.astimezone(TZ), shift.ends_at.astimezone(TZ)
    left = _hm(start) if day is None or start.date() == day else f"前日 {_hm(start)}"
    right = _hm(end) if end.date() == start.date() or (day is not None and end.date() == day) else f"次日 {_hm(end)}"
    return f"{left}–{right}"


templates.env.filters["duty_hm"] = _hm
templates.env.filters["duty_day"] = _day_label
templates.env.filters["duty_span"] = _span
templates.env.filters["duty_date"] = lambda value: _day_label(value.astimezone(TZ).date())
templates.env.globals["DUTY_LEVELS"] = LEVEL_LABELS
templates.env.globals["SWAP_LABELS"] = roster_service.SWAP_LABELS


# --- public pages ------------------------------------------------------------------------------------


@router.get("/w/{code}/duty")
async def workroom_duty(request: Request, code: WorkroomCode, session: SessionDep) -> HTMLResponse:
    """This week's and next week's duty at the workroom, by day."""
    today = duty.today_in_town()
    monday = today - timedelta(days=today.weekday())
    last = monday + timedelta(days=13)
    workroom = await reference.get_workroom(session, code)
    if workroom is None or not workroom.active:
        raise NotFound(f"工作室 {code} 不存在或已停用。", code="workroom_not_found")
    shifts = await roster_service.list_shifts(session, workroom_code=workroom.code, day_from=monday, day_to=last)
    days = duty.by_day(shifts, monday, last)
    weeks = [("本周", days[:7]), ("下周", days[7:])]
    return render(request, "duty/workroom.html", {"workroom": workroom, "weeks": weeks, "today": today,
                                                  "total": len(shifts)})


@router.get("/duty/today")
async def today_duty(request: Request, session: SessionDep) -> HTMLResponse:
    """Who is on duty today at each workroom (the home page loads the ``today`` block)."""
    today = duty.today_in_town()
    rows = await duty.today_by_workroom(session, day=today)
    return render(request, "duty/today.html", {"rows": rows, "today": today}, block="today")


async def _calendar_url(request: Request, session: AsyncSession, representative_id: int, *, reset: bool = False) -> str:
    """The representative's own iCalendar subscription (its token made on first use, or replaced)."""
    take = calendar_service.reset_token if reset else calendar_service.feed_token
    token = await take(session, kind=FeedKind.representative, owner_id=representative_id)
    return public_url_for(request, "representative_calendar_feed", query={"token": token},
                          representative_id=str(representative_id))


@router.post("/rep/calendar/reset")
async def reset_calendar(request: Request, user: SignedIn, form: CheckedForm, session: SessionDep) -> Response:
    """A new subscription address: the old one (shared by mistake, a lost phone) stops working at once."""
    _representative(user)
    if user.representative_id is not None:
        await _calendar_url(request, session, user.representative_id, reset=True)
    return redirect("/rep/duty#calendar")


# --- representatives ---------------------------------------------------------------------------------


def _representative(user: User) -> Principal:
    if user.role != Role.representative:
        raise PermissionDenied("此页面仅供党代表使用。", code="forbidden")
    return Principal(user=user)


def _back(form: FormData) -> str:
    target = safe_next(str(form.get("next") or ""), "/rep")
    return target if target in ("/rep", "/rep/duty") else "/rep"


@router.get("/rep/duty")
async def my_duty_page(request: Request, user: SignedIn, session: SessionDep) -> HTMLResponse:
    """我的值班 as a page (no JavaScript) or, for htmx (``/rep`` loads it), the ``mine`` block alone."""
    _representative(user)
    now = duty.now()
    context = await duty.my_duty(session, user=user, now=now)
    if not is_htmx(request) and user.representative_id is not None:  # the full page offers the calendar
        context["calendar_url"] = await _calendar_url(request, session, user.representative_id)
    back = "/rep" if is_htmx(request) else "/rep/duty"  # the actions come back to the page showing them
    response = render(request, "duty/mine.html", {**context, "now": now, "back": back}, block="mine")
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.post("/rep/shifts/{shift_id}/check-in")
async def check_in(request: Request, shift_id: RowId, user: SignedIn, form: CheckedForm, session: SessionDep) -> Response:
    principal = _representative(user)
    await roster_service.check_in(session, shift_id=shift_id, principal=principal)
    return redirect(_back(form))


@router.post("/rep/shifts/{shift_id}/swap")
async def request_swap(request: Request, shift_id: RowId, user: SignedIn, form: CheckedForm, session: SessionDep) -> Response:
    principal = _representative(user)
    target = str(form.get("to_representative_id") or "").strip()
    if not target.isdigit() or not 1 <= int(target) <= MAX_ID:
        raise Invalid("请选择换班的代表。", code="invalid_representative")
    note = str(form.get("note") or "").strip()
    if len(note) > NOTE_MAX:
        raise Invalid(f"说明不超过 {NOTE_MAX} 字。", code="note_too_long")
    await roster_service.request_swap(session, shift_id=shift_id, to_representative_id=int(target),
                                      note=note or None, principal=principal)
    return redirect(_back(form))


@router.post("/rep/swaps/{swap_id}/{action}")
async def answer_swap(request: Request, swap_id: RowId, action: str, user: SignedIn, form: CheckedForm, session: SessionDep) -> Response:
    principal = _representative(user)
    if action not in ("accept", "decline", "cancel"):
        raise NotFound("没有这个操作。", code="not_found")
    if action == "cancel":
        await roster_service.cancel_swap(session, swap_id=swap_id, principal=principal)
    else:
        await roster_service.answer_swap(session, swap_id=swap_id, accept=action == "accept", principal=principal)
    return redirect(_back(form))

