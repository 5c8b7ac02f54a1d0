"""The office's brief pages (工作简报, issue 20.4).

- ``/office/reports``: pick a month, quarter or year (last month offered first);
- ``/office/reports/{period}``: the brief as it will print (the same blocks as the Word and PDF files), a
  form to replace the generated opening paragraph, a list of the period's answered forms to feature as
  typical cases (checkboxes, or tracking numbers typed in), and the downloads: a month's or quarter's files
  directly from ``GET /api/v1/reports/{period}?format=``, a year's through a background job whose page
  (``/office/reports/{period}/jobs/{id}``) shows its progress (htmx every second, a meta refresh without
  scripts) and then the download link.

Every form posts and redirects (303) back to the brief; a refused value re-renders the page with 422, the
message next to the field and what was typed kept. The rules live in ``services/reports.py``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from fastapi import BackgroundTasks, Request
from fastapi.responses import Response

from app.config import TZ
from app.errors import Invalid, NotFound, PermissionDenied
from app.http.deps import IdPath, SessionDep
from app.http.routing import GuardedRouter
from app.models import User, utcnow
from app.schemas.reports import MAX_FEATURED, MAX_OPENING
from app.services import exports as export_service
from app.services import periods
from app.services import reports as report_service
from app.services.auth import Principal
from app.services.periods import Period
from app.web.office import OFFICE_ROLES
from app.web.render import redirect, render
from app.web.session import CheckedForm, SignedIn

router = GuardedRouter()

JOB_FORMATS = {"docx": "Word", "pdf": "PDF"}
_NUMBERS = re.compile(r"[\s,，、;；]+")
_TRACKING_NO = re.compile(r"[A-Za-z0-9-]{1,32}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(text: str) -> str:
    """What was typed, to show again: without control characters (a page never carries NUL)."""
    return _CONTROL.sub("", text)


def _office(user: User) -> Principal:
    if user.role not in OFFICE_ROLES:
        raise PermissionDenied("此页面仅供办公室使用。", code="forbidden")
    return Principal(user=user)


def _today() -> date:
    return utcnow().astimezone(TZ).date()


def suggestions(today: date) -> dict[str, list[Period]]:
    """The periods the picker offers: the last six months (last month first), four quarters, two years."""
    months, year, month = [], today.year, today.month
    for _ in range(6):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        months.append(periods.parse(f"{year:04d}-{month:02d}"))
    quarters, year, quarter = [], today.year, (today.month - 1) // 3 + 1
    for _ in range(4):
        quarters.append(periods.parse(f"{year:04d}-Q{quarter}"))
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    years = [periods.parse(f"{today.year - n:04d}") for n in range(2)]
    return {"months": months, "quarters": quarters, "years": years}


def _picker(request: Request, *, value: str = "", error: str | None = None, status_code: int = 200) -> Response:
    offered = suggestions(_today())
    return render(request, "office/reports.html", {
        "offered": offered, "value": value or offered["months"][0].key, "error": error, "active": "reports",
    }, status_code=status_code)


@router.get("/office/reports")
async def reports_page(request: Request, user: SignedIn, period: str | None = None) -> Response:
    _office(user)
    if period is None:
        return _picker(request)
    try:
        chosen = periods.parse(period)
    except Invalid as refused:
        return _picker(request, value=period[:20], error=refused.detail, status_code=422)
    return redirect(f"/office/reports/{chosen.key}")


async def _preview(
    request: Request, session: Any, principal: Principal, period: Period, *,
    errors: dict[str, str] | None = None, values: dict[str, Any] | None = None, status_code: int = 200,
) -> Response:
    report = await report_service.build(session, period, now=utcnow(), settings=request.app.state.settings,
                                        principal=principal)
    candidates = await report_service.case_candidates(session, period, featured=report.featured_form_ids)
    values = values or {}
    response = render(request, "office/report.html", {
        "report": report, "blocks": report_service.blocks(report), "period": period,
        "opening": values.get("opening", report.custom_opening or ""),
        "generated_opening": report.generated_opening,
        "candidates": candidates, "featured": set(values.get("featured", report.featured_form_ids)),
        "tracking_no": values.get("tracking_no", ""), "errors": errors or {}, "max_featured": MAX_FEATURED,
        "max_opening": MAX_OPENING, "by_job": period.kind == "year", "formats": JOB_FORMATS,
        "active": "reports",
    }, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def _period_or_picker(request: Request, text: str) -> Period | Response:
    try:
        return periods.parse(text)
    except Invalid as refused:
        return _picker(request, value=text[:20], error=refused.detail, status_code=422)


@router.get("/office/reports/{period}")
async def report_page(request: Request, period: str, user: SignedIn, session: SessionDep) -> Response:
    principal = _office(user)
    parsed = _period_or_picker(request, period)
    if isinstance(parsed, Response):
        return parsed
    return await _preview(request, session, principal, parsed)


@router.post("/office/reports/{period}/opening")
async def save_opening(request: Request, period: str, user: SignedIn, session: SessionDep, form: CheckedForm) -> Response:
    principal = _office(user)
    parsed = _period_or_picker(request, period)
    if isinstance(parsed, Response):
        return parsed
    text = "" if form.get("action") == "reset" else str(form.get("opening") or "")
    try:
        await report_service.save_draft(session, principal=principal, period=parsed, opening=text)
    except Invalid as refused:
        return await _preview(request, session, principal, parsed, errors={"opening": refused.detail},
                              values={"opening": _printable(text)}, status_code=422)
    return redirect(f"/office/reports/{parsed.key}#opening")


@router.post("/office/reports/{period}/cases")
async def save_cases(request: Request, period: str, user: SignedIn, session: SessionDep, form: CheckedForm) -> Response:
    principal = _office(user)
    parsed = _period_or_picker(request, period)
    if isinstance(parsed, Response):
        return parsed
    typed = str(form.get("tracking_no") or "").strip()
    ids: list[int] = []
    error = None
    for value in form.getlist("form_id"):
        if not str(value).isdigit() or not 1 <= int(value) <= 2_147_483_647:
            error = "所选意见无效，请刷新页面后重新选择。"
            break
        if int(value) not in ids:
            ids.append(int(value))
    numbers = [n for n in _NUMBERS.split(typed) if n][:MAX_FEATURED + 1]
    wrong = [n for n in numbers if not _TRACKING_NO.fullmatch(n)]
    if error is None and wrong:
        error = f"编号“{wrong[0][:32]}”写法不对：应为意见编号，如 LS2026-00123。"
    if error is None and numbers:
        found = await report_service.form_ids_by_tracking_no(session, numbers)
        missing = [n for n in numbers if n not in found]
        if missing:
            error = f"没有编号为 {'、'.join(missing[:3])} 的意见征询表。"
        ids += [found[n] for n in numbers if n in found and found[n] not in ids]
    if error is None:
        try:
            await report_service.save_draft(session, principal=principal, period=parsed, featured_form_ids=ids)
        except Invalid as refused:
            error = refused.detail
    if error is not None:
        return await _preview(request, session, principal, parsed, errors={"cases": error},
                              values={"featured": ids, "tracking_no": _printable(typed)[:200]}, status_code=422)
    return redirect(f"/office/reports/{parsed.key}#cases")


@router.post("/office/reports/{period}/jobs")
async def start_job(
    request: Request, period: str, user: SignedIn, session: SessionDep, form: CheckedForm, background: BackgroundTasks,
) -> Response:
    principal = _office(user)
    parsed = _period_or_picker(request, period)
    if isinstance(parsed, Response):
        return parsed
    fmt = str(form.get("format") or "")
    if fmt not in JOB_FORMATS:
        return await _preview(request, session, principal, parsed, errors={"download": "请选择 Word 或 PDF。"},
                              status_code=422)
    job = await report_service.create_job(session, principal=principal, period=parsed, fmt=fmt)
    background.add_task(request.app.state.exports.start_report, job.id, request.app.state.settings)
    return redirect(f"/office/reports/{parsed.key}/jobs/{job.id}")


@router.get("/office/reports/{period}/jobs/{job_id}")
async def job_page(request: Request, period: str, job_id: IdPath, user: SignedIn, session: SessionDep) -> Response:
    principal = _office(user)
    parsed = _period_or_picker(request, period)
    if isinstance(parsed, Response):
        return parsed
    job = await export_service.get_job(session, principal=principal, job_id=job_id)
    if job.kind != "report" or job.filters.get("period") != parsed.key:
        raise NotFound("本期简报没有这个生成任务。", code="export_not_found")
    running = job.status in ("pending", "running")
    response = render(request, "office/report_job.html", {
        "job": job, "period": parsed, "running": running, "formats": JOB_FORMATS, "active": "reports",
    }, block="job")
    response.headers["Cache-Control"] = "no-store"
    return response
