from __future__ import annotations

from fastapi import status

from app.http.deps import AuditDep, CurrentUser, CursorQ, IdPath, LimitQ, PrincipalDep, SessionDep
from app.http.routing import GuardedRouter
from app.models import Representative, Role
from app.schemas.common import Page, problem
from app.schemas.reference import (
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
    RepresentativeCreate,
    RepresentativeRead,
    RepresentativeUpdate,
    UnitCreate,
    UnitRead,
    WorkroomCreate,
    WorkroomRead,
    WorkroomUpdate,
)
from app.services import reference as reference_service
from app.services.auth import Principal
from app.services.disclosure import mask_phone
from app.services.forms import sees_personal_data

router = GuardedRouter(tags=["reference data"])


def _representative(rep: Representative, principal: Principal) -> RepresentativeRead:
    return RepresentativeRead(
        id=rep.id, name=rep.name, level=rep.level, active=rep.active,
        phone=rep.phone if sees_personal_data(principal) else mask_phone(rep.phone),
        workroom_codes=[w.code for w in rep.workrooms],
    )


@router.get("/workrooms", response_model=Page[WorkroomRead])
async def list_workrooms(user: CurrentUser, session: SessionDep, limit: LimitQ = 50, cursor: CursorQ = None) -> Page[WorkroomRead]:
    workrooms, next_cursor = await reference_service.list_workrooms(session, limit=limit, cursor=cursor)
    return Page(items=[WorkroomRead.model_validate(w) for w in workrooms], next_cursor=next_cursor)


@router.post("/workrooms", response_model=WorkroomRead, status_code=status.HTTP_201_CREATED,
             responses={409: problem("The code is taken (`workroom_exists`)")})
async def create_workroom(body: WorkroomCreate, principal: PrincipalDep, session: SessionDep, audit: AuditDep) -> WorkroomRead:
    principal.require_role(Role.admin)
    workroom = await reference_service.create_workroom(session, data=body.model_dump())
    await audit("workroom.create", f"workroom:{workroom.code}", **body.model_dump(mode="json"))
    return WorkroomRead.model_validate(workroom)


@router.get("/workrooms/{code}", response_model=WorkroomRead)
async def get_workroom(code: str, user: CurrentUser, session: SessionDep) -> WorkroomRead:
    return WorkroomRead.model_validate(await reference_service.get_workroom_or_raise(session, code))


@router.patch("/workrooms/{code}", response_model=WorkroomRead)
async def update_workroom(
    code: str, body: WorkroomUpdate, principal: PrincipalDep, session: SessionDep, audit: AuditDep
) -> WorkroomRead:
    principal.require_role(Role.admin)
    workroom = await reference_service.update_workroom(session, code=code, data=body.model_dump(exclude_unset=True))
    await audit("workroom.update", f"workroom:{code}", **body.model_dump(mode="json", exclude_unset=True))
    return WorkroomRead.model_validate(workroom)


@router.get("/representatives", response_model=Page[RepresentativeRead])
async def list_representatives(
    principal: PrincipalDep, session: SessionDep, workroom: str | None = None, limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Page[RepresentativeRead]:
    principal.require_staff()
    reps, next_cursor = await reference_service.list_representatives(
        session, workroom_code=workroom, limit=limit, cursor=cursor
    )
    return Page(items=[_representative(r, principal) for r in reps], next_cursor=next_cursor)


@router.post("/representatives", response_model=RepresentativeRead, status_code=status.HTTP_201_CREATED)
async def create_representative(
    body: RepresentativeCreate, principal: PrincipalDep, session: SessionDep, audit: AuditDep
) -> RepresentativeRead:
    principal.require_role(Role.admin)
    rep = await reference_service.create_representative(session, data=body.model_dump())
    # Which fields, not their values: a representative's name and phone are personal data.
    await audit("representative.create", f"representative:{rep.id}", fields=sorted(body.model_fields_set))
    return _representative(rep, principal)


@router.get("/representatives/{representative_id}", response_model=RepresentativeRead)
async def get_representative(representative_id: IdPath, principal: PrincipalDep, session: SessionDep) -> RepresentativeRead:
    principal.require_staff()
    return _representative(await reference_service.get_representative_or_raise(session, representative_id), principal)


@router.patch("/representatives/{representative_id}", response_model=RepresentativeRead)
async def update_representative(
    representative_id: IdPath, body: RepresentativeUpdate, principal: PrincipalDep, session: SessionDep,
    audit: AuditDep,
) -> RepresentativeRead:
    principal.require_role(Role.admin)
    rep = await reference_service.update_representative(
        session, representative_id=representative_id, data=body.model_dump(exclude_unset=True)
    )
    await audit("representative.update", f"representative:{representative_id}", fields=sorted(body.model_fields_set))
    return _representative(rep, principal)


@router.get("/units", response_model=Page[UnitRead])
async def list_units(user: CurrentUser, session: SessionDep, limit: LimitQ = 50, cursor: CursorQ = None) -> Page[UnitRead]:
    units, next_cursor = await reference_service.list_units(session, limit=limit, cursor=cursor)
    return Page(items=[UnitRead.model_validate(u) for u in units], next_cursor=next_cursor)


@router.post("/units", response_model=UnitRead, status_code=status.HTTP_201_CREATED,
             responses={409: problem("The name is taken (`unit_exists`)")})
async def create_unit(body: UnitCreate, principal: PrincipalDep, session: SessionDep, audit: AuditDep) -> UnitRead:
    principal.require_role(Role.admin)
    unit = await reference_service.create_unit(session, name=body.name)
    await audit("unit.create", f"unit:{unit.id}", name=unit.name)
    return UnitRead.model_validate(unit)


@router.get("/categories", response_model=Page[CategoryRead], summary="Categories (public)")
async def list_categories(session: SessionDep, limit: LimitQ = 50, cursor: CursorQ = None) -> Page[CategoryRead]:
    categories, next_cursor = await reference_service.list_categories(
        session, active_only=True, limit=limit, cursor=cursor
    )
    return Page(items=[CategoryRead.model_validate(c) for c in categories], next_cursor=next_cursor)


@router.post("/categories", response_model=CategoryRead, status_code=status.HTTP_201_CREATED,
             responses={409: problem("The code is taken (`category_exists`)")})
async def create_category(body: CategoryCreate, principal: PrincipalDep, session: SessionDep, audit: AuditDep) -> CategoryRead:
    principal.require_role(Role.admin)
    category = await reference_service.create_category(session, **body.model_dump())
    await audit("category.create", f"category:{category.code}", **body.model_dump(mode="json"))
    return CategoryRead.model_validate(category)


@router.patch("/categories/{code}", response_model=CategoryRead, summary="Change a category (admin)")
async def update_category(
    code: str, body: CategoryUpdate, principal: PrincipalDep, session: SessionDep, audit: AuditDep
) -> CategoryRead:
    principal.require_role(Role.admin)
    category = await reference_service.update_category(session, code=code, data=body.model_dump(exclude_unset=True))
    await audit("category.update", f"category:{code}", **body.model_dump(mode="json", exclude_unset=True))
    return CategoryRead.model_validate(category)
