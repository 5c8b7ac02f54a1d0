"""The brief that writes itself (工作简报, issue 20.4): a month's, quarter's or year's numbers in the sentences
offices write, tables per workroom and category, supervision, hot topics, the cases the office featured, and
charts; as JSON, Word (python-docx) and PDF (fpdf2 with the Chinese font embedded).

- Every number comes from the functions the statistics API calls (``stats.summary``, ``by_workroom``,
  ``by_category``) with the filter ``GET /api/v1/stats/...?from=&to=`` builds for the period's first and
  last day, so the brief says what the statistics say (tests/test_reports.py compares them field by field).
  Activities are counted by ``activities.activity_counts``, hot topics by ``similar_forms.hot_topics`` over
  the period's days.
- The office's choices for a period live in ``ReportDraft``: its own opening paragraph (else the generated
  one) and up to ten featured forms (典型案例), shown as excerpts of the opinion, its handling and its public
  reply with the submitter's name, phone numbers and ID numbers taken out.
- One list of blocks (``blocks``) is what every rendering shows: the page's preview, the Word file and the
  PDF print the same headings, sentences and tables in the same order.
- A build is a list of steps (the period's numbers, then each month of a quarter or year, then topics and
  cases); a background job (an ``ExportJob`` of kind ``report``) runs each in its own short transaction and
  reports progress after each, then after each chart and the file.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from app.config import TZ, Settings
from app.db import transaction
from app.errors import AppError, Invalid, PermissionDenied
from app.models import (
    ACTIVITY_KIND_LABELS,
    STATUS_LABELS,
    ExportJob,
    ExportStatus,
    FormStatus,
    OpinionForm,
    ReportDraft,
    Scope,
    User,
    utcnow,
)
from app.schemas.reports import MAX_FEATURED, MAX_OPENING
from app.schemas.stats import CategoryCounts, Counts, Summary, WorkroomCounts
from app.services import activities, charts, documents, periods, similar_forms
from app.services import forms as form_service
from app.services import stats as stats_service
from app.services.auth import OFFICE_ROLES, Principal
from app.services.periods import Period

log = logging.getLogger("minyi.reports")

TITLE = "党代表工作室工作简报"
MEDIA_TYPES = {
    "json": "application/json",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
EXCERPT = 160  # characters of an opinion or reply a typical case shows
TOP_CATEGORIES = 8
HOT_TOPICS = 5
PREVIOUS_WORD = {"month": "上月", "quarter": "上季度", "year": "上年"}
CN_NUMBERS = "一二三四五六七八九十"
SATISFACTION_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}

Progress = Callable[[], Awaitable[None]]


# --- who may read and write --------------------------------------------------------------------------


def require_reader(principal: Principal) -> None:
    """The brief's numbers are the statistics': staff, or an API client holding ``stats:read``."""
    principal.require_staff_or_scope(Scope.stats_read)


def require_office(principal: Principal) -> User:
    return principal.require_role(*OFFICE_ROLES)


# --- the report --------------------------------------------------------------------------------------


@dataclass
class TypicalCase:
    form_id: int
    tracking_no: str
    workroom: str | None
    category: str | None
    status: str
    request: str
    handling: str
    reply: str

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)


@dataclass
class Report:
    period: Period
    generated_at: datetime
    summary: dict[str, Any] = field(default_factory=dict)
    workrooms: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    activities: dict[str, Any] = field(default_factory=dict)
    previous: Period | None = None
    previous_summary: dict[str, Any] | None = None
    previous_activities: dict[str, Any] | None = None
    months: list[dict[str, Any]] = field(default_factory=list)
    hot_topics: list[similar_forms.HotTopic] = field(default_factory=list)
    typical_cases: list[TypicalCase] = field(default_factory=list)
    featured_form_ids: list[int] = field(default_factory=list)
    custom_opening: str | None = None

    # -- the sentences --

    @property
    def generated_opening(self) -> str:
        label = self.period.label
        return (f"{label}，各党代表工作室和流动服务点坚持把收集社情民意、解决群众急难愁盼问题作为履职重点，"
                f"做到件件有登记、事事有回音。现将{label}工作情况简报如下。")

    @property
    def opening(self) -> str:
        return self.custom_opening if self.custom_opening is not None else self.generated_opening

    @property
    def as_of(self) -> str:
        day = self.generated_at.astimezone(TZ)
        return f"{day.year}年{day.month}月{day.day}日"

    def overview(self) -> str:
        s, a, word = self.summary, self.activities, self.period.word
        text = (f"{word}共收集意见征询表{s['collected']}份，批办答复{s['answered']}件，答复率{pct(s['answer_rate'])}；"
                f"开展活动{a['activities']}场，参与群众{a['attendance']}人次。")
        kinds = [f"{ACTIVITY_KIND_LABELS.get(k, k)}{n}场" for k, n in a["by_kind"].items() if n]
        if kinds:
            text += f"活动中{'、'.join(kinds)}。"
        rated = s["satisfied"] + s["basically_satisfied"] + s["unsatisfied"]
        text += f"已办结{s['closed']}件"
        if rated:
            text += (f"，群众满意率{pct(s['satisfaction_rate'])}（满意{s['satisfied']}件、基本满意"
                     f"{s['basically_satisfied']}件、不满意{s['unsatisfied']}件）")
        if s["answered"]:
            text += f"；按时答复率{pct(s['on_time_rate'])}，平均答复用时{s['avg_answer_working_days']}个工作日"
        if s["declined"]:
            text += f"；不予受理{s['declined']}件"
        return text + "。"

    def comparison(self) -> str:
        if self.previous is None or self.previous_summary is None or self.previous_activities is None:
            return ""
        s, p = self.summary, self.previous_summary
        if not p["collected"] and not self.previous_activities["activities"]:
            return ""  # nothing then (before the system was used): no comparison to make
        before = PREVIOUS_WORD[self.period.kind]
        return (f"与{before}相比，收集意见征询表{change(s['collected'], p['collected'], '份')}（{before}{p['collected']}份），"
                f"批办答复{change(s['answered'], p['answered'], '件')}，答复率{rate_change(s['answer_rate'], p['answer_rate'])}；"
                f"开展活动{change(self.activities['activities'], self.previous_activities['activities'], '场')}。")

    def workroom_sentence(self) -> str:
        named = [w for w in self.workrooms if w["collected"]]
        if not named:
            return f"{self.period.word}各工作室暂未收集到意见。"
        most = sorted(named, key=lambda w: (-w["collected"], w["name"]))[:3]
        listed = "、".join(f"{w['name']}（{w['collected']}份）" for w in most)
        rooms = [w for w in named if w["workroom"] is not None]
        online = sum(w["collected"] for w in named if w["workroom"] is None)
        text = f"{self.period.word}有{len(rooms)}个工作室收集到意见"
        if online:
            text += f"（另有线上及其他渠道{online}份）"
        text += f"，收集较多的是{listed}"
        best = max(w["answer_rate"] for w in named)
        if not best:
            return text + "。"
        leaders = [w["name"] for w in named if w["answer_rate"] == best]
        if len(leaders) > 1:
            return text + f"；{len(leaders)}个工作室答复率达到{pct(best)}。"
        return text + f"；答复率最高的是{leaders[0]}（{pct(best)}）。"

    def top_categories(self) -> list[dict[str, Any]]:
        named = [c for c in self.categories if c["collected"]]
        return sorted(named, key=lambda c: (-c["collected"], c["name"]))[:TOP_CATEGORIES]

    def category_sentence(self) -> str:
        top = self.top_categories()
        if not top:
            return f"{self.period.word}暂无群众反映的问题。"
        total = self.summary["collected"] or 1
        listed = "、".join(f"{c['name']}（{c['collected']}件，占{pct(c['collected'] / total)}）" for c in top[:3])
        return f"群众反映较集中的问题是{listed}。"

    def supervision_sentence(self) -> str:
        s, now = self.summary, self.summary["current"]
        open_ = now["pending_triage"] + now["in_progress"] + now["awaiting_followup"]
        if not open_:
            return f"截至{self.as_of}，{self.period.word}收集的意见均已办结或不予受理，无逾期、督办件。"
        return (f"截至{self.as_of}，{self.period.word}收集的意见中待批办{now['pending_triage']}件，办理中"
                f"{now['in_progress']}件（其中临近期限预警{s['warning']}件、逾期{now['overdue']}件、督办"
                f"{now['escalated']}件），已答复待回访办结{now['awaiting_followup']}件；延期申请待审批"
                f"{now['extension_requested']}件。")

    def hot_topic_sentence(self) -> str:
        if not self.hot_topics:
            return f"{self.period.word}暂无多人反映的同类问题。"
        listed = "；".join(f"“{topic_name(t)}”{t.count}份" for t in self.hot_topics[:3])
        return f"{self.period.word}多人反映的同类问题（热点话题）有{len(self.hot_topics)}个，较多的是{listed}。"

    def case_sentence(self) -> str:
        if not self.typical_cases:
            return "本期未选取典型案例。"
        return f"本期选取典型案例{len(self.typical_cases)}件（已隐去群众姓名和联系方式）。"

    def paragraphs(self) -> dict[str, str]:
        return {
            "overview": self.overview(), "comparison": self.comparison(), "workrooms": self.workroom_sentence(),
            "categories": self.category_sentence(), "supervision": self.supervision_sentence(),
            "hot_topics": self.hot_topic_sentence(), "cases": self.case_sentence(),
        }

    # -- machine-readable --

    def as_json(self) -> dict[str, Any]:
        """The shape of ``schemas.reports.ReportRead``: counts as the statistics API writes them."""

        def period_json(period: Period) -> dict[str, Any]:
            return {"key": period.key, "kind": period.kind, "label": period.label, "word": period.word,
                    "first": period.first.isoformat(), "last": period.last.isoformat()}

        def summary_json(counts: dict[str, Any]) -> dict[str, Any]:
            return Summary(**counts, as_of=self.generated_at).model_dump(mode="json")

        summary = summary_json(self.summary)
        previous = None
        if self.previous is not None and self.previous_summary is not None:
            previous = {"period": period_json(self.previous), "summary": summary_json(self.previous_summary),
                        "activities": self.previous_activities}
        return {
            "title": TITLE,
            "period": period_json(self.period),
            "generated_at": summary["as_of"],
            "opening": self.opening,
            "opening_generated": self.custom_opening is None,
            "paragraphs": self.paragraphs(),
            "summary": summary,
            "previous": previous,
            "activities": self.activities,
            "workrooms": [WorkroomCounts(**w).model_dump(mode="json") for w in self.workrooms],
            "categories": [CategoryCounts(**c).model_dump(mode="json") for c in self.categories],
            "months": self.months,
            "hot_topics": [{"topic_id": t.topic_id, "keywords": t.keywords, "count": t.count,
                            "previous": t.previous, "workrooms": t.workrooms} for t in self.hot_topics],
            "featured_form_ids": self.featured_form_ids,
            "typical_cases": [{"form_id": c.form_id, "tracking_no": c.tracking_no, "workroom": c.workroom,
                               "category": c.category, "status": c.status, "status_label": c.status_label,
                               "request": c.request, "handling": c.handling, "reply": c.reply}
                              for c in self.typical_cases],
        }


def pct(rate: float) -> str:
    """0.8598 → 86.0%: rates as the town's reports write them."""
    return f"{rate * 100:.1f}%"


