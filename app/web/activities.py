"""Pages of the register of activities (活动登记, issue 20.2).

- ``/w/{code}/activities`` (public): a workroom's public activities, the latest first, with their photos;
  one column, readable on a phone.
- ``/office/activities`` (the office, and representatives for their own workrooms): the list with filters
  (workroom, kind, from/to, representative), the Excel export and import links;
  ``/office/activities/new`` and ``/office/activities/{id}``: the form to record or change one (the
  workroom's representatives as checkboxes, its service-point sessions to link), its photos (upload, delete)
  and the forms its session produced; ``/office/activities/{id}/delete`` asks before deleting.

The workroom of the form is chosen by a small GET form above it (``?workroom=``): the checkboxes then list
that workroom's representatives, without any script. Every POST is CSRF-checked and redirects (303) on
success; bad input re-renders the form with 422 and the message next to its field, nothing lost. Every rule
lives in services/activities.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlencode

from typing import Annotated

from fastapi import BackgroundTasks, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.config import TZ
from app.errors import AppError, Invalid, NotFound, PermissionDenied
from app.http.deps import IdPath, SessionDep
from app.http.routing import GuardedRouter
from app.models import ACTIVITY_KIND_LABELS, Activity, Role, User, Workroom, utcnow
from app.schemas import dates
from app.schemas.activities import ActivityCreate, ActivityUpdate
from app.services import activities as activity_service
from app.services import photos as photo_service
from app.services import reference
from app.services.auth import Principal
from app.web.render import redirect, render
from app.web.session import CheckedForm, SignedIn

router = GuardedRouter()

PAGE_ROLES = (Role.admin, Role.coordinator, Role.representative)
PAGE_SIZE = 30
PUBLIC_PAGE_SIZE = 20
FORM_FIELDS = ("workroom_code", "kind", "title", "held_on", "place", "attendance", "account", "service_point_id")
REQUIRED = {"title": "请填写活动名称。", "held_on": "请选择活动日期。", "workroom_code": "请选择工作室。"}
WorkroomCode = Annotated[str, Path(max_length=32)]


def _principal(user: User) -> Principal:
    if user.role not in PAGE_ROLES:
        raise PermissionDenied("活动登记页面仅供办公室和党代表使用。", code="forbidden")
    return Principal(user=user)


def _today() -> date:
    return utcnow().astimezone(TZ).date()


# --- the public list ------------------------------------------------------------------------------------


@router.get("/w/{code}/activities")
async def public_activities(request: Request, code: WorkroomCode, session: SessionDep, page: str = "") -> Response:
    """A workroom's public activities, the latest first (20 a page; ``page`` is the list's cursor)."""
    workroom = await reference.get_workroom(session, code)
    if workroom is None or not workroom.active:
        raise NotFound(f"工作室 {code} 不存在或已停用。", code="workroom_not_found")
    public = Principal()  # whoever looks, the public's view: only public activities
    activities, next_cursor = await activity_service.list_activities(
        session, principal=public, filters=activity_service.ActivityFilter(workroom_code=workroom.code),
        limit=PUBLIC_PAGE_SIZE, cursor=page[:100] or None)
    photos = await activity_service.photos_of(session, [a.id for a in activities])
    return render(request, "public/activities.html", {
        "workroom": workroom, "activities": activities, "photos": photos, "next_cursor": next_cursor,
        "kind_labels": ACTIVITY_KIND_LABELS,
    })


# --- the office's list ----------------------------------------------------------------------------------


def _query_date(params: Mapping[str, Any], name: str, errors: dict[str, str]) -> date | None:
    value = str(params.get(name) or "").strip()
    if not value:
        return None
    try:
        return dates.parse_date(value)
    except dates.DateRangeError as exc:
        errors[name] = f"{exc.message}，已忽略此条件。"
        return None


async def _own_workrooms(session: AsyncSession, principal: Principal) -> list[Workroom]:
    """The active workrooms whose activities ``principal`` may record (all of them for the office)."""
    allowed = await activity_service.writable_workroom_ids(session, principal)
    workrooms = list((await reference.list_workrooms(session, active_only=True))[0])
    return [w for w in workrooms if allowed is None or w.id in allowed]


@router.get("/office/activities")
async def activity_list(request: Request, user: SignedIn, session: SessionDep) -> Response:
    principal = _principal(user)
    params = request.query_params
    errors: dict[str, str] = {}
    values = {name: str(params.get(name) or "").strip()[:32] for name in ("workroom", "kind", "from", "to", "representative")}
    kind = values["kind"] if values["kind"] in ACTIVITY_KIND_LABELS else None
    if values["kind"] and kind is None:
        errors["kind"] = "没有这种活动类型，已忽略此条件。"
    representative_id = int(values["representative"]) if values["representative"].isdigit() and len(values["representative"]) < 10 else None
    if values["representative"] and representative_id is None:
        errors["representative"] = "党代表编号无效，已忽略此条件。"
    workrooms = list((await reference.list_workrooms(session))[0])
    codes = {w.code for w in workrooms}
    workroom_code = values["workroom"] if values["workroom"] in codes else None
    if values["workroom"] and workroom_code is None:
        errors["workroom"] = f"工作室 {values['workroom']} 不存在，已忽略此条件。"
    date_from, date_to = _query_date(params, "from", errors), _query_date(params, "to", errors)
    if date_from and date_to and date_to < date_from:
        errors["to"] = "结束日期不能早于开始日期，已忽略日期条件。"
        date_from = date_to = None
    own_ids: frozenset[int] | None = None
    if user.role == Role.representative:  # a representative's list: their own workrooms' activities
        own_ids = frozenset(w.id for w in await _own_workrooms(session, principal))
    filters = activity_service.ActivityFilter(
        workroom_code=workroom_code, kind=kind, date_from=date_from, date_to=date_to,
        representative_id=representative_id, workroom_ids=own_ids,
    )
    try:
        activities, next_cursor = await activity_service.list_activities(
            session, principal=principal, filters=filters, limit=PAGE_SIZE,
            cursor=str(params.get("page") or "")[:100] or None)
    except Invalid as exc:  # a cursor from somewhere else
        errors["page"] = exc.detail
        activities, next_cursor = await activity_service.list_activities(
            session, principal=principal, filters=filters, limit=PAGE_SIZE)
    photos = await activity_service.photos_of(session, [a.id for a in activities])
    forms = await activity_service.forms_counts(session, activities)
    query = {k: v for k, v in {"workroom": workroom_code, "kind": kind, "from": date_from and date_from.isoformat(),
                               "to": date_to and date_to.isoformat(), "representative": representative_id}.items() if v}
    representatives = [r for r in (await reference.list_representatives(session))[0]]
    return render(request, "office/activities.html", {
        "active": "activities", "activities": activities, "photos": photos, "forms": forms, "values": values,
        "errors": errors, "workrooms": workrooms, "representatives": representatives,
        "kind_labels": ACTIVITY_KIND_LABELS, "next_cursor": next_cursor, "query": urlencode(query),
        "next_query": urlencode({**query, "page": next_cursor}) if next_cursor else "",
        "is_office": user.role in activity_service.OFFICE,
        "deleted": params.get("deleted") == "1",
    }, status_code=422 if errors else 200)


# --- the form -------------------------------------------------------------------------------------------


async def _form_page(
    request: Request, session: AsyncSession, principal: Principal, *, activity: Activity | None,
    workroom_code: str | None = None, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The form to record a new activity (``activity`` None) or change one, for the workroom chosen."""
    own = await _own_workrooms(session, principal)
    if activity is not None and activity.workroom not in own:
        own = [activity.workroom, *own]  # its own workroom, even if deactivated since
    if not own:
        raise PermissionDenied("您不属于任何在用的工作室，不能登记活动。", code="activity_forbidden")
    chosen = next((w for w in own if w.code == workroom_code), None)
    if chosen is None:
        chosen = activity.workroom if activity is not None else own[0]
    if values is None:
        if activity is not None:
            values = {"kind": activity.kind, "title": activity.title, "held_on": activity.held_on.isoformat(),
                      "place": activity.place, "attendance": str(activity.attendance), "account": activity.account,
                      "public": activity.public, "service_point_id": str(activity.service_point_id or ""),
                      "representative_ids": [str(r.id) for r in activity.representatives]}
        else:
            values = {"kind": "party_service", "held_on": _today().isoformat(), "attendance": "0", "public": True,
                      "representative_ids": []}
    members = [r for r in (await reference.list_representatives(session, workroom_code=chosen.code))[0] if r.active]
    chosen_ids = {str(i) for i in values.get("representative_ids") or []}
    present = activity.representatives if activity is not None else []
    others = [r for r in present if r not in members and str(r.id) in chosen_ids]  # another workroom's, kept
    context: dict[str, Any] = {
        "active": "activities", "activity": activity, "workroom": chosen, "workrooms": own,
        "representatives": [*members, *others], "points": await activity_service.service_points_for(session, [chosen.id]),
        "values": values, "errors": errors or {}, "kind_labels": ACTIVITY_KIND_LABELS,
        "is_office": principal.user is not None and principal.user.role in activity_service.OFFICE,
        "saved": request.query_params.get("saved") == "1", "max_photos": activity_service.MAX_PHOTOS,
    }
    if activity is not None:
        context["photos"] = (await activity_service.photos_of(session, [activity.id]))[activity.id]
        context["forms"] = await activity_service.produced_forms(session, principal=principal, activity=activity)
        context["forms_count"] = (await activity_service.forms_counts(session, [activity]))[activity.id]
    return render(request, "office/activity_form.html", context, status_code=status_code)


