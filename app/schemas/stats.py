from __future__ import annotations

from pydantic import BaseModel, Field

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


class Current(BaseModel):
    """Forms in each state now (not cumulative): each equals the forms list's total under the filter
    ``stats.CURRENT_FILTERS`` names. ``overdue`` is the 逾期 rung only; ``overdue + escalated`` equals the
    summary's ``overdue`` (every open form past its deadline)."""

    pending_triage: int = Field(description="待批办: status submitted")
    in_progress: int = Field(description="办理中: status assigned")
    awaiting_followup: int = Field(description="已答复待办结: status answered, not yet closed")
    overdue: int = Field(description="逾期: assigned, past the deadline, not yet escalated (supervision=overdue)")
    escalated: int = Field(description="督办: assigned, 5 working days or more past the deadline (supervision=escalated)")
    extension_requested: int = Field(description="延期待审批: assigned, an extension request awaiting a decision")


class Summary(Counts):
    warning: int
    escalated: int
    current: Current
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


class AnswerDaysBucket(BaseModel):
    bucket: str = Field(description="le1, 2-3, 4-7, 8-15 or gt15")
    label: str
    min_days: int
    max_days: int | None
    answered: int = Field(description="forms whose first answer came after this many working days")


class AnswerDaysList(BaseModel):
    items: list[AnswerDaysBucket]
    as_of: LocalDateTime
