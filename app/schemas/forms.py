from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from app.models import STATUS_LABELS, Channel, EventType, FormStatus, OpinionForm, Satisfaction, Supervision
from app.schemas.common import DbId, InputModel, LocalDateTime
from app.schemas.dates import BoundedDate
from app.schemas.photos import PhotoRead
from app.schemas.reference import CODE_PATTERN, PHONE_PATTERN

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]

EVENT_LABELS = {
    EventType.submitted: "提交意见",
    EventType.assigned: "批办",
    EventType.reassigned: "改派",
    EventType.returned: "退回",
    EventType.extension_requested: "申请延期",
    EventType.extension_approved: "延期获批",
    EventType.extension_refused: "延期未获批",
    EventType.answered: "答复",
    EventType.answered_on_spot: "当场答复",
    EventType.closed: "办结",
    EventType.declined: "不予受理",
    EventType.reopened: "重办",
    EventType.urged: "催办",
    EventType.note: "内部备注",
    EventType.supervision: "督办提醒",
    EventType.content_reviewed: "内容审核通过",
    EventType.code_reissued: "补发查询码",
}
# What a resident's timeline shows: the steps of their case. Returns, extension requests, urging,
# supervision and internal notes are the office's business.
PUBLIC_EVENTS = {
    EventType.submitted, EventType.assigned, EventType.reassigned, EventType.extension_approved,
    EventType.answered, EventType.answered_on_spot, EventType.closed, EventType.declined, EventType.reopened,
}
PUBLIC_EVENT_LABELS = {
    EventType.submitted: "意见已收集",
    EventType.assigned: "已转交承办单位办理",
    EventType.reassigned: "已改由其他单位办理",
    EventType.extension_approved: "办理期限已延长",
    EventType.answered: "已答复",
    EventType.answered_on_spot: "已当场答复",
    EventType.closed: "已办结",
    EventType.declined: "不予受理",
    EventType.reopened: "重新办理",
}
# Events whose note the resident reads: the reply and the reason for declining. Instructions, reasons
# for reopening and internal notes stay with staff.
PUBLIC_NOTE_EVENTS = {EventType.answered, EventType.answered_on_spot, EventType.declined}


