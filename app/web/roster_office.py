"""Pages of the office for duty rosters (值班) and mobile service points (流动服务点).

- ``/office/rosters``: a workroom's week (Mon–Sun, Asia/Shanghai) with a delete button per shift and a
  small form that adds one shift;
- ``/office/rota``: plan a rota (a pattern per workroom); ``/office/rota/preview`` shows the shifts it would
  create with their conflicts marked, ``/office/rota/commit`` writes them all or none;
- ``/office/swaps``: accepted swaps awaiting approval, and recent decisions;
- ``/office/attendance``: planned, checked in, missed and the rate, by representative, workroom or month;
- ``/office/service-points`` and ``/office/funnel``: the sessions with a create form, and what they collected.

Every rule lives in ``services/rosters.py`` and ``services/service_points.py``; the forms are validated
with the API's schemas, so a bad form re-renders with 422 and the message next to its field, and a
``shift_conflict`` re-renders with 409 and nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.http.deps import IdPath, SessionDep, public_url_for
from app.config import TZ
from app.errors import Conflict, Invalid, NotFound, PermissionDenied
from app.http.routing import GuardedRouter
from app.models import PlaceType, SwapStatus, User, utcnow
from app.schemas import dates
from app.schemas.rosters import RotaRequest, ShiftCreate
from app.schemas.service_points import ServicePointCreate
from app.services import reference
from app.services import calendars as calendar_service
from app.services import rosters as roster_service
from app.services.calendars import FeedKind
from app.services import service_points as service_point_service
from app.services.auth import Principal
from app.web.office import OFFICE_ROLES
from app.web.render import redirect, render, templates
from app.web.session import CheckedForm, PagePrincipal, SignedIn, safe_next

router = GuardedRouter()

WEEKDAYS = {1: "周一", 2: "周二", 3: "周三", 4: "周四", 5: "周五", 6: "周六", 7: "周日"}
PLACE_LABELS = {
    PlaceType.market: "集市", PlaceType.village: "村组", PlaceType.workshop: "车间", PlaceType.event: "活动",
    PlaceType.other: "其他",
}
GROUP_LABELS = {"representative": "按代表", "workroom": "按工作室", "month": "按月份"}
ROTA_SLOTS = 6  # representative choices per workroom, in rotation order (works without JavaScript)
DECIDED = (SwapStatus.approved, SwapStatus.refused)


def hm(value: datetime | None) -> str:
    """A time of day in Asia/Shanghai: ``09:00``."""
    return value.astimezone(TZ).strftime("%H:%M") if value else ""


def md(value: datetime | None) -> str:
    """A day in Asia/Shanghai, with its year (issue 17.6: office dates never drop it): ``2026-05-04``."""
    return value.astimezone(TZ).strftime("%Y-%m-%d") if value else ""


def local_day(value: datetime | None) -> str:
    return value.astimezone(TZ).date().isoformat() if value else ""


templates.env.filters.setdefault("hm", hm)
templates.env.filters.setdefault("md", md)
templates.env.filters.setdefault("day", local_day)
templates.env.filters.setdefault("shift_span", roster_service.local_span)


def _require_office(user: User) -> None:
    if user.role not in OFFICE_ROLES:
        raise PermissionDenied("只有办公室工作人员可以打开此页面。", code="forbidden")


def _today() -> date:
    return utcnow().astimezone(TZ).date()


def _date(params: Mapping[str, Any], name: str, default: date | None, errors: dict[str, str]) -> date | None:
    """The ``YYYY-MM-DD`` query value ``name``, or ``default`` when missing. Not a date, or outside the
    window every date input keeps (app/schemas/dates.py): ``default``, and the reason in ``errors[name]``,
    which the page shows above its results (answered 422)."""
    value = str(params.get(name) or "").strip()
    if not value:
        return default
    try:
        return dates.parse_date(value)
    except dates.DateRangeError as exc:
        errors[name] = f"{exc.message}，已改为显示默认的日期。"
        return default


def _messages(exc: ValidationError) -> dict[str, str]:
    """Pydantic errors as {field: message}; the first message per field wins."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        errors.setdefault(".".join(loc) or "form", message)
    return errors


async def _active_workrooms(session: Any) -> list[Any]:
    return list((await reference.list_workrooms(session, active_only=True))[0])


async def _active_representatives(session: Any) -> list[Any]:
    return [r for r in (await reference.list_representatives(session))[0] if r.active]


# --- the week grid -----------------------------------------------------------------------------------


def _monday(day: date) -> date:
    return day - timedelta(days=day.isoweekday() - 1)


