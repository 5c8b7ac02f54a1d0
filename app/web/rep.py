"""Pages for representatives: quick entry at the stall, today's forms, 当场答复; nothing lost offline.

``GET /rep`` is one column built for a phone in the sun: category chips, the content, optional name,
phone and place, and the source (one of my workrooms or today's service points), chosen once and
remembered (a cookie here, localStorage in offline.js). ``POST /rep/forms`` works as a plain form (303 back
with a receipt) and for offline.js (``Accept: application/json`` → 201 ``{id, tracking_no}``); both
honour an Idempotency-Key (header, or the hidden ``idempotency_key`` field) through the same front door as
the API (``services/intake.submit_form``), so a form retried after a lost answer is written once.
``GET /sw.js`` serves the service worker that keeps the entry page openable with no network.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import segno
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, Invalid, PermissionDenied
from app.http import abuse
from app.http.deps import IdPath, SessionDep, public_url
from app.http.routing import GuardedRouter
from app.models import Role, User
from app.schemas.common import MAX_ID
from app.schemas.forms import PAGE_FIELDS, FormCreate
from app.services import forms as form_service
from app.services import idempotency as idempotency_service
from app.services import intake, places, reference
from app.services import photos as photo_service
from app.services import sms as sms_service
from app.services import service_points as service_point_service
from app.services import workflow
from app.services.auth import Principal
from app.web import capture
from app.web.capture import page_field_messages
from app.web.render import FRONTEND, redirect, render
from app.web.session import CheckedForm, SignedIn, set_cookie

router = GuardedRouter()

SOURCE_COOKIE = "minyi_rep_source"
RECEIPT_COOKIE = "minyi_rep_receipt"
SW_FILE = FRONTEND / "static" / "js" / "sw.js"
# The text the page posts: the fields it lays out, and those of the one submission schema it renders by
# themselves (schemas/forms.py PAGE_FIELDS).
TEXT_FIELDS = ("content", "category", "submitter_name", "submitter_phone", "location", "source", *PAGE_FIELDS)
PLACE_FIELDS = ("place", "latitude", "longitude")
TICKED = ("true", "on", "1")  # what a ticked checkbox sends (ours says value="true")
FIELD_MESSAGES = {
    "content": "请填写意见内容（不超过 2000 字）。",
    "category": "请选择类别。",
    "submitter_name": "姓名不超过 64 字。",
    "submitter_phone": "电话号码格式不对，请填写手机号或固定电话。",
    "location": "地点不超过 200 字。",
    "latitude": "位置信息有误，请重新定位，或从列表中选择地点。",
    "longitude": "位置信息有误，请重新定位，或从列表中选择地点。",
    "workroom_code": "请选择工作室或服务点。",
    "service_point_id": "请选择工作室或服务点。",
}
SMS_ERRORS = ("sms_phone", "sms_phone_missing")
FIELD_OF_CODE = {"unknown_category": "category", "unknown_workroom": "source", "unknown_service_point": "source",
                 "workroom_mismatch": "source"}


def slip(request: Request, tracking_no: str, code: str) -> dict[str, Any]:
    """A receipt slip (回执) for the resident: the number, the code, where to track, and a QR that opens
    tracking for this form. The code rides in the URL's fragment, which a browser never sends, so it never
    reaches a server's logs. Without a public address to print (production with neither MINYI_PUBLIC_URL nor
    an allowed host) the slip has no QR and says where to track in words."""
    try:
        track_url = public_url(request, "/track")
    except AppError:
        return {"tracking_no": tracking_no, "code": code, "track_url": None, "qr": None}
    target = f"{track_url}#{urlencode({'no': tracking_no, 'code': code})}"
    return {"tracking_no": tracking_no, "code": code, "track_url": track_url,
            "qr": segno.make(target, error="m").svg_data_uri(scale=4, border=2)}


def _representative(user: User) -> Principal:
    """The principal of a representative's page, or 403 for everyone else."""
    if user.role != Role.representative:
        raise PermissionDenied("此页面仅供党代表使用。", code="forbidden")
    return Principal(user=user)


async def _sources(session: AsyncSession, user: User, request: Request) -> list[tuple[str, str]]:
    """Where a representative collects today: their workrooms (``w:CODE``) and the service points of
    their workrooms or with them on it that run today (``p:ID``)."""
    return _options(*await _where(session, user, request))


def _options(workrooms: list[Any], points: list[Any]) -> list[tuple[str, str]]:
    return [(f"w:{w.code}", service_point_service.label(None, w)) for w in workrooms] + [
        (f"p:{p.id}", f"今日服务点：{service_point_service.label(p, p.workroom)}") for p in points]


async def _where(session: AsyncSession, user: User, request: Request) -> tuple[list[Any], list[Any]]:
    """The representative's active workrooms and the service points running for them today."""
    if user.representative_id is None:
        return [], []
    representative = await reference.get_representative_or_raise(session, user.representative_id)
    tz = request.app.state.settings.tz
    today = datetime.now(tz).date()
    start = datetime.combine(today, time.min, tzinfo=tz)
    end = start + timedelta(days=1)
    points = await service_point_service.running_for(session, representative, start=start, end=end)
    return [w for w in representative.workrooms if w.active], points


