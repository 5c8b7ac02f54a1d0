"""API: mobile service points (流动服务点).

- ``GET /service-points`` (public): the calendar of upcoming sessions (next 30 days unless ``from``/``to``).
- ``GET /service-points/{id}`` (public): one session with its funnel counts (``forms_collected`` …).
- ``POST``, ``PATCH``, ``DELETE`` (coordinator, admin): plan the sessions.
- ``GET /service-points/funnel`` (staff): collected → answered → satisfaction, per session and per representative.

Public answers name the attending representatives but never carry a phone number.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response, status

from app.http.deps import CursorQ, IdPath, LimitQ, PrincipalDep, SessionDep
from app.http.routing import GuardedRouter
from app.models import PlaceType, Role, ServicePoint, utcnow
from app.schemas.common import Page, problem
from app.schemas.dates import BoundedDate
from app.schemas.service_points import (
    AttendingRepresentative,
    Funnel,
    FunnelRepresentativeRow,
    FunnelSessionRow,
    FunnelTotals,
    ServicePointCreate,
    ServicePointDetail,
    ServicePointRead,
    ServicePointUpdate,
)
from app.services import service_points as service_point_service

router = GuardedRouter(prefix="/service-points", tags=["service points"])

FromQ = Annotated[BoundedDate | None, Query(alias="from", description="开始日期（含，按会场开始时间，北京时间），YYYY-MM-DD")]
ToQ = Annotated[BoundedDate | None, Query(alias="to", description="结束日期（含），YYYY-MM-DD")]
WorkroomQ = Annotated[str | None, Query(max_length=32, description="工作室编号")]


def _read(point: ServicePoint) -> dict[str, object]:
    return dict(
        id=point.id, workroom_code=point.workroom.code, workroom_name=point.workroom.name, title=point.title,
        place_type=point.place_type, location=point.location, starts_at=point.starts_at, ends_at=point.ends_at,
        representatives=[AttendingRepresentative(id=r.id, name=r.name, level=r.level) for r in point.representatives],
    )


@router.get("", response_model=Page[ServicePointRead], summary="Upcoming service point sessions (public)")
async def list_service_points(
    session: SessionDep,
    workroom: WorkroomQ = None,
    date_from: FromQ = None,
    date_to: ToQ = None,
    place_type: PlaceType | None = None,
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Page[ServicePointRead]:
    points, next_cursor = await service_point_service.list_service_points(
        session, workroom_code=workroom, date_from=date_from, date_to=date_to,
        place_type=place_type.value if place_type else None, limit=limit, cursor=cursor,
    )
    return Page(items=[ServicePointRead(**_read(p)) for p in points], next_cursor=next_cursor)


@router.post("", response_model=ServicePointDetail, status_code=status.HTTP_201_CREATED)
async def create_service_point(body: ServicePointCreate, principal: PrincipalDep, session: SessionDep) -> ServicePointDetail:
    principal.require_role(Role.admin, Role.coordinator)
    point = await service_point_service.create_service_point(session, data=body.model_dump())
    return ServicePointDetail(**_read(point), **service_point_service.rates({}))


@router.get("/funnel", response_model=Funnel, summary="Collection funnel of service points (staff)")
async def funnel(
    principal: PrincipalDep, session: SessionDep, workroom: WorkroomQ = None, date_from: FromQ = None, date_to: ToQ = None,
) -> Funnel:
    principal.require_staff()
    result = await service_point_service.funnel(session, workroom_code=workroom, date_from=date_from, date_to=date_to)
    return Funnel(
        totals=FunnelTotals(**result.totals),
        sessions=[FunnelSessionRow(**row) for row in result.sessions],
        representatives=[FunnelRepresentativeRow(**row) for row in result.representatives],
        as_of=utcnow(),
    )


@router.get("/{service_point_id}", response_model=ServicePointDetail, summary="One session with its counts (public)")
async def get_service_point(service_point_id: IdPath, session: SessionDep) -> ServicePointDetail:
    point = await service_point_service.get_service_point_or_raise(session, service_point_id)
    counts = await service_point_service.counts_for(session, point.id)
    return ServicePointDetail(**_read(point), **counts)


@router.patch("/{service_point_id}", response_model=ServicePointDetail)
async def update_service_point(
    service_point_id: IdPath, body: ServicePointUpdate, principal: PrincipalDep, session: SessionDep
) -> ServicePointDetail:
    principal.require_role(Role.admin, Role.coordinator)
    point = await service_point_service.update_service_point(
        session, service_point_id=service_point_id, data=body.model_dump(exclude_unset=True)
    )
    counts = await service_point_service.counts_for(session, point.id)
    return ServicePointDetail(**_read(point), **counts)


@router.delete("/{service_point_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={409: problem("Forms were collected there: change it instead (`service_point_has_forms`)")})
async def delete_service_point(service_point_id: IdPath, principal: PrincipalDep, session: SessionDep) -> Response:
    principal.require_role(Role.admin, Role.coordinator)
    await service_point_service.delete_service_point(session, service_point_id=service_point_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
