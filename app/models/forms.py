"""Opinion forms (意见征询表), their events (办理记录), tracking numbers and idempotency records."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.crypto import PersonalText
from app.models.base import Base, UTCDateTime, utcnow
from app.models.integrations import FormPhoto, SmsMessage
from app.models.reference import Category, HandlingUnit, ServicePoint, Workroom


class Supervision(StrEnum):
    """督办 levels of an assigned form against its deadline (services/deadlines.py computes them)."""

    none = "none"
    warning = "warning"
    overdue = "overdue"
    escalated = "escalated"


class FormStatus(StrEnum):
    submitted = "submitted"
    assigned = "assigned"
    answered = "answered"
    closed = "closed"
    declined = "declined"


STATUS_LABELS: dict[str, str] = {
    FormStatus.submitted: "已收集",
    FormStatus.assigned: "办理中",
    FormStatus.answered: "已答复",
    FormStatus.closed: "已办结",
    FormStatus.declined: "不予受理",
}


class Channel(StrEnum):
    workroom = "workroom"
    service_point = "service_point"
    wechat = "wechat"
    web = "web"
    phone = "phone"
    other = "other"


class Satisfaction(StrEnum):
    satisfied = "satisfied"
    basically_satisfied = "basically_satisfied"
    unsatisfied = "unsatisfied"


class EventType(StrEnum):
    submitted = "submitted"
    assigned = "assigned"
    reassigned = "reassigned"
    returned = "returned"
    extension_requested = "extension_requested"
    extension_approved = "extension_approved"
    extension_refused = "extension_refused"
    answered = "answered"
    answered_on_spot = "answered_on_spot"
    closed = "closed"
    declined = "declined"
    reopened = "reopened"
    urged = "urged"
    note = "note"
    supervision = "supervision"
    content_reviewed = "content_reviewed"  # the office checked content WeChat's check flagged, and cleared it
    code_reissued = "code_reissued"  # 补发查询码: a new verification code; the old one stopped working
    sms_stopped = "sms_stopped"  # the resident stopped SMS notices from the tracking page
    # 合并办理 (services/merging.py): on the lead, forms joined it or left it; on a follower, it joined or left.
    merged = "merged"
    merge_removed = "merge_removed"
    merged_into = "merged_into"
    unmerged = "unmerged"


# The search index (app/services/search.py, alembic 0015): one row per form, kept by the app, of a kind each
# engine has its own way of (PostgreSQL: a tsvector with a GIN index; SQLite: an FTS5 table and the tables
# FTS5 keeps beside it). Outside the models, so Alembic's comparison leaves it alone (``is_search_table``).
SEARCH_TABLE = "form_search"


def is_search_table(name: str | None) -> bool:
    return name is not None and (name == SEARCH_TABLE or name.startswith(SEARCH_TABLE + "_"))


def compared_by_alembic(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name``: everything but the search index is compared with the models."""
    return not (type_ == "table" and is_search_table(name))