async def _today(session: AsyncSession, principal: Principal, request: Request) -> list[Any]:
    """The forms this user entered today (local date), newest first."""
    today = datetime.now(request.app.state.settings.tz).date()
    forms, _next = await form_service.list_forms(
        session, principal=principal,
        filters=form_service.FormQuery(submitted_from=today, submitted_to=today), limit=200,
    )
    assert principal.user is not None
    return [f for f in forms if f.entered_by_user_id == principal.user.id]


async def _page(
    request: Request,
    session: AsyncSession,
    user: User,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    answer_errors: dict[int, str] | None = None,
    idempotency_key: str | None = None,
    receipt: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    principal = _representative(user)
    workrooms, points = await _where(session, user, request)
    sources = _options(workrooms, points)
    categories, _ = await reference.list_categories(session, active_only=True)
    today = await _today(session, principal, request)
    values = dict(values or {})
    choices = [value for value, _label in sources]
    if values.get("source") not in choices:
        remembered = request.query_params.get("source") or request.cookies.get(SOURCE_COOKIE)
        values["source"] = remembered if remembered in choices else (choices[0] if choices else "")
    response = render(request, "rep/index.html", {
        "values": values, "errors": errors or {}, "answer_errors": answer_errors or {}, "sources": sources,
        "categories": categories, "today": today, "receipt": receipt,
        "places": places.near(workrooms, points), "max_photos": photo_service.MAX_PHOTOS,
        "sms_offered": sms_service.offered(request.app.state.settings),
        "idempotency_key": idempotency_key or str(uuid.uuid4()),
    }, block="today" if request.headers.get("hx-target") == "today" else None, status_code=status_code)
    response.headers["Cache-Control"] = "no-store" if receipt else "no-cache"
    return response


@router.get("/rep")
async def entry_page(request: Request, user: SignedIn, session: SessionDep) -> Response:
    receipt = None
    raw = request.cookies.get(RECEIPT_COOKIE)
    if raw and "." in raw:
        tracking_no, code, *reissued = raw.split(".", 2)  # "<no>.<code>", or "<no>.<code>.r" after 补发查询码
        receipt = {**slip(request, tracking_no, code), "reissued": bool(reissued)}
    response = await _page(request, session, user, receipt=receipt)
    if raw:
        response.delete_cookie(RECEIPT_COOKIE, path="/")
    return response


def _validation_messages(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "form"
        field = "source" if name in ("workroom_code", "service_point_id") else name
        # The SMS checks of the phone say exactly what is wrong (a landline, or no phone, with 短信通知).
        generic = (page_field_messages(name) or {}).get("*", "内容不符合要求。")
        message = error["msg"] if error["type"] in SMS_ERRORS else FIELD_MESSAGES.get(name, generic)
        errors.setdefault(field, message)
    return errors


@router.post("/rep/forms")
async def submit_form(request: Request, user: SignedIn, form: CheckedForm, session: SessionDep) -> Response:
    principal = _representative(user)
    state = request.app.state
    wants_json = "application/json" in request.headers.get("accept", "")
    values = {name: str(form.get(name) or "") for name in TEXT_FIELDS}
    # 群众同意公开: only a ticked box publishes; absent (unticked, or an offline form saved by an older page)
    # means not public.
    public = str(form.get("public") or "").strip().lower() in TICKED
    if public:
        values["public"] = "true"  # a re-rendered page keeps the tick
    # 群众要短信通知: only where SMS is offered (the page shows the box only then).
    sms_consent = sms_service.offered(state.settings) and str(form.get("sms_consent") or "").strip().lower() in TICKED
    if sms_consent:
        values["sms_consent"] = "true"
    key = request.headers.get("idempotency-key") or str(form.get("idempotency_key") or "") or None
    errors: dict[str, str] = {}

    async def invalid(errors: dict[str, str]) -> Response:
        if wants_json:
            return JSONResponse({"errors": errors}, status_code=422)
        return await _page(request, session, user, values=values, errors=errors, idempotency_key=key, status_code=422)

    data: dict[str, Any] = {name: values[name] for name in TEXT_FIELDS if name != "source"}
    data["public"] = public
    data["sms_consent"] = sms_consent
    await capture.place_fields(session, form, data)
    values.update({name: str(form.get(name) or "") for name in PLACE_FIELDS})  # kept on a page shown again
    source = values["source"]
    if source:
        choices = [value for value, _label in await _sources(session, user, request)]
        kind, _, ref = source.partition(":")
        if source not in choices:
            errors["source"] = "请选择您所在的工作室或今天的服务点。"
        elif kind == "w":
            data["workroom_code"] = ref
        elif kind == "p" and ref.isdigit() and 1 <= int(ref) <= MAX_ID:
            data["service_point_id"] = int(ref)
    try:
        body = FormCreate.model_validate(data)
    except ValidationError as exc:
        errors = {**_validation_messages(exc), **errors}
    uploads: list[Any] = []
    try:
        uploads = await capture.read_photos(form, state.settings)
    except AppError as refused:
        errors.setdefault(capture.FIELD, capture.photo_message(refused))
    if key is not None:
        try:
            idempotency_service.validate_key(key)
        except Invalid as exc:
            errors["form"] = exc.detail
    if errors:
        return await invalid(errors)

    def answer(accepted: form_service.Accepted, photos: Any) -> dict[str, Any]:
        return {"id": accepted.form.id, "tracking_no": accepted.form.tracking_no, "verification_code": accepted.code,
                "photos": len(photos)}

    # The reads above end here: the front door writes in transactions of its own, and on SQLite every
    # transaction holds the database's write lock (app/db.py), so this one must not stay open meanwhile.
    await session.commit()
    try:
        # The front door (services/intake.py), as every other door: queue, screening, the representative's
        # own idempotency namespace.
        outcome = await intake.submit_form(
            state, principal, form_service.Submission(**body.model_dump()), door="rep", answer=answer,
            client_address=abuse.client_ip(request), idempotency_key=key, uploads=uploads,
            previous_fingerprint=lambda _photos: idempotency_service.request_hash(body.model_dump(mode="json")),
        )
    except AppError as refused:
        if capture.is_photo_problem(refused):  # a photo the phone could not shrink, or not a photo at all
            return await invalid({capture.FIELD: capture.photo_message(refused)})
        if not isinstance(refused, Invalid):
            raise
        # A refused submission names its field; a key used for another form, the form.
        return await invalid({FIELD_OF_CODE.get(refused.code or "", "form"): refused.detail})
    created, replayed = dict(outcome.body), outcome.replayed

    if wants_json:
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        # offline.js keeps the slip with the code on the phone until the day ends (not kept with the key).
        answer = {**created, "slip": slip(request, created["tracking_no"], created.get("verification_code", ""))}
        response: Response = JSONResponse(answer, status_code=201, headers=headers)
    else:
        response = redirect("/rep")
        set_cookie(response, request, RECEIPT_COOKIE, f"{created['tracking_no']}.{created.get('verification_code', '')}",
                   max_age=300)
    if source:
        set_cookie(response, request, SOURCE_COOKIE, source, max_age=60 * 60 * 24 * 365)
    return response


@router.post("/rep/forms/{form_id}/answer-on-spot")
async def answer_on_spot(request: Request, form_id: IdPath, user: SignedIn, form: CheckedForm, session: SessionDep) -> Response:
    principal = _representative(user)
    reply_text = str(form.get("reply") or "").strip()
    if not reply_text or len(reply_text) > 2000:
        return await _page(request, session, user, answer_errors={form_id: "请填写答复内容（不超过 2000 字）。"},
                           status_code=422)
    await workflow.answer_on_spot(session, principal=principal, form_id=form_id, reply_text=reply_text)
    return redirect("/rep")


@router.post("/rep/forms/{form_id}/verification-code")
async def reissue_code(request: Request, form_id: IdPath, user: SignedIn, form: CheckedForm,
                       session: SessionDep) -> Response:
    """补发查询码 for a form this representative entered: the new code in the receipt at the top of /rep
    (redirect after POST; the receipt cookie lives five minutes and is read once)."""
    principal = _representative(user)
    written, code = await abuse.reissue_code(request, session, principal, form_id)
    response = redirect("/rep")
    set_cookie(response, request, RECEIPT_COOKIE, f"{written.tracking_no}.{code}.r", max_age=300)
    return response


VERSION_MARK = "__ASSETS_VERSION__"
STATIC_ROOTS = {"/static/vendor/htmx/": FRONTEND / "node_modules" / "htmx.org" / "dist",
                "/static/": FRONTEND / "static"}


def service_worker_source(sw_file: Path = SW_FILE, roots: dict[str, Path] = STATIC_ROOTS) -> str:
    """sw.js with its cache named after the content of what it caches (itself and its SHELL's files).

    Any change to a cached script or style gives a new cache name, so phones install the new worker, drop
    the old cache and fetch the new files at once; nobody bumps a number by hand (sign-out, in app.js,
    deletes every ``minyi-rep-*`` cache whatever its version).
    """
    text = sw_file.read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode())
    shell = re.search(r"var SHELL = \[(.*?)\];", text, re.S)
    for url in re.findall(r'"(/static/[^"]+)"', shell.group(1) if shell else ""):
        prefix = next(p for p in roots if url.startswith(p))  # "/static/" matches every SHELL file
        path = roots[prefix] / url.removeprefix(prefix)
        digest.update(url.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return text.replace(VERSION_MARK, digest.hexdigest()[:16])


@router.get("/sw.js")
async def service_worker() -> Response:
    """The service worker at the site root (its scope is /rep), never cached stale."""
    return Response(service_worker_source(), media_type="text/javascript",
                    headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"})
