"""The office's calendar page (节假日与调休, issue 15): ``/office/calendar?year=YYYY``.

Coordinators read it; admins also add a day, change or delete one, and import a CSV typed from the State
Council's notice. Every action is a real form POST (CSRF checked) that redirects back to the year (303);
bad input re-renders the page with the message next to the field (422), a refused import with every
problem listed by row and column, and nothing is saved.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.http.deps import SessionDep
from app.config import TZ
from app.errors import Conflict, Invalid
from app.http.routing import GuardedRouter
from app.models import DayKind, Role, User, utcnow
from app.schemas.dates import DateRangeError, parse_date
from app.services import working_calendar as calendar_service
from app.services.auth import Principal
from app.web.render import redirect, render
from app.web.session import CheckedForm, PagePrincipal, SignedIn

router = GuardedRouter()

KINDS = {DayKind.holiday: "放假", DayKind.workday: "上班（调休）"}


def _today() -> date:
    return utcnow().astimezone(TZ).date()


def _year(value: Any, default: int) -> int:
    """The year asked for; anything unreadable or outside 1900–2100 is this year (not an error)."""
    try:
        year = int(str(value or "").strip())
    except ValueError:
        return default
    return year if 1900 <= year <= 2100 else default


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _page(
    request: Request, session: Any, user: User, principal: Principal, year: int, *,
    errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
    row_errors: list[dict[str, Any]] | None = None, edit_errors: dict[str, str] | None = None,
    flash: str | None = None, status_code: int = 200,
) -> Response:
    view = await calendar_service.list_year(session, principal=principal, year=year, today=_today())
    first, last = calendar_service.year_window(_today())
    context = {
        "active": "calendar", "view": view, "year": year, "kinds": KINDS, "can_edit": user.role == Role.admin,
        "kind_labels": calendar_service.KIND_LABELS, "source_labels": calendar_service.SOURCE_LABELS,
        "weekday": calendar_service.weekday_label, "notice_title": calendar_service.notice_title(year),
        "years": [y for y in (year - 1, year + 1) if 1900 <= y <= 2100], "first_year": first, "last_year": last,
        "errors": errors or {}, "values": values or {}, "row_errors": row_errors or [],
        "edit_errors": edit_errors or {}, "flash": flash,
    }
    return render(request, "office/calendar.html", context, status_code=status_code)


def _reader(user: User) -> Principal:
    principal = Principal(user=user)
    calendar_service.require_reader(principal)
    return principal


@router.get("/office/calendar")
async def calendar_page(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    _reader(user)
    imported = request.query_params.get("imported")
    flash = f"已导入：{int(imported)} 天新增或更改。" if imported and imported.isdigit() and len(imported) < 5 else None
    return await _page(request, session, user, principal, _year(request.query_params.get("year"), _today().year),
                       flash=flash)


@router.post("/office/calendar/days")
async def add_day(request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                  session: SessionDep) -> Response:
    _reader(user)
    calendar_service.require_writer(principal)
    values = {name: str(form.get(name) or "").strip() for name in ("day", "kind", "name")}
    year = _year(form.get("year"), _today().year)
    errors: dict[str, str] = {}
    day = None
    try:
        day = parse_date(values["day"]) if values["day"] else None
    except DateRangeError as refused:
        errors["day"] = refused.message
    if day is None and "day" not in errors:
        errors["day"] = "请选择日期。"
    if values["kind"] not in KINDS:
        errors["kind"] = "请选择放假或上班。"
    if len(values["name"]) > 64:
        errors["name"] = "名称最多 64 个字。"
    status_code = 422
    if not errors and day is not None:
        try:
            await calendar_service.create(session, principal=principal, day=day, kind=values["kind"],
                                          name=values["name"], ip=_ip(request))
        except (Invalid, Conflict) as refused:
            errors["day"], status_code = refused.detail, refused.status
        else:
            return redirect(f"/office/calendar?year={day.year}#day-{day.isoformat()}")
    shown = day.year if day is not None and 1900 <= day.year <= 2100 else year
    return await _page(request, session, user, principal, shown, errors=errors, values=values,
                       status_code=status_code)


@router.post("/office/calendar/days/{day}/edit")
async def edit_day(day: str, request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                   session: SessionDep) -> Response:
    _reader(user)
    calendar_service.require_writer(principal)
    when = _day_in_path(day)
    kind = str(form.get("kind") or "").strip()
    name = str(form.get("name") or "").strip()
    message = None
    if kind not in KINDS:
        message = "请选择放假或上班。"
    elif len(name) > 64:
        message = "名称最多 64 个字。"
    else:
        try:
            await calendar_service.update(session, principal=principal, day=when, kind=kind, name=name, ip=_ip(request))
        except Invalid as refused:
            message = refused.detail
    if message is None:
        return redirect(f"/office/calendar?year={when.year}#day-{when.isoformat()}")
    return await _page(request, session, user, principal, when.year, edit_errors={when.isoformat(): message},
                       status_code=422)


@router.post("/office/calendar/days/{day}/delete")
async def delete_day(day: str, request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                     session: SessionDep) -> Response:
    _reader(user)
    when = _day_in_path(day)
    await calendar_service.remove(session, principal=principal, day=when, ip=_ip(request))
    return redirect(f"/office/calendar?year={when.year}")


@router.post("/office/calendar/import")
async def import_days(request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                      session: SessionDep) -> Response:
    _reader(user)
    calendar_service.require_writer(principal)
    year = _year(form.get("year"), _today().year)
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return await _page(request, session, user, principal, year, errors={"file": "请选择要导入的 CSV 文件。"},
                           status_code=422)
    try:
        result = await calendar_service.import_file(
            session, principal=principal, content=await file.read(), replace=bool(form.get("replace")),
            ip=_ip(request))
    except Invalid as refused:
        return await _page(request, session, user, principal, year, errors={"file": refused.detail},
                           row_errors=list(refused.extra.get("errors") or []), status_code=422)
    shown = result.years[0] if result.years else year
    return redirect(f"/office/calendar?year={shown}&imported={result.created + result.updated}")


def _day_in_path(value: str) -> date:
    try:
        return parse_date(value)
    except DateRangeError as refused:
        raise Invalid(f"日期{refused.message}。", code="invalid_date") from None

