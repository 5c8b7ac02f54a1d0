"""API: imports from the offices' spreadsheets, and roster, attendance and funnel exports to .xlsx or CSV.

- ``POST /imports`` (coordinator, admin; multipart ``file`` + ``kind``): a file of ≤ 200 rows is checked
  and imported before the answer (201, the finished job: ``done`` or ``failed`` with ``errors``); a bigger
  one answers 202 at once and runs as a job: poll ``GET /imports/{id}`` (its creator or an admin).
- ``GET /imports/template/{kind}.xlsx|.csv``: the header row (and one example row) to fill in.
- ``GET /rosters/export.{xlsx|csv}``, ``/attendance/export.{xlsx|csv}``,
  ``/service-points/funnel/export.{xlsx|csv}`` (coordinator, admin): the funnel's .xlsx holds both tables,
  its CSV the one ``by`` names (``session``, the default, or ``representative``).

Uploads are bounded by the request body limit (``MINYI_MAX_BODY_BYTES``, 1 MiB by default: some 20,000
shift rows as CSV).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import File, Form, Query, Request, Response, UploadFile, status

from app.http.deps import IdPath, PrincipalDep, SessionDep
from app.http.downloads import attachment
from app.config import TZ
from app.http.routing import GuardedRouter
from app.models import utcnow
from app.schemas.dates import BoundedDate
from app.schemas.imports import ImportJobRead, ImportKind, TemplateFormat
from app.services import exports as export_service
from app.services import imports as import_service

router = GuardedRouter(tags=["imports"])

FromQ = Annotated[BoundedDate | None, Query(alias="from", description="首日（含，北京时间），YYYY-MM-DD")]
ToQ = Annotated[BoundedDate | None, Query(alias="to", description="末日（含），YYYY-MM-DD")]
XLSX = export_service.XLSX_MEDIA_TYPE
FILE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {XLSX: {}, export_service.CSV_MEDIA_TYPE: {}}, "description": "The .xlsx or CSV file"}
}


def _file(content: bytes, title: str, fmt: str) -> Response:
    filename = export_service.file_name(title, fmt, utcnow())
    return Response(content, media_type=export_service.MEDIA_TYPES[fmt], headers=attachment(filename))


def _runner(request: Request) -> import_service.ImportRunner:
    return request.app.state.imports  # type: ignore[no-any-return]  # made by create_app, stopped in its lifespan


@router.post(
    "/imports", response_model=ImportJobRead, status_code=status.HTTP_201_CREATED,
    responses={202: {"model": ImportJobRead, "description": "A big file: the job runs; poll GET /imports/{id}"}},
    summary="Import representatives or shifts from .xlsx/.csv (coordinator, admin); all rows or none",
)
async def create_import(
    request: Request,
    response: Response,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description=".xlsx, or CSV in UTF-8 (BOM or not) or GB18030")],
    kind: Annotated[ImportKind, Form()],
) -> ImportJobRead:
    # No request session: the job keeps its own transactions (the write is one of them), inline or not.
    sessionmaker = request.app.state.sessionmaker
    job_id, finished = await import_service.start_import(
        sessionmaker, _runner(request), principal=principal, kind=kind, file_name=file.filename or "",
        content=await file.read(),
    )
    if not finished:
        response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = f"/api/v1/imports/{job_id}"
    return ImportJobRead.build(await import_service.read_job(sessionmaker, principal=principal, job_id=job_id))


@router.get("/imports/template/{kind}.{fmt}", response_class=Response,
            responses={200: {"content": {XLSX: {}, export_service.CSV_MEDIA_TYPE: {}}}},
            summary="The import template: the header row and one example row")
async def import_template(kind: ImportKind, fmt: TemplateFormat) -> Response:
    content = import_service.template(kind, fmt)
    title = {"representatives": "党代表导入模板", "shifts": "值班表导入模板", "activities": "活动登记导入模板"}[kind]
    return Response(content, media_type=export_service.MEDIA_TYPES[fmt], headers=attachment(f"{title}.{fmt}"))


@router.get("/imports/{job_id}", response_model=ImportJobRead, summary="An import job (its creator or an admin)")
async def get_import(job_id: IdPath, principal: PrincipalDep, session: SessionDep) -> ImportJobRead:
    return ImportJobRead.build(await import_service.get_job(session, principal=principal, job_id=job_id))


def _this_month() -> tuple[date, date]:
    today = utcnow().astimezone(TZ).date()
    first = today.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


@router.get("/rosters/export.{fmt}", response_class=Response, responses=FILE_RESPONSES,
            summary="Shifts as .xlsx or CSV (coordinator, admin): one workroom or all, default this month")
async def export_roster(
    fmt: TemplateFormat, principal: PrincipalDep, session: SessionDep,
    workroom: Annotated[str | None, Query(max_length=32)] = None, day_from: FromQ = None, day_to: ToQ = None,
) -> Response:
    first, last = _this_month()
    content = await import_service.roster_file(
        session, principal=principal, workroom_code=workroom, day_from=day_from or first, day_to=day_to or last,
        fmt=fmt,
    )
    return _file(content, "值班表", fmt)


@router.get("/attendance/export.{fmt}", response_class=Response, responses=FILE_RESPONSES,
            summary="Attendance as .xlsx or CSV (coordinator, admin): default this month so far")
async def export_attendance(
    fmt: TemplateFormat, principal: PrincipalDep, session: SessionDep, day_from: FromQ = None, day_to: ToQ = None,
    group: Literal["representative", "workroom", "month"] = "representative",
) -> Response:
    today = utcnow().astimezone(TZ).date()
    content = await import_service.attendance_file(
        session, principal=principal, day_from=day_from or today.replace(day=1), day_to=day_to or today, group=group,
        fmt=fmt,
    )
    return _file(content, "值班出勤", fmt)


@router.get("/service-points/funnel/export.{fmt}", response_class=Response, responses=FILE_RESPONSES,
            summary="Service point funnel as .xlsx (both tables) or CSV (the table `by` names) (coordinator, admin)")
async def export_funnel(
    fmt: TemplateFormat, principal: PrincipalDep, session: SessionDep,
    workroom: Annotated[str | None, Query(max_length=32)] = None, day_from: FromQ = None, day_to: ToQ = None,
    by: Annotated[Literal["session", "representative"], Query(description="CSV：按场次或按代表")] = "session",
) -> Response:
    content = await import_service.funnel_file(
        session, principal=principal, workroom_code=workroom, day_from=day_from, day_to=day_to, fmt=fmt, by=by
    )
    title = "流动服务点成效_按代表" if fmt == "csv" and by == "representative" else "流动服务点成效"
    return _file(content, title, fmt)
