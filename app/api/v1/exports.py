"""Exports: forms and statistics as .xlsx or .csv, streamed; big form exports as background jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Query, Request, Response, status
from fastapi.responses import FileResponse, StreamingResponse

from app.http.deps import AuditDep, IdPath, PrincipalDep, SessionDep, SettingsDep
from app.http.downloads import attachment
from app.http.routing import GuardedRouter
from app.models import utcnow
from app.schemas.common import problem
from app.schemas.dates import BoundedDate
from app.schemas.exports import ExportCreate, ExportFormat, ExportJobRead, StatsView
from app.schemas.forms import FormQuery
from app.services import exports as export_service
from app.services import forms as form_service

router = GuardedRouter(tags=["exports"])

FromQ = Annotated[BoundedDate | None, Query(alias="from", description="首日（含），YYYY-MM-DD")]
ToQ = Annotated[BoundedDate | None, Query(alias="to", description="末日（含），YYYY-MM-DD")]
FILE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {export_service.CSV_MEDIA_TYPE: {}, export_service.XLSX_MEDIA_TYPE: {}},
          "description": "The file (CSV: UTF-8 with BOM)"},
}


@router.get("/forms/export.{fmt}", response_class=Response, responses=FILE_RESPONSES,
            summary="Export forms as .csv or .xlsx (staff; the filters of GET /forms)")
async def export_forms(
    fmt: ExportFormat,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    audit: AuditDep,
    filters: Annotated[FormQuery, Query()],
) -> StreamingResponse:
    """Streams: the rows are read a page at a time after this request's transaction has ended. For tens of
    thousands of forms prefer ``POST /api/v1/exports``, which reports progress."""
    await export_service.validate_form_filter(session, principal=principal, filters=filters)
    now = utcnow()
    # Everything about the filters is settled before the stream sends its 200 (issue 15, point 2).
    await export_service.check_form_query(session, principal=principal, filters=filters, now=now)
    if form_service.sees_personal_data(principal):  # names and phone numbers leave the system: recorded
        await audit("export.forms", None, format=fmt, filters=filters.as_json())
    sessionmaker = request.app.state.sessionmaker
    if fmt == "csv":
        body = export_service.stream_forms_csv(sessionmaker, principal=principal, filters=filters, now=now)
    else:
        body = export_service.stream_forms_xlsx(sessionmaker, principal=principal, filters=filters, now=now,
                                                export_dir=settings.export_dir)
    filename = export_service.file_name(export_service.FORMS_TITLE, fmt, now)
    return StreamingResponse(body, media_type=export_service.MEDIA_TYPES[fmt], headers=attachment(filename))


@router.get("/stats/{view}/export.{fmt}", response_class=Response, responses=FILE_RESPONSES,
            summary="Export a statistics view as .csv or .xlsx (staff; the filters of the JSON view)")
async def export_stats(
    view: StatsView,
    fmt: ExportFormat,
    principal: PrincipalDep,
    session: SessionDep,
    workroom: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    date_from: FromQ = None,
    date_to: ToQ = None,
) -> Response:
    content, filename = await export_service.stats_export(
        session, principal=principal, view=view, fmt=fmt, workroom=workroom, category=category,
        date_from=date_from, date_to=date_to,
    )
    return Response(content, media_type=export_service.MEDIA_TYPES[fmt], headers=attachment(filename))


@router.post("/exports", status_code=status.HTTP_202_ACCEPTED, response_model=ExportJobRead,
             summary="Start a background export of forms (staff); poll GET /exports/{id}")
async def create_export(
    body: ExportCreate, request: Request, background: BackgroundTasks, principal: PrincipalDep, session: SessionDep,
    response: Response, audit: AuditDep,
) -> ExportJobRead:
    filters = body.filters
    job = await export_service.create_job(session, principal=principal, fmt=body.format, filters=filters)
    if form_service.sees_personal_data(principal):
        await audit("export.forms", f"export:{job.id}", format=body.format, filters=filters.as_json())
    # Started after the response, i.e. after this transaction has committed the job.
    background.add_task(request.app.state.exports.start, job.id)
    response.headers["Location"] = f"/api/v1/exports/{job.id}"
    return ExportJobRead.build(job)


@router.get("/exports/{job_id}", response_model=ExportJobRead, summary="An export job's status and progress")
async def get_export(job_id: IdPath, principal: PrincipalDep, session: SessionDep) -> ExportJobRead:
    return ExportJobRead.build(await export_service.get_job(session, principal=principal, job_id=job_id))


@router.get("/exports/{job_id}/download", response_class=FileResponse,
            responses={**FILE_RESPONSES, 409: problem("Not finished yet (`export_not_ready`), or failed (`export_failed`)")},
            summary="Download a finished export (the user who started it, or an admin)")
async def download_export(
    job_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep, audit: AuditDep
) -> FileResponse:
    path, filename, media_type = await export_service.job_file(
        session, principal=principal, job_id=job_id, export_dir=settings.export_dir
    )
    if form_service.sees_personal_data(principal):
        await audit("export.download", f"export:{job_id}")
    return FileResponse(path, media_type=media_type, headers=attachment(filename))
