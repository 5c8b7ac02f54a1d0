"""A resident's request about their personal data (PIPL arts. 45, 47): an admin exports everything that
names them, or erases it. Found by phone number (through the keyed hash) or WeChat resident id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

from app.http.deps import AuditDep, PrincipalDep, SessionDep
from app.http.routing import GuardedRouter
from app.models import Role, utcnow
from app.schemas.common import MAX_ID, DbId, InputModel, LocalDateTime
from app.schemas.reference import PHONE_PATTERN
from app.services import personal_data as personal_data_service

router = GuardedRouter(tags=["personal data"])

PhoneQ = Annotated[str | None, Query(pattern=PHONE_PATTERN, description="电话号码")]
ResidentQ = Annotated[int | None, Query(ge=1, le=MAX_ID, description="微信居民 id")]


class SubjectForm(BaseModel):
    id: int
    tracking_no: str
    submitted_at: LocalDateTime
    status: str
    channel: str
    submitter_name: str | None
    submitter_phone: str | None
    content: str
    location: str | None
    public: bool
    reply: str | None
    personal_data_erased_at: LocalDateTime | None


class SubjectResident(BaseModel):
    id: int
    openid: str
    unionid: str | None
    active: bool
    created_at: LocalDateTime
    last_login_at: LocalDateTime | None
    subscriptions: int


class PersonalDataRead(BaseModel):
    forms: list[SubjectForm]
    resident: SubjectResident | None


class EraseBody(InputModel):
    phone: str | None = Field(None, pattern=PHONE_PATTERN)
    resident_id: DbId | None = None


class Erased(BaseModel):
    erased_forms: int
    resident_erased: bool
    at: datetime


@router.get("/personal-data", response_model=PersonalDataRead,
            summary="Everything that names one person, by phone or WeChat resident (admin; recorded)")
async def export_personal_data(
    principal: PrincipalDep, session: SessionDep, audit: AuditDep, phone: PhoneQ = None, resident_id: ResidentQ = None,
) -> Any:
    principal.require_role(Role.admin)
    subject = personal_data_service.Subject(phone=phone, resident_id=resident_id)
    data = await personal_data_service.export_subject(session, subject)
    await audit("personal_data.export", subject.label(), forms=len(data["forms"]))
    return data


@router.post("/personal-data/erase", response_model=Erased,
             summary="Erase one person's name and phone on every form, unlink their WeChat account (admin; recorded)")
async def erase_personal_data(body: EraseBody, principal: PrincipalDep, session: SessionDep, audit: AuditDep) -> Erased:
    principal.require_role(Role.admin)
    subject = personal_data_service.Subject(phone=body.phone, resident_id=body.resident_id)
    now = utcnow()
    result = await personal_data_service.erase_subject(session, subject, now=now)
    await audit("personal_data.erase", subject.label(), **result)
    return Erased(**result, at=now)
