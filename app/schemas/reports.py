"""The brief (工作简报, issue 20.4): its JSON shape, the office's draft, a report job's request.

The counts are the statistics API's own shapes (``Summary``, ``WorkroomCounts``, ``CategoryCounts``), filled
by the same functions for the same days: ``summary`` here equals ``GET /api/v1/stats/summary?from=&to=`` for
the period, ``workrooms`` equals ``/stats/by-workroom``, ``categories`` equals ``/stats/by-category``.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import DbId, InputModel, LocalDateTime
from app.schemas.stats import CategoryCounts, Counts, Summary, WorkroomCounts

ReportFormat = Literal["json", "docx", "pdf"]
ReportFileFormat = Literal["docx", "pdf"]
MAX_OPENING = 5000
MAX_FEATURED = 10


class PeriodRead(BaseModel):
    key: str = Field(description="2026-11, 2026-Q4 or 2026")
    kind: Literal["month", "quarter", "year"]
    label: str = Field(description="as documents write it: 2026年11月, 2026年第四季度, 2026年")
    word: str = Field(description="本月, 本季度 or 本年度: how the sentences name the period")
    first: date
    last: date


class ActivityCounts(BaseModel):
    activities: int = Field(description="activities held in the period (by the day held)")
    attendance: int = Field(description="people who took part (人次)")
    by_kind: dict[str, int]


class PreviousRead(BaseModel):
    period: PeriodRead
    summary: Summary
    activities: ActivityCounts


class MonthRead(Counts):
    """One month of a quarter's or year's brief: the counts equal the summary for that month."""

    month: str = Field(description="YYYY-MM")
    label: str
    activities: int
    attendance: int


class HotTopicRead(BaseModel):
    topic_id: int
    keywords: list[str]
    count: int = Field(description="forms of the topic received in the period")
    previous: int = Field(description="the same, in the span of equal length just before")
    workrooms: list[str]


class TypicalCaseRead(BaseModel):
    """A case the office featured: excerpts without the submitter's name or phone number."""

    form_id: int
    tracking_no: str
    workroom: str | None
    category: str | None
    status: str
    status_label: str
    request: str = Field(description="诉求: an excerpt of the opinion")
    handling: str = Field(description="办理: who handled it and how far it went")
    reply: str = Field(description="答复: an excerpt of the public reply (never the internal note)")


class Paragraphs(BaseModel):
    """The brief's sentences, as the documents print them."""

    overview: str = Field(description="本月共收集意见征询表N份，批办答复M件，答复率…；开展活动K场，参与群众P人次。…")
    comparison: str = Field(description="与上月相比…; empty when the period before had no form and no activity")
    workrooms: str
    categories: str
    supervision: str
    hot_topics: str
    cases: str


class ReportRead(BaseModel):
    title: str
    period: PeriodRead
    generated_at: LocalDateTime
    opening: str = Field(description="the office's own opening paragraph, else the generated one")
    opening_generated: bool = Field(description="true: ``opening`` is the generated paragraph")
    paragraphs: Paragraphs
    summary: Summary
    previous: PreviousRead | None = Field(description="the period before, for the comparison (null: none)")
    activities: ActivityCounts
    workrooms: list[WorkroomCounts]
    categories: list[CategoryCounts]
    months: list[MonthRead] = Field(description="a quarter's or year's months; empty for a month")
    hot_topics: list[HotTopicRead]
    featured_form_ids: list[int]
    typical_cases: list[TypicalCaseRead]


class DraftUpdate(InputModel):
    """What the office chose for a period's brief. A field left out stays as it is; ``opening: null`` (or
    blank) goes back to the generated paragraph; ``featured_form_ids: []`` features no case."""

    model_config = ConfigDict(extra="forbid")

    opening: str | None = Field(None, max_length=MAX_OPENING)
    featured_form_ids: list[DbId] | None = Field(None, max_length=MAX_FEATURED)


class DraftRead(BaseModel):
    period: str
    opening: str | None = Field(description="null: the generated paragraph is used")
    featured_form_ids: list[int]
    updated_at: LocalDateTime | None


class ReportJobCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    format: ReportFileFormat = "pdf"
