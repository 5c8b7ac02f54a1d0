"""Pages for residents, no account needed: the workrooms, a submit form per workroom and per service
point (reached by scanning a QR code), the receipt with the tracking number and code, public tracking,
and printable QR posters.

The receipt's verification code is never put in a URL (URLs end up in logs, history and caches): the
303 after a submission sets a short-lived signed cookie that only ``/receipt`` reads, and pages showing
the code say ``Cache-Control: no-store``. Tracking is a POST for the same reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
from datetime import datetime
from typing import Annotated, Any

import segno
from fastapi import Path, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.http import abuse, hosts
from app.http.deps import SessionDep, public_url
from app.http.downloads import attachment, inline
from app.config import TZ
from app.errors import AppError, Invalid, NotFound, TooManyRequests
from app.http.routing import GuardedRouter
from app.models import Category, ServicePoint, Workroom
from app.schemas.common import MAX_ID
from app.schemas.forms import PAGE_FIELDS, SMS_NO_PHONE_MESSAGE, SMS_PHONE_MESSAGE, FormCreate, TrackRead
from app.services import duty
from app.services import forms as form_service
from app.services import intake
from app.services import places
from app.services.photos import MAX_PHOTOS
from app.services import reference
from app.services import service_points as service_point_service
from app.services import sms as sms_service
from app.services import verification
from app.services.auth import ANONYMOUS
from app.web import capture
from app.web.capture import page_field_messages
from app.web.render import FRONTEND, redirect, render, templates
from app.web.session import CheckedForm, is_https

router = GuardedRouter()

RECEIPT_COOKIE = "minyi_receipt"
RECEIPT_SECONDS = 30 * 60
NO_STORE = {"Cache-Control": "no-store"}
# The text the page posts: the fields it lays out, and those of the one submission schema it renders by
# themselves (schemas/forms.py PAGE_FIELDS).
FIELDS = ("content", "category", "submitter_name", "submitter_phone", "location", *PAGE_FIELDS)
PLACE_FIELDS = ("place", "latitude", "longitude")
TICKED = ("true", "on", "1")  # what a ticked checkbox sends (ours says value="true")
FAVICON_FILE = FRONTEND / "static" / "img" / "favicon.svg"
PointId = Annotated[int, Path(ge=1, le=MAX_ID)]
WorkroomCode = Annotated[str, Path(max_length=32)]


def _local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.astimezone(TZ).strftime(fmt) if value else ""


templates.env.filters["public_time"] = _local_time


# --- reading the references --------------------------------------------------------------------------


async def _active_workroom(session: AsyncSession, code: str) -> Workroom:
    workroom = await reference.get_workroom(session, code)
    if workroom is None or not workroom.active:
        raise NotFound(f"工作室 {code} 不存在或已停用。", code="workroom_not_found")
    return workroom


async def _categories(session: AsyncSession) -> list[Category]:
    categories, _ = await reference.list_categories(session, active_only=True)
    return list(categories)


async def _source(session: AsyncSession, workroom_code: str | None, point_id: int | None) -> dict[str, Any]:
    """What the submit form needs for this source: its label, its hidden fields, where it lives."""
    if point_id is not None:
        point, workroom = await service_point_service.with_workroom(session, point_id)
        return {
            "workroom": workroom, "point": point, "label": service_point_service.label(point, workroom),
            "path": f"/p/{point.id}", "hidden": {"service_point_id": point.id},
        }
    if workroom_code:
        workroom = await _active_workroom(session, workroom_code)
        return {
            "workroom": workroom, "point": None, "label": service_point_service.label(None, workroom),
            "path": f"/w/{workroom.code}", "hidden": {"workroom_code": workroom.code},
        }
    return {"workroom": None, "point": None, "label": "网上提交", "path": "/submit", "hidden": {}}


async def _submit_page(
    request: Request, session: AsyncSession, source: dict[str, Any], *,
    errors: dict[str, str] | None = None, values: dict[str, str] | None = None, status_code: int = 200,
) -> HTMLResponse:
    points: list[ServicePoint] = []
    if source["workroom"] is not None and source["point"] is None:
        points = await service_point_service.latest_of_workroom(session, source["workroom"].id)
    workrooms = [source["workroom"]] if source["workroom"] is not None else []
    near = places.near(workrooms, [source["point"]] if source["point"] is not None else points[:5])
    return render(request, "public/submit.html", {
        "source": source, "points": points, "categories": await _categories(session), "places": near,
        "errors": errors or {}, "values": values or {}, "max_photos": MAX_PHOTOS,
        "sms_offered": sms_service.offered(request.app.state.settings),
    }, status_code=status_code)


def _ended_page(request: Request, source: dict[str, Any], *, content: str = "", status_code: int = 200) -> HTMLResponse:
    """A service point whose session has ended: no form, the day it ended and its workroom's page instead
    (a resident who scans an old poster still reaches someone). After a refused POST, what they typed is
    shown so nothing is lost."""
    return render(request, "public/point_ended.html", {
        "source": source, "content": content, "refused": status_code != 200,
    }, status_code=status_code)


# --- pages -------------------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request, session: SessionDep) -> HTMLResponse:
    today = duty.today_in_town()
    workrooms, _ = await reference.list_workrooms(session, active_only=True)
    rows = await duty.today_by_workroom(session, day=today)  # today's duty, rendered here: no script needed
    return render(request, "public/home.html", {"workrooms": workrooms, "rows": rows, "today": today})


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page links: our SVG mark itself (browsers read an icon by
    its content type, not its name), so no 404 in their logs nor ours."""
    return FileResponse(FAVICON_FILE, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/w/{code}")
async def workroom_page(request: Request, code: WorkroomCode, session: SessionDep) -> HTMLResponse:
    return await _submit_page(request, session, await _source(session, code, None))


@router.get("/p/{point_id}")
async def point_page(request: Request, point_id: PointId, session: SessionDep) -> HTMLResponse:
    source = await _source(session, None, point_id)
    if service_point_service.has_ended(source["point"]):
        return _ended_page(request, source)
    return await _submit_page(request, session, source)


@router.get("/submit")
async def submit_page(request: Request, session: SessionDep) -> HTMLResponse:
    return await _submit_page(request, session, await _source(session, None, None))


@router.get("/service-points")
async def service_point_calendar(request: Request, session: SessionDep) -> HTMLResponse:
    """The public calendar of upcoming mobile service point sessions (the next 30 days)."""
    points, _ = await service_point_service.list_service_points(session, limit=200)
    days: dict[str, list[ServicePoint]] = {}
    for point in points:
        days.setdefault(_local_time(point.starts_at, "%Y-%m-%d"), []).append(point)
    return render(request, "public/service_points.html", {"days": days})


# --- submitting --------------------------------------------------------------------------------------

_MESSAGES = {
    "content": {"missing": "请填写您的意见或建议。", "string_too_short": "请填写您的意见或建议。",
                "string_too_long": "内容不能超过 2000 字，请精简后再提交。"},
    "category": {"*": "请从列出的类别中选择一项。"},
    "submitter_name": {"*": "姓名不能超过 64 个字。"},
    "submitter_phone": {"sms_phone": SMS_PHONE_MESSAGE, "sms_phone_missing": SMS_NO_PHONE_MESSAGE,
                        "*": "请填写正确的电话号码，例如 13812345678。"},
    "location": {"*": "地点不能超过 200 个字。"},
    "latitude": {"*": "位置信息有误，请重新定位，或从列表中选择地点。"},
    "longitude": {"*": "位置信息有误，请重新定位，或从列表中选择地点。"},
}
_INVALID_FIELDS = {"unknown_category": "category"}


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "form"
        messages = _MESSAGES.get(name) or page_field_messages(name)
        if messages is not None:
            message = messages.get(error["type"]) or messages.get("*") or next(iter(messages.values()))
        elif name in ("workroom_code", "service_point_id"):
            name, message = "form", "来源信息有误，请重新扫描二维码后提交。"
        else:
            name, message = "form", str(error.get("msg", "")).removeprefix("Value error, ") or "提交的内容有误。"
        errors.setdefault(name, message)
    return errors


def _sign(payload: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), b"receipt:" + payload, hashlib.sha256).hexdigest()


