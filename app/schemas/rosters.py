"""Duty rosters: shifts, rota planning, swaps, check-ins and attendance.

Shifts are read by the public (who is on duty at a workroom): representatives appear with name and level,
never their phone number."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.models import Shift, SwapStatus
from app.schemas.common import DbId, InputModel, LocalDateTime
from app.schemas.dates import BoundedDate, BoundedDateTime


class ShiftCreate(InputModel):
    representative_id: DbId
    starts_at: BoundedDateTime
    ends_at: BoundedDateTime


class ShiftRead(BaseModel):
    id: int
    workroom_code: str
    workroom_name: str
    representative_id: int
    representative_name: str
    representative_level: str
    starts_at: LocalDateTime
    ends_at: LocalDateTime
    checked_in_at: LocalDateTime | None = None

    @classmethod
    def of(cls, shift: Shift, *, attendance: bool = True) -> ShiftRead:
        """``attendance`` False: without the check-in time (the public roster shows who is on duty, not
        when each representative arrived; that is the office's attendance report)."""
        return cls(
            id=shift.id, workroom_code=shift.workroom.code, workroom_name=shift.workroom.name,
            representative_id=shift.representative_id, representative_name=shift.representative.name,
            representative_level=shift.representative.level, starts_at=shift.starts_at, ends_at=shift.ends_at,
            checked_in_at=shift.checked_in_at if attendance else None,
        )


class ShiftList(BaseModel):
    items: list[ShiftRead]


class OnDutyRepresentative(BaseModel):
    id: int
    name: str
    level: str
    shift_id: int
    starts_at: LocalDateTime
    ends_at: LocalDateTime


class OnDutyRead(BaseModel):
    workroom_code: str
    at: LocalDateTime
    representatives: list[OnDutyRepresentative]


# --- rota --------------------------------------------------------------------------------------------


class RotaWorkroomIn(InputModel):
    code: str = Field(min_length=1, max_length=32)
    weekdays: list[int] = Field(min_length=1, max_length=7, description="ISO weekdays: Monday 1 … Sunday 7")
    start: dt.time
    end: dt.time
    representative_ids: list[DbId] = Field(min_length=1, max_length=100, description="taking turns, in this order")

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if any(not 1 <= day <= 7 for day in value):
            raise ValueError("weekdays 取值 1（周一）至 7（周日）。")
        return sorted(set(value))

    @field_validator("start", "end")
    @classmethod
    def _naive(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("时间按北京时间填写，不带时区。")
        return value

    @model_validator(mode="after")
    def _order(self) -> RotaWorkroomIn:
        if self.end <= self.start:
            raise ValueError("结束时间必须晚于开始时间。")
        return self


class RotaRequest(InputModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: BoundedDate = Field(alias="from")
    to: BoundedDate
    workrooms: list[RotaWorkroomIn] = Field(min_length=1, max_length=50)
    skip_holidays: bool = True

    @model_validator(mode="after")
    def _range(self) -> RotaRequest:
        if self.to < self.from_:
            raise ValueError("结束日期不能早于开始日期。")
        return self


class RotaItem(BaseModel):
    index: int
    workroom_code: str
    representative_id: int
    representative_name: str
    starts_at: LocalDateTime
    ends_at: LocalDateTime
    conflict: bool
    conflicting_shift_ids: list[int]
    conflicting_items: list[int] = Field(description="indexes of other items of this rota that overlap")


class RotaPreview(BaseModel):
    count: int
    conflicts: int
    skipped_holidays: list[dt.date]
    items: list[RotaItem]


class RotaCommitted(BaseModel):
    count: int
    items: list[ShiftRead]


# --- swaps -------------------------------------------------------------------------------------------


class SwapCreate(InputModel):
    to_representative_id: DbId
    note: str | None = Field(None, max_length=500)


class SwapRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    shift_id: int
    from_representative_id: int
    to_representative_id: int
    status: SwapStatus
    note: str | None
    requested_at: LocalDateTime
    answered_at: LocalDateTime | None
    decided_at: LocalDateTime | None
    decided_by_user_id: int | None


# --- attendance --------------------------------------------------------------------------------------


class AttendanceRow(BaseModel):
    representative_id: int | None = None
    representative_name: str | None = None
    workroom_code: str | None = None
    workroom_name: str | None = None
    month: str | None = None
    planned: int
    checked_in: int
    missed: int = Field(description="ended without a check-in")
    rate: float | None = Field(description="checked_in / planned; null when nothing was planned")


class AttendanceRead(BaseModel):
    group: Literal["representative", "workroom", "month"]
    from_: dt.date = Field(serialization_alias="from")
    to: dt.date
    items: list[AttendanceRow]