def change(now: int, before: int, unit: str) -> str:
    if now > before:
        return f"增加{now - before}{unit}"
    return f"减少{before - now}{unit}" if now < before else "持平"


def rate_change(now: float, before: float) -> str:
    points = round((now - before) * 100, 1)
    if points > 0:
        return f"提高{points}个百分点"
    return f"下降{-points}个百分点" if points < 0 else "持平"


def topic_name(topic: similar_forms.HotTopic) -> str:
    return "、".join(topic.keywords[:4]) or f"话题 #{topic.topic_id}"


# --- building ----------------------------------------------------------------------------------------


def _bounds(period: Period) -> tuple[datetime, datetime]:
    """The period's days as instants: from its first local midnight to the midnight after its last day."""
    start = datetime.combine(period.first, time.min, tzinfo=TZ)
    return start, datetime.combine(period.last + timedelta(days=1), time.min, tzinfo=TZ)


async def _numbers(session: AsyncSession, period: Period, now: datetime) -> tuple[dict[str, Any], ...]:
    """What ``GET /api/v1/stats/{summary,by-workroom,by-category}?from=&to=`` answers for the period."""
    flt = await stats_service.resolve_filter(session, date_from=period.first, date_to=period.last)
    summary = await stats_service.summary(session, flt, now=now)
    workrooms = await stats_service.by_workroom(session, flt, now=now)
    categories = await stats_service.by_category(session, flt, now=now)
    counted = await activities.activity_counts(session, date_from=period.first, date_to=period.last)
    return summary, workrooms, categories, counted  # type: ignore[return-value]


