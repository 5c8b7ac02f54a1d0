"""API: representatives' records of duty (履职档案, issue 20.3).

- ``GET /representatives/{id}/record``: one representative's record for a period;
- ``GET /workrooms/{code}/records``: one row per representative of the workroom, and their totals.

The period is ``period=2026-11`` (a month), ``2026-Q4`` (a quarter) or ``2026`` (a year), or ``from`` and
``to`` (local days, both inclusive); neither: this month. ``format=json`` (default), ``xlsx`` or ``pdf``.
Who may read (services/records.py): a representative their own record only; coordinators and admins
everything; API clients with ``stats:read`` the JSON; nobody else.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query, Request, Response

from app.http.deps import IdPath, PrincipalDep, SessionDep
from app.http.downloads import attachment
from app.http.routing import GuardedRouter
from app.models import utcnow
from app.schemas.common import problem
from app.schemas.dates import BoundedDate
from app.schemas.records import RecordRead, WorkroomRecords
from app.services import exports as export_service
from app.services import records as record_service

router = GuardedRouter(tags=["records"])

PeriodQ = Annotated[str | None, Query(description="2026-11（月）、2026-Q4（季度）或 2026（年）；与 from/to 二选一，都不填为本月")]
FromQ = Annotated[BoundedDate | None, Query(alias="from", description="首日（含，北京时间），YYYY-MM-DD；须与 to 同用")]
ToQ = Annotated[BoundedDate | None, Query(alias="to", description="末日（含），YYYY-MM-DD")]
CodePath = Annotated[str, Path(max_length=32, description="工作室编号，如 LS-01")]
FormatQ = Annotated[Literal["json", "xlsx", "pdf"], Query(description="json（默认）、xlsx 或 pdf")]
PDF = "application/pdf"
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {export_service.XLSX_MEDIA_TYPE: {}, PDF: {}},
          "description": "The record as JSON, or the .xlsx / PDF file (`format`)"},
    422: problem("A period written otherwise (`invalid_period`), from/to reversed, alone or too long "
                 "(`invalid_range`), each naming the parameter in `errors`"),
    503: problem("No Chinese font on the server for the PDF (`cjk_font_missing`)"),
}


async def _file(request: Request, record: dict[str, Any], fmt: str) -> Response:
    if fmt == "xlsx":
        content, media_type = await record_service.xlsx(record), export_service.XLSX_MEDIA_TYPE
    else:
        content = await record_service.pdf(record, font=request.app.state.settings.cjk_font)
        media_type = PDF
    filename = export_service.file_name(record_service.file_title(record), fmt, utcnow())
    return Response(content, media_type=media_type, headers=attachment(filename))


@router.get("/representatives/{representative_id}/record", response_model=RecordRead, responses=RESPONSES,
            summary="A representative's record of duty (the representative, coordinator, admin; stats:read JSON)")
async def representative_record(
    request: Request, representative_id: IdPath, principal: PrincipalDep, session: SessionDep,
    period: PeriodQ = None, date_from: FromQ = None, date_to: ToQ = None, format: FormatQ = "json",
) -> Any:
    """Shifts scheduled, kept, missed and upcoming; service-point sessions attended; activities; the forms
    the representative entered (submitted in the period), answered on the spot, answered, closed, and
    satisfaction. A representative asking for another's record gets 403 ``not_your_record``."""
    record_service.check_record_reader(principal, representative_id, format)
    span = record_service.resolve_span(period, date_from, date_to)
    record = await record_service.representative_record(
        session, principal=principal, representative_id=representative_id, span=span, fmt=format)
    if format == "json":
        return RecordRead.model_validate(record)
    return await _file(request, record, format)


@router.get("/workrooms/{code}/records", response_model=WorkroomRecords, responses=RESPONSES,
            summary="The records of a workroom's representatives (coordinator, admin; stats:read JSON)")
async def workroom_records(
    request: Request, code: CodePath, principal: PrincipalDep, session: SessionDep,
    period: PeriodQ = None, date_from: FromQ = None, date_to: ToQ = None, format: FormatQ = "json",
) -> Any:
    """One row per representative of the workroom (each row that representative's whole record, as
    ``/representatives/{id}/record`` gives it) and the totals."""
    record_service.check_workroom_reader(principal, format)
    span = record_service.resolve_span(period, date_from, date_to)
    record = await record_service.workroom_records(session, principal=principal, code=code, span=span, fmt=format)
    if format == "json":
        return WorkroomRecords.model_validate(record)
    return await _file(request, record, format)