@router.get("/office/activities/new")
async def new_activity(request: Request, user: SignedIn, session: SessionDep, workroom: str = "") -> Response:
    principal = _principal(user)
    return await _form_page(request, session, principal, activity=None, workroom_code=workroom[:32] or None)


def _posted(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: str(form.get(name) or "").strip() for name in FORM_FIELDS}
    values["representative_ids"] = [str(v) for v in form.getlist("representative_ids") if str(v).strip()]
    values["public"] = str(form.get("public") or "") in ("true", "on", "1")
    return values


def _data(values: dict[str, Any]) -> dict[str, Any]:
    """The posted values as the API's body: blank optional fields left out (the schema's defaults)."""
    data: dict[str, Any] = {k: v for k, v in values.items() if v not in ("", []) and k != "service_point_id"}
    data["public"] = values["public"]
    data["service_point_id"] = values["service_point_id"] or None
    data.setdefault("representative_ids", [])
    data.setdefault("place", "")
    data.setdefault("account", "")
    return data


# What a person reads next to a field the schema refused (a date's own message is already Chinese).
FIELD_MESSAGES = {
    "workroom_code": "请选择工作室。", "kind": "请选择活动类型。", "title": f"活动名称应为 1 至 {activity_service.MAX_TITLE} 字。",
    "place": f"地点不能超过 {activity_service.MAX_PLACE} 字。",
    "attendance": f"参与人数应为 0 至 {activity_service.MAX_ATTENDANCE} 之间的整数。",
    "account": f"活动简述不能超过 {activity_service.MAX_ACCOUNT} 字。",
    "representative_ids": "所选的党代表无效，请重新勾选。", "service_point_id": "所选的流动服务点场次无效，请重新选择。",
}


