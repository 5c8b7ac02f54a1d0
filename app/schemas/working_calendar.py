"""The office's working-day calendar: a year's entries, one day, an import's outcome (issue 15)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from app.schemas.common import InputModel, LocalDateTime
from app.schemas.dates import BoundedDate

DayKindField = Literal["holiday", "workday"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]


class CalendarDayCreate(InputModel):
    day: BoundedDate = Field(description="YYYY-MM-DD, a year from 2000 to five years ahead")
    kind: DayKindField = Field(description="holiday 放假 | workday 上班（调休，周六或周日）")
    name: Name = Field("", description="e.g. 春节; for a make-up workday, the holiday it makes up for")


class CalendarDayUpdate(InputModel):
    kind: DayKindField | None = None
    name: Name | None = None


class CalendarDayRead(BaseModel):
    day: date
    weekday: str = Field(description="星期一 … 星期日")
    kind: DayKindField
    kind_label: str
    name: str
    source: Literal["seeded", "entered", "imported"]
    updated_at: LocalDateTime


class StatutoryDayRead(BaseModel):
    day: date
    weekday: str
    name: str


class CalendarYearRead(BaseModel):
    year: int
    entered: bool = Field(description="the year has entries: they alone decide its holidays and workdays")
    uses_rules: bool = Field(description="no entries: its statutory holidays are computed from the rules")
    provisional: bool = Field(description="deadlines in this year are provisional (make-up workdays unknown)")
    items: list[CalendarDayRead]
    statutory: list[StatutoryDayRead] = Field(description="the statutory holidays the rules give this year")
    missing_statutory: list[StatutoryDayRead] = Field(
        description="an entered year: statutory holidays that no holiday entry covers (check the notice)")
    notice: str | None = Field(description="from 1 November: next year's notice is still to be entered")


class CalendarImportRead(BaseModel):
    created: int
    updated: int
    unchanged: int
    removed: int
    years: list[int]
