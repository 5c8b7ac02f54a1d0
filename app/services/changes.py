"""The outbox of form changes: what integrators learn, written in the same transaction as the action.

Every public step of a form (submitted, assigned, answered, closed, declined, …) becomes one
``FormChange`` row holding the form as integrators see it at that moment. In the same statements:
one ``WebhookDelivery`` per active webhook subscribed to that event type, and, when a form is answered,
one pending ``WechatNotice`` for a WeChat resident's and one pending ``SmsMessage`` for a submitter who
asked for SMS. Workers send them later (services/webhooks.py,
services/notices.py); ``GET /api/v1/changes`` reads the rows in commit order (``feed``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, literal, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import TZ
from app.errors import Invalid
from app.schemas.forms import INTEGRATOR_FIELDS
from app.services import sms as sms_service
from app.models import (
    STATUS_LABELS,
    ApiClient,
    DeliveryStatus,
    EventType,
    FormChange,
    FormStatus,
    NoticeStatus,
    SmsKind,
    UTCDateTime,
    Webhook,
    WebhookDelivery,
    WechatNotice,
    utcnow,
)

# Form event → the change type integrators see. Internal notes, urging, supervision and extension
# requests are the office's business and never leave it.
CHANGE_TYPES: dict[str, str] = {
    EventType.submitted: "form.submitted",
    EventType.assigned: "form.assigned",
    EventType.reassigned: "form.reassigned",
    EventType.returned: "form.returned",
    EventType.extension_approved: "form.extension_approved",
    EventType.answered: "form.answered",
    EventType.answered_on_spot: "form.answered",
    EventType.closed: "form.closed",
    EventType.declined: "form.declined",
    EventType.reopened: "form.reopened",
    # 合并办理 (services/merging.py): a follower joined a lead (and took its state), or left it.
    EventType.merged_into: "form.merged",
    EventType.unmerged: "form.unmerged",
}
# What a webhook may subscribe to: the CONTRACT's five first, then the rest of the steps.
EVENT_TYPES: tuple[str, ...] = (
    "form.submitted", "form.assigned", "form.answered", "form.closed", "form.declined",
    "form.reassigned", "form.returned", "form.reopened", "form.extension_approved", "form.merged", "form.unmerged",
)


def _time(value: datetime | None) -> str | None:
    return value.astimezone(TZ).isoformat() if value is not None else None


def integrator_view(form: Any) -> dict[str, Any]:
    """The form as webhooks and the changes feed carry it: its case, never the submitter's name or phone,
    internal notes or verification code. ``form`` is an ``OpinionForm`` with its references loaded, or a
    ``forms.NewForm``."""
    category = form.category
    workroom = form.workroom
    unit = getattr(form, "unit", None)
    # The submitted fields marked for integrators in the one submission schema (schemas/forms.py).
    marked = {name: getattr(form, name, None) for name in INTEGRATOR_FIELDS}
    return marked | {
        "id": form.id,
        "tracking_no": form.tracking_no,
        "status": form.status,
        "status_label": STATUS_LABELS.get(form.status, form.status),
        "content": form.content,
        "category": category.code if category else None,
        "channel": form.channel,
        "workroom_code": workroom.code if workroom else None,
        "service_point_id": form.service_point_id,
        "location": form.location,
        "public": bool(form.public),
        "resident_id": form.resident_id,
        "unit_id": form.unit_id,
        "unit_name": unit.name if unit else None,
        "due_at": _time(form.due_at),
        "reply": form.reply,
        "satisfaction": form.satisfaction,
        "decline_reason": form.decline_reason,
        "review_flag": form.review_flag,
        "submitted_at": _time(form.submitted_at),
        "assigned_at": _time(form.assigned_at),
        "answered_at": _time(form.answered_at),
        "closed_at": _time(form.closed_at),
        "declined_at": _time(form.declined_at),
        "updated_at": _time(form.updated_at),
        "merged_into": getattr(form, "merged_into_id", None),
    }


# Built once: this runs in every submission batch and every action, and building and compiling the
# statements afresh each time was most of the outbox's cost.
_INSERT_CHANGES = insert(FormChange.__table__).returning(FormChange.__table__.c.id)
_FAN_OUT = insert(WebhookDelivery.__table__).from_select(
    ["webhook_id", "change_id", "status", "attempts", "next_attempt_at", "created_at"],
    select(
        Webhook.id, FormChange.id, literal(DeliveryStatus.pending), literal(0),
        bindparam("now", type_=UTCDateTime), bindparam("now", type_=UTCDateTime),
    )
    .join(FormChange, Webhook.events.contains(literal(" ") + FormChange.type + literal(" "), autoescape=False))
    .outerjoin(ApiClient, ApiClient.id == Webhook.client_id)
    # A revoked client's webhooks hear nothing more (admins' own webhooks have no client).
    .where(Webhook.active.is_(True), FormChange.id.in_(bindparam("ids", expanding=True)),
           ApiClient.revoked_at.is_(None)),
)


@dataclass(frozen=True)
class Happened:
    """One form event to publish: the form (after the event) and the event's type, id and time."""

    form: Any
    event_type: str
    event_id: int | None
    at: datetime