class _Builder:
    """The report, filled step by step; each step reads through the session it is given."""

    def __init__(self, period: Period, *, now: datetime, principal: Principal | None) -> None:
        self.report = Report(period=period, generated_at=now)
        self.now = now
        self.principal = principal

    def steps(self) -> list[Callable[[AsyncSession], Awaitable[None]]]:
        months: list[Callable[[AsyncSession], Awaitable[None]]] = []
        if self.report.period.kind != "month":
            months = [lambda s, m=month: self._month(s, m) for month in self.report.period.months()]  # type: ignore[misc]
        return [self._period, *months, self._topics_and_cases]

    async def _period(self, session: AsyncSession) -> None:
        report = self.report
        report.summary, report.workrooms, report.categories, report.activities = await _numbers(  # type: ignore[assignment]
            session, report.period, self.now)
        previous = report.period.previous()
        if previous.key != report.period.key:
            report.previous = previous
            summary, _w, _c, counted = await _numbers(session, previous, self.now)
            report.previous_summary, report.previous_activities = summary, counted
        draft = await session.get(ReportDraft, report.period.key)
        if draft is not None:
            report.custom_opening = draft.opening
            report.featured_form_ids = list(draft.featured_form_ids or [])

    async def _month(self, session: AsyncSession, month: Period) -> None:
        flt = await stats_service.resolve_filter(session, date_from=month.first, date_to=month.last)
        counts = await stats_service.summary(session, flt, now=self.now)
        counted = await activities.activity_counts(session, date_from=month.first, date_to=month.last)
        row = Counts(**counts).model_dump(mode="json")  # the counts of /stats/monthly's rows
        self.report.months.append({"month": month.key, "label": f"{month.first.month}月", **row,
                                   "activities": counted["activities"], "attendance": counted["attendance"]})

    async def _topics_and_cases(self, session: AsyncSession) -> None:
        report = self.report
        report.hot_topics = await similar_forms.hot_topics(
            session, period="month", now=self.now, window=_bounds(report.period), limit=HOT_TOPICS)
        report.typical_cases = await _cases(session, report.featured_form_ids, self.principal)


async def build(
    session: AsyncSession, period: Period, *, now: datetime, settings: Settings | None = None,
    principal: Principal | None = None,
) -> Report:
    """The brief of ``period`` as of ``now``. ``principal`` (None: the office) limits the typical cases to
    what the reader may see: the office every featured form, other staff the forms they may open and those
    the submitter agreed to publish, an API client only the latter. ``settings`` is accepted for symmetry
    with the renderers (the numbers need none)."""
    builder = _Builder(period, now=now, principal=principal)
    for step in builder.steps():
        await step(session)
    return builder.report


