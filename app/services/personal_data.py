"""Personal data over its life (PIPL arts. 19, 45, 47): retention, a resident's request to see or erase
their data, and re-encrypting everything under a new key.

- Retention: the submitter's name and phone of forms closed or declined more than
  ``personal_data_retention_days`` ago are erased (NULL, with ``personal_data_erased_at``); the opinion,
  its handling and every count stay. Run by ``minyi retention`` (cron, daily).
- A resident's request, found by phone number (through the keyed hash) or WeChat resident id: an admin
  exports every form carrying it, or erases the name and phone on them (and, for a WeChat resident, the
  link to their WeChat account).
- ``rotate_keys``: every encrypted value re-encrypted with the current key (and plain text from before
  encryption encrypted), phone hashes recomputed; in batches, each its own transaction.

Every one of these is recorded in the audit log by its caller.

- ``reveal_contact``: staff outside the office read names and phones masked (services/disclosure.py); a
  handler or representative who must call a resident back reveals them for one form they may see, and the
  reveal records its own audit line (``form.contact_revealed``: who, when, which form) in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.db import transaction
from app.errors import Invalid, NotFound, PermissionDenied
from app.models import FormStatus, OpinionForm, Resident, ResidentToken, SubscriptionCredit, utcnow
from app.services import audit as audit_service
from app.services import forms as form_service
from app.services import sms as sms_service
from app.services.auth import Principal

# (table, column) of every encrypted value; opinion_form.submitter_phone also has its keyed hash.
ENCRYPTED = (("opinion_form", "submitter_name"), ("opinion_form", "submitter_phone"), ("representative", "phone"),
             ("sms_message", "phone"), ("sms_message", "params"))
ROTATE_BATCH = 500


def _erase_values(now: datetime) -> dict[str, Any]:
    return {"submitter_name": None, "submitter_phone": None, "submitter_phone_hash": None,
            "personal_data_erased_at": now}


_HAS_PERSONAL = or_(OpinionForm.submitter_name.is_not(None), OpinionForm.submitter_phone.is_not(None))


async def retention(session: AsyncSession, *, days: int, now: datetime | None = None, dry_run: bool = False) -> int:
    """Erase the personal data of forms closed or declined more than ``days`` ago; how many forms."""
    if days <= 0:
        return 0
    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    due = and_(_HAS_PERSONAL, or_(
        and_(OpinionForm.status == FormStatus.closed, OpinionForm.closed_at < cutoff),
        and_(OpinionForm.status == FormStatus.declined, OpinionForm.declined_at < cutoff),
    ))
    if dry_run:
        return len(list(await session.scalars(select(OpinionForm.id).where(due))))
    result = await session.execute(update(OpinionForm).where(due).values(_erase_values(now)))
    await sms_service.erase_for_erased_forms(session)  # the SMS to those phones lose theirs too
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Subject:
    """Whose data: a phone number, or a WeChat resident."""

    phone: str | None = None
    resident_id: int | None = None

    def __post_init__(self) -> None:
        if (self.phone is None) == (self.resident_id is None):
            raise Invalid("请给出 phone 或 resident_id 之一。", code="subject_required")
        if self.phone is not None and not crypto.normalise_phone(self.phone):
            raise Invalid("电话号码无效。", code="invalid_phone")

    def condition(self) -> Any:
        if self.phone is not None:
            return OpinionForm.submitter_phone_hash == crypto.phone_index(self.phone)
        return OpinionForm.resident_id == self.resident_id

    def label(self) -> str:
        return f"resident:{self.resident_id}" if self.resident_id is not None else "phone:" + _masked(self.phone or "")


def _masked(phone: str) -> str:
    digits = crypto.normalise_phone(phone)
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 7 else "****"


async def export_subject(session: AsyncSession, subject: Subject) -> dict[str, Any]:
    """Everything Minyi holds that names this person: their forms (with name and phone) and, for a WeChat
    resident, the account record and its subscriptions."""
    forms = list(await session.scalars(select(OpinionForm).where(subject.condition()).order_by(OpinionForm.id)))
    resident = await session.get(Resident, subject.resident_id) if subject.resident_id is not None else None
    if subject.resident_id is not None and resident is None:
        raise NotFound(f"居民 {subject.resident_id} 不存在。", code="resident_not_found")
    credits = []
    if resident is not None:
        credits = list(await session.scalars(select(SubscriptionCredit).where(SubscriptionCredit.resident_id == resident.id)))
    return {
        "forms": [
            {"id": f.id, "tracking_no": f.tracking_no, "submitted_at": f.submitted_at, "status": f.status,
             "channel": f.channel, "submitter_name": f.submitter_name, "submitter_phone": f.submitter_phone,
             "content": f.content, "location": f.location, "public": f.public, "reply": f.reply,
             "personal_data_erased_at": f.personal_data_erased_at}
            for f in forms
        ],
        "resident": None if resident is None else {
            "id": resident.id, "openid": resident.openid, "unionid": resident.unionid, "active": resident.active,
            "created_at": resident.created_at, "last_login_at": resident.last_login_at,
            "subscriptions": len(credits),
        },
    }


async def erase_subject(session: AsyncSession, subject: Subject, *, now: datetime | None = None) -> dict[str, Any]:
    """Erase the name and phone on every form of this person; a WeChat resident's account is unlinked
    (its WeChat ids replaced, its tokens and subscription credits deleted) and stops working."""
    now = now or utcnow()
    result = await session.execute(
        update(OpinionForm).where(subject.condition(), _HAS_PERSONAL).values(_erase_values(now))
    )
    erased_forms = int(result.rowcount or 0)  # type: ignore[attr-defined]
    await sms_service.erase_for_erased_forms(session)
    resident_erased = False
    if subject.resident_id is not None:
        resident = await session.get(Resident, subject.resident_id)
        if resident is None:
            raise NotFound(f"居民 {subject.resident_id} 不存在。", code="resident_not_found")
        if resident.active or not resident.openid.startswith("erased:"):
            resident.openid = f"erased:{resident.id}"
            resident.unionid = None
            resident.active = False
            await session.execute(ResidentToken.__table__.delete().where(ResidentToken.resident_id == resident.id))
            await session.execute(SubscriptionCredit.__table__.delete().where(SubscriptionCredit.resident_id == resident.id))
            resident_erased = True
        await session.flush()
    return {"erased_forms": erased_forms, "resident_erased": resident_erased}


async def rotate_keys(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """Re-encrypt every personal value with the current key (and encrypt plain text), recompute the phone
    hashes; returns how many values were rewritten per column. Safe to run again (and to interrupt)."""
    counts: dict[str, int] = {}
    ring = crypto.ring
    for table, column in ENCRYPTED:
        rewritten = 0
        last = 0
        while True:
            async with transaction(sessionmaker) as session:
                # The stored text itself, not through the column type (which would decrypt it).
                rows = (await session.execute(text(
                    f"SELECT id, {column} FROM {table} WHERE id > :last AND {column} IS NOT NULL "  # noqa: S608 (fixed names)
                    f"ORDER BY id LIMIT {ROTATE_BATCH}"), {"last": last})).all()
                for row_id, stored in rows:
                    again = ring.rotate(stored)
                    values: dict[str, Any] = {}
                    if again is not None:
                        values[column] = again
                    if (table, column) == ("opinion_form", "submitter_phone"):
                        values["submitter_phone_hash"] = crypto.phone_index(ring.decrypt(stored))
                    if values:
                        assignments = ", ".join(f"{name} = :{name}" for name in values)
                        await session.execute(text(f"UPDATE {table} SET {assignments} WHERE id = :id"),  # noqa: S608
                                              {**values, "id": row_id})
                        rewritten += again is not None
            if not rows:
                break
            last = rows[-1][0]
        counts[f"{table}.{column}"] = rewritten
    return counts


# --- the audited reveal (issue 15.6) -----------------------------------------------------------------


# A handler calls residents back one at a time; a loop revealing a whole unit's list is not that (429).
REVEALS_PER_MINUTE = 20


@dataclass(frozen=True)
class Contact:
    form_id: int
    tracking_no: str
    submitter_name: str | None
    submitter_phone: str | None


async def reveal_contact(session: AsyncSession, principal: Principal, form_id: int, *, ip: str | None) -> Contact:
    """The resident's whole name and phone, for a staff account that may see the form; the audit line is
    written in the same transaction, so no reveal is ever answered without it. API clients never reveal,
    whatever their scopes."""
    principal.require_staff()
    form = await form_service.get(session, form_id)
    if not await form_service.can_see(session, principal, form):
        raise PermissionDenied("您无权查看这份意见征询表。", code="form_forbidden")
    await audit_service.record(
        session, principal=principal, action="form.contact_revealed", target=f"form:{form.id}", ip=ip,
        details={"tracking_no": form.tracking_no,
                 "fields": [f for f in ("submitter_name", "submitter_phone") if getattr(form, f)]},
    )
    return Contact(form.id, form.tracking_no, form.submitter_name, form.submitter_phone)
