"""Paper forms (纸质意见征询表, issue 20.1): printed batches of numbered blank forms and voided serials.

A ``PaperBatch`` is a contiguous range of serial numbers printed for a workroom, or for one of its
service-point sessions. Serials are ``P{year}-{number:05d}``, numbered town-wide per year from
``PaperSequence`` (the same locked upsert as tracking numbers), so two batches never overlap. A returned
paper is entered once: ``opinion_form.paper_serial`` is unique. A spoiled or lost paper is voided
(``PaperVoid``, 作废) with a reason, once, and never entered afterwards.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime, utcnow
from app.models.reference import ServicePoint, Workroom
from app.models.users import User


class PaperSequence(Base):
    """The last paper serial number handed out per year, town-wide."""

    __tablename__ = "paper_sequence"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class PaperBatch(Base):
    """Serials ``P{year}-{first_no:05d}`` … ``P{year}-{last_no:05d}``, printed for a workroom or session."""

    __tablename__ = "paper_batch"
    id: Mapped[int] = mapped_column(primary_key=True)
    workroom_id: Mapped[int] = mapped_column(ForeignKey("workroom.id"), index=True)
    # The service-point session the papers are handed out at, if any: its entries are that session's forms.
    service_point_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_point.id", ondelete="SET NULL"), index=True
    )
    year: Mapped[int] = mapped_column(Integer)
    first_no: Mapped[int] = mapped_column(Integer)
    last_no: Mapped[int] = mapped_column(Integer)
    # The same range as text: a year's serials all have one width, so ``opinion_form.paper_serial BETWEEN
    # first_serial AND last_serial`` finds the batch's entries on the serial's unique index.
    first_serial: Mapped[str] = mapped_column(String(16), unique=True)
    last_serial: Mapped[str] = mapped_column(String(16))
    page_size: Mapped[str] = mapped_column(String(2), default="A4")  # A4 or A5: the size it is printed at
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    # The last time the batch's PDF was downloaded (printed), and by whom.
    printed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    printed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))

    workroom: Mapped[Workroom] = relationship(lazy="raise")
    service_point: Mapped[ServicePoint | None] = relationship(lazy="raise")
    created_by: Mapped[User | None] = relationship(lazy="raise", foreign_keys=[created_by_user_id])
    printed_by: Mapped[User | None] = relationship(lazy="raise", foreign_keys=[printed_by_user_id])


class PaperVoid(Base):
    """A serial voided (作废): the paper was spoiled or lost. A voided serial is never entered."""

    __tablename__ = "paper_void"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("paper_batch.id", ondelete="CASCADE"), index=True)
    serial: Mapped[str] = mapped_column(String(16), unique=True)
    reason: Mapped[str] = mapped_column(String(200))
    voided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    voided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))

    voided_by: Mapped[User | None] = relationship(lazy="raise")