async def build_stepwise(
    sessionmaker: async_sessionmaker[AsyncSession], period: Period, *, now: datetime,
    principal: Principal | None, on_progress: Progress,
) -> Report:
    """``build`` with each step in a transaction of its own and ``on_progress`` after each (a job: on SQLite
    every transaction holds the write lock, so the job's progress writes must come between reads)."""
    builder = _Builder(period, now=now, principal=principal)
    for step in builder.steps():
        async with transaction(sessionmaker) as session:
            await step(session)
        await on_progress()
    return builder.report


def build_steps(period: Period) -> int:
    return 2 + (len(period.months()) if period.kind != "month" else 0)


# --- typical cases -----------------------------------------------------------------------------------

_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9])0[0-9]{2,3}[- ]?[0-9]{7,8}(?![0-9])")
_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def scrub(text: str | None, *, name: str | None = None) -> str:
    """``text`` without personal data a brief must not print: the submitter's name (as 某某), ID numbers,
    mobile and landline numbers."""
    text = (text or "").strip()
    if name and len(name.strip()) >= 2:
        text = text.replace(name.strip(), "某某")
    text = _ID_NUMBER.sub("[身份证号已隐去]", text)
    text = _MOBILE.sub("[电话已隐去]", text)
    return _LANDLINE.sub("[电话已隐去]", text)


def excerpt(text: str, limit: int = EXCERPT) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _handling(form: OpinionForm) -> str:
    status = STATUS_LABELS.get(form.status, form.status)
    if form.status == FormStatus.declined:
        return "不予受理。"
    if form.unit is not None:
        text = f"交{form.unit.name}办理，{status}"
    elif form.status in (FormStatus.answered, FormStatus.closed):
        text = f"当场答复，{status}"
    else:
        text = status
    if form.status == FormStatus.closed and form.satisfaction in SATISFACTION_LABELS:
        text += f"，回访{SATISFACTION_LABELS[form.satisfaction]}"
    return text + "。"


async def _featured_forms(session: AsyncSession, ids: Sequence[int]) -> dict[int, OpinionForm]:
    if not ids:
        return {}
    query = select(OpinionForm).where(OpinionForm.id.in_(list(ids))).options(
        joinedload(OpinionForm.category), joinedload(OpinionForm.workroom), joinedload(OpinionForm.unit))
    return {form.id: form for form in (await session.scalars(query)).unique()}


async def _may_feature(session: AsyncSession, principal: Principal | None, form: OpinionForm) -> bool:
    if principal is None or principal.is_office:
        return True
    if form.public:  # the submitter agreed that the opinion and its reply may be published
        return True
    return principal.user is not None and await form_service.can_see(session, principal, form)


async def _cases(session: AsyncSession, ids: Sequence[int], principal: Principal | None) -> list[TypicalCase]:
    forms = await _featured_forms(session, ids)
    cases = []
    for form_id in ids:
        form = forms.get(form_id)
        if form is None or not await _may_feature(session, principal, form):
            continue
        name = form.submitter_name
        reply = form.reply if form.status in (FormStatus.answered, FormStatus.closed) else form.decline_reason
        cases.append(TypicalCase(
            form_id=form.id, tracking_no=form.tracking_no,
            workroom=form.workroom.name if form.workroom else None,
            category=form.category.name if form.category else None, status=form.status,
            request=excerpt(scrub(form.content, name=name)), handling=_handling(form),
            reply=excerpt(scrub(reply, name=name)) if reply else "尚未答复。",
        ))
    return cases


# --- the office's draft ------------------------------------------------------------------------------

_UNSET: Any = object()
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # as the API's InputModel refuses them


async def get_draft(session: AsyncSession, period: Period) -> ReportDraft | None:
    return await session.get(ReportDraft, period.key)


def _refuse(field: str, message: str, code: str, index: int | None = None) -> Invalid:
    loc: list[Any] = ["body", field] + ([index] if index is not None else [])
    return Invalid(message, code=code, extra={"errors": [{"loc": loc, "msg": message, "type": code}]})


async def save_draft(
    session: AsyncSession, *, principal: Principal, period: Period, opening: Any = _UNSET,
    featured_form_ids: Any = _UNSET, now: datetime | None = None,
) -> ReportDraft:
    """Keep the office's opening paragraph (None or blank: the generated one again) and/or its typical cases
    (at most ten forms that exist, in order, each once, submitted no later than the period's last day)."""
    user = require_office(principal)
    now = now or utcnow()
    # The row first (two first saves at once: one inserts, the other finds it), then locked for this change.
    insert_ = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(insert_(ReportDraft).values(period=period.key, featured_form_ids=[], updated_at=now)
                          .on_conflict_do_nothing(index_elements=["period"]))
    draft = await session.get(ReportDraft, period.key, with_for_update=True, populate_existing=True)
    assert draft is not None
    if opening is not _UNSET:
        text = (opening or "").strip()
        if _CONTROL.search(text):
            raise _refuse("opening", "开头段落中含有不允许的控制字符。", "invalid_characters")
        if len(text) > MAX_OPENING:
            raise _refuse("opening", f"开头段落最多 {MAX_OPENING} 字。", "opening_too_long")
        draft.opening = text or None
    if featured_form_ids is not _UNSET:
        ids = list(featured_form_ids or [])
        if len(ids) > MAX_FEATURED:
            raise _refuse("featured_form_ids", f"典型案例最多选 {MAX_FEATURED} 件。", "too_many_cases")
        seen: set[int] = set()
        for index, form_id in enumerate(ids):
            if form_id in seen:
                raise _refuse("featured_form_ids", f"意见征询表 {form_id} 重复选取。", "duplicate_case", index)
            seen.add(form_id)
        forms = await _featured_forms(session, ids)
        for index, form_id in enumerate(ids):
            form = forms.get(form_id)
            if form is None or not await form_service.can_see(session, principal, form):
                raise _refuse("featured_form_ids", f"意见征询表 {form_id} 不存在。", "unknown_form", index)
            if form.submitted_on > period.last:
                raise _refuse("featured_form_ids",
                              f"意见征询表 {form.tracking_no} 提交于{period.label}之后，不能作为本期典型案例。",
                              "case_after_period", index)
        draft.featured_form_ids = ids
    draft.updated_at, draft.updated_by_user_id = now, user.id
    await session.flush()
    return draft


