"""Mobile service points (流动服务点): the sessions, their public calendar, and the collection funnel."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from app.models import PlaceType
from app.schemas.common import DbId, InputModel, LocalDateTime
from app.schemas.dates import BoundedDateTime
from app.schemas.reference import CODE_PATTERN, _refuse_null


def _unique(ids: list[int]) -> list[int]:
    return list(dict.fromkeys(ids))


class ServicePointCreate(InputModel):
    workroom_code: str = Field(pattern=CODE_PATTERN)
    title: str = Field(min_length=1, max_length=100)
    place_type: PlaceType = PlaceType.other
    location: str = Field("", max_length=200)
    starts_at: BoundedDateTime
    ends_at: BoundedDateTime
    representative_ids: list[DbId] = Field(default_factory=list, max_length=50)

    @field_validator("representative_ids")
    @classmethod
    def _dedupe(cls, value: list[int]) -> list[int]:
        return _unique(value)

    @model_validator(mode="after")
    def _ends_after_start(self) -> ServicePointCreate:
        if self.ends_at <= self.starts_at:
            raise ValueError("结束时间必须晚于开始时间。")
        return self


class ServicePointUpdate(InputModel):
    """All optional; an omitted field is left alone. The service checks the resulting times again."""

    workroom_code: str | None = Field(None, pattern=CODE_PATTERN)
    title: str | None = Field(None, min_length=1, max_length=100)
    place_type: PlaceType | None = None
    location: str | None = Field(None, max_length=200)
    starts_at: BoundedDateTime | None = None
    ends_at: BoundedDateTime | None = None
    representative_ids: list[DbId] | None = Field(None, max_length=50)

    @field_validator("workroom_code", "title", "place_type", "location", "starts_at", "ends_at", "representative_ids")
    @classmethod
    def _not_null(cls, value: object) -> object:
        value = _refuse_null(value)
        return _unique(value) if isinstance(value, list) else value


class AttendingRepresentative(BaseModel):
    """Who attends, as the public may see it: no phone number."""

    id: int
    name: str
    level: str


class ServicePointRead(BaseModel):
    id: int
    workroom_code: str
    workroom_name: str
    title: str
    place_type: str
    location: str
    starts_at: LocalDateTime
    ends_at: LocalDateTime
    representatives: list[AttendingRepresentative]


class FunnelCounts(BaseModel):
    """collected → answered (ever reached 答复) → rated on closing (满意 / 基本满意 / 不满意).

    ``answer_rate`` = answered / collected; ``satisfaction_rate`` = (satisfied + basically_satisfied) /
    rated closed forms; each is null when its denominator is 0."""

    forms_collected: int = 0
    answered: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    unsatisfied: int = 0
    answer_rate: float | None = None
    satisfaction_rate: float | None = None


class ServicePointDetail(ServicePointRead, FunnelCounts):
    pass


class FunnelSessionRow(FunnelCounts):
    service_point_id: int
    title: str
    workroom_code: str
    place_type: str
    starts_at: LocalDateTime


class FunnelRepresentativeRow(FunnelCounts):
    """``sessions``: the sessions in range the representative attended; the counts: the forms of the sessions
    in range that this representative entered (issue 20.3: a form is credited to who entered it)."""

    representative_id: int
    name: str
    sessions: int


class FunnelTotals(FunnelCounts):
    sessions: int = 0


class Funnel(BaseModel):
    totals: FunnelTotals
    sessions: list[FunnelSessionRow]
    representatives: list[FunnelRepresentativeRow]
    as_of: LocalDateTime
