"""Pages for paper forms (纸质意见征询表, issue 20.1): print a batch, type the returned sheets in, reconcile.

- ``/office/paper``: reconciliation per workroom and per session (handed out, entered, voided, missing
  serials as ranges), the batches, and (for the office) the form that prints a new batch;
- ``/office/paper/{id}``: one batch: its counts, the missing serials, the forms typed in from it, the
  voided sheets, the PDF in A4 and A5 (the API's download), and (for the office) voiding sheets;
- ``/office/paper/entry``: the desk. Keyboard only: the serial is offered (the next one of the batch neither
  entered nor voided) and the cursor waits in the content; Tab through category (a number picks it, as on
  the sheet), name and phone; Enter submits. The page comes back with the next serial and the last entry's
  tracking number. A scan or photo of the sheet may go with it. A sheet's QR code opens this page with its
  serial filled in (signing in first if needed, then back here).

Who: the office everywhere; a representative for their own workrooms' batches (reading, printing, entering);
nobody else (services/paper_forms.py decides, and the pages show its 403). Every rule lives in the service;
a refused entry re-renders the page with the message beside its field and what was typed kept (409 for a
serial entered before, naming the first form's tracking number), and nothing of it is written.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import TZ
from app.errors import AppError, Conflict, PermissionDenied
from app.http.deps import IdPath, SessionDep
from app.http.routing import GuardedRouter
from app.models import User, utcnow
from app.schemas.common import MAX_ID
from app.schemas.paper import MAX_PER_BATCH, PaperBatchCreate, PaperFormCreate, VoidRequest
from app.services import paper_forms as paper_service
from app.services import photos as photo_service
from app.services import reference
from app.services import service_points as service_point_service
from app.services.auth import Principal
from app.web import capture
from app.web.office import OFFICE_ROLES, local_time  # noqa: F401 - registers the pages' filters
from app.web.render import redirect, render
from app.web.session import CheckedForm, PagePrincipal, SignedIn, set_cookie

router = GuardedRouter()

ENTERED_COOKIE = "minyi_paper_entered"
ENTRY_FIELDS = ("serial", "content", "category", "submitter_name", "submitter_phone")
SERIAL_CODES = {"invalid_paper_serial", "paper_serial_unknown", "paper_serial_not_in_batch", "paper_serial_taken",
                "paper_serial_voided"}
FIELD_MESSAGES = {
    "serial": "请填写纸质表上的编号。",
    "content": "请填写意见内容（不超过 2000 字）。",
    "category": "请选择类别。",
    "submitter_name": "姓名不超过 64 字。",
    "submitter_phone": "电话号码格式不对，请填写手机号或固定电话。",
}
BATCH_MESSAGES = {
    "workroom_code": "请选择工作室。",
    "service_point_id": "请选择流动服务点。",
    "count": f"张数应为 1 至 {MAX_PER_BATCH} 的整数；更多请分几批打印。",
    "page_size": "纸张大小只能是 A4 或 A5。",
    "note": "备注不超过 200 字。",
}
BATCH_FIELD_OF_CODE = {"unknown_workroom": "workroom_code", "workroom_required": "workroom_code",
                       "unknown_service_point": "service_point_id", "workroom_mismatch": "service_point_id",
                       "invalid_count": "count", "paper_serials_exhausted": "count"}
_SERIAL_SEPARATORS = re.compile(r"[\s,，、;；]+")


def _is_office(user: User) -> bool:
    return user.role in OFFICE_ROLES


def _id(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_ID else None


def _first_messages(exc: ValidationError, messages: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "form"
        errors.setdefault(name, messages.get(name, str(error["msg"]).removeprefix("Value error, ")))
    return errors


# --- the batches and their reconciliation -------------------------------------------------------------


async def _sessions(session: AsyncSession) -> list[Any]:
    """The sessions a batch may be printed for: those of the last 60 days and the next 30, newest first."""
    today = utcnow().astimezone(TZ).date()
    points, _ = await service_point_service.list_service_points(
        session, date_from=today - timedelta(days=60), date_to=today + timedelta(days=30), limit=200)
    return sorted(points, key=lambda p: p.starts_at, reverse=True)


async def _list_page(request: Request, session: AsyncSession, user: User, principal: Principal, *,
                     values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                     status_code: int = 200) -> Response:
    workroom = str(request.query_params.get("workroom") or "")[:32] or None
    summary = await paper_service.summary(session, principal=principal, workroom_code=workroom)
    batches, _ = await paper_service.list_batches(session, principal=principal, workroom_code=workroom, limit=100)
    states = await paper_service.reconcile(session, batches)
    office = _is_office(user)
    return render(request, "office/paper.html", {
        "active": "paper", "office": office, "summary": summary, "batches": batches, "states": states,
        "label": paper_service.label, "workroom": workroom,
        "workrooms": (await reference.list_workrooms(session, active_only=True))[0] if office else [],
        "sessions": await _sessions(session) if office else [],
        "values": values or {"page_size": "A4", "count": "50"}, "errors": errors or {},
        "max_count": MAX_PER_BATCH,
    }, status_code=status_code)


@router.get("/office/paper")
async def paper_batches(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    return await _list_page(request, session, user, principal)


@router.post("/office/paper")
async def create_batch(request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                       session: SessionDep) -> Response:
    if not _is_office(user):
        raise PermissionDenied("只有办公室工作人员可以打印纸质征询表。", code="forbidden")
    values = {name: str(form.get(name) or "").strip() for name in ("workroom_code", "service_point_id", "count",
                                                                   "page_size", "note")}
    data = {k: v for k, v in values.items() if v}
    try:
        body = PaperBatchCreate.model_validate(data)
    except ValidationError as exc:
        errors = _first_messages(exc, BATCH_MESSAGES)
        if "count" not in data:
            errors["count"] = BATCH_MESSAGES["count"]
        return await _list_page(request, session, user, principal, values=values, errors=errors, status_code=422)
    try:
        batch = await paper_service.create_batch(
            session, principal=principal, workroom_code=body.workroom_code, service_point_id=body.service_point_id,
            count=body.count, page_size=body.page_size, note=body.note)
    except AppError as exc:
        if isinstance(exc, PermissionDenied):
            raise
        await session.rollback()
        field = BATCH_FIELD_OF_CODE.get(exc.code, "form")
        return await _list_page(request, session, user, principal, values=values, errors={field: exc.detail},
                                status_code=exc.status)
    return redirect(f"/office/paper/{batch.id}?created=1")


async def _batch_page(request: Request, session: AsyncSession, user: User, principal: Principal, batch_id: int, *,
                      values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                      status_code: int = 200) -> Response:
    state = await paper_service.batch_state(session, principal=principal, batch_id=batch_id)
    params = request.query_params
    return render(request, "office/paper_batch.html", {
        "active": "paper", "office": _is_office(user), "state": state, "batch": state.batch,
        "label": paper_service.label(state.batch), "created": params.get("created") == "1",
        "voided": _id(params.get("voided")), "values": values or {}, "errors": errors or {},
    }, status_code=status_code)


@router.get("/office/paper/entry")
async def entry_page(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    params = request.query_params
    response = await _entry_page(request, session, principal, serial=params.get("serial"),
                                 batch_id=_id(params.get("batch")), after=params.get("after"), flash=True)
    if request.cookies.get(ENTERED_COOKIE):
        response.delete_cookie(ENTERED_COOKIE, path="/")
    return response


@router.get("/office/paper/{batch_id}")
async def batch_page(request: Request, batch_id: IdPath, user: SignedIn, principal: PagePrincipal,
                     session: SessionDep) -> Response:
    return await _batch_page(request, session, user, principal, batch_id)


@router.post("/office/paper/{batch_id}/voids")
async def void_serials(request: Request, batch_id: IdPath, form: CheckedForm, user: SignedIn,
                       principal: PagePrincipal, session: SessionDep) -> Response:
    if not _is_office(user):
        raise PermissionDenied("只有办公室工作人员可以作废纸质征询表。", code="forbidden")
    values = {"serials": str(form.get("serials") or "")[:20_000], "reason": str(form.get("reason") or "")}
    serials = [s for s in _SERIAL_SEPARATORS.split(values["serials"]) if s]
    try:
        body = VoidRequest.model_validate({"serials": serials, "reason": values["reason"]})
    except ValidationError as exc:
        errors = _first_messages(exc, {"serials": f"请填写要作废的编号（一次最多 {MAX_PER_BATCH} 个，用空格或逗号分开）。",
                                       "reason": "请填写作废原因（不超过 200 字）。"})
        return await _batch_page(request, session, user, principal, batch_id, values=values, errors=errors,
                                 status_code=422)
    try:
        voided = await paper_service.void_serials(session, principal=principal, batch_id=batch_id,
                                                  serials=body.serials, reason=body.reason)
    except AppError as exc:
        if isinstance(exc, PermissionDenied) or exc.status == 404:
            raise
        await session.rollback()
        return await _batch_page(request, session, user, principal, batch_id, values=values,
                                 errors={"serials": exc.detail}, status_code=exc.status)
    return redirect(f"/office/paper/{batch_id}?voided={len(voided)}")


# --- the desk ----------------------------------------------------------------------------------------


def _flash(request: Request) -> dict[str, str] | None:
    """The last entry (serial, tracking number, verification code), shown once after the redirect."""
    raw = unquote(request.cookies.get(ENTERED_COOKIE) or "")
    parts = raw.split("|")
    if len(parts) != 3:
        return None
    return {"serial": parts[0][:16], "tracking_no": parts[1][:32], "code": parts[2][:6]}


async def _entry_page(
    request: Request, session: AsyncSession, principal: Principal, *, serial: str | None = None,
    batch_id: int | None = None, after: str | None = None, values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None, status_code: int = 200, flash: bool = False,
) -> Response:
    """The desk: the serial asked for (checked: a refusal is shown with its own status), else the next one
    of ``batch_id`` after ``after``; the batch's counts beside the form."""
    await paper_service.workroom_scope(session, principal)  # 403 for anyone who may not type papers in
    values = dict(values or {})
    errors = dict(errors or {})
    state = None
    if serial:
        values.setdefault("serial", serial.strip()[:32])
        try:
            normalised, batch = await paper_service.check_serial(session, principal=principal, serial=serial)
            values["serial"] = normalised
            batch_id = batch.id
        except AppError as exc:
            if isinstance(exc, PermissionDenied):
                raise
            errors.setdefault("serial", exc.detail)
            status_code = max(status_code, exc.status)
            if isinstance(exc, Conflict) or exc.code == "paper_serial_not_in_batch":
                found = await paper_service.batch_of_serial(session, paper_service.normalise(serial))
                batch_id = found.id if found is not None else batch_id
    if batch_id is not None:
        state = await paper_service.batch_state(session, principal=principal, batch_id=batch_id)
        if not serial:
            values.setdefault("serial", state.next_serial(after=after) or "")
    categories, _ = await reference.list_categories(session, active_only=True)
    return render(request, "office/paper_entry.html", {
        "active": "paper", "state": state, "label": paper_service.label(state.batch) if state else "",
        "values": values, "errors": errors, "categories": categories, "max_photos": photo_service.MAX_PHOTOS,
        "entered": _flash(request) if flash else None, "batch_id": batch_id,
        "complete": state is not None and not state.missing and not errors,
    }, status_code=status_code)