def _week_url(workroom: str, day: date, **extra: Any) -> str:
    """The week grid of the week holding ``day`` (the URL names its Monday)."""
    return "/office/rosters?" + urlencode({"workroom": workroom, "week": _monday(day).isoformat(), **extra})


async def _roster_page(
    request: Request, session: Any, params: Mapping[str, Any], *, errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None, status_code: int = 200,
) -> Response:
    workrooms = await _active_workrooms(session)
    if not workrooms:
        raise NotFound("还没有工作室。", code="workroom_not_found")
    code = str(params.get("workroom") or "")
    if code not in {w.code for w in workrooms}:
        code = workrooms[0].code
    errors = dict(errors or {})
    day = _date(params, "week", _today(), errors) or _today()
    if "week" in errors and status_code == 200:
        status_code = 422
    monday = _monday(day)
    shifts = await roster_service.list_shifts(session, workroom_code=code, day_from=monday,
                                              day_to=monday + timedelta(days=6))
    days = []
    for offset in range(7):
        current = monday + timedelta(days=offset)
        lower, upper = roster_service.local_day_bounds(current, current)
        days.append({"date": current, "label": WEEKDAYS[current.isoweekday()],
                     "shifts": [s for s in shifts if s.starts_at < upper and s.ends_at > lower]})
    created = str(params.get("created") or "")
    return render(request, "office/roster_week.html", {
        "active": "rosters", "workrooms": workrooms, "workroom": code,
        "workroom_name": next(w.name for w in workrooms if w.code == code),
        "monday": monday, "days": days, "today": _today(),
        "prev_url": _week_url(code, monday - timedelta(days=7)), "next_url": _week_url(code, monday + timedelta(days=7)),
        "here": _week_url(code, monday), "representatives": await _active_representatives(session),
        "created": int(created) if created.isdigit() else None,
        "errors": errors, "values": values or {"day": monday.isoformat()},
    }, status_code=status_code)


@router.get("/office/rosters")
async def roster_week(request: Request, user: SignedIn, session: SessionDep) -> Response:
    _require_office(user)
    return await _roster_page(request, session, request.query_params)


SHIFT_FIELDS = ("workroom", "week", "representative_id", "day", "start", "end")


@router.post("/office/rosters/shifts")
async def add_shift(request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                    session: SessionDep) -> Response:
    _require_office(user)
    values = {name: str(form.get(name) or "").strip() for name in SHIFT_FIELDS}
    errors: dict[str, str] = {}
    for name, message in (("representative_id", "请选择代表。"), ("day", "请选择日期。"),
                          ("start", "请填写开始时间。"), ("end", "请填写结束时间。")):
        if not values[name]:
            errors[name] = message
    if values["day"] and "day" not in errors:
        try:
            dates.parse_date(values["day"])
        except dates.DateRangeError as exc:
            errors["day"] = exc.message + "。"
    body = None
    if not errors:
        try:
            body = ShiftCreate.model_validate({
                "representative_id": values["representative_id"],
                "starts_at": f"{values['day']}T{values['start']}", "ends_at": f"{values['day']}T{values['end']}",
            })
        except ValidationError as exc:
            for name, message in _messages(exc).items():
                field = {"starts_at": "start", "ends_at": "end"}.get(name, name)
                errors[field] = "请选择代表。" if field == "representative_id" else f"时间无效：{message}"
    params = {"workroom": values["workroom"], "week": values["week"] if "day" in errors else values["day"]}
    if body is not None:
        try:
            await roster_service.create_shift(
                session, workroom_code=values["workroom"], representative_id=body.representative_id,
                starts_at=body.starts_at, ends_at=body.ends_at, principal=principal,
            )
        except Conflict as exc:
            if exc.code != "shift_conflict":
                raise
            return await _roster_page(request, session, params, errors={"form": exc.detail}, values=values,
                                      status_code=409)
        except Invalid as exc:
            errors["end" if "time" in exc.code or "long" in exc.code else "representative_id"] = exc.detail
        else:
            return redirect(_week_url(values["workroom"], body.starts_at.date()))
    return await _roster_page(request, session, params, errors=errors, values=values, status_code=422)


@router.post("/office/rosters/shifts/{shift_id}/delete")
async def remove_shift(shift_id: IdPath, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                       session: SessionDep) -> Response:
    _require_office(user)
    await roster_service.delete_shift(session, shift_id=shift_id, principal=principal)
    return redirect(safe_next(str(form.get("next") or ""), "/office/rosters"))


# --- rota planning -----------------------------------------------------------------------------------