async def form_ids_by_tracking_no(session: AsyncSession, numbers: Sequence[str]) -> dict[str, int]:
    """The ids of the forms with these tracking numbers (those that exist)."""
    wanted = [n for n in numbers if n]
    if not wanted:
        return {}
    rows = await session.execute(select(OpinionForm.tracking_no, OpinionForm.id)
                                 .where(OpinionForm.tracking_no.in_(wanted)))
    return {number: form_id for number, form_id in rows}


@dataclass(frozen=True)
class Candidate:
    id: int
    tracking_no: str
    status: str
    workroom: str | None
    category: str | None
    snippet: str


async def case_candidates(
    session: AsyncSession, period: Period, *, featured: Sequence[int], limit: int = 60,
) -> list[Candidate]:
    """What the office picks typical cases from: the featured forms first, then the period's answered and
    closed forms, newest first (no personal data in the rows)."""
    answered = select(OpinionForm.id).where(
        OpinionForm.submitted_on >= period.first, OpinionForm.submitted_on <= period.last,
        OpinionForm.status.in_([FormStatus.answered, FormStatus.closed]),
    ).order_by(OpinionForm.id.desc()).limit(limit)
    ids = list(featured) + [i for i in await session.scalars(answered) if i not in set(featured)]
    forms = await _featured_forms(session, ids)
    return [
        Candidate(id=f.id, tracking_no=f.tracking_no, status=f.status,
                  workroom=f.workroom.name if f.workroom else None, category=f.category.name if f.category else None,
                  snippet=excerpt(scrub(f.content, name=f.submitter_name), 80))
        for i in ids if (f := forms.get(i)) is not None
    ]


