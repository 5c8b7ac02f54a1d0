from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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
    EventType.sms_stopped: "停止短信通知",
    EventType.merged: "合并同类意见",
    EventType.merge_removed: "取消合并",
    EventType.merged_into: "并入同类意见",
    EventType.unmerged: "取消合并",
}
# What a resident's timeline shows: the steps of their case. Returns, extension requests, urging,
# supervision and internal notes are the office's business.
PUBLIC_EVENTS = {
    EventType.submitted, EventType.assigned, EventType.reassigned, EventType.extension_approved,
    EventType.answered, EventType.answered_on_spot, EventType.closed, EventType.declined, EventType.reopened,
    EventType.merged_into, EventType.unmerged,
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
    EventType.merged_into: "已与同类意见合并办理",
    EventType.unmerged: "已取消合并，恢复单独办理",
}
# Events whose note the resident reads: the reply and the reason for declining. Instructions, reasons
# for reopening and internal notes stay with staff.
PUBLIC_NOTE_EVENTS = {EventType.answered, EventType.answered_on_spot, EventType.declined, EventType.merged_into}


_MAINLAND_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_PHONE_NOISE = re.compile(r"[\s\-]")
SMS_PHONE_MESSAGE = "短信通知只能发往大陆手机号码，例如 13812345678。"
SMS_NO_PHONE_MESSAGE = "要接收短信通知，请填写手机号码。"


def mainland_mobile(phone: str | None) -> str | None:
    """``phone`` as the 11 digits of a mainland mobile number (spaces and dashes dropped, an optional +86 or
    0086 taken off), or None when it is not one: the only numbers an SMS is sent to."""
    if not phone:
        return None
    digits = _PHONE_NOISE.sub("", phone)
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix):]
            break
    return digits if _MAINLAND_MOBILE.fullmatch(digits) else None


# --- the one field list ----------------------------------------------------------------------------------
# A submitted field is declared once: in FormCreate below, the one submission schema. What it is beyond its
# type is said in its ``json_schema_extra`` (shown in the OpenAPI document too):
#
# - ``"x-page": {"label": ..., "rep_label": ...}``: an optional text field the submit pages render as a
#   text input after the place (the fields the pages lay out by hand carry no mark); its title is its label;
# - ``"x-integrators": True``: webhooks and the change feed carry it (services/changes.integrator_view).
#
# Everything else derives from the model: the front door's ``Submission`` (services/forms.py) and the
# columns ``submit_many`` writes (a field named like a column of ``opinion_form`` is stored there), the
# idempotency fingerprint, ``FormRead``'s copy of every column it names (services/views.py), the pages'
# field lists, the office's form page, and the offline queue (which clears every input it finds). A filter
# is one field of ``FormQuery`` marked ``"x-column"`` (an exact match on that column, in the API, the
# exports and the office's list). What is left to add by hand: the model's column, its migration, the
# export column and the Open311 mapping.
PAGE = "x-page"
INTEGRATORS = "x-integrators"
COLUMN = "x-column"


def marked(model: type[BaseModel], key: str) -> dict[str, Any]:
    """The fields of ``model`` whose ``json_schema_extra`` has ``key``, with that value, in field order."""
    return {name: field.json_schema_extra[key] for name, field in model.model_fields.items()
            if isinstance(field.json_schema_extra, dict) and key in field.json_schema_extra}


def max_length(model: type[BaseModel], name: str) -> int | None:
    """The ``max_length`` a field of ``model`` declares, if any (the pages put it on their inputs)."""
    for constraint in model.model_fields[name].metadata:
        limit = getattr(constraint, "max_length", None)
        if limit is not None:
            return int(limit)
    return None


