"""Duty rosters: who is stationed at which workroom when (值班), swaps between representatives, check-ins,
calendar feeds, and import jobs for rosters kept in Excel."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime, utcnow
from app.models.reference import Representative, Workroom


class Shift(Base):
    """A representative on duty at a workroom from ``starts_at`` to ``ends_at`` (half-open).

    A representative never holds two overlapping shifts: every write goes through
    ``services.rosters``, which locks the representative's row before checking (so two racing requests
    queue on PostgreSQL; SQLite's write transactions are serial anyway)."""

    __tablename__ = "shift"
    __table_args__ = (Index("ix_shift_representative_starts", "representative_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workroom_id: Mapped[int] = mapped_column(ForeignKey("workroom.id", ondelete="CASCADE"), index=True)
    representative_id: Mapped[int] = mapped_column(ForeignKey("representative.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))

    workroom: Mapped[Workroom] = relationship(lazy="raise")
    representative: Mapped[Representative] = relationship(lazy="raise")


class SwapStatus(StrEnum):
    requested = "requested"  # asked by the shift's holder, waiting for the other representative
    accepted = "accepted"  # the other accepted, waiting for a coordinator
    approved = "approved"  # a coordinator approved: the shift changed hands
    declined = "declined"  # the other representative said no
    refused = "refused"  # a coordinator said no
    cancelled = "cancelled"  # withdrawn by the holder


class ShiftSwap(Base):
    """A request to hand a shift to another representative; the roster changes only once approved."""

    __tablename__ = "shift_swap"

    id: Mapped[int] = mapped_column(primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shift.id", ondelete="CASCADE"), index=True)
    from_representative_id: Mapped[int] = mapped_column(ForeignKey("representative.id", ondelete="CASCADE"))
    to_representative_id: Mapped[int] = mapped_column(ForeignKey("representative.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=SwapStatus.requested)
    note: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))


class CalendarFeed(Base):
    """An iCalendar subscription: ``kind`` is ``representative`` or ``workroom``; ``token`` is the
    unguessable secret in the feed's URL (a read-only capability; resetting it replaces the row's token)."""

    __tablename__ = "calendar_feed"
    __table_args__ = (Index("uq_calendar_feed_owner", "kind", "owner_id", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportJob(Base):
    """An import of representatives or shifts from .xlsx/.csv: checked whole, written all or nothing."""

    __tablename__ = "import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
