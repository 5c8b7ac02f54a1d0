"""The register of activities (活动登记, issue 20.2): request and response shapes of ``/api/v1/activities``
and ``/api/v1/stats/activities``."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field, computed_field, field_validator

from app.models import ActivityKind
from app.schemas.common import DbId, InputModel, LocalDateTime
from app.schemas.dates import BoundedDate
from app.schemas.reference import CODE_PATTERN, _refuse_null
from app.schemas.service_points import AttendingRepresentative

MAX_TITLE = 100
MAX_PLACE = 200
MAX_ACCOUNT = 2000
MAX_ATTENDANCE = 100_000
MAX_REPRESENTATIVES = 50


def _stripped(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _unique(ids: list[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def _no_bool(value: object) -> object:
    # JSON true is no head count (pydantic would read it as 1).
    if isinstance(value, bool):
        raise ValueError("参与人数应为整数。")
    return value


class ActivityCreate(InputModel):
    workroom_code: str = Field(pattern=CODE_PATTERN, description="工作室编号")
    kind: ActivityKind = Field(ActivityKind.other, description="类型：party_service 党群服务活动、market 集市服务、"
                                                                "visit 走访、study 学习、other 其他")
    title: str = Field(min_length=1, max_length=MAX_TITLE, description="名称（1–100 字）")
    held_on: BoundedDate = Field(description="活动日期 YYYY-MM-DD")
    place: str = Field("", max_length=MAX_PLACE, description="地点（≤200 字）")
    attendance: int = Field(0, ge=0, le=MAX_ATTENDANCE, description="参与群众人次（0–100000）")
    account: str = Field("", max_length=MAX_ACCOUNT, description="活动简述（≤2000 字）")
    public: bool = Field(True, description="是否在工作室的公开活动页展示")
    representative_ids: list[DbId] = Field(default_factory=list, max_length=MAX_REPRESENTATIVES,
                                           description="参加的党代表（须在任）")
    service_point_id: DbId | None = Field(None, description="所属流动服务点场次（须为同一工作室的场次）")

    @field_validator("title", "place", "account", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return _stripped(value)

    @field_validator("representative_ids")
    @classmethod
    def _dedupe(cls, value: list[int]) -> list[int]:
        return _unique(value)

    @field_validator("attendance", mode="before")
    @classmethod
    def _not_a_bool(cls, value: object) -> object:
        return _no_bool(value)


class ActivityUpdate(InputModel):
    """All optional; an omitted field is left alone. ``service_point_id: null`` unlinks the session."""

    workroom_code: str | None = Field(None, pattern=CODE_PATTERN)
    kind: ActivityKind | None = None
    title: str | None = Field(None, min_length=1, max_length=MAX_TITLE)
    held_on: BoundedDate | None = None
    place: str | None = Field(None, max_length=MAX_PLACE)
    attendance: int | None = Field(None, ge=0, le=MAX_ATTENDANCE)
    account: str | None = Field(None, max_length=MAX_ACCOUNT)
    public: bool | None = None
    representative_ids: list[DbId] | None = Field(None, max_length=MAX_REPRESENTATIVES)
    service_point_id: DbId | None = None

    @field_validator("title", "place", "account", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return _stripped(value)

    @field_validator("workroom_code", "kind", "title", "held_on", "place", "attendance", "account", "public",
                     "representative_ids")
    @classmethod
    def _not_null(cls, value: object) -> object:
        value = _refuse_null(value)
        return _unique(value) if isinstance(value, list) else value

    @field_validator("attendance", mode="before")
    @classmethod
    def _not_a_bool(cls, value: object) -> object:
        return _no_bool(value)


class ActivityPhotoRead(BaseModel):
    id: int
    activity_id: int
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    created_at: LocalDateTime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        return f"/api/v1/activities/{self.activity_id}/photos/{self.id}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def thumbnail_url(self) -> str:
        return f"/api/v1/activities/{self.activity_id}/photos/{self.id}/thumbnail"


class ProducedForm(BaseModel):
    """A form the activity's service-point session collected (only those the caller may see)."""

    id: int
    tracking_no: str
    status: str
    submitted_at: LocalDateTime


class ActivityRead(BaseModel):
    id: int
    kind: str
    kind_label: str
    title: str
    held_on: date
    place: str
    workroom_code: str
    workroom_name: str
    attendance: int
    account: str
    public: bool
    representatives: list[AttendingRepresentative]
    service_point_id: int | None
    service_point_title: str | None
    forms_count: int = Field(description="该活动的流动服务点场次收集的意见数（无场次时为 0）")
    photos: list[ActivityPhotoRead]
    created_at: LocalDateTime
    updated_at: LocalDateTime


class ActivityDetail(ActivityRead):
    forms: list[ProducedForm] | None = Field(
        None, description="该场次收集的意见（仅工作人员，且只列出其可查看的；最多 200 条）")


class ActivityKindCount(BaseModel):
    kind: str
    label: str
    activities: int


class ActivityWorkroomCount(BaseModel):
    workroom: str
    name: str
    activities: int
    attendance: int
    by_kind: dict[str, int]


class ActivityStats(BaseModel):
    """Activities held between ``from`` and ``to`` (both inclusive, by ``held_on``)."""

    activities: int
    attendance: int
    by_kind: list[ActivityKindCount]
    by_workroom: list[ActivityWorkroomCount]
    as_of: LocalDateTime