class OpinionForm(Base):
    __tablename__ = "opinion_form"
    __table_args__ = (
        Index("ix_opinion_form_workroom_id_id", "workroom_id", "id"),
        Index("ix_opinion_form_unit_id_id", "unit_id", "id"),
        Index("ix_opinion_form_status_id", "status", "id"),
        # The desk's default order, received time (newest or oldest first), read from an index at any size
        # (alembic 0014).
        Index("ix_opinion_form_submitted_at_id", "submitted_at", "id"),
        Index("ix_opinion_form_status_submitted_at_id", "status", "submitted_at", "id"),  # one state's, likewise
        # Overdue is counted live over open forms only: this partial index keeps that read proportional to
        # the open backlog, never to all forms ever collected.
        Index(
            "ix_opinion_form_open_due_at",
            "due_at",
            postgresql_where=text("status = 'assigned'"),
            sqlite_where=text("status = 'assigned'"),
        ),
        # Open311 reads only published forms, newest first within a date range: this partial index keeps
        # that read proportional to the published forms in the range, never to all forms.
        Index(
            "ix_opinion_form_public_submitted_at",
            "submitted_at",
            postgresql_where=text("public"),
            sqlite_where=text("public = 1"),  # how SQLAlchemy writes a bare boolean on SQLite
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_no: Mapped[str] = mapped_column(String(32), unique=True)
    verification_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    workroom_id: Mapped[int | None] = mapped_column(ForeignKey("workroom.id"))
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_point.id"), index=True)
    # Personal data: encrypted at rest (app/crypto.py); the phone also as a keyed hash, to find one
    # resident's forms. Erased (set to NULL) by retention or on the resident's request.
    submitter_name: Mapped[str | None] = mapped_column(PersonalText)
    submitter_phone: Mapped[str | None] = mapped_column(PersonalText)
    submitter_phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    personal_data_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    location: Mapped[str | None] = mapped_column(String(200))
    # Where the opinion is about (WGS84), when the submitter's device or an Open311 client gave it.
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # From Open311 clients: the jurisdiction's address id and a link to media, kept as given.
    address_id: Mapped[str | None] = mapped_column(String(64))
    media_url: Mapped[str | None] = mapped_column(String(500))
    # The submitter agreed to publication: only such forms are readable through Open311 (content and
    # public reply; never name, phone or internal notes).
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    # The submitter ticked "notify me by SMS" (only offered when SMS is configured; the phone is then a
    # mainland mobile number), and when they stopped the notices from the tracking page.
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    sms_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    status: Mapped[str] = mapped_column(String(16), default=FormStatus.submitted)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("handling_unit.id"))
    instructions: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    decline_reason: Mapped[str | None] = mapped_column(Text)
    # A pending extension request (延期): the unit's proposed deadline and reason, until approved or refused.
    extension_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    # The highest supervision level already recorded as an event (so each level is recorded once).
    supervision_recorded: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    returned_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reopened_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Of the first answer: was it on or before the deadline, and how many working days after submission.
    answered_on_time: Mapped[bool | None] = mapped_column(Boolean)
    answer_working_days: Mapped[int | None] = mapped_column(Integer)

    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The local (Asia/Shanghai) day of submission: the key of the statistics counters.
    submitted_on: Mapped[date] = mapped_column(Date, index=True)
    first_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    entered_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    entered_by_representative_id: Mapped[int | None] = mapped_column(ForeignKey("representative.id"), index=True)
    # Who submitted it through an integration: the WeChat resident (their "my forms") or the API client.
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id", ondelete="SET NULL"), index=True)
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_client.id", ondelete="SET NULL"))
    # Set when the office should look at the content before acting: WeChat's msgSecCheck said "review",
    # or could not be asked (see services/content_check.py). ``content_check`` keeps WeChat's answer.
    review_flag: Mapped[str | None] = mapped_column(String(32))
    content_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Merged into one suggestion (合并办理, issue 19.3; services/merging.py): the lead form this one follows
    # (its assignment, reply and closure), and this form's own workflow state at the merge, which unmerging
    # restores. Both NULL for a form that is not merged into another.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("opinion_form.id"), index=True)
    merge_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The serial of the paper form it was typed from (纸质征询表编号, issue 20.1; models/paper.py): a paper
    # is entered once, which the unique index enforces (a unique index, not a constraint: added without
    # rebuilding the table on SQLite).
    paper_serial: Mapped[str | None] = mapped_column(String(16), unique=True, index=True)

    category: Mapped[Category | None] = relationship(lazy="raise")
    workroom: Mapped[Workroom | None] = relationship(lazy="raise")
    service_point: Mapped[ServicePoint | None] = relationship(lazy="raise")
    unit: Mapped[HandlingUnit | None] = relationship(lazy="raise")
    events: Mapped[list[FormEvent]] = relationship(
        lazy="raise", order_by="FormEvent.id", back_populates="form", passive_deletes=True
    )
    photos: Mapped[list[FormPhoto]] = relationship(lazy="raise", order_by="FormPhoto.id", passive_deletes=True)
    sms_messages: Mapped[list[SmsMessage]] = relationship(lazy="raise", order_by="SmsMessage.id",
                                                          passive_deletes=True)
    # A follower's lead, and a lead's followers (loaded with a form's timeline: forms.get(with_events=True)).
    lead: Mapped[OpinionForm | None] = relationship(lazy="raise", remote_side="OpinionForm.id",
                                                    foreign_keys=[merged_into_id], back_populates="followers")
    followers: Mapped[list[OpinionForm]] = relationship(lazy="raise", order_by="OpinionForm.id",
                                                        foreign_keys=[merged_into_id], back_populates="lead")


class FormEvent(Base):
    """One thing that happened to a form: the timeline residents read and the audit trail staff read."""

    __tablename__ = "form_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("opinion_form.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    actor_label: Mapped[str] = mapped_column(String(100), default="")
    actor_role: Mapped[str | None] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    # The handling unit the event concerns (assigned to, returned by, answered by), when there is one.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("handling_unit.id"))
    note: Mapped[str | None] = mapped_column(Text)
    # Staff-only events (internal notes) never reach residents, public tracking or webhooks.
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    form: Mapped[OpinionForm] = relationship(lazy="raise", back_populates="events")


class TrackingSequence(Base):
    """The last tracking number handed out per year. Incremented inside the submitting transaction, so a
    number is used only if its form commits: no repeats and no gaps."""

    __tablename__ = "tracking_sequence"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyRecord(Base):
    """The first answer to a request sent with an ``Idempotency-Key``, replayed for retries.

    The response body holds the form's verification code, so it is stored encrypted and deleted after
    the idempotency window.
    """

    __tablename__ = "idempotency_record"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