def receipt_cookie(secret: str, tracking_no: str, code: str, *, now: float | None = None) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(
        {"no": tracking_no, "code": code, "exp": int((now or time.time()) + RECEIPT_SECONDS)}
    ).encode())
    return f"{payload.decode()}.{_sign(payload, secret)}"


def read_receipt(secret: str, value: str | None) -> dict[str, str] | None:
    if not value or "." not in value:
        return None
    payload, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(payload.encode(), secret)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    if not isinstance(data, dict) or int(data.get("exp", 0)) < time.time():
        return None
    return {"no": str(data["no"]), "code": str(data["code"])}


@router.post("/submit")
async def submit(request: Request, form: CheckedForm, session: SessionDep) -> Response:
    settings = request.app.state.settings
    values = {name: str(form.get(name) or "") for name in FIELDS}
    # 同意公开: only a ticked box publishes; absent (unticked, or an old page) means not public.
    public = str(form.get("public") or "").strip().lower() in TICKED
    if public:
        values["public"] = "true"  # a re-rendered page keeps the tick
    # 短信通知: only where SMS is offered (the page shows the box only then).
    sms_consent = sms_service.offered(settings) and str(form.get("sms_consent") or "").strip().lower() in TICKED
    if sms_consent:
        values["sms_consent"] = "true"
    workroom_code = str(form.get("workroom_code") or "").strip() or None
    point_text = str(form.get("service_point_id") or "").strip()
    point_id = int(point_text) if point_text.isdigit() and 1 <= int(point_text) <= MAX_ID else None
    source = await _source(session, workroom_code, point_id)
    if source["point"] is not None and service_point_service.has_ended(source["point"]):
        # An ended session takes no more forms from residents (the representatives' and the API's doors
        # still may: see docs). Refused before anything is read or written.
        return _ended_page(request, source, content=values["content"], status_code=422)
    data: dict[str, Any] = {name: values[name] for name in FIELDS}
    await capture.place_fields(session, form, data)
    values.update({name: str(form.get(name) or "") for name in PLACE_FIELDS})  # kept on a page shown again
    errors: dict[str, str] = {}
    body: FormCreate | None = None
    try:
        body = FormCreate(**data, public=public, sms_consent=sms_consent, workroom_code=workroom_code,
                          service_point_id=point_id)
    except ValidationError as exc:
        errors = _field_errors(exc)
    uploads: list[Any] = []
    try:
        uploads = await capture.read_photos(form, settings)
    except AppError as refused:
        errors.setdefault(capture.FIELD, capture.photo_message(refused))
    if errors or body is None:
        return await _submit_page(request, session, source, errors=errors, values=values, status_code=422)
    try:
        await abuse.public_submission(request, ANONYMOUS)
    except TooManyRequests as limited:
        page = await _submit_page(request, session, source, errors={"form": limited.detail}, values=values,
                                  status_code=429)
        page.headers.update(limited.headers)
        return page
    # The reads above end here: the front door writes in transactions of its own, and on SQLite every
    # transaction holds the database's write lock (app/db.py), so this one must not stay open meanwhile.
    await session.commit()
    try:
        # The front door (services/intake.py), as every other door, photos included.
        outcome = await intake.submit_form(
            request.app.state, ANONYMOUS, form_service.Submission(**body.model_dump(exclude={"channel"})),
            door="public", answer=lambda accepted, _photos: accepted, client_address=abuse.client_ip(request),
            uploads=uploads,
        )
    except AppError as refused:
        if capture.is_photo_problem(refused):
            errors = {capture.FIELD: capture.photo_message(refused)}
        elif isinstance(refused, Invalid):
            errors = {_INVALID_FIELDS.get(refused.code or "", "form"): refused.detail}
        else:
            raise
        return await _submit_page(request, session, source, errors=errors, values=values, status_code=422)
    accepted: form_service.Accepted = outcome.body  # no key: always this submission's own answer
    response = redirect("/receipt")
    response.set_cookie(
        RECEIPT_COOKIE, receipt_cookie(settings.secret_key, accepted.form.tracking_no, accepted.code),
        max_age=RECEIPT_SECONDS, path="/receipt", httponly=True, samesite="lax", secure=is_https(request),
    )
    return response