def _messages(exc: ValidationError, data: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        if field in REQUIRED and field not in data:
            errors.setdefault(field, REQUIRED[field])
        elif error["type"] in dates.ERROR_TYPES or not error["loc"]:  # a date's message; the whole form's (Chinese)
            errors.setdefault(field, str(error["msg"]).removeprefix("Value error, "))
        else:
            errors.setdefault(field, FIELD_MESSAGES.get(field, "内容有误，请检查。"))
    return errors


def _service_errors(exc: Invalid) -> dict[str, str]:
    fields = [str(e["loc"][-1]) for e in exc.extra.get("errors") or [] if e.get("loc")]
    return {fields[0] if fields else "form": exc.detail}


@router.post("/office/activities")
async def create_activity(request: Request, form: CheckedForm, user: SignedIn, session: SessionDep) -> Response:
    principal = _principal(user)
    values = _posted(form)
    data = _data(values)
    try:
        body = ActivityCreate.model_validate(data)
        activity = await activity_service.create(session, principal=principal, data=body.model_dump())
    except (ValidationError, Invalid) as exc:
        errors = _messages(exc, data) if isinstance(exc, ValidationError) else _service_errors(exc)
        await session.rollback()  # nothing of a refused form is kept
        return await _form_page(request, session, principal, activity=None, workroom_code=values["workroom_code"],
                                values=values, errors=errors, status_code=422)
    return redirect(f"/office/activities/{activity.id}?saved=1")


@router.get("/office/activities/{activity_id}")
async def edit_activity(request: Request, activity_id: IdPath, user: SignedIn, session: SessionDep,
                        workroom: str = "") -> Response:
    principal = _principal(user)
    activity = await activity_service.writable(session, principal=principal, activity_id=activity_id)
    return await _form_page(request, session, principal, activity=activity, workroom_code=workroom[:32] or None)


@router.post("/office/activities/{activity_id}")
async def update_activity(request: Request, activity_id: IdPath, form: CheckedForm, user: SignedIn,
                          session: SessionDep) -> Response:
    principal = _principal(user)
    activity = await activity_service.writable(session, principal=principal, activity_id=activity_id)
    values = _posted(form)
    data = _data(values)
    missing = {name: message for name, message in REQUIRED.items() if name not in data}
    try:
        if missing:
            raise Invalid(next(iter(missing.values())), code="missing_field")
        body = ActivityUpdate.model_validate(data)
        await activity_service.update(session, principal=principal, activity_id=activity_id,
                                      data=body.model_dump(exclude_unset=True))
    except (ValidationError, Invalid) as exc:
        errors = missing or (_messages(exc, data) if isinstance(exc, ValidationError) else _service_errors(exc))
        await session.rollback()  # nothing of a refused form is kept
        activity = await activity_service.writable(session, principal=principal, activity_id=activity_id)
        return await _form_page(request, session, principal, activity=activity, workroom_code=values["workroom_code"],
                                values=values, errors=errors, status_code=422)
    return redirect(f"/office/activities/{activity.id}?saved=1")


@router.get("/office/activities/{activity_id}/delete")
async def confirm_delete(request: Request, activity_id: IdPath, user: SignedIn, session: SessionDep) -> Response:
    principal = _principal(user)
    activity = await activity_service.writable(session, principal=principal, activity_id=activity_id)
    photos = (await activity_service.photos_of(session, [activity.id]))[activity.id]
    return render(request, "office/activity_delete.html", {
        "active": "activities", "activity": activity, "photos": photos, "kind_labels": ACTIVITY_KIND_LABELS,
    })


@router.post("/office/activities/{activity_id}/delete")
async def delete_activity(request: Request, activity_id: IdPath, form: CheckedForm, user: SignedIn,
                          session: SessionDep, background: BackgroundTasks) -> Response:
    principal = _principal(user)
    keys = await activity_service.delete(session, principal=principal, activity_id=activity_id)
    background.add_task(activity_service.remove_files, request.app.state.settings, keys)  # after the commit
    return redirect("/office/activities?deleted=1")


# --- photos ---------------------------------------------------------------------------------------------


@router.post("/office/activities/{activity_id}/photos")
async def upload_photo(request: Request, activity_id: IdPath, form: CheckedForm, user: SignedIn,
                       session: SessionDep) -> Response:
    """One or more photos from the form's file field (``photos``); a refused one re-renders the form with
    the reason (nothing of the activity is lost: it was saved before)."""
    principal = _principal(user)
    settings = request.app.state.settings
    await activity_service.writable(session, principal=principal, activity_id=activity_id)  # before decoding
    files = [f for f in form.getlist("photos") if isinstance(f, UploadFile) and f.filename]
    try:
        if not files:
            raise Invalid("请选择要上传的照片。", code="photo_required")
        if len(files) > photo_service.MAX_PHOTOS:
            raise Invalid(f"一次最多上传 {photo_service.MAX_PHOTOS} 张照片。", code="too_many_photos")
        uploads = [await photo_service.read_upload(f, settings) for f in files]
        prepared = await photo_service.prepare_all(uploads, settings=settings)
        for photo in prepared:
            await activity_service.attach_photo(session, principal=principal, activity_id=activity_id,
                                                photo=photo, settings=settings)
    except AppError as refused:
        if refused.status in (401, 403, 404):
            raise
        await session.rollback()  # all the photos of the upload, or none
        activity = await activity_service.writable(session, principal=principal, activity_id=activity_id)
        return await _form_page(request, session, principal, activity=activity, errors={"photos": refused.detail},
                                status_code=refused.status)
    return redirect(f"/office/activities/{activity_id}#photos")


@router.post("/office/activities/{activity_id}/photos/{photo_id}/delete")
async def delete_photo(request: Request, activity_id: IdPath, photo_id: IdPath, form: CheckedForm, user: SignedIn,
                       session: SessionDep, background: BackgroundTasks) -> Response:
    principal = _principal(user)
    keys = await activity_service.delete_photo(session, principal=principal, activity_id=activity_id,
                                               photo_id=photo_id)
    background.add_task(activity_service.remove_files, request.app.state.settings, keys)
    return redirect(f"/office/activities/{activity_id}#photos")
