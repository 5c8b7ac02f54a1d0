"""API: imports from the offices' spreadsheets, and roster, attendance and funnel exports to .xlsx.

- ``POST /imports`` (coordinator, admin; multipart ``file`` + ``kind``): a file of ≤ 200 rows is checked
  and imported before the answer (201, the finished job: ``done`` or ``failed`` with ``errors``); a bigger
  one answers 202 at once and runs as a job: poll ``GET /imports/{id}`` (its creator or an admin).
- ``GET /imports/template/{kind}.xlsx|.csv``: the header row (and one example row) to fill in.
- ``GET /rosters/export.xlsx``, ``/attendance/export.xlsx``, ``/service-points/funnel/export.xlsx``
  (coordinator, admin).

Uploads are bounded by the request body limit (``MINYI_MAX_BODY_BYTES``, 1 MiB by default: some 20,000
shift rows as CSV).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status

from app.http.deps import IdPath, PrincipalDep, SessionDep
from app.config import TZ
from app.models import utcnow
from app.schemas.dates import BoundedDate
from app.schemas.imports import ImportJobRead, ImportKind, TemplateFormat
from app.services import exports as export_service
from app.services import imports as import_service

router = APIRouter(tags=["imports"])

FromQ = Annotated[BoundedDate | None, Query(alias="from", description="首日（含，北京时间），YYYY-MM-DD")]
ToQ = Annotated[BoundedDate | None, Query(alias="to", description="末日（含），YYYY-MM-DD")]
XLSX = export_service.XLSX_MEDIA_TYPE
FILE_RESPONSES: dict[int | str, dict[str, object]] = {200: {"content": {XLSX: {}}, "description": "The .xlsx file"}}


def _disposition(filename: str) -> dict[str, str]:
    """RFC 6266/5987: an ASCII fallback for old clients, the Chinese name for everyone else."""
    fallback = "minyi-export." + filename.rsplit(".", 1)[-1]
    return {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"}


def _xlsx(content: bytes, title: str) -> Response:
    filename = export_service.file_name(title, "xlsx", utcnow())
    return Response(content, media_type=XLSX, headers=_disposition(filename))


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
    title = {"representatives": "党代表导入模板", "shifts": "值班表导入模板"}[kind]
    return Response(content, media_type=export_service.MEDIA_TYPES[fmt], headers=_disposition(f"{title}.{fmt}"))


@router.get("/imports/{job_id}", response_model=ImportJobRead, summary="An import job (its creator or an admin)")
async def get_import(job_id: IdPath, principal: PrincipalDep, session: SessionDep) -> ImportJobRead:
    return ImportJobRead.build(await import_service.get_job(session, principal=principal, job_id=job_id))


def _this_month() -> tuple[date, date]:
    today = utcnow().astimezone(TZ).date()
    first = today.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


@router.get("/rosters/export.xlsx", response_class=Response, responses=FILE_RESPONSES,
            summary="Shifts as .xlsx (coordinator, admin): one workroom or all, default this month")
async def export_roster(
    principal: PrincipalDep, session: SessionDep,
    workroom: Annotated[str | None, Query(max_length=32)] = None, day_from: FromQ = None, day_to: ToQ = None,
) -> Response:
    first, last = _this_month()
    content = await import_service.roster_xlsx(
        session, principal=principal, workroom_code=workroom, day_from=day_from or first, day_to=day_to or last
    )
    return _xlsx(content, "值班表")


@router.get("/attendance/export.xlsx", response_class=Response, responses=FILE_RESPONSES,
            summary="Attendance as .xlsx (coordinator, admin): default this month so far")
async def export_attendance(
    principal: PrincipalDep, session: SessionDep, day_from: FromQ = None, day_to: ToQ = None,
    group: Literal["representative", "workroom", "month"] = "representative",
) -> Response:
    today = utcnow().astimezone(TZ).date()
    content = await import_service.attendance_xlsx(
        session, principal=principal, day_from=day_from or today.replace(day=1), day_to=day_to or today, group=group
    )
    return _xlsx(content, "值班出勤")


@router.get("/service-points/funnel/export.xlsx", response_class=Response, responses=FILE_RESPONSES,
            summary="Service point funnel as .xlsx (coordinator, admin): by session and by representative")
async def export_funnel(
    principal: PrincipalDep, session: SessionDep,
    workroom: Annotated[str | None, Query(max_length=32)] = None, day_from: FromQ = None, day_to: ToQ = None,
) -> Response:
    content = await import_service.funnel_xlsx(
        session, principal=principal, workroom_code=workroom, day_from=day_from, day_to=day_to
    )
    return _xlsx(content, "流动服务点漏斗")