class FormCreate(InputModel):
    content: Text
    category: str | None = Field(None, max_length=32)
    channel: Channel | None = None
    workroom_code: str | None = Field(None, pattern=CODE_PATTERN)
    service_point_id: DbId | None = None
    submitter_name: str | None = Field(None, max_length=64)
    # 短信通知: the submitter asks for the receipt and the reply notice by SMS (pages offer it only when SMS is
    # configured). Then the phone must be a mainland mobile number. Declared before the phone, whose check
    # reads it, so that a refusal names the phone field.
    sms_consent: bool = False
    submitter_phone: str | None = Field(None, pattern=PHONE_PATTERN, validate_default=True)
    location: str | None = Field(None, max_length=200)
    # Where the opinion is about (WGS84, e.g. from wx.getLocation): both or neither.
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    # The submitter agrees to publication: content and public reply may be published (Open311), never
    # name or phone. Off unless asked for.
    public: bool = False

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any, info: ValidationInfo) -> Any:
        """Optional text arrives from a page as "" when left empty: that is no value (and text is trimmed)."""
        if isinstance(value, str) and (info.field_name in _TRIMMED or info.field_name in PAGE_FIELDS):
            value = value.strip()
            return value or None
        return value

    @field_validator("submitter_phone", mode="after")
    @classmethod
    def _mobile_for_sms(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not info.data.get("sms_consent"):
            return value
        if value is None:
            raise PydanticCustomError("sms_phone_missing", SMS_NO_PHONE_MESSAGE)
        if mainland_mobile(value) is None:
            raise PydanticCustomError("sms_phone", SMS_PHONE_MESSAGE)
        return value

    @model_validator(mode="after")
    def _both_coordinates(self) -> FormCreate:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude 与 longitude 须同时提供。")
        return self


_TRIMMED = frozenset({"submitter_name", "location", "category", "workroom_code", "submitter_phone"})
# The optional text fields the pages render by themselves (name → its labels and limit).
PAGE_FIELDS: dict[str, dict[str, Any]] = {
    name: {"label": FormCreate.model_fields[name].title or name, "rep_label": mark.get("rep_label"),
           "max_length": max_length(FormCreate, name), **mark}
    for name, mark in marked(FormCreate, PAGE).items()
}
INTEGRATOR_FIELDS: tuple[str, ...] = tuple(marked(FormCreate, INTEGRATORS))


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
    # The submitter asked for SMS notices (receipt, reply), and when they stopped them.
    sms_consent: bool = False
    sms_stopped_at: LocalDateTime | None = None
    merged_into: int | None = Field(default=None, description="合并办理：并入的主件 id（未合并为 null）")
    paper_serial: str | None = Field(default=None, description="纸质意见征询表编号（由纸质表录入时，如 P2026-00017）")



SMS_KIND_LABELS = {"receipt": "回执", "reply": "答复通知"}
SMS_STATUS_LABELS = {
    "pending": "待发送", "sent": "已发送", "failed": "发送失败", "capped": "超过每日上限，未发送",
    "stopped": "居民已停止，未发送",
}


class SmsRead(BaseModel):
    """One SMS to the submitter and what became of it (staff only: never in tracking or to API clients).
    Neither the phone number nor the text's values are shown."""

    id: int
    kind: str
    kind_label: str
    status: str
    status_label: str
    attempts: int
    provider: str | None
    provider_message_id: str | None
    error_code: str | None
    error_message: str | None
    created_at: LocalDateTime
    next_attempt_at: LocalDateTime | None
    sent_at: LocalDateTime | None


class MergedForm(BaseModel):
    """A form merged into a lead, as the lead's read lists it."""

    id: int
    tracking_no: str
    status: str
    status_label: str


class FormDetail(FormRead):
    """A form with its timeline: every event, internal notes included, for staff; the public steps for
    API clients (services/disclosure.py)."""

    events: list[EventRead]
    photos: list[PhotoRead] = []
    sms: list[SmsRead] = Field(default=[], description="短信通知及其发送状态（仅工作人员可见）")
    merged_into_tracking_no: str | None = Field(default=None, description="并入的主件编号（仅工作人员可见）")
    followers: list[MergedForm] = Field(default=[], description="主件：并入它的意见（仅工作人员可见）")



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


class MergeBody(InputModel):
    form_ids: list[DbId] = Field(min_length=1, max_length=100, description="并入主件的意见 id（1–100 个）")


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


class SmsStopBody(InputModel):
    code: str = Field(min_length=1, max_length=16, description="查询码")


class SmsStopped(BaseModel):
    """不再接收短信通知: the form's SMS notices are stopped; what was waiting is not sent."""

    tracking_no: str
    sms_stopped_at: LocalDateTime
    stopped_messages: int


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
    q: str | None = Field(None, max_length=100, description=(
        "关键词：在内容、答复、地点和编号中查找；两个字的词、整句、单字、编号都可以；多个词用空格分开，须全部出现（最多 10 个）。"
        "Chinese search, docs/search.md"))
    supervision: Supervision | None = None
    extension_requested: bool | None = Field(
        None, description="true: only assigned forms with an extension request awaiting a decision (延期待审批)")
    submitted_from: BoundedDate | None = None
    submitted_to: BoundedDate | None = None
    review: bool | None = Field(None, description="true: only forms flagged for review by the content check")
    phone: str | None = Field(None, pattern=PHONE_PATTERN,
                              description="提交人电话（精确匹配，仅限可查看个人信息的人员）")
    ids: list[DbId] = Field(default_factory=list, max_length=200,
                            description="只要这些编号（id）的意见，例如办公室勾选后导出（最多 200 个）")

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

    @field_validator("*", mode="after")
    @classmethod
    def _blank_is_none(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and (info.field_name in ("q", "workroom", "category") or info.field_name in COLUMN_FILTERS):
            return value.strip() or None
        return value

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


# Filters that are an exact match on a column of the form (name → column), applied by forms.filtered_query
# and offered by the office's list under their titles.
COLUMN_FILTERS: dict[str, str] = marked(FormQuery, COLUMN)


class FormQueryBody(FormQuery):
    """``FormQuery`` as a request body: an unknown filter is refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")
