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
    satisfied: int
    basically_satisfied: int
    unsatisfied: int
    satisfaction_rate: float
    on_time: int
    on_time_rate: float
    returned: int
    reopened: int
    avg_answer_working_days: float


class Summary(Counts):
    warning: int
    escalated: int
    as_of: LocalDateTime


class WorkroomCounts(Counts):
    workroom: str | None
    name: str


class CategoryCounts(Counts):
    category: str | None
    name: str


class MonthCounts(Counts):
    month: str


class UnitCounts(Counts):
    unit_id: int
    name: str


class RepresentativeCounts(Counts):
    representative_id: int
    name: str


class CountList(BaseModel):
    items: list[WorkroomCounts] | list[CategoryCounts] | list[MonthCounts] | list[UnitCounts] | list[RepresentativeCounts]
    as_of: LocalDateTime
