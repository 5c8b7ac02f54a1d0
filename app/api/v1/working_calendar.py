"""API: the office's working-day calendar (节假日与调休), issue 15.

- ``GET /working-calendar?year=YYYY`` (admin, coordinator): the year's entries, the statutory days the
  rules give it, whether its deadlines are provisional, and next year's notice reminder.
- ``POST /working-calendar/days``, ``PATCH|DELETE /working-calendar/days/{day}`` (admin): one day.
- ``POST /working-calendar/import`` (admin; multipart ``file``, ``replace``): a CSV typed from the notice,
  all rows or none (422 ``calendar_import_invalid`` with ``errors`` by row and column).
- ``GET /working-calendar/template.csv``: the header row to fill in.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import File, Form, Path, Query, Request, Response, UploadFile, status

from app.http.deps import PrincipalDep, SessionDep
from app.http.downloads import attachment
from app.config import TZ
from app.http.routing import GuardedRouter
from app.models import CalendarDay, utcnow
from app.schemas.common import problem
from app.schemas.dates import BoundedDate
from app.schemas.working_calendar import (
    CalendarDayCreate,
    CalendarDayRead,
    CalendarDayUpdate,
    CalendarImportRead,
    CalendarYearRead,
    StatutoryDayRead,
)
from app.services import working_calendar as calendar_service

router = GuardedRouter(tags=["working calendar"])

DayPath = Annotated[BoundedDate, Path(description="YYYY-MM-DD")]


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def day_read(entry: CalendarDay) -> CalendarDayRead:
    return CalendarDayRead(
        day=entry.day_on, weekday=calendar_service.weekday_label(entry.day_on), kind=entry.kind,  # type: ignore[arg-type]
        kind_label=calendar_service.KIND_LABELS.get(entry.kind, entry.kind), name=entry.name,
        source=entry.source, updated_at=entry.updated_at,  # type: ignore[arg-type]
    )


def _statutory(days: list[tuple[date, str]]) -> list[StatutoryDayRead]:
    return [StatutoryDayRead(day=d, weekday=calendar_service.weekday_label(d), name=n) for d, n in days]


@router.get("/working-calendar", response_model=CalendarYearRead,
            summary="A year of the working-day calendar: holidays and make-up workdays (admin, coordinator)")
async def read_year(
    principal: PrincipalDep, session: SessionDep,
    year: Annotated[int | None, Query(ge=1900, le=2100, description="默认为今年")] = None,
) -> CalendarYearRead:
    year = year or utcnow().astimezone(TZ).year
    view = await calendar_service.list_year(session, principal=principal, year=year)
    return CalendarYearRead(
        year=view.year, entered=view.entered, uses_rules=view.uses_rules, provisional=not view.entered,
        items=[day_read(e) for e in view.entries], statutory=_statutory(view.statutory),
        missing_statutory=_statutory(view.missing_statutory), notice=view.notice,
    )


@router.post("/working-calendar/days", response_model=CalendarDayRead, status_code=status.HTTP_201_CREATED,
             responses={409: problem("The day has an entry already (`calendar_day_exists`)")},
             summary="Enter a holiday or make-up workday (admin)")
async def create_day(body: CalendarDayCreate, request: Request, principal: PrincipalDep, session: SessionDep) -> CalendarDayRead:
    entry = await calendar_service.create(session, principal=principal, day=body.day, kind=body.kind, name=body.name,
                                          ip=_ip(request))
    return day_read(entry)


@router.patch("/working-calendar/days/{day}", response_model=CalendarDayRead, summary="Change a day's entry (admin)")
async def update_day(day: DayPath, body: CalendarDayUpdate, request: Request, principal: PrincipalDep,
                     session: SessionDep) -> CalendarDayRead:
    entry = await calendar_service.update(session, principal=principal, day=day, kind=body.kind, name=body.name,
                                          ip=_ip(request))
    return day_read(entry)


@router.delete("/working-calendar/days/{day}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete a day's entry (admin)")
async def delete_day(day: DayPath, request: Request, principal: PrincipalDep, session: SessionDep) -> Response:
    await calendar_service.remove(session, principal=principal, day=day, ip=_ip(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/working-calendar/import", response_model=CalendarImportRead,
             summary="Import days from a CSV typed from the State Council's notice (admin); all rows or none")
async def import_days(
    request: Request, principal: PrincipalDep, session: SessionDep,
    file: Annotated[UploadFile, File(description="CSV（UTF-8 或 GB18030）：日期,类型(放假/上班),名称")],
    replace: Annotated[bool, Form(description="文件中各年份只保留文件里的日期")] = False,
) -> CalendarImportRead:
    result = await calendar_service.import_file(session, principal=principal, content=await file.read(),
                                                replace=replace, ip=_ip(request))
    return CalendarImportRead(created=result.created, updated=result.updated, unchanged=result.unchanged,
                              removed=result.removed, years=result.years)


@router.get("/working-calendar/template.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}}, summary="The import file's header row")
async def import_template() -> Response:
    return Response(calendar_service.template_csv(), media_type="text/csv; charset=utf-8",
                    headers=attachment("节假日.csv", fallback="working-calendar.csv"))