@router.get("/receipt")
async def receipt(request: Request) -> HTMLResponse:
    data = read_receipt(request.app.state.settings.secret_key, request.cookies.get(RECEIPT_COOKIE))
    return render(request, "public/receipt.html", {"receipt": data}, status_code=200 if data else 404,
                  headers=dict(NO_STORE))


# --- tracking ----------------------------------------------------------------------------------------


@router.get("/track")
async def track_page(request: Request, no: str | None = None) -> HTMLResponse:
    return render(request, "public/track.html", {"values": {"no": (no or "")[:40]}, "errors": {}, "result": None})


@router.post("/track")
async def track(request: Request, form: CheckedForm, session: SessionDep) -> HTMLResponse:
    values = {"no": str(form.get("no") or "").strip()[:40], "code": str(form.get("code") or "").strip()[:16]}
    errors: dict[str, str] = {}
    if not values["no"]:
        errors["no"] = "请填写查询编号。"
    if not values["code"]:
        errors["code"] = "请填写查询码。"
    if errors:
        return render(request, "public/track.html", {"values": values, "errors": errors, "result": None},
                      status_code=422, headers=dict(NO_STORE))
    found = await _find(request, session, values)
    if isinstance(found, HTMLResponse):
        return found
    return _tracked(request, found, TrackRead.build(found), code=values["code"])


