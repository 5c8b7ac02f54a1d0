from __future__ import annotations

from pydantic import BaseModel

from app.schemas.common import LocalDateTime


class Counts(BaseModel):
    collected: int
    assigned: int
    answered: int
    closed: int
    declined: int
    overdue: int
    answer_rate: float


class Summary(Counts):
    as_of: LocalDateTime


class WorkroomCounts(Counts):
    workroom: str | None
    name: str


class CategoryCounts(Counts):
    category: str | None
    name: str


class MonthCounts(Counts):
    month: str


class CountList(BaseModel):
    items: list[WorkroomCounts] | list[CategoryCounts] | list[MonthCounts]
    as_of: LocalDateTime
