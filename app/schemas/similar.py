"""Similar forms and hot topics (issue 19): what the API answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.common import LocalDateTime


class SimilarForm(BaseModel):
    id: int
    tracking_no: str
    score: float = Field(description="0–1; at least MINYI_SIMILAR_THRESHOLD (the same issue by the rule)")
    status: str
    workroom: str | None = Field(description="The workroom's code")
    workroom_name: str | None = None
    snippet: str = Field(description="The content's first words")
    merged_into: int | None = Field(description="The lead form's id when this form is merged into another")


class SimilarList(BaseModel):
    items: list[SimilarForm]


class HotTopicRead(BaseModel):
    topic_id: int
    count: int = Field(description="Forms of the topic received in the period")
    previous: int = Field(description="In the period of the same length before it")
    trend: Literal["up", "down", "same"]
    change: float | None = Field(description="(count − previous) / previous; null when previous is 0")
    keywords: list[str]
    workrooms: list[str] = Field(description="Workroom names, most forms first")
    first_form_id: int
    forms_url: str = Field(description="The office page listing the topic's forms")


class HotTopics(BaseModel):
    period: Literal["week", "month"]
    date_from: LocalDateTime
    date_to: LocalDateTime
    items: list[HotTopicRead]