async def record(session: AsyncSession, happened: Sequence[Happened]) -> None:
    """Write the outbox rows for ``happened`` in the caller's transaction: changes, webhook deliveries,
    reply notices. Events integrators do not see are skipped."""
    rows = [
        {"form_id": h.form.id, "event_id": h.event_id, "type": CHANGE_TYPES[h.event_type], "at": h.at,
         "data": integrator_view(h.form)}
        for h in happened if h.event_type in CHANGE_TYPES
    ]
    if not rows:
        return
    ids = list((await session.execute(_INSERT_CHANGES, rows)).scalars())
    now = utcnow()
    # Fan out to the subscribed webhooks in one statement, however many there are (usually none).
    await session.execute(_FAN_OUT, {"ids": ids, "now": now})
    notices = [
        {"form_id": h.form.id, "resident_id": h.form.resident_id, "status": NoticeStatus.pending, "attempts": 0,
         "created_at": now, "next_attempt_at": now}
        for h in happened
        if h.form.resident_id is not None and _brings_reply(h)
    ]
    if notices:
        await session.execute(insert(WechatNotice.__table__), notices)
    # The reply notice by SMS, when the submitter asked for SMS and has not stopped them (services/sms.py).
    await sms_service.queue(session, [
        sms_service.message_row(form_id=h.form.id, kind=SmsKind.reply, phone=phone, now=now,
                                params=sms_service.reply_params(h.form.tracking_no, h.form.status))
        for h in happened
        if _brings_reply(h) and (phone := sms_service.wants_sms(h.form))
    ])


def _brings_reply(h: Happened) -> bool:
    """The resident has a reply to read: the form was answered, or merged into an answered lead."""
    return CHANGE_TYPES.get(h.event_type) == "form.answered" or (
        h.event_type == EventType.merged_into and h.form.status == FormStatus.answered)


# --- the feed ----------------------------------------------------------------------------------------


def encode_cursor(txid: int | None, change_id: int) -> str:
    return base64.urlsafe_b64encode(f"c:{txid or 0}:{change_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, txid, change_id = raw.split(":")
        if prefix != "c":
            raise ValueError(cursor)
        values = int(txid), int(change_id)
        if not all(0 <= v < 2**62 for v in values):
            raise ValueError(cursor)
        return values
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("变更游标无效。", code="invalid_cursor") from exc


async def feed(
    session: AsyncSession, *, cursor: str | None, limit: int = 50
) -> tuple[list[FormChange], str | None]:
    """Changes after ``cursor``, oldest first, and the cursor to ask with next time.

    ``next_cursor`` is always given once anything was ever read (it is where to resume, even when this
    page is the last for now); with nothing new it is the cursor that was sent.
    """
    txid, last_id = decode_cursor(cursor) if cursor else (0, 0)
    query = select(FormChange)
    if session.get_bind().dialect.name == "postgresql":
        # Only transactions older than every transaction still running: nothing can later appear before them.
        horizon = text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")
        query = query.where(tuple_(FormChange.txid, FormChange.id) > tuple_(literal(txid), literal(last_id)),
                            FormChange.txid < horizon).order_by(FormChange.txid, FormChange.id)
    else:
        query = query.where(FormChange.id > last_id).order_by(FormChange.id)
    rows = list((await session.scalars(query.limit(limit))).all())
    if rows:
        return rows, encode_cursor(rows[-1].txid, rows[-1].id)
    return rows, cursor


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(FormChange)) or 0)