async def _find(request: Request, session: AsyncSession, values: dict[str, str]) -> Any:
    """The form for a number and code, through the look-up guard; or the tracking page saying why not
    (429 over the limit, 404 for a wrong number or code, alike)."""
    try:
        return await verification.find(session, abuse.verification_guard(request), tracking_no=values["no"],
                                       code=values["code"])
    except TooManyRequests as limited:
        return render(request, "public/track.html", {"values": values, "errors": {"form": limited.detail},
                                                     "result": None}, status_code=429,
                      headers={**NO_STORE, **limited.headers})
    except NotFound as missing:
        return render(request, "public/track.html", {"values": values, "errors": {"form": missing.detail},
                                                     "result": None}, status_code=404, headers=dict(NO_STORE))


def _tracked(request: Request, form: Any, result: TrackRead, *, code: str, sms_stopped: bool = False) -> HTMLResponse:
    """The tracking page with a form's progress; 不再接收短信通知 when the resident asked for SMS and has not
    stopped them (the button posts the number and the code again: nothing is remembered between requests)."""
    return render(request, "public/track.html", {
        "values": {"no": result.tracking_no}, "errors": {}, "result": result, "sms_stopped": sms_stopped,
        "sms_stop": {"no": result.tracking_no, "code": code}
        if sms_service.can_stop(request.app.state.settings, form) else None,
    }, headers=dict(NO_STORE))


@router.post("/track/sms-stop")
async def track_sms_stop(request: Request, form: CheckedForm, session: SessionDep) -> HTMLResponse:
    """不再接收短信通知: the same number and code as tracking, through the same guard; then the tracking page
    again, saying the notices are stopped."""
    values = {"no": str(form.get("no") or "").strip()[:40], "code": str(form.get("code") or "").strip()[:16]}
    if not values["no"] or not values["code"]:
        return render(request, "public/track.html", {"values": values, "errors": {"form": "请填写查询编号和查询码。"},
                                                     "result": None}, status_code=422, headers=dict(NO_STORE))
    found = await _find(request, session, values)
    if isinstance(found, HTMLResponse):
        return found
    await sms_service.stop(session, form=found)
    return _tracked(request, found, TrackRead.build(found), code=values["code"], sms_stopped=True)


# --- QR codes and posters ----------------------------------------------------------------------------


QR_CACHE_SECONDS = 3600


def _svg(request: Request, path: str, name: str, *, download: bool = False) -> Response:
    """The QR code of ``path``'s absolute URL (app/http/hosts.py: MINYI_PUBLIC_URL or an allowed host):
    shown in place, or with ``?download=1`` saved as ``二维码-<name>.svg``."""
    url = public_url(request, path)
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=8, border=2, xmldecl=True, svgns=True,
                                    title=url)
    filename = f"二维码-{name}.svg"
    disposition = attachment(filename) if download else inline(filename)
    return Response(buffer.getvalue(), media_type="image/svg+xml",
                    headers={**hosts.url_cache_headers(request, seconds=QR_CACHE_SECONDS), **disposition})


@router.get("/w/{code}/qr.svg")
async def workroom_qr(request: Request, code: WorkroomCode, session: SessionDep, download: str = "") -> Response:
    workroom = await _active_workroom(session, code)
    return _svg(request, f"/w/{workroom.code}", workroom.name, download=download in TICKED)


@router.get("/p/{point_id}/qr.svg")
async def point_qr(request: Request, point_id: PointId, session: SessionDep, download: str = "") -> Response:
    point, _ = await service_point_service.with_workroom(session, point_id)
    return _svg(request, f"/p/{point.id}", point.title, download=download in TICKED)


def _poster(request: Request, title: str, subtitle: str, path: str) -> HTMLResponse:
    url = public_url(request, path)
    qr = segno.make(url, error="m").svg_inline(scale=8, border=2, omitsize=True)
    response = render(request, "public/poster.html", {"title": title, "subtitle": subtitle, "url": url, "qr": qr,
                                                      "qr_download": f"{path}/qr.svg?download=1"})
    # A page (it carries the browser's CSRF token) whose URL may come from the request's host: never kept
    # by a shared cache, nor handed to a request for another host.
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = f"{response.headers['Vary']}, Host"
    return response


@router.get("/w/{code}/poster")
async def workroom_poster(request: Request, code: WorkroomCode, session: SessionDep) -> HTMLResponse:
    workroom = await _active_workroom(session, code)
    return _poster(request, workroom.name, workroom.address or "", f"/w/{workroom.code}")


@router.get("/p/{point_id}/poster")
async def point_poster(request: Request, point_id: PointId, session: SessionDep) -> HTMLResponse:
    point, workroom = await service_point_service.with_workroom(session, point_id)
    return _poster(request, point.title, f"{workroom.name} · {point.location}".rstrip(" ·"), f"/p/{point.id}")