def _rota_input(params: Any, workrooms: list[Any]) -> dict[str, Any]:
    """The rota form's values as typed (query string or posted form): what the page shows back."""
    def getlist(name: str) -> list[str]:
        return [str(v) for v in params.getlist(name)] if hasattr(params, "getlist") else []

    patterns = {}
    for w in workrooms:
        key = f"w-{w.code}"
        patterns[w.code] = {
            "on": bool(params.get(f"{key}-on")),
            "weekdays": [d for d in getlist(f"{key}-weekday") if d.isdigit()]
            if params.get("planned") else ["1", "2", "3", "4", "5"],  # first visit: Monday to Friday
            "start": str(params.get(f"{key}-start") or "09:00"),
            "end": str(params.get(f"{key}-end") or "11:30"),
            "reps": getlist(f"{key}-rep"),
        }
    today = _today()
    monday = today + timedelta(days=7 - today.weekday())  # next Monday
    return {
        "from": str(params.get("from") or monday.isoformat()),
        "to": str(params.get("to") or (monday + timedelta(days=13)).isoformat()),
        "skip_holidays": bool(params.get("skip_holidays")) if params.get("planned") else True,
        "patterns": patterns,
    }


def _rota_body(values: dict[str, Any]) -> tuple[RotaRequest | None, dict[str, str]]:
    """The typed values validated by the API's ``RotaRequest``; errors keyed ``from``, ``to``, ``<code>.start``…"""
    chosen = [(code, p) for code, p in values["patterns"].items() if p["on"]]
    errors: dict[str, str] = {}
    if not chosen:
        errors["workrooms"] = "请至少勾选一个工作室并填写排班规则。"
    for code, p in chosen:
        if not p["weekdays"]:
            errors[f"{code}.weekdays"] = "请至少选择一天。"
        if not [r for r in p["reps"] if r]:
            errors[f"{code}.representative_ids"] = "请至少选择一位代表。"
    if errors:
        return None, errors
    data = {
        "from": values["from"], "to": values["to"], "skip_holidays": values["skip_holidays"],
        "workrooms": [
            {"code": code, "weekdays": p["weekdays"], "start": p["start"], "end": p["end"],
             "representative_ids": [r for r in p["reps"] if r]}
            for code, p in chosen
        ],
    }
    try:
        return RotaRequest.model_validate(data), {}
    except ValidationError as exc:
        for error in exc.errors():
            loc = list(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            if loc and loc[0] == "workrooms" and len(loc) >= 2 and isinstance(loc[1], int):
                field = str(loc[2]) if len(loc) > 2 else "end"  # a pattern-wide error: end before start
                errors.setdefault(f"{chosen[loc[1]][0]}.{field}", message)
            else:
                errors.setdefault(str(loc[0]) if loc else "to", message)
        return None, errors


def _patterns(body: RotaRequest) -> list[roster_service.RotaWorkroom]:
    return [
        roster_service.RotaWorkroom(code=w.code, weekdays=w.weekdays, start=w.start, end=w.end,
                                    representative_ids=w.representative_ids)
        for w in body.workrooms
    ]


def _hidden_fields(values: dict[str, Any]) -> list[tuple[str, str]]:
    """The pattern as (name, value) pairs: the preview carries it to the commit and back to the form."""
    fields = [("planned", "1"), ("from", values["from"]), ("to", values["to"])]
    if values["skip_holidays"]:
        fields.append(("skip_holidays", "1"))
    for code, p in values["patterns"].items():
        if not p["on"]:
            continue
        key = f"w-{code}"
        fields += [(f"{key}-on", "1"), (f"{key}-start", p["start"]), (f"{key}-end", p["end"])]
        fields += [(f"{key}-weekday", d) for d in p["weekdays"]]
        fields += [(f"{key}-rep", r) for r in p["reps"] if r]
    return fields


async def _rota_form(request: Request, session: Any, values: dict[str, Any], *, workrooms: list[Any],
                     errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return render(request, "office/roster_rota.html", {
        "active": "rosters", "workrooms": workrooms, "representatives": await _active_representatives(session),
        "values": values, "errors": errors or {}, "weekdays": WEEKDAYS, "slots": ROTA_SLOTS,
    }, status_code=status_code)


async def _preview_page(request: Request, session: Any, principal: Principal, body: RotaRequest,
                        values: dict[str, Any], *, failure: str | None = None, status_code: int = 200) -> Response:
    checked, skipped = await roster_service.preview_rota(
        session, day_from=body.from_, day_to=body.to, workrooms=_patterns(body), skip_holidays=body.skip_holidays,
        principal=principal,
    )
    existing = {}
    for shift_id in sorted({i for c in checked for i in c.shift_ids}):
        existing[shift_id] = await roster_service.get_shift_read(session, shift_id)
    return render(request, "office/roster_preview.html", {
        "active": "rosters", "items": checked, "existing": existing, "skipped": skipped,
        "conflicts": sum(1 for c in checked if c.conflict), "hidden": _hidden_fields(values),
        "failure": failure, "weekdays": WEEKDAYS,
        "first_workroom": body.workrooms[0].code, "from": body.from_,
    }, status_code=status_code)


@router.get("/office/rota")
async def rota_form(request: Request, user: SignedIn, session: SessionDep) -> Response:
    _require_office(user)
    workrooms = await _active_workrooms(session)
    return await _rota_form(request, session, _rota_input(request.query_params, workrooms), workrooms=workrooms)


@router.post("/office/rota/{step}")
async def rota_step(step: str, request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                    session: SessionDep) -> Response:
    if step not in ("preview", "commit"):
        raise NotFound("没有这项操作。", code="unknown_action")
    _require_office(user)
    workrooms = await _active_workrooms(session)
    values = _rota_input(form, workrooms)
    body, errors = _rota_body(values)
    if body is None:
        return await _rota_form(request, session, values, workrooms=workrooms, errors=errors, status_code=422)
    if step == "preview":
        return await _preview_page(request, session, principal, body, values)
    try:
        shifts = await roster_service.commit_rota(
            session, day_from=body.from_, day_to=body.to, workrooms=_patterns(body),
            skip_holidays=body.skip_holidays, principal=principal,
        )
    except Conflict as exc:
        if exc.code != "shift_conflict":
            raise
        # Nothing was written (add_shifts checks everything first): the preview again, conflicts marked.
        return await _preview_page(request, session, principal, body, values, failure=exc.detail, status_code=409)
    return redirect(_week_url(body.workrooms[0].code, body.from_, created=len(shifts)))


# --- swaps -------------------------------------------------------------------------------------------


async def _swap_rows(session: Any, swaps: Any, names: dict[int, str]) -> list[dict[str, Any]]:
    rows = []
    for swap in swaps:
        shift = await roster_service.get_shift_read(session, swap.shift_id)
        rows.append({"swap": swap, "shift": shift, "from_name": names.get(swap.from_representative_id, "?"),
                     "to_name": names.get(swap.to_representative_id, "?"),
                     "status_label": roster_service.SWAP_LABELS.get(swap.status, swap.status)})
    return rows


@router.get("/office/swaps")
async def swaps(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    _require_office(user)
    names = {r.id: r.name for r in (await reference.list_representatives(session))[0]}
    waiting, _ = await roster_service.list_swaps(session, principal=principal, status=SwapStatus.accepted,
                                                 limit=100, cursor=None)
    decided = []
    for status in DECIDED:
        found, _ = await roster_service.list_swaps(session, principal=principal, status=status, limit=10, cursor=None)
        decided += found
    decided.sort(key=lambda s: s.decided_at or s.requested_at, reverse=True)
    return render(request, "office/roster_swaps.html", {
        "active": "rosters", "waiting": await _swap_rows(session, waiting, names),
        "decided": await _swap_rows(session, decided[:10], names),
    })


@router.post("/office/swaps/{swap_id}/{action}")
async def decide_swap(swap_id: IdPath, action: str, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                      session: SessionDep) -> Response:
    if action not in ("approve", "refuse"):
        raise NotFound("没有这项操作。", code="unknown_action")
    _require_office(user)
    await roster_service.decide_swap(session, swap_id=swap_id, approve=action == "approve", principal=principal)
    return redirect("/office/swaps")


# --- attendance --------------------------------------------------------------------------------------


@router.get("/office/attendance")
async def attendance(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    _require_office(user)
    today = _today()
    params = request.query_params
    errors: dict[str, str] = {}
    day_from = _date(params, "from", today.replace(day=1), errors) or today
    day_to = _date(params, "to", today, errors) or today
    group = params.get("group") if params.get("group") in GROUP_LABELS else "representative"
    rows = await roster_service.attendance(session, day_from=day_from, day_to=day_to, group=group, principal=principal)
    return render(request, "office/roster_attendance.html", {
        "active": "rosters", "rows": rows, "from": day_from, "to": day_to, "group": group,
        "group_labels": GROUP_LABELS, "errors": errors,
        "totals": {key: sum(r[key] for r in rows) for key in ("planned", "checked_in", "missed")},
    }, status_code=422 if errors else 200)


# --- service points ----------------------------------------------------------------------------------

POINT_FIELDS = ("workroom_code", "title", "place_type", "location", "starts_at", "ends_at")


async def _points_page(request: Request, session: Any, *, errors: dict[str, str] | None = None,
                       values: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    today = _today()
    now = utcnow()
    upcoming, _ = await service_point_service.list_service_points(session, limit=100, now=now)
    recent, _ = await service_point_service.list_service_points(
        session, date_from=today - timedelta(days=60), date_to=today, limit=100)
    recent = sorted((p for p in recent if p.ends_at <= now), key=lambda p: p.starts_at, reverse=True)
    return render(request, "office/roster_points.html", {
        "active": "service-points", "upcoming": upcoming, "recent": recent,
        "workrooms": await _active_workrooms(session), "representatives": await _active_representatives(session),
        "place_labels": PLACE_LABELS, "errors": errors or {},
        "values": values or {"place_type": PlaceType.market.value, "representative_ids": []},
        "created": request.query_params.get("created"),
    }, status_code=status_code)


@router.get("/office/service-points")
async def service_points(request: Request, user: SignedIn, session: SessionDep) -> Response:
    _require_office(user)
    return await _points_page(request, session)


@router.post("/office/service-points")
async def create_service_point(request: Request, form: CheckedForm, user: SignedIn, session: SessionDep) -> Response:
    _require_office(user)
    values: dict[str, Any] = {name: str(form.get(name) or "").strip() for name in POINT_FIELDS}
    values["representative_ids"] = [str(v) for v in form.getlist("representative_ids") if str(v).strip()]
    data: dict[str, Any] = {k: v for k, v in values.items() if v not in ("", [])}
    errors: dict[str, str] = {}
    try:
        body = ServicePointCreate.model_validate(data)
    except ValidationError as exc:
        required = {"workroom_code": "请选择工作室。", "title": "请填写主题。", "starts_at": "请选择开始时间。",
                    "ends_at": "请选择结束时间。"}
        for name, message in _messages(exc).items():
            field = name.split(".")[0]
            if field not in POINT_FIELDS and field != "representative_ids":
                field = "ends_at"  # the model-wide check: the end must follow the start
            errors.setdefault(field, required[field] if field in required and field not in data else message)
        return await _points_page(request, session, errors=errors, values=values, status_code=422)
    try:
        point = await service_point_service.create_service_point(session, data=body.model_dump())
    except Invalid as exc:
        field = {"unknown_workroom": "workroom_code", "unknown_representative": "representative_ids"}.get(
            exc.code, "ends_at")
        return await _points_page(request, session, errors={field: exc.detail}, values=values, status_code=422)
    return redirect(f"/office/service-points?created={point.id}")


@router.get("/office/funnel")
async def funnel(request: Request, user: SignedIn, session: SessionDep) -> Response:
    _require_office(user)
    params = request.query_params
    errors: dict[str, str] = {}
    day_from = _date(params, "from", None, errors)
    day_to = _date(params, "to", None, errors)
    result = await service_point_service.funnel(session, date_from=day_from, date_to=day_to)
    return render(request, "office/roster_funnel.html", {
        "active": "service-points", "totals": result.totals, "sessions": result.sessions,
        "representatives": result.representatives, "from": day_from, "to": day_to, "place_labels": PLACE_LABELS,
        "errors": errors,
    }, status_code=422 if errors else 200)


# --- a workroom's calendar subscription ---------------------------------------------------------------


async def _workroom_calendar_url(request: Request, session: Any, code: str, *, reset: bool = False) -> str:
    workroom = await calendar_service.workroom_or_raise(session, code)
    take = calendar_service.reset_token if reset else calendar_service.feed_token
    token = await take(session, kind=FeedKind.workroom, owner_id=workroom.id)
    return public_url_for(request, "workroom_calendar_feed", query={"token": token}, code=workroom.code)


@router.get("/office/rosters/calendar")
async def workroom_calendar(request: Request, user: SignedIn, session: SessionDep, workroom: str = "") -> Response:
    """The workroom's iCalendar subscription address (its token made on first use), to put on the
    workroom's own phone or the office's shared calendar."""
    _require_office(user)
    url = await _workroom_calendar_url(request, session, workroom)
    return render(request, "office/roster_calendar.html", {"url": url, "workroom": workroom, "active": "rosters",
                                                           "tab": "week"})


@router.post("/office/rosters/calendar/reset")
async def reset_workroom_calendar(request: Request, form: CheckedForm, user: SignedIn, session: SessionDep) -> Response:
    _require_office(user)
    code = str(form.get("workroom") or "")
    await _workroom_calendar_url(request, session, code, reset=True)
    return redirect(f"/office/rosters/calendar?workroom={quote(code)}")