# --- one document, three renderings ------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One piece of the document: ``kind`` is title, subtitle, opening, heading, paragraph, table, chart, case
    or note. A table's ``rows`` start with the header; ``align`` is "L" or "R" per column."""

    kind: str
    text: str = ""
    rows: tuple[tuple[str, ...], ...] = ()
    align: tuple[str, ...] = ()
    widths: tuple[float, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()


def rate_cell(rate: float, denominator: int) -> str:
    """A rate in a table: "—" when there is nothing to divide by (no form, no rated form)."""
    return pct(rate) if denominator else "—"


def satisfaction_cell(counts: dict[str, Any]) -> str:
    rated = counts["satisfied"] + counts["basically_satisfied"] + counts["unsatisfied"]
    return rate_cell(counts["satisfaction_rate"], rated)


def _count_row(label: str, c: dict[str, Any], *extra: str) -> tuple[str, ...]:
    return (label, str(c["collected"]), str(c["assigned"]), str(c["answered"]),
            rate_cell(c["answer_rate"], c["collected"]), str(c["closed"]), *extra)


def chart_keys(report: Report) -> list[str]:
    """The charts the report has, in document order."""
    keys = ["months"] if report.period.kind != "month" else []
    return [*keys, "workrooms", "categories"]


def blocks(report: Report) -> list[Block]:
    period, p = report.period, report.paragraphs()
    out: list[Block] = [
        Block("title", TITLE),
        Block("subtitle", f"{period.label} · {report.as_of}"),
        Block("opening", report.opening),
        Block("heading", "一、总体情况"),
        Block("paragraph", p["overview"]),
    ]
    if p["comparison"]:
        out.append(Block("paragraph", p["comparison"]))
    number = 1
    if report.months:
        number += 1
        out += [
            Block("heading", f"{CN_NUMBERS[number - 1]}、各月情况"),
            Block("table", rows=(("月份", "收集", "批办", "答复", "答复率", "办结", "活动（场）", "参与（人次）"),
                                 *(_count_row(m["label"], m, str(m["activities"]), str(m["attendance"]))
                                   for m in report.months)),
                  align=("L", *"RRRRRRR"), widths=(1.2, 1, 1, 1, 1.2, 1, 1.2, 1.3)),
            Block("chart", "months"),
        ]
    sections = [
        ("各工作室情况", [
            Block("paragraph", p["workrooms"]),
            Block("table", rows=(("工作室", "收集", "批办", "答复", "答复率", "办结", "满意率"),
                                 *(_count_row(w["name"], w, satisfaction_cell(w)) for w in report.workrooms)),
                  align=("L", *"RRRRRR"), widths=(3.6, 1, 1, 1, 1.2, 1, 1.2)),
            Block("chart", "workrooms"),
        ]),
        ("群众反映的主要问题", [
            Block("paragraph", p["categories"]),
            *([Block("table", rows=(("类别", "收集", "占比", "答复", "答复率", "办结"),
                                    *((c["name"], str(c["collected"]),
                                       pct(c["collected"] / (report.summary["collected"] or 1)), str(c["answered"]),
                                       rate_cell(c["answer_rate"], c["collected"]), str(c["closed"]))
                                      for c in report.top_categories())),
                     align=("L", *"RRRRR"), widths=(2.4, 1, 1.1, 1, 1.2, 1)),
               Block("chart", "categories")] if report.top_categories() else []),
        ]),
        ("办理和督办情况", [
            Block("paragraph", p["supervision"]),
            Block("table", rows=(("待批办", "办理中", "预警", "逾期", "督办", "延期待审批", "待回访办结"),
                                 tuple(str(v) for v in (
                                     report.summary["current"]["pending_triage"], report.summary["current"]["in_progress"],
                                     report.summary["warning"], report.summary["current"]["overdue"],
                                     report.summary["current"]["escalated"],
                                     report.summary["current"]["extension_requested"],
                                     report.summary["current"]["awaiting_followup"]))),
                  align=tuple("RRRRRRR"), widths=(1, 1, 1, 1, 1, 1.3, 1.3)),
        ]),
        ("热点话题", [
            Block("paragraph", p["hot_topics"]),
            *([Block("table", rows=(("话题", "本期（份）", "上期（份）", "涉及工作室"),
                                    *((topic_name(t), str(t.count), str(t.previous), "、".join(t.workrooms[:3]) or "—")
                                      for t in report.hot_topics)),
                     align=("L", "R", "R", "L"), widths=(2.6, 1, 1, 3))] if report.hot_topics else []),
        ]),
        ("典型案例", [
            Block("paragraph", p["cases"]),
            *(Block("case", f"案例{CN_NUMBERS[i] if i < 10 else i + 1}：{c.category or '其他'} · {c.workroom or '线上'}"
                    f"（{c.tracking_no}）",
                    fields=(("诉求", c.request), ("办理", c.handling), ("答复", c.reply)))
              for i, c in enumerate(report.typical_cases)),
        ]),
    ]
    for title, content in sections:
        number += 1
        out.append(Block("heading", f"{CN_NUMBERS[number - 1]}、{title}"))
        out += content
    out.append(Block("note", f"本简报数据截至{report.as_of}，由民意系统按统计口径自动生成，与统计页面的数字一致。"))
    return out


def render_chart(report: Report, key: str, font: documents.CjkFont) -> bytes | None:
    """One chart of the report as PNG, or None when it would show nothing."""
    if key == "months":
        if not any(m["collected"] or m["answered"] for m in report.months):
            return None
        return charts.lines("各月收集与答复（份）", [m["label"] for m in report.months],
                            [("收集", [m["collected"] for m in report.months]),
                             ("答复", [m["answered"] for m in report.months])], font=font)
    if key == "workrooms":
        rows = [w for w in report.workrooms if w["collected"] or w["answered"]]
        if not rows:
            return None
        return charts.bars("各工作室收集与答复（份）", [w["name"] for w in rows],
                           [("收集", [w["collected"] for w in rows]), ("答复", [w["answered"] for w in rows])],
                           font=font)
    top = report.top_categories()
    if not top:
        return None
    return charts.bars("群众反映问题分类（份）", [c["name"] for c in top], [("收集", [c["collected"] for c in top])],
                       font=font)


def _east_asian(style: Any, name: str) -> None:
    """Word picks Chinese glyphs from ``w:eastAsia``, not from the font name python-docx sets."""
    from docx.oxml.ns import qn

    rpr = style.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), name)


