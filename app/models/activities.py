"""Activities (活动): what a workroom did besides taking forms, and the office's report drafts (issue 20).

An ``Activity`` is one event of the register: a 党群服务活动, a 集市服务, a round of 走访, a 学习 session.
It has a day, a place, a workroom, the representatives present, how many people attended, photos, a short
account, and optionally the service-point session it ran (the forms it produced are that session's forms).
A ``ReportDraft`` keeps what the office chose for one period's brief (工作简报): its own opening paragraph
and the typical cases to feature; the numbers are computed when the brief is built, never stored.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Date, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime, utcnow
from app.models.reference import Representative, ServicePoint, Workroom


class ActivityKind(StrEnum):
    party_service = "party_service"  # 党群服务活动
    market = "market"  # 集市服务
    visit = "visit"  # 走访
    study = "study"  # 学习
    other = "other"  # 其他


ACTIVITY_KIND_LABELS: dict[str, str] = {
    ActivityKind.party_service: "党群服务活动",
    ActivityKind.market: "集市服务",
    ActivityKind.visit: "走访",
    ActivityKind.study: "学习",
    ActivityKind.other: "其他",
}


activity_representative = Table(
    "activity_representative",
    Base.metadata,
    Column("activity_id", ForeignKey("activity.id", ondelete="CASCADE"), primary_key=True),
    Column("representative_id", ForeignKey("representative.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Activity(Base):
    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_held_on_id", "held_on", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=ActivityKind.other)
    title: Mapped[str] = mapped_column(String(100))
    held_on: Mapped[date] = mapped_column(Date)
    place: Mapped[str] = mapped_column(String(200), default="")
    workroom_id: Mapped[int] = mapped_column(ForeignKey("workroom.id"), index=True)
    # The service-point session the activity ran, if any: its forms are the forms the activity produced.
    service_point_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_point.id", ondelete="SET NULL"), index=True
    )
    attendance: Mapped[int] = mapped_column(Integer, default=0)  # people who took part (群众参与人次)
    account: Mapped[str] = mapped_column(Text, default="")  # a short account (活动简述)
    public: Mapped[bool] = mapped_column(default=True)  # listed on the workroom's public page
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    workroom: Mapped[Workroom] = relationship(lazy="raise")
    service_point: Mapped[ServicePoint | None] = relationship(lazy="raise")
    representatives: Mapped[list[Representative]] = relationship(
        secondary=activity_representative, lazy="raise", order_by=Representative.id
    )


class ActivityPhoto(Base):
    """A photo of an activity, re-encoded without its metadata like a form's (services/photos.py)."""

    __tablename__ = "activity_photo"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    uploaded_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportDraft(Base):
    """The office's choices for one period's brief: ``period`` is ``2026-11``, ``2026-Q4`` or ``2026``."""

    __tablename__ = "report_draft"

    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    opening: Mapped[str | None] = mapped_column(Text)  # None: the generated opening paragraph
    featured_form_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # typical cases, in order
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # room for later choices, kept as given
