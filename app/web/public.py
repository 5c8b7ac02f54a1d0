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
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.http import abuse, hosts
from app.http.deps import SessionDep, public_url
from app.config import TZ
from app.errors import Invalid, NotFound, TooManyRequests
from app.models import Category, ServicePoint, Workroom
from app.schemas.common import MAX_ID
from app.schemas.forms import FormCreate, TrackRead
from app.services import duty
from app.services import forms as form_service
from app.services import intake
from app.services import reference
from app.services import service_points as service_point_service
from app.services import verification
from app.services.auth import ANONYMOUS
from app.web.render import redirect, render, templates
from app.web.session import CheckedForm, is_https

router = APIRouter()

RECEIPT_COOKIE = "minyi_receipt"
RECEIPT_SECONDS = 30 * 60
NO_STORE = {"Cache-Control": "no-store"}
FIELDS = ("content", "category", "submitter_name", "submitter_phone", "location")
TICKED = ("true", "on", "1")  # what a ticked checkbox sends (ours says value="true")
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
            "workroom": workroom, "point": point, "label": f"{point.title}（{workroom.name}）",
            "path": f"/p/{point.id}", "hidden": {"service_point_id": point.id},
        }
    if workroom_code:
        workroom = await _active_workroom(session, workroom_code)
        return {
            "workroom": workroom, "point": None, "label": f"{workroom.name}（{workroom.code}）",
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
    return render(request, "public/submit.html", {
        "source": source, "points": points, "categories": await _categories(session),
        "errors": errors or {}, "values": values or {},
    }, status_code=status_code)


# --- pages -------------------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request, session: SessionDep) -> HTMLResponse:
    today = duty.today_in_town()
    workrooms, _ = await reference.list_workrooms(session, active_only=True)
    rows = await duty.today_by_workroom(session, day=today)  # today's duty, rendered here: no script needed
    return render(request, "public/home.html", {"workrooms": workrooms, "rows": rows, "today": today})


@router.get("/w/{code}")
async def workroom_page(request: Request, code: WorkroomCode, session: SessionDep) -> HTMLResponse:
    return await _submit_page(request, session, await _source(session, code, None))


@router.get("/p/{point_id}")
async def point_page(request: Request, point_id: PointId, session: SessionDep) -> HTMLResponse:
    return await _submit_page(request, session, await _source(session, None, point_id))


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
    "submitter_phone": {"*": "请填写正确的电话号码，例如 13812345678。"},
    "location": {"*": "地点不能超过 200 个字。"},
}
_INVALID_FIELDS = {"unknown_category": "category"}


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "form"
        messages = _MESSAGES.get(name)
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
    values = {name: str(form.get(name) or "") for name in FIELDS}
    # 同意公开: only a ticked box publishes; absent (unticked, or an old page) means not public.
    public = str(form.get("public") or "").strip().lower() in TICKED
    if public:
        values["public"] = "true"  # a re-rendered page keeps the tick
    workroom_code = str(form.get("workroom_code") or "").strip() or None
    point_text = str(form.get("service_point_id") or "").strip()
    point_id = int(point_text) if point_text.isdigit() and 1 <= int(point_text) <= MAX_ID else None
    source = await _source(session, workroom_code, point_id)
    try:
        body = FormCreate(**{name: values[name] for name in FIELDS}, public=public,
                          workroom_code=workroom_code, service_point_id=point_id)
    except ValidationError as exc:
        return await _submit_page(request, session, source, errors=_field_errors(exc), values=values,
                                  status_code=422)
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
        # The front door (services/intake.py), as every other door.
        outcome = await intake.submit_form(
            request.app.state, ANONYMOUS, form_service.Submission(**body.model_dump(exclude={"channel"})),
            door="public", answer=lambda accepted, _photos: accepted, client_address=abuse.client_ip(request),
        )
    except Invalid as refused:
        field = _INVALID_FIELDS.get(refused.code or "", "form")
        return await _submit_page(request, session, source, errors={field: refused.detail}, values=values,
                                  status_code=422)
    accepted: form_service.Accepted = outcome.body  # no key: always this submission's own answer
    response = redirect("/receipt")
    response.set_cookie(
        RECEIPT_COOKIE, receipt_cookie(request.app.state.settings.secret_key, accepted.form.tracking_no, accepted.code),
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
    try:
        found = await verification.find(session, abuse.verification_guard(request), tracking_no=values["no"],
                                        code=values["code"])
        result = TrackRead.build(found)
    except TooManyRequests as limited:
        return render(request, "public/track.html", {"values": values, "errors": {"form": limited.detail},
                                                     "result": None}, status_code=429,
                      headers={**NO_STORE, **limited.headers})
    except NotFound as missing:
        return render(request, "public/track.html", {"values": values, "errors": {"form": missing.detail},
                                                     "result": None}, status_code=404, headers=dict(NO_STORE))
    return render(request, "public/track.html", {"values": {"no": result.tracking_no}, "errors": {},
                                                 "result": result}, headers=dict(NO_STORE))


# --- QR codes and posters ----------------------------------------------------------------------------


QR_CACHE_SECONDS = 3600


def _svg(request: Request, path: str) -> Response:
    """The QR code of ``path``'s absolute URL (app/http/hosts.py: MINYI_PUBLIC_URL or an allowed host)."""
    url = public_url(request, path)
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=8, border=2, xmldecl=True, svgns=True,
                                    title=url)
    return Response(buffer.getvalue(), media_type="image/svg+xml",
                    headers=hosts.url_cache_headers(request, seconds=QR_CACHE_SECONDS))


@router.get("/w/{code}/qr.svg")
async def workroom_qr(request: Request, code: WorkroomCode, session: SessionDep) -> Response:
    workroom = await _active_workroom(session, code)
    return _svg(request, f"/w/{workroom.code}")


@router.get("/p/{point_id}/qr.svg")
async def point_qr(request: Request, point_id: PointId, session: SessionDep) -> Response:
    point, _ = await service_point_service.with_workroom(session, point_id)
    return _svg(request, f"/p/{point.id}")


def _poster(request: Request, title: str, subtitle: str, path: str) -> HTMLResponse:
    url = public_url(request, path)
    qr = segno.make(url, error="m").svg_inline(scale=8, border=2, omitsize=True)
    response = render(request, "public/poster.html", {"title": title, "subtitle": subtitle, "url": url, "qr": qr})
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