def to_docx(report: Report, pictures: dict[str, bytes | None]) -> bytes:
    """The Word file: A4, 宋体 text and 黑体 headings (as Word on the office's PCs has them), a red title."""
    from docx import Document
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Cm, Pt, RGBColor

    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.left_margin = section.right_margin = Cm(2.4)
    section.top_margin = section.bottom_margin = Cm(2.2)
    for name, east_asian, size in (("Normal", "宋体", 11), ("Heading 1", "黑体", 14), ("Heading 2", "黑体", 12),
                                   ("Title", "黑体", 22)):
        style = document.styles[name]
        style.font.name = "Times New Roman" if name == "Normal" else "Arial"
        style.font.size = Pt(size)
        if name != "Normal":
            style.font.color.rgb = RGBColor(0xB2, 0x22, 0x22) if name == "Title" else RGBColor(0, 0, 0)
        _east_asian(style, east_asian)
    document.core_properties.title = f"{TITLE}（{report.period.label}）"
    document.core_properties.author = "民意 Minyi"
    red = RGBColor(0xB2, 0x22, 0x22)
    for block in blocks(report):
        if block.kind == "title":
            paragraph = document.add_paragraph(style="Title")
            paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
            paragraph.add_run(block.text).bold = True
        elif block.kind == "subtitle":
            paragraph = document.add_paragraph()
            paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
            run = paragraph.add_run(block.text)
            run.font.color.rgb = red
        elif block.kind == "heading":
            document.add_heading(block.text, level=1)
        elif block.kind in ("opening", "paragraph"):
            paragraph = document.add_paragraph(block.text)
            paragraph.paragraph_format.first_line_indent = Pt(22)
            paragraph.paragraph_format.line_spacing = 1.35
        elif block.kind == "table":
            header, *rows = block.rows
            table = document.add_table(rows=1, cols=len(header))
            table.style = document.styles["Table Grid"]
            table.alignment = WD_TABLE_ALIGNMENT.CENTER
            for cell, text in zip(table.rows[0].cells, header, strict=True):
                cell.text = ""
                run = cell.paragraphs[0].add_run(text)
                run.bold = True
                run.font.size = Pt(9.5)
            for values in rows:
                cells = table.add_row().cells
                for index, (cell, text) in enumerate(zip(cells, values, strict=True)):
                    cell.text = ""
                    run = cell.paragraphs[0].add_run(text)
                    run.font.size = Pt(9.5)
                    if block.align[index] == "R":
                        cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.RIGHT
            document.add_paragraph()
        elif block.kind == "chart":
            picture = pictures.get(block.text)
            if picture:
                document.add_picture(io.BytesIO(picture), width=Cm(15.5))
                document.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif block.kind == "case":
            document.add_heading(block.text, level=2)
            for label, text in block.fields:
                paragraph = document.add_paragraph()
                paragraph.add_run(f"{label}：").bold = True
                paragraph.add_run(text)
        elif block.kind == "note":
            paragraph = document.add_paragraph()
            run = paragraph.add_run(block.text)
            run.font.size = Pt(9)
            run.italic = True
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def to_pdf(report: Report, pictures: dict[str, bytes | None], *, settings: Settings) -> bytes:
    """The PDF: A4, the Chinese font embedded (documents.new_pdf), the same blocks as the Word file."""
    from fpdf.enums import WrapMode
    from fpdf.fonts import FontFace

    pdf = documents.new_pdf(title=f"{TITLE}（{report.period.label}）", configured_font=settings.cjk_font)
    family = documents.FAMILY

    def footer() -> None:
        pdf.set_y(-12)
        pdf.set_font(family, size=8)
        pdf.set_text_color(110, 110, 110)
        pdf.cell(0, 6, f"第 {pdf.page_no()} 页", align="C")
        pdf.set_text_color(0, 0, 0)

    pdf.footer = footer  # type: ignore[method-assign]
    pdf.add_page()

    def text(body: str, *, size: float = 11, style: str = "", height: float = 6.6, align: str = "L") -> None:
        pdf.set_font(family, style, size)
        lines = broken(body, pdf.epw - 2 * pdf.c_margin - 0.2, pdf.get_string_width) if align == "L" else [body]
        pdf.multi_cell(0, height, "\n".join(lines), align=align, wrapmode=WrapMode.CHAR, new_x="LMARGIN",
                       new_y="NEXT")

    for block in blocks(report):
        if block.kind == "title":
            pdf.set_text_color(178, 34, 34)
            text(block.text, size=20, height=12, align="C")
            pdf.set_text_color(0, 0, 0)
        elif block.kind == "subtitle":
            text(block.text, size=11, align="C")
            pdf.set_draw_color(178, 34, 34)
            pdf.set_line_width(0.6)
            pdf.line(pdf.l_margin, pdf.get_y() + 2, pdf.w - pdf.r_margin, pdf.get_y() + 2)
            pdf.set_draw_color(0, 0, 0)
            pdf.set_line_width(0.2)
            pdf.ln(6)
        elif block.kind in ("opening", "paragraph"):
            text("\u3000\u3000" + block.text)
            pdf.ln(1.5)
        elif block.kind == "heading":
            pdf.ln(2)
            text(block.text, size=13, height=8)
        elif block.kind == "table":
            pdf.set_font(family, size=9)
            total = sum(block.widths)
            widths = tuple(pdf.epw * w / total for w in block.widths)
            aligns = tuple("RIGHT" if a == "R" else "LEFT" for a in block.align)
            with pdf.table(col_widths=widths, text_align=aligns, line_height=6, first_row_as_headings=True,
                           headings_style=FontFace(fill_color=(242, 242, 242)),
                           width=pdf.epw) as table:
                for values in block.rows:
                    row = table.row()
                    for value in values:
                        row.cell(value)
            pdf.ln(3)
        elif block.kind == "chart":
            picture = pictures.get(block.text)
            if picture:
                pdf.image(io.BytesIO(picture), x=pdf.l_margin + 5, w=pdf.epw - 10)
                pdf.ln(3)
        elif block.kind == "case":
            text(block.text, size=11, height=7)
            for label, body in block.fields:
                text(f"【{label}】{body}", size=10.5, height=6.2)
            pdf.ln(2)
        elif block.kind == "note":
            pdf.ln(4)
            pdf.set_text_color(110, 110, 110)
            text(block.text, size=8.5, height=5)
            pdf.set_text_color(0, 0, 0)
    return documents.pdf_bytes(pdf)


# Chinese line breaking (禁则): these never begin a line, and opening brackets and quotes never end one.
_NO_LINE_START = set("，。、；：！？）】》」』”’…%·,.;:!?)]")
_NO_LINE_END = set("（【《「『“‘([")
_WORD_CHARS = "0123456789.%-:/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _in_word(char: str) -> bool:
    return char in _WORD_CHARS


def _last_unit(line: str) -> int:
    """How many characters end ``line`` that must stay together: a run of letters and digits, else one."""
    return len(line) - len(line.rstrip(_WORD_CHARS)) if _in_word(line[-1]) else 1


