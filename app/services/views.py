"""Shapes built from rows, as each caller may read them: the forms (``FormRead``, ``FormDetail`` and their
events) through the one disclosure policy (services/disclosure.py) and the working-day index (supervision,
provisional deadlines), and webhooks, deliveries and changes as integrators receive them. The schemas in
``app/schemas`` are shapes only; what fills them for a caller lives here, used by the JSON API and the pages
alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import inspect

from app.models import (
    STATUS_LABELS,
    FormChange,
    FormEvent,
    OpinionForm,
    SmsMessage,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from app.schemas.forms import (
    EVENT_LABELS,
    PUBLIC_EVENTS,
    PUBLIC_NOTE_EVENTS,
    SMS_KIND_LABELS,
    SMS_STATUS_LABELS,
    EventRead,
    FormDetail,
    FormRead,
    MergedForm,
    SmsRead,
)
from app.schemas.photos import PhotoRead
from app.schemas.webhooks import AttemptRead, ChangeRead, DeliveryDetail, DeliveryRead, WebhookCreated, WebhookRead
from app.services import disclosure
from app.services import webhooks as webhook_service
from app.services.deadlines import due_at_provisional, supervision_level
from app.services.disclosure import Disclosure


# --- forms -------------------------------------------------------------------------------------------


def event_read(event: FormEvent, view: Disclosure = disclosure.STAFF) -> EventRead:
    if not view.internal:  # the case as the public timeline tells it: no staff names, notes or details
        return EventRead(
            id=event.id, type=event.type, type_label=EVENT_LABELS.get(event.type, event.type), at=event.at,
            actor="", actor_role=None, from_status=event.from_status, to_status=event.to_status,
            unit_id=event.unit_id, note=event.note if event.type in PUBLIC_NOTE_EVENTS else None,
            internal=False, data=None,
        )
    return EventRead(
        id=event.id, type=event.type, type_label=EVENT_LABELS.get(event.type, event.type), at=event.at,
        actor=event.actor_label, actor_role=event.actor_role, from_status=event.from_status,
        to_status=event.to_status, unit_id=event.unit_id, note=event.note, internal=event.internal, data=event.data,
    )


# FormRead's fields that are columns of the form, read as stored unless _form_fields says otherwise: a
# field added to FormRead with a column of its name needs nothing here.
_AS_STORED = [name for name in FormRead.model_fields if name in OpinionForm.__table__.columns]


def _form_fields(form: Any, *, now: datetime, view: Disclosure) -> dict[str, Any]:
    internal = view.internal
    stored = {name: getattr(form, name, None) for name in _AS_STORED}
    return stored | dict(
        id=form.id,
        tracking_no=form.tracking_no,
        status=form.status,
        status_label=STATUS_LABELS.get(form.status, form.status),
        content=form.content,
        category=form.category.code if form.category else None,
        category_name=form.category.name if form.category else None,
        channel=form.channel,
        workroom_code=form.workroom.code if form.workroom else None,
        workroom_name=form.workroom.name if form.workroom else None,
        service_point_id=form.service_point_id,
        submitter_name=disclosure.name(form.submitter_name, view),
        submitter_phone=disclosure.phone(form.submitter_phone, view),
        location=form.location,
        latitude=form.latitude,
        longitude=form.longitude,
        address_id=form.address_id,
        media_url=form.media_url,
        public=form.public,
        unit_id=form.unit_id,
        unit_name=form.unit.name if form.unit else None,
        instructions=form.instructions if internal else None,
        due_at=form.due_at,
        due_at_provisional=due_at_provisional(form.due_at, since=form.assigned_at),
        supervision=supervision_level(form.due_at, now, open_=form.status == "assigned"),
        reply=form.reply,
        satisfaction=form.satisfaction,
        decline_reason=form.decline_reason,
        extension_due_at=form.extension_due_at if internal else None,
        extension_reason=form.extension_reason if internal else None,
        returned_count=form.returned_count or 0,
        reopened_count=form.reopened_count or 0,
        submitted_at=form.submitted_at,
        assigned_at=form.assigned_at,
        answered_at=form.answered_at,
        closed_at=form.closed_at,
        declined_at=form.declined_at,
        updated_at=form.updated_at,
        entered_by_user_id=form.entered_by_user_id,
        entered_by_representative_id=form.entered_by_representative_id,
        resident_id=form.resident_id,
        api_client_id=form.api_client_id,
        review_flag=form.review_flag,  # the submitter's own mini-program is told (docs/integration.md)
        sms_consent=bool(getattr(form, "sms_consent", False)),
        sms_stopped_at=getattr(form, "sms_stopped_at", None),
        merged_into=getattr(form, "merged_into_id", None),
    )


def form_read(form: Any, *, now: datetime, view: Disclosure) -> FormRead:
    """The form (an ``OpinionForm`` or a just-written ``forms.NewForm``) as ``view`` may read it: names and
    phones masked unless personal; instructions and pending extension requests only for staff."""
    return FormRead(**_form_fields(form, now=now, view=view))


def form_detail(form: OpinionForm, *, now: datetime, view: Disclosure) -> FormDetail:
    """The form with its timeline: every event, internal notes included, for staff; the public steps for API
    clients."""
    events = form.events if view.internal else [
        e for e in form.events if e.type in PUBLIC_EVENTS and not e.internal]
    merge: dict[str, Any] = {}
    if view.internal:  # the suggestion it belongs to (forms.get(with_events=True) loads both sides)
        unloaded = inspect(form).unloaded
        lead = None if "lead" in unloaded else form.lead
        followers = [] if "followers" in unloaded else form.followers
        merge = {"merged_into_tracking_no": lead.tracking_no if lead is not None else None,
                 "followers": [MergedForm(id=f.id, tracking_no=f.tracking_no, status=f.status,
                                          status_label=STATUS_LABELS.get(f.status, f.status)) for f in followers]}
    return FormDetail(**_form_fields(form, now=now, view=view), events=[event_read(e, view) for e in events],
                      photos=[PhotoRead.model_validate(p) for p in form.photos],
                      sms=[sms_read(m) for m in form.sms_messages] if view.internal else [], **merge)


def sms_read(message: SmsMessage) -> SmsRead:
    """One SMS as staff read it on the form: what, when and how it went; never the number or the values."""
    return SmsRead(
        id=message.id, kind=message.kind, kind_label=SMS_KIND_LABELS.get(message.kind, message.kind),
        status=message.status, status_label=SMS_STATUS_LABELS.get(message.status, message.status),
        attempts=message.attempts, provider=message.provider, provider_message_id=message.provider_message_id,
        error_code=message.error_code, error_message=message.error_message, created_at=message.created_at,
        next_attempt_at=message.next_attempt_at if message.status == "pending" else None, sent_at=message.sent_at,
    )


# --- webhooks and the changes feed ---------------------------------------------------------------------


def webhook_read(webhook: Webhook) -> WebhookRead:
    return WebhookRead(id=webhook.id, client_id=webhook.client_id, url=webhook.url,
                       events=webhook_service.event_list(webhook), active=webhook.active,
                       created_at=webhook.created_at, failing_since=webhook.failing_since,
                       paused_at=webhook.paused_at, paused_reason=webhook.paused_reason)  # type: ignore[arg-type]


def webhook_created(webhook: Webhook, secret: str) -> WebhookCreated:
    return WebhookCreated(**webhook_read(webhook).model_dump(), secret=secret)


def _delivery_fields(delivery: WebhookDelivery, change: FormChange) -> dict[str, Any]:
    return dict(
        id=delivery.id, webhook_id=delivery.webhook_id, change_id=change.id,
        message_id=webhook_service.message_id(change.id), type=change.type, status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_status_code=delivery.last_status_code, last_error=delivery.last_error,
        created_at=delivery.created_at, delivered_at=delivery.delivered_at,
    )


def delivery_read(delivery: WebhookDelivery, change: FormChange) -> DeliveryRead:
    return DeliveryRead(**_delivery_fields(delivery, change))


def delivery_detail(delivery: WebhookDelivery, change: FormChange, attempts: list[WebhookAttempt], *,
                    reads_forms: bool = True) -> DeliveryDetail:
    body = webhook_service.payload(change)
    if not reads_forms:  # the log shows what the key's scopes may read: without forms:read, only which form
        body = {**body, "data": {"id": change.form_id}}
    return DeliveryDetail(**_delivery_fields(delivery, change), payload=body,
                          attempt_log=[AttemptRead.build(a) for a in attempts])


def change_read(change: FormChange) -> ChangeRead:
    return ChangeRead(**webhook_service.payload(change), form_id=change.form_id)
