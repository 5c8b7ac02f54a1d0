"""The working-day calendar the office owns: statutory holidays and make-up workdays (调休), one row a day.

Seeded by migration 0009 from the ``chinese-calendar`` package (2004–2026), then kept by the office from
the State Council's yearly notice (国务院办公厅关于××××年部分节假日安排的通知): entered one day at a
time or imported from a small CSV file. ``services.working_days`` reads it into the one working-day index
that deadlines, the supervision ladder and rotas use.

``CalendarRevision`` is one row whose ``token`` changes with every write to ``calendar_day``: each process
compares it with the token its index was built from (one primary-key read per transaction) and rebuilds
the index when another process, or this one, changed the calendar.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class DayKind(StrEnum):
    holiday = "holiday"  # 放假: no work, weekday or not (a weekend day inside a holiday block is one too)
    workday = "workday"  # 上班: a make-up workday (调休), normally a Saturday or Sunday


class DaySource(StrEnum):
    seeded = "seeded"  # from the chinese-calendar package, by migration 0009
    entered = "entered"  # typed in on the calendar page or through the API
    imported = "imported"  # from a CSV file typed from the notice


class CalendarDay(Base):
    __tablename__ = "calendar_day"

    id: Mapped[int] = mapped_column(primary_key=True)
    day_on: Mapped[date] = mapped_column(Date, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64), default="")  # 春节, 国庆节, ...
    source: Mapped[str] = mapped_column(String(16), default=DaySource.entered)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CalendarRevision(Base):
    """One row (id 1): which version of ``calendar_day`` is current."""

    __tablename__ = "calendar_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