@router.post("/office/paper/entry")
async def enter_form(request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
                     session: SessionDep) -> Response:
    settings = request.app.state.settings
    values = {name: str(form.get(name) or "") for name in ENTRY_FIELDS}
    public = str(form.get("public") or "").strip().lower() in ("true", "on", "1")
    if public:
        values["public"] = "true"
    batch_id = _id(str(form.get("batch") or ""))
    errors: dict[str, str] = {}
    body = None
    try:
        body = PaperFormCreate.model_validate({**{k: v for k, v in values.items() if k != "public"}, "public": public})
    except ValidationError as exc:
        errors = _first_messages(exc, FIELD_MESSAGES)
    # The photos first, before this request's transaction starts: decoding them holds no database lock.
    photos: list[photo_service.PreparedPhoto] = []
    try:
        uploads = await capture.read_photos(form, settings)
        photos = await photo_service.prepare_all(uploads, settings=settings) if uploads else []
    except AppError as refused:
        errors.setdefault(capture.FIELD, capture.photo_message(refused))

    async def again(errors: dict[str, str], status_code: int) -> Response:
        return await _entry_page(request, session, principal, batch_id=batch_id, values=values, errors=errors,
                                 status_code=status_code)

    if errors or body is None:
        await paper_service.workroom_scope(session, principal)  # a handler is refused, whatever they typed
        return await again(errors, 422)
    try:
        entered = await paper_service.enter(session, principal=principal, serial=body.serial, settings=settings,
                                            fields=body.model_dump(exclude={"serial"}), photos=photos)
    except AppError as exc:
        if isinstance(exc, PermissionDenied):
            raise
        await session.rollback()  # nothing of a refused entry is kept
        field = ("serial" if exc.code in SERIAL_CODES else "category" if exc.code == "unknown_category"
                 else capture.FIELD if capture.is_photo_problem(exc) else "form")
        message = capture.photo_message(exc) if field == capture.FIELD else exc.detail
        return await again({field: message}, exc.status)
    query = {"batch": str(entered.batch.id), "after": entered.serial}
    response = redirect("/office/paper/entry?" + urlencode(query))
    set_cookie(response, request, ENTERED_COOKIE,
               quote(f"{entered.serial}|{entered.form.tracking_no}|{entered.code}"), max_age=300)
    return response