class FormCreate(InputModel):
    content: Text
    category: str | None = Field(None, max_length=32)
    channel: Channel | None = None
    workroom_code: str | None = Field(None, pattern=CODE_PATTERN)
    service_point_id: DbId | None = None
    submitter_name: str | None = Field(None, max_length=64)
    submitter_phone: str | None = Field(None, pattern=PHONE_PATTERN)
    location: str | None = Field(None, max_length=200)
    # Where the opinion is about (WGS84, e.g. from wx.getLocation): both or neither.
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    # The submitter agrees to publication: content and public reply may be published (Open311), never
    # name or phone. Off unless asked for.
    public: bool = False

    @field_validator("submitter_name", "location", "category", "workroom_code", "submitter_phone", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @model_validator(mode="after")
    def _both_coordinates(self) -> FormCreate:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude 与 longitude 须同时提供。")
        return self


class EventRead(BaseModel):
    id: int
    type: str
    type_label: str
    at: LocalDateTime
    actor: str
    actor_role: str | None
    from_status: str | None
    to_status: str | None
    unit_id: int | None
    note: str | None
    internal: bool
    data: dict[str, Any] | None



class FormRead(BaseModel):
    id: int
    tracking_no: str
    status: str
    status_label: str
    content: str
    category: str | None
    category_name: str | None
    channel: str
    workroom_code: str | None
    workroom_name: str | None
    service_point_id: int | None
    submitter_name: str | None
    submitter_phone: str | None
    location: str | None
    latitude: float | None = None
    longitude: float | None = None
    address_id: str | None = None
    media_url: str | None = None
    public: bool
    unit_id: int | None
    unit_name: str | None
    instructions: str | None
    due_at: LocalDateTime | None
    # True: the deadline lies in (or was counted across) a year whose holiday notice is not entered yet,
    # so its make-up workdays are unknown and it may still move (issue 15).
    due_at_provisional: bool = False
    supervision: str
    reply: str | None
    satisfaction: str | None
    decline_reason: str | None
    extension_due_at: LocalDateTime | None
    extension_reason: str | None
    returned_count: int
    reopened_count: int
    submitted_at: LocalDateTime
    assigned_at: LocalDateTime | None
    answered_at: LocalDateTime | None
    closed_at: LocalDateTime | None
    declined_at: LocalDateTime | None
    updated_at: LocalDateTime
    entered_by_user_id: int | None
    entered_by_representative_id: int | None
    resident_id: int | None = None
    api_client_id: int | None = None
    # "content_review" (WeChat's check said review) or "check_unavailable" (WeChat could not be asked).
    review_flag: str | None = None



class FormDetail(FormRead):
    """A form with its timeline: every event, internal notes included, for staff; the public steps for
    API clients (services/disclosure.py)."""

    events: list[EventRead]
    photos: list[PhotoRead] = []



class FormCreated(FormRead):
    verification_code: str


class AssignBody(InputModel):
    unit_id: DbId
    instructions: Note | None = None
    due_at: LocalDateTime | None = None


class ReassignBody(InputModel):
    unit_id: DbId
    instructions: Note | None = None


class ReplyBody(InputModel):
    reply: Text
    internal_note: Note | None = None


class CloseBody(InputModel):
    satisfaction: Satisfaction | None = None
    note: Note | None = None


class ReasonBody(InputModel):
    reason: Reason


class ReopenBody(InputModel):
    reason: Reason
    unit_id: DbId | None = None


class ExtensionBody(InputModel):
    due_at: LocalDateTime
    reason: Reason


class DecisionBody(InputModel):
    note: Note | None = None


class SpotAnswerBody(InputModel):
    reply: Text


class UrgeBody(InputModel):
    note: Note | None = None


class NoteBody(InputModel):
    note: Text


class TimelineEntry(BaseModel):
    type: str
    label: str
    at: LocalDateTime
    note: str | None = None


class CodeReissued(BaseModel):
    """补发查询码: the form's new verification code, shown once (only its keyed hash is stored)."""

    form_id: int
    tracking_no: str
    verification_code: str


class ContactRead(BaseModel):
    """A resident's whole name and phone, revealed to one staff member and recorded (issue 15.6)."""

    form_id: int
    tracking_no: str
    submitter_name: str | None
    submitter_phone: str | None


class TrackRead(BaseModel):
    tracking_no: str
    status: str
    status_label: str
    submitted_at: LocalDateTime
    answered_at: LocalDateTime | None
    reply: str | None
    due_at: LocalDateTime | None
    category_name: str | None
    workroom_name: str | None
    decline_reason: str | None
    timeline: list[TimelineEntry]

    @classmethod
    def build(cls, form: OpinionForm) -> TrackRead:
        timeline = [
            TimelineEntry(
                type=e.type, label=PUBLIC_EVENT_LABELS[e.type], at=e.at,
                note=e.note if e.type in PUBLIC_NOTE_EVENTS else None,
            )
            for e in form.events
            if e.type in PUBLIC_EVENTS and not e.internal
        ]
        return cls(
            tracking_no=form.tracking_no, status=form.status, status_label=STATUS_LABELS.get(form.status, form.status),
            submitted_at=form.submitted_at, answered_at=form.answered_at, reply=form.reply, due_at=form.due_at,
            category_name=form.category.name if form.category else None,
            workroom_name=form.workroom.name if form.workroom else None,
            decline_reason=form.decline_reason, timeline=timeline,
        )


# --- the one filter of a list of forms -----------------------------------------------------------------


class FormQuery(InputModel):
    """Which forms: the filters of ``GET /api/v1/forms``, of its exports (``GET /api/v1/forms/export.{fmt}``
    and the body of ``POST /api/v1/exports``, kept with the job), of the office's list and of every other
    list of forms the services read (``forms.filtered_query``). One model, so a new filter is added once."""

    status: list[FormStatus] = Field(default_factory=list, max_length=len(FormStatus))
    workroom: str | None = Field(None, max_length=32)
    category: str | None = Field(None, max_length=32)
    unit_id: DbId | None = None
    overdue: bool | None = None
    q: str | None = Field(None, max_length=100)
    supervision: Supervision | None = None
    submitted_from: BoundedDate | None = None
    submitted_to: BoundedDate | None = None
    review: bool | None = Field(None, description="true: only forms flagged for review by the content check")
    phone: str | None = Field(None, pattern=PHONE_PATTERN,
                              description="提交人电话（精确匹配，仅限可查看个人信息的人员）")

    @field_validator("status", mode="before")
    @classmethod
    def _once_each(cls, value: Any) -> Any:
        """A status named twice is the same filter (the bound is on distinct statuses)."""
        if not isinstance(value, list | tuple):
            return value
        seen: set[str] = set()
        once = []
        for item in value:  # anything not a string is left for the validation to refuse
            if isinstance(item, str):
                if item in seen:
                    continue
                seen.add(item)
            once.append(item)
        return once

    @field_validator("q", "workroom", "category", mode="after")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @classmethod
    def lenient(cls, values: dict[str, Any]) -> FormQuery:
        """From a page's query string, where a stale bookmark must still open the list: a value that does
        not validate is dropped (the list then shows more, never an error page), as is an unknown status."""
        statuses = values.get("status") or []
        data = {name: value for name, value in values.items() if name in cls.model_fields and value not in (None, "")}
        data["status"] = [s for s in statuses if s in {f.value for f in FormStatus}]
        while True:
            try:
                return cls.model_validate(data)
            except ValidationError as exc:
                bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]} & data.keys()
                if not bad:
                    return cls()
                for name in bad:
                    del data[name]

    def as_json(self) -> dict[str, Any]:
        """The filters given (defaults left out), as JSON: what an export job keeps and the audit log says."""
        return self.model_dump(mode="json", exclude_defaults=True)


class FormQueryBody(FormQuery):
    """``FormQuery`` as a request body: an unknown filter is refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")
