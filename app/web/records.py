"""Pages: representatives' records of duty (履职档案, issue 20.3).

- ``GET /rep/record?period=2026-11``: 我的履职档案, the signed-in representative's own record;
- ``GET /office/records?workroom=LS-01&period=2026-11``: the office's view of a workroom, one row per
  representative with a link to each record, and the totals;
- ``GET /office/records/{representative_id}?period=``: one representative's record, for the office.

Each page picks a month, quarter or year (a plain GET form, no script needed) and links the same record
as .xlsx and PDF (``/api/v1/representatives/{id}/record``, ``/api/v1/workrooms/{code}/records``, read with
the page's session). A period written otherwise shows its message on the page (422) over this month's
record; the services (services/records.py) hold every figure and every rule of who may read.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from app.errors import Invalid, PermissionDenied
from app.http.deps import IdPath, SessionDep
from app.http.routing import GuardedRouter
from app.models import ACTIVITY_KIND_LABELS, Role, User
from app.services import records as record_service
from app.services import reference
from app.services.auth import OFFICE_ROLES, Principal
from app.web.render import render
from app.web.session import SignedIn

router = GuardedRouter()


def _span(request: Request, errors: dict[str, str]) -> record_service.Span:
    """The page's period (``period``), or this month with the reason in ``errors["period"]``."""
    try:
        return record_service.resolve_span(request.query_params.get("period"))
    except Invalid as exc:
        errors["period"] = f"{exc.detail}已改为显示本月。"
        return record_service.this_month()


def _downloads(path: str, span: record_service.Span) -> dict[str, str]:
    return {fmt: f"{path}?{urlencode({'period': span.key, 'format': fmt})}" for fmt in ("xlsx", "pdf")}


def _context(record: dict[str, Any], span: record_service.Span, errors: dict[str, str]) -> dict[str, Any]:
    return {
        "record": record, "span": span, "errors": errors, "choices": record_service.period_choices(span),
        "kind_labels": ACTIVITY_KIND_LABELS, "level_labels": record_service.LEVEL_LABELS,
        "downloads": _downloads(f"/api/v1/representatives/{record['representative']['id']}/record", span),
    }


def _require_office(user: User) -> None:
    if user.role not in OFFICE_ROLES:
        raise PermissionDenied("只有办公室工作人员可以打开此页面。", code="forbidden")


@router.get("/rep/record")
async def my_record(request: Request, user: SignedIn, session: SessionDep) -> Response:
    if user.role != Role.representative or user.representative_id is None:
        raise PermissionDenied("此页面仅供党代表使用。", code="forbidden")
    errors: dict[str, str] = {}
    span = _span(request, errors)
    record = await record_service.representative_record(
        session, principal=Principal(user=user), representative_id=user.representative_id, span=span)
    return render(request, "rep/record.html", _context(record, span, errors), status_code=422 if errors else 200)


@router.get("/office/records/{representative_id}")
async def representative_record(request: Request, representative_id: IdPath, user: SignedIn,
                                session: SessionDep) -> Response:
    _require_office(user)
    errors: dict[str, str] = {}
    span = _span(request, errors)
    record = await record_service.representative_record(
        session, principal=Principal(user=user), representative_id=representative_id, span=span)
    context = _context(record, span, errors) | {"active": "records"}
    return render(request, "office/records_person.html", context, status_code=422 if errors else 200)


@router.get("/office/records")
async def workroom_records(request: Request, user: SignedIn, session: SessionDep) -> Response:
    _require_office(user)
    errors: dict[str, str] = {}
    span = _span(request, errors)
    workrooms = list((await reference.list_workrooms(session))[0])
    code = (request.query_params.get("workroom") or "").strip()
    if code and all(w.code != code for w in workrooms):
        errors["workroom"] = f"工作室“{code[:32]}”不存在，请从列表中选择。"
        code = ""
    if not code:
        active = [w for w in workrooms if w.active] or workrooms
        code = active[0].code if active else ""
    record = await record_service.workroom_records(
        session, principal=Principal(user=user), code=code, span=span) if code else None
    return render(request, "office/records.html", {
        "active": "records", "record": record, "workrooms": workrooms, "code": code, "span": span, "errors": errors,
        "choices": record_service.period_choices(span),
        "downloads": _downloads(f"/api/v1/workrooms/{code}/records", span) if code else {},
    }, status_code=422 if errors else 200)