def broken(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` in lines no wider than ``width`` (as ``measure`` says), broken between any two characters
    except inside a number or a Latin word, before closing punctuation and after opening punctuation: what
    ends the line is carried over to the next one instead, as Chinese typesetting does."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for char in paragraph:
            if line and measure(line + char) > width:
                carried = ""
                if char in _NO_LINE_START or (_in_word(char) and _in_word(line[-1])):
                    while not carried or carried[0] in _NO_LINE_START:
                        size = _last_unit(line)
                        if size >= len(line):
                            break
                        carried, line = line[-size:] + carried, line[:-size]
                while len(line) > 1 and line[-1] in _NO_LINE_END:
                    carried, line = line[-1] + carried, line[:-1]
                lines.append(line)
                line = carried
            line += char
        lines.append(line)
    return lines


async def render(
    report: Report, fmt: str, *, settings: Settings, on_progress: Progress | None = None,
) -> bytes:
    """The Word or PDF file, drawn in worker threads (charts one by one, then the document), so the event
    loop keeps answering meanwhile. A missing Chinese font is 503 ``cjk_font_missing`` before any drawing."""
    font = documents.cjk_font(settings.cjk_font)
    pictures: dict[str, bytes | None] = {}
    for key in chart_keys(report):
        pictures[key] = await anyio.to_thread.run_sync(render_chart, report, key, font)
        if on_progress is not None:
            await on_progress()
    if fmt == "docx":
        return await anyio.to_thread.run_sync(to_docx, report, pictures)
    return await anyio.to_thread.run_sync(lambda: to_pdf(report, pictures, settings=settings))


def file_name(period: Period, fmt: str) -> str:
    return f"工作简报_{period.label}.{fmt}"


def ascii_file_name(period: Period, fmt: str) -> str:
    return f"minyi-brief-{period.key}.{fmt}"


# --- background jobs (ExportJob of kind "report") ----------------------------------------------------


def job_steps(period: Period) -> int:
    """What a job's progress counts: the build's steps, one per chart, one for the file."""
    return build_steps(period) + (3 if period.kind != "month" else 2) + 1


async def create_job(session: AsyncSession, *, principal: Principal, period: Period, fmt: str,
                     now: datetime | None = None) -> ExportJob:
    """Record a report to write in the background (``ExportRunner.start_report`` once committed). Any staff
    member may, as they may export: the job and its file are theirs (and admins')."""
    require_reader(principal)
    user = principal.require_staff()
    now = now or utcnow()
    job = ExportJob(
        user_id=user.id, kind="report", format=fmt, status=ExportStatus.pending, progress=0,
        total=job_steps(period), created_at=now, updated_at=now,
        filters={"period": period.key, "download_name": file_name(period, fmt)},
    )
    session.add(job)
    await session.flush()
    return job


async def _update_job(sessionmaker: async_sessionmaker[AsyncSession], job_id: int, **values: Any) -> None:
    async with transaction(sessionmaker) as session:
        await session.execute(update(ExportJob).where(ExportJob.id == job_id).values(updated_at=utcnow(), **values))


async def run_job(
    sessionmaker: async_sessionmaker[AsyncSession], *, job_id: int, export_dir: Path, settings: Settings,
) -> None:
    """Run one pending report job to ``done`` or ``failed``, saving its progress after every step."""
    part: Path | None = None
    try:
        now = utcnow()
        async with transaction(sessionmaker) as session:
            job = await session.get(ExportJob, job_id)
            if job is None or job.status != ExportStatus.pending or job.kind != "report":
                return
            user = await session.get(User, job.user_id)
            if user is None or not user.active:
                raise PermissionDenied("导出任务的账号已停用。", code="export_forbidden")
            principal = Principal(user=user)
            period = periods.parse(str(job.filters.get("period")))
            fmt = job.format
            total = job_steps(period)
            job.status, job.started_at, job.updated_at, job.total = ExportStatus.running, now, now, total
        done = 0

        async def advance() -> None:
            nonlocal done
            done += 1
            await _update_job(sessionmaker, job_id, progress=min(done, total))

        report = await build_stepwise(sessionmaker, period, now=now, principal=principal, on_progress=advance)
        content = await render(report, fmt, settings=settings, on_progress=advance)
        export_dir.mkdir(parents=True, exist_ok=True)
        name = f"report-{job_id}-{secrets.token_hex(8)}.{fmt}"
        part = export_dir / f"{name}.part"
        await anyio.to_thread.run_sync(part.write_bytes, content)
        part.rename(export_dir / name)
        part = None
        await _update_job(sessionmaker, job_id, status=ExportStatus.done, progress=total, total=total,
                          file_name=name, finished_at=utcnow())
    except asyncio.CancelledError:
        await _update_job(sessionmaker, job_id, status=ExportStatus.failed, finished_at=utcnow(),
                          error="生成中断（服务已停止），请重新生成。")
        raise
    except Exception as exc:
        log.exception("report job %s failed", job_id)
        detail = exc.detail if isinstance(exc, AppError) else "生成简报失败，请重试。"
        await _update_job(sessionmaker, job_id, status=ExportStatus.failed, finished_at=utcnow(), error=detail)
    finally:
        if part is not None:
            part.unlink(missing_ok=True)

