"""Bodies and answers of the WeChat mini-program's endpoints: login, "my forms", notice credits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.models import OpinionForm
from app.schemas.common import InputModel, LocalDateTime
from app.schemas.forms import TrackRead

# WeChat's template ids are URL-safe base64-like words (e.g. "9Lb0Y…-Wk"); anything else is refused at once.
TEMPLATE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# How many accepts one report may carry: wx.requestSubscribeMessage asks for at most a few templates per tap,
# each accept is one message, so a report is small. A bigger number is a client bug, not a resident.
MAX_ACCEPTED = 50


class WechatLogin(InputModel):
    code: str = Field(min_length=1, max_length=128, description="wx.login() 得到的 code（一次有效，5 分钟内）")


class SubscriptionReport(InputModel):
    template_id: str = Field(pattern=TEMPLATE_ID_PATTERN)
    accepted: int = Field(ge=0, le=MAX_ACCEPTED, description="本次 wx.requestSubscribeMessage 中接受（accept）的次数")


class SubscriptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    template_id: str
    credits: int


class SubscriptionList(BaseModel):
    items: list[SubscriptionRead]


class MyFormRead(TrackRead):
    """One of a resident's own forms, as the mini-program shows it: the public tracking view (status, reply,
    public timeline, never internal notes) plus what the resident wrote and the ids of its photos."""

    id: int
    content: str
    category: str | None
    channel: str
    workroom_code: str | None
    location: str | None
    public: bool
    closed_at: LocalDateTime | None
    photo_ids: list[int]

    @classmethod
    def build_mine(cls, form: OpinionForm) -> MyFormRead:
        """``form`` with its category, workroom, events and photos loaded."""
        base = TrackRead.build(form)
        return cls(
            **base.__dict__, id=form.id, content=form.content,
            category=form.category.code if form.category else None, channel=form.channel,
            workroom_code=form.workroom.code if form.workroom else None, location=form.location,
            public=form.public, closed_at=form.closed_at, photo_ids=[photo.id for photo in form.photos],
        )
