"""Integrators and WeChat: residents and their tokens, notice credits and notices, photos, API clients,
webhooks and the outbox of form changes that feeds webhooks and ``GET /api/v1/changes``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, FetchedValue, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.crypto import PersonalText
from app.models.base import Base, UTCDateTime, utcnow


class Resident(Base):
    """A resident known through WeChat: one row per mini-program openid. No name, no phone: what a
    resident tells us about themselves stays on their forms."""

    __tablename__ = "resident"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(128), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ResidentToken(Base):
    """A resident's bearer token (``wx_…``); only its SHA-256 is stored."""

    __tablename__ = "resident_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SubscriptionCredit(Base):
    """WeChat's one-time subscription model: each accept the mini-program reports is one notice we may
    send to that resident with that template."""

    __tablename__ = "subscription_credit"

    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id", ondelete="CASCADE"), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    credits: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NoticeStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    no_credit = "no_credit"  # the resident gave no accept for the template: nothing was sent
    refused = "refused"  # WeChat said 43101 (refused, or the credit was gone)
    failed = "failed"  # any other final answer, or a send that may or may not have left


class WechatNotice(Base):
    """A reply notice to a resident, written in the reply's transaction and sent by the worker, so
    WeChat being slow or down never holds up (or undoes) the reply."""

    __tablename__ = "wechat_notice"
    __table_args__ = (Index("ix_wechat_notice_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("opinion_form.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id", ondelete="CASCADE"), index=True)
    template_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=NoticeStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    errcode: Mapped[int | None] = mapped_column(Integer)
    errmsg: Mapped[str | None] = mapped_column(String(500))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the values sent, as fitted to WeChat's rules
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SmsKind(StrEnum):
    receipt = "receipt"  # 回执: the tracking number and the verification code, right after submission
    reply = "reply"  # 答复通知: the form was answered, read it with the number and code


class SmsStatus(StrEnum):
    pending = "pending"  # waiting for the worker (or in flight: ``error_message`` says so)
    sent = "sent"  # the provider accepted it
    failed = "failed"  # a final refusal, attempts used up, or a send that may or may not have left
    capped = "capped"  # the phone had its day's SMS already (MINYI_SMS_DAILY_CAP): not sent
    stopped = "stopped"  # the resident stopped SMS notices from the tracking page: not sent


class SmsMessage(Base):
    """An SMS to a resident who ticked the consent box, written in the transaction of what it announces (the
    submission, the answer) and sent by the worker (services/sms.py), like ``WechatNotice``.

    ``params`` are the template's values, encrypted. The receipt's carry the verification code, which the app
    otherwise keeps only as a keyed hash: they are wiped (NULL) as soon as the message is settled, whatever
    the outcome, so the code sits in the database only while the SMS waits to go."""

    __tablename__ = "sms_message"
    __table_args__ = (Index("ix_sms_message_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("opinion_form.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Mainland mobile number, 11 digits, encrypted; its keyed hash (as ``submitter_phone_hash``) counts the
    # daily cap. Both erased with the form's personal data.
    phone: Mapped[str | None] = mapped_column(PersonalText)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    params: Mapped[str | None] = mapped_column(PersonalText)  # JSON object of the template's values
    status: Mapped[str] = mapped_column(String(16), default=SmsStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WechatToken(Base):
    """The mini-program's stable access token, kept where every process reads it and one refreshes it."""

    __tablename__ = "wechat_token"

    appid: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str | None] = mapped_column(String(2048))  # WeChat: keep room for >= 512 characters
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    force_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FormPhoto(Base):
    """A photo on a form, re-encoded without its metadata; the file lives under MINYI_PHOTO_DIR."""

    __tablename__ = "form_photo"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("opinion_form.id", ondelete="CASCADE"), index=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    uploaded_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Scope(StrEnum):
    forms_write = "forms:write"
    forms_read = "forms:read"
    stats_read = "stats:read"
    webhooks = "webhooks"


class ApiClient(Base):
    """An integrator's system. The key is shown once; only its SHA-256 is kept (keys are 256 random bits,
    so a fast hash is enough)."""

    __tablename__ = "api_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    key_prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so people can tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=600)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PauseReason(StrEnum):
    """Why the delivery worker switched a webhook off (``Webhook.paused_reason``)."""

    failing = "failing"  # no delivery reached the receiver for a day (services/webhooks.PAUSE_AFTER)
    gone = "gone"  # the receiver answered 410 Gone


class Webhook(Base):
    __tablename__ = "webhook"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_client.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # Space-separated and space-padded (" form.submitted form.answered "), so the outbox's fan-out matches
    # an event with one LIKE on both engines.
    events: Mapped[str] = mapped_column(String(1000))
    secret: Mapped[str] = mapped_column(String(500))  # encrypted with the app secret (services/webhooks.py)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The first failed attempt since the last delivered one (None: the receiver answers). A webhook that
    # stays failing for a day is paused: switched off (``active`` false, so no new deliveries and no
    # claims) with ``paused_at`` and ``paused_reason`` set, until its owner resumes it.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_reason: Mapped[str | None] = mapped_column(String(16))


class FormChange(Base):
    """The outbox: one row per public thing that happened to a form, written in the action's transaction.
    Webhook deliveries fan out from it and ``GET /api/v1/changes`` reads it in order.

    ``txid`` (PostgreSQL only, filled by the server) is the writing transaction's id: the feed orders by
    (txid, id) and shows only transactions older than every one still running, so a row that commits late
    with a low id can never be skipped by a client's cursor. SQLite has one writer at a time, so id order
    is commit order there.
    """

    __tablename__ = "form_change"
    __table_args__ = (Index("ix_form_change_txid_id", "txid", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    txid: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())
    form_id: Mapped[int] = mapped_column(ForeignKey("opinion_form.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("form_event.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the form as integrators see it, at that moment


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookDelivery(Base):
    """One change to one webhook. Claimed by a worker with FOR UPDATE SKIP LOCKED and a lease
    (``claimed_until``): a worker that dies mid-delivery leaves it for another after the lease."""

    __tablename__ = "webhook_delivery"
    # The claim's two indexes (services/webhooks._claim), over pending rows only: delivered and failed ones,
    # the bulk of the table, are never claimed. A webhook's pending deliveries in id order with their due
    # time (its next due ones, read without the rest), and its leased ones (is one in flight?). There is
    # no index on (status, next_attempt_at): with statistics from before a backlog ("pending is rare") the
    # planner took it for the claim and read every due delivery of every webhook (issue 15); the outbox
    # gauge counts over the first index instead.
    __table_args__ = (
        Index("ix_webhook_delivery_pending_webhook_id_id", "webhook_id", "id", "next_attempt_at",
              postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),
        Index("ix_webhook_delivery_pending_webhook_id_claimed_until", "webhook_id", "claimed_until",
              postgresql_where=text("status = 'pending' AND claimed_until IS NOT NULL"),
              sqlite_where=text("status = 'pending' AND claimed_until IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhook.id", ondelete="CASCADE"), index=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("form_change.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    worker: Mapped[str] = mapped_column(String(100), default="")
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
