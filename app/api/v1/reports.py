"""The brief (工作简报, issue 20.4): ``GET /reports/{period}?format=json|docx|pdf``, the office's draft, and a
background job for a long period's file (polled at ``GET /exports/{id}``, downloaded from its
``download_url``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Path, Query, Request, Response, status

from app.errors import PermissionDenied
from app.http.deps import PrincipalDep, SessionDep, SettingsDep
from app.http.downloads import attachment
from app.http.routing import GuardedRouter
from app.models import utcnow
from app.schemas.common import problem
from app.schemas.exports import ExportJobRead
from app.schemas.reports import DraftRead, DraftUpdate, ReportFormat, ReportJobCreate, ReportRead
from app.services import periods
from app.services import reports as report_service

router = GuardedRouter(prefix="/reports", tags=["reports"])

# Any text: services/periods.py reads it and answers 422 ``invalid_period`` for anything else (however long).
PeriodPath = Annotated[str, Path(description="2026-11（月）、2026-Q4（季度）或 2026（年）")]
PERIOD_PROBLEM = {422: problem("The period is not YYYY-MM, YYYY-Qn or YYYY within 1900–2100 (`invalid_period`)")}


@router.get(
    "/{period}", response_model=ReportRead,
    responses={200: {"content": {report_service.MEDIA_TYPES["docx"]: {}, report_service.MEDIA_TYPES["pdf"]: {}},
                     "description": "The brief as JSON, or as a Word or PDF file (attachment)"},
               403: problem("Not staff nor a client with stats:read; a client asking for a file (`json_only`)"),
               503: problem("No Chinese font on the server for the PDF (`cjk_font_missing`)"), **PERIOD_PROBLEM},
    summary="A month's, quarter's or year's brief (staff, or a client with stats:read)",
)
async def get_report(
    period: PeriodPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
    format: Annotated[ReportFormat, Query(description="json (default), docx or pdf")] = "json",
) -> Response:
    """Every count equals ``GET /api/v1/stats/summary`` (and ``by-workroom``, ``by-category``) with ``from``
    and ``to`` the period's first and last day. A long period's file can also be written in the background:
    ``POST /api/v1/reports/{period}/jobs``."""
    report_service.require_reader(principal)
    if format != "json" and principal.client is not None:  # files are for staff, as the statistics' exports
        raise PermissionDenied("接口客户端只能读取 JSON 格式的简报；Word 和 PDF 文件仅供工作人员下载。", code="json_only")
    parsed = periods.parse(period)
    report = await report_service.build(session, parsed, now=utcnow(), settings=settings, principal=principal)
    if format == "json":
        return Response(ReportRead(**report.as_json()).model_dump_json(),  # type: ignore[arg-type]
                        media_type="application/json", headers={"Cache-Control": "no-store"})
    content = await report_service.render(report, format, settings=settings)
    headers = {**attachment(report_service.file_name(parsed, format),
                            fallback=report_service.ascii_file_name(parsed, format)), "Cache-Control": "no-store"}
    return Response(content, media_type=report_service.MEDIA_TYPES[format], headers=headers)


@router.put("/{period}/draft", response_model=DraftRead, responses=PERIOD_PROBLEM,
            summary="The office's opening paragraph and typical cases for a period's brief (coordinator, admin)")
async def put_draft(period: PeriodPath, body: DraftUpdate, principal: PrincipalDep, session: SessionDep) -> DraftRead:
    """Fields left out stay as they are. ``opening``: null or blank → the generated paragraph again (at most
    5,000 characters). ``featured_form_ids``: at most 10 forms, each once, that exist and were submitted no
    later than the period's last day (422 ``unknown_form``, ``duplicate_case``, ``case_after_period``, with
    the field's position in ``errors``)."""
    report_service.require_office(principal)
    parsed = periods.parse(period)
    values = {name: getattr(body, name) for name in body.model_fields_set}
    draft = await report_service.save_draft(session, principal=principal, period=parsed, **values)
    return DraftRead(period=draft.period, opening=draft.opening, featured_form_ids=list(draft.featured_form_ids),
                     updated_at=draft.updated_at)


@router.post("/{period}/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=ExportJobRead,
             responses=PERIOD_PROBLEM,
             summary="Write a period's brief as .docx or .pdf in the background (staff); poll GET /exports/{id}")
async def create_report_job(
    period: PeriodPath, body: ReportJobCreate, request: Request, background: BackgroundTasks,
    principal: PrincipalDep, session: SessionDep, settings: SettingsDep, response: Response,
) -> ExportJobRead:
    """The job's ``progress`` counts the steps done of ``total`` (the period's numbers, each month of a
    quarter or year, topics and cases, each chart, the file); when ``done``, ``download_url`` gives the file."""
    report_service.require_reader(principal)
    parsed = periods.parse(period)
    job = await report_service.create_job(session, principal=principal, period=parsed, fmt=body.format)
    # Started after the response, i.e. after this transaction has committed the job.
    background.add_task(request.app.state.exports.start_report, job.id, settings)
    response.headers["Location"] = f"/api/v1/exports/{job.id}"
    return ExportJobRead.build(job)
