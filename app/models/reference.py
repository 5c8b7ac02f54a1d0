"""Reference data: workrooms, representatives, service points, handling units, categories."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.crypto import PersonalText
from app.models.base import Base, UTCDateTime, utcnow


class RepresentativeLevel(StrEnum):
    town = "town"
    district = "district"
    city = "city"
    province = "province"
    national = "national"


class PlaceType(StrEnum):
    market = "market"
    village = "village"
    workshop = "workshop"
    event = "event"
    other = "other"


representative_workroom = Table(
    "representative_workroom",
    Base.metadata,
    Column("representative_id", ForeignKey("representative.id", ondelete="CASCADE"), primary_key=True),
    Column("workroom_id", ForeignKey("workroom.id", ondelete="CASCADE"), primary_key=True, index=True),
)

service_point_representative = Table(
    "service_point_representative",
    Base.metadata,
    Column("service_point_id", ForeignKey("service_point.id", ondelete="CASCADE"), primary_key=True),
    Column("representative_id", ForeignKey("representative.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Workroom(Base):
    __tablename__ = "workroom"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(200), default="")
    area: Mapped[str] = mapped_column(String(100), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Last change through the ORM: Open311's discovery changeset (workrooms are a service attribute).
    # NULL for rows unchanged since migration 0006 added it.
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Representative(Base):
    __tablename__ = "representative"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16), default=RepresentativeLevel.town)
    phone: Mapped[str | None] = mapped_column(PersonalText)  # encrypted at rest (app/crypto.py)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    workrooms: Mapped[list[Workroom]] = relationship(
        secondary=representative_workroom, lazy="raise", order_by=Workroom.code
    )


class ServicePoint(Base):
    """A mobile service point (流动服务点): one outreach session at a place and time, extending a workroom."""

    __tablename__ = "service_point"

    id: Mapped[int] = mapped_column(primary_key=True)
    workroom_id: Mapped[int] = mapped_column(ForeignKey("workroom.id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    place_type: Mapped[str] = mapped_column(String(16), default=PlaceType.other)
    location: Mapped[str] = mapped_column(String(200), default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    workroom: Mapped[Workroom] = relationship(lazy="raise")
    representatives: Mapped[list[Representative]] = relationship(
        secondary=service_point_representative, lazy="raise", order_by=Representative.id
    )


class HandlingUnit(Base):
    """A handling unit (承办单位): a department, village committee or company that answers forms."""

    __tablename__ = "handling_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Category(Base):
    __tablename__ = "category"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    due_days: Mapped[int] = mapped_column(Integer, default=15)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # What Open311 clients show as the service's description and search keywords (comma separated).
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    keywords: Mapped[str] = mapped_column(String(200), default="", server_default="")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
