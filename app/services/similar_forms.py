"""Similar forms in the database (issue 19.2, 19.4): the most similar forms of a form, the "已有人反映过" hint
while a form is written, and the hot topics of the week and the month.

The scoring is ``services/similarity`` (pure, measured on labelled pairs); this module finds what to score.
Each form is indexed once, after it is saved, by ``index_pending`` (the background worker's round, or
``minyi similar index`` for a backlog): its similarity terms go to ``form_term`` and it joins a topic: that
of the most similar form of the previous ``TOPIC_DAYS`` days when that one is the same issue, else a new
one. Submissions never wait for it.

Finding candidates is a few index range scans: for each term of the subject (at most ``MAX_TERMS``), the
``PER_TERM`` newest forms having it (one UNION ALL statement on either engine); the ``RERANK`` sharing the
most terms are scored in Python and those at or over the rule's threshold are the answer. A form's
similar forms are therefore found among the recent ones of each of its terms; a form years older that
shares only common terms may be missed (docs/similarity.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, or_, select, text, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.errors import NotFound
from app.models import FormStatus, OpinionForm, ServicePoint, Workroom, utcnow
from app.models.similar import TERM_LENGTH, FormTerm, Topic, TopicMember
from app.services import similarity

OPEN = (FormStatus.submitted, FormStatus.assigned, FormStatus.answered)
MAX_TERMS = 24  # of one form's terms, those looked up (a form has 12 in the median)
PER_TERM = 12  # newest forms fetched per term
RERANK = 30  # candidates scored (analysing one costs ~0.1-0.2 ms)
INDEX_BATCH = 200
LOOKBACK_IDS = 2000  # ids under the highest indexed one still checked (a form committed late)
TOPIC_DAYS = 30  # a form joins the topic of a similar form at most this much older
PERIODS = {"week": 7, "month": 30}
_LOCK_KEY = 1_900_019  # PostgreSQL advisory lock: one indexer at a time


def rule(settings: Settings) -> similarity.Rule:
    return similarity.Rule(
        threshold=settings.similar_threshold, topic_weight=settings.similar_topic_weight,
        wording_full=settings.similar_wording_full, place_conflict=settings.similar_place_conflict,
        place_unshared=settings.similar_place_unshared, place_unknown=settings.similar_place_unknown,
    )


def _terms(content: str, location: str | None) -> list[str]:
    seen: dict[str, None] = {}
    for term in similarity.terms(content or "", location or ""):
        seen.setdefault(term[:TERM_LENGTH], None)
    return list(seen)[:MAX_TERMS]


# --- candidates --------------------------------------------------------------------------------------


async def _shared(
    session: AsyncSession, terms: Sequence[str], *, exclude_id: int | None = None, where: Sequence[Any] = (),
) -> Counter[int]:
    """For the newest ``PER_TERM`` forms of each of ``terms`` (restricted by ``where`` on ``OpinionForm``),
    how many of the terms each has."""
    if not terms:
        return Counter()
    if not where:
        params: dict[str, Any] = {f"t{n}": term for n, term in enumerate(terms)}
        params["exclude"] = exclude_id or 0
        return Counter(await session.scalars(_plain_candidates(len(terms)), params))
    parts = []
    for term in terms:
        query = select(FormTerm.form_id).where(FormTerm.term == term)
        if exclude_id is not None:
            query = query.where(FormTerm.form_id != exclude_id)
        query = query.join(OpinionForm, OpinionForm.id == FormTerm.form_id).where(*where)
        newest = query.order_by(FormTerm.form_id.desc()).limit(PER_TERM).subquery()
        parts.append(select(newest.c.form_id))
    return Counter(await session.scalars(union_all(*parts)))


def _most_shared(shared: Counter[int]) -> list[int]:
    """The ``RERANK`` ids sharing most terms, the newest first among equals."""
    return [form_id for form_id, _ in sorted(shared.items(), key=lambda item: (-item[1], -item[0]))[:RERANK]]


async def _candidate_ids(
    session: AsyncSession, terms: Sequence[str], *, exclude_id: int | None = None, where: Sequence[Any] = (),
) -> list[int]:
    """Ids of the forms sharing most terms with ``terms`` (see ``_shared``, ``_most_shared``)."""
    return _most_shared(await _shared(session, terms, exclude_id=exclude_id, where=where))


_ROW = (
    OpinionForm.id, OpinionForm.tracking_no, OpinionForm.content, OpinionForm.location, OpinionForm.status,
    OpinionForm.merged_into_id, Workroom.code.label("workroom_code"), Workroom.name.label("workroom_name"),
)


@dataclass(frozen=True)
class Similar:
    id: int
    tracking_no: str
    score: float
    status: str
    workroom: str | None
    workroom_name: str | None
    snippet: str
    merged_into: int | None


async def _ranked(
    session: AsyncSession, subject: similarity.Features, ids: Sequence[int], rule: similarity.Rule, limit: int,
) -> list[Similar]:
    if not ids:
        return []
    rows = await session.execute(
        select(*_ROW).outerjoin(Workroom, Workroom.id == OpinionForm.workroom_id).where(OpinionForm.id.in_(ids))
    )
    found = []
    for row in rows:
        score = similarity.score(subject, similarity.features(row.content or "", row.location or ""), rule)
        if score >= rule.threshold:
            found.append(Similar(
                id=row.id, tracking_no=row.tracking_no, score=round(score, 3), status=row.status,
                workroom=row.workroom_code, workroom_name=row.workroom_name,
                snippet=similarity.snippet(row.content or ""), merged_into=row.merged_into_id,
            ))
    found.sort(key=lambda s: (-s.score, -s.id))
    return found[:limit]


async def similar_to(
    session: AsyncSession, form: OpinionForm, *, visible: Any, settings: Settings, limit: int = 10,
) -> list[Similar]:
    """The forms most similar to ``form`` that are the same issue by the rule, best first, open and
    closed, any workroom, among those ``visible`` (a condition on ``OpinionForm``; None: all)."""
    terms = _terms(form.content, form.location)
    where = [visible] if visible is not None else []
    ids = await _candidate_ids(session, terms, exclude_id=form.id, where=where)
    return await _ranked(session, similarity.features(form.content or "", form.location or ""), ids,
                         rule(settings), limit)


async def hints(
    session: AsyncSession, *, content: str, location: str | None, workroom_id: int | None, staff: bool,
    settings: Settings, visible: Any = None, limit: int = 3,
) -> list[Similar]:
    """While a form is written: up to ``limit`` open forms of the same workroom (any, when none is chosen)
    that report the same issue; only public ones unless a member of staff asks, who also gets the forms
    ``visible`` to them (a condition on ``OpinionForm``; None: all)."""
    if len((content or "").strip()) < 4:
        return []
    where: list[Any] = [OpinionForm.status.in_(OPEN), OpinionForm.merged_into_id.is_(None)]
    if workroom_id is not None:
        where.append(OpinionForm.workroom_id == workroom_id)
    if not staff:
        where.append(OpinionForm.public.is_(True))
    elif visible is not None:
        where.append(or_(OpinionForm.public.is_(True), visible))
    ids = await _candidate_ids(session, _terms(content, location), where=where)
    return await _ranked(session, similarity.features(content, location or ""), ids, rule(settings), limit)


async def area_of(session: AsyncSession, *, workroom_code: str, service_point_id: str) -> int | None:
    """The workroom a page's form is written for: its own, or its service point's (None: unknown)."""
    if workroom_code:
        return await session.scalar(select(Workroom.id).where(Workroom.code == workroom_code))
    if service_point_id.isdigit() and len(service_point_id) < 10:
        return await session.scalar(select(ServicePoint.workroom_id).where(ServicePoint.id == int(service_point_id)))
    return None


async def get_topic(session: AsyncSession, topic_id: int) -> Topic:
    topic = await session.get(Topic, topic_id)
    if topic is None:
        raise NotFound("没有这个话题。", code="topic_not_found")
    return topic


# --- indexing and topics -----------------------------------------------------------------------------


async def _take_lock(session: AsyncSession) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: one writer at a time anyway
    return bool(await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}))


@dataclass(frozen=True)
class _Known:
    features: similarity.Features
    topic_id: int | None  # None: not indexed yet
    submitted_at: datetime


class FeatureCache:
    """What indexing knows of recent forms (features, topic, when received), kept by ``minyi similar index``
    across batches: a backlog's candidates are mostly forms it has just indexed, so each is analysed and
    read once (bounded: ``size`` forms, the oldest dropped first)."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._kept: dict[int, _Known] = {}

    def get(self, form_id: int) -> _Known | None:
        return self._kept.get(form_id)

    def put(self, form_id: int, known: _Known) -> _Known:
        if form_id not in self._kept and len(self._kept) >= self.size:
            del self._kept[next(iter(self._kept))]
        self._kept[form_id] = known
        return known


@lru_cache(maxsize=32)
def _plain_candidates(count: int) -> Any:
    """``_shared``'s statement for ``count`` terms without filters, built once per count (building
    24 subqueries costs more Python than running them): parameters ``t0``… and ``exclude``."""
    parts = []
    for n in range(count):
        newest = (select(FormTerm.form_id)
                  .where(FormTerm.term == bindparam(f"t{n}"), FormTerm.form_id != bindparam("exclude"))
                  .order_by(FormTerm.form_id.desc()).limit(PER_TERM).subquery())
        parts.append(select(newest.c.form_id))
    return union_all(*parts)


async def index_pending(
    session: AsyncSession, *, settings: Settings, batch: int = INDEX_BATCH, cache: FeatureCache | None = None,
) -> int:
    """Index up to ``batch`` forms not indexed yet, oldest first: their terms, and each one's topic. Returns
    how many were indexed (0: nothing waiting, or another process is indexing now). Each form is compared
    with the database's candidates and with the forms before it in the same batch; the batch's rows are
    written together at the end."""
    cache = cache or FeatureCache(size=batch + RERANK * 4)
    if not await _take_lock(session):
        return 0
    highest = await session.scalar(select(func.max(TopicMember.form_id)))
    waiting = (await session.execute(
        select(OpinionForm.id, OpinionForm.content, OpinionForm.location, OpinionForm.submitted_at,
               OpinionForm.workroom_id)
        .where(OpinionForm.id > (highest or 0) - LOOKBACK_IDS,
               ~exists().where(TopicMember.form_id == OpinionForm.id))
        .order_by(OpinionForm.id).limit(batch)
    )).all()
    decision = rule(settings)
    in_batch: dict[str, list[int]] = {}  # term -> ids of this batch's forms with it, in order
    term_rows: list[dict[str, Any]] = []
    member_rows: list[dict[str, Any]] = []
    grown: Counter[int] = Counter()
    for form in waiting:
        terms = _terms(form.content, form.location)
        subject = similarity.features(form.content or "", form.location or "")
        shared = await _shared(session, terms, exclude_id=form.id)
        for term in terms:
            shared.update(in_batch.get(term, [])[-PER_TERM:])
        topic_id = await _best_topic(session, form, subject, _most_shared(shared), decision, cache)
        if topic_id is None:
            topic = Topic(first_form_id=form.id, size=1, created_at=form.submitted_at,
                          keywords="、".join(similarity.keywords([form.content or ""], k=5)))
            session.add(topic)
            await session.flush()
            topic_id = topic.id
        else:
            grown[topic_id] += 1
        cache.put(form.id, _Known(subject, topic_id, form.submitted_at))
        for term in terms:
            in_batch.setdefault(term, []).append(form.id)
            term_rows.append({"term": term, "form_id": form.id})
        member_rows.append({"form_id": form.id, "topic_id": topic_id, "submitted_at": form.submitted_at,
                            "workroom_id": form.workroom_id})
    if term_rows:
        await session.execute(insert(FormTerm), term_rows)
    if member_rows:
        await session.execute(insert(TopicMember), member_rows)
    for topic_id, more in grown.items():
        size = await session.scalar(
            update(Topic).where(Topic.id == topic_id).values(size=Topic.size + more).returning(Topic.size))
        if size is not None and (size - more).bit_length() < size.bit_length():  # passed 2, 4, 8, ...
            await _rename(session, topic_id)
    return len(waiting)


async def _best_topic(
    session: AsyncSession, form: Any, subject: similarity.Features, ids: Sequence[int],
    decision: similarity.Rule, cache: FeatureCache,
) -> int | None:
    """The topic of the candidate most similar to ``form`` that is the same issue and was received within
    ``TOPIC_DAYS`` of it; None if there is none."""
    unknown = [i for i in ids if cache.get(i) is None]
    if unknown:
        for row in await session.execute(
            select(OpinionForm.id, OpinionForm.content, OpinionForm.location, OpinionForm.submitted_at,
                   TopicMember.topic_id)
            .outerjoin(TopicMember, TopicMember.form_id == OpinionForm.id).where(OpinionForm.id.in_(unknown))
        ):
            cache.put(row.id, _Known(similarity.features(row.content or "", row.location or ""), row.topic_id,
                                     row.submitted_at))
    window = timedelta(days=TOPIC_DAYS)
    best: tuple[float, int] | None = None
    for form_id in ids:
        known = cache.get(form_id)
        if known is None or known.topic_id is None or abs(known.submitted_at - form.submitted_at) > window:
            continue
        score = similarity.score(subject, known.features, decision)
        if score >= decision.threshold and (best is None or score > best[0]):
            best = (score, known.topic_id)
    return best[1] if best else None


async def _rename(session: AsyncSession, topic_id: int) -> None:
    contents = (await session.scalars(
        select(OpinionForm.content).join(TopicMember, TopicMember.form_id == OpinionForm.id)
        .where(TopicMember.topic_id == topic_id).order_by(OpinionForm.id.desc()).limit(30)
    )).all()
    words = "、".join(similarity.keywords([c or "" for c in contents], k=5))
    await session.execute(update(Topic).where(Topic.id == topic_id).values(keywords=words[:200]))


async def index_round(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, cache: FeatureCache | None = None,
) -> int:
    """One batch of ``index_pending`` in a transaction of its own (the worker's round)."""
    async with transaction(sessionmaker) as session:
        return await index_pending(session, settings=settings, cache=cache)


# --- hot topics --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HotTopic:
    topic_id: int
    count: int
    previous: int
    keywords: list[str]
    workrooms: list[str]
    first_form_id: int

    @property
    def trend(self) -> str:
        if self.count > self.previous:
            return "up"
        return "down" if self.count < self.previous else "same"

    @property
    def change(self) -> float | None:
        """The count's change against the previous period, as a fraction (None: nothing then)."""
        return round((self.count - self.previous) / self.previous, 3) if self.previous else None


def period_window(period: str, now: datetime) -> tuple[datetime, datetime]:
    days = PERIODS[period]
    return now - timedelta(days=days), now


async def hot_topics(
    session: AsyncSession, *, period: str, now: datetime | None = None, limit: int = 10, minimum: int = 2,
    window: tuple[datetime, datetime] | None = None,
) -> list[HotTopic]:
    """The topics with the most forms received in the last week (7 days) or month (30 days), at least
    ``minimum`` each, with the previous period's count, their workrooms and keywords. ``window`` (start
    inclusive, end exclusive) replaces the last week or month: a brief's month, quarter or year (issue 20.4);
    "previous" is then the span of the same length just before it."""
    now = now or utcnow()
    start, end = window if window is not None else period_window(period, now)
    span = end - start
    counted = func.count().label("forms")
    current = (await session.execute(
        select(TopicMember.topic_id, counted)
        .where(TopicMember.submitted_at >= start, TopicMember.submitted_at < end)
        .group_by(TopicMember.topic_id).having(func.count() >= minimum)
        .order_by(counted.desc(), TopicMember.topic_id.desc()).limit(limit)
    )).all()
    if not current:
        return []
    ids = [row.topic_id for row in current]
    previous = dict((await session.execute(
        select(TopicMember.topic_id, func.count())
        .where(TopicMember.topic_id.in_(ids), TopicMember.submitted_at >= start - span,
               TopicMember.submitted_at < start)
        .group_by(TopicMember.topic_id)
    )).all())
    places: dict[int, Counter[str]] = {}
    for topic_id, name, forms in (await session.execute(
        select(TopicMember.topic_id, Workroom.name, func.count())
        .join(Workroom, Workroom.id == TopicMember.workroom_id)
        .where(TopicMember.topic_id.in_(ids), TopicMember.submitted_at >= start, TopicMember.submitted_at < end)
        .group_by(TopicMember.topic_id, Workroom.name)
    )).all():
        places.setdefault(topic_id, Counter())[name] = forms
    topics = {t.id: t for t in await session.scalars(select(Topic).where(Topic.id.in_(ids)))}
    return [
        HotTopic(
            topic_id=row.topic_id, count=row.forms, previous=previous.get(row.topic_id, 0),
            keywords=[w for w in topics[row.topic_id].keywords.split("、") if w],
            workrooms=[name for name, _ in places.get(row.topic_id, Counter()).most_common()],
            first_form_id=topics[row.topic_id].first_form_id,
        )
        for row in current
    ]


async def topic_form_ids(
    session: AsyncSession, topic_id: int, *, visible: Any, since: datetime | None = None, limit: int = 200,
) -> list[int]:
    """The forms of a topic (newest first) that ``visible`` allows, received ``since`` if given."""
    query = select(TopicMember.form_id).where(TopicMember.topic_id == topic_id)
    if since is not None:
        query = query.where(TopicMember.submitted_at >= since)
    if visible is not None:
        query = query.join(OpinionForm, OpinionForm.id == TopicMember.form_id).where(visible)
    return list(await session.scalars(query.order_by(TopicMember.form_id.desc()).limit(limit)))


@dataclass(frozen=True)
class Listed:
    id: int
    tracking_no: str
    status: str
    submitted_at: datetime
    workroom_name: str | None
    snippet: str
    merged_into: int | None


async def form_rows(session: AsyncSession, ids: Sequence[int]) -> list[Listed]:
    """Short rows of the forms ``ids`` (in that order) for a list: no personal data."""
    if not ids:
        return []
    rows = {row.id: row for row in await session.execute(
        select(OpinionForm.id, OpinionForm.tracking_no, OpinionForm.status, OpinionForm.submitted_at,
               OpinionForm.content, OpinionForm.merged_into_id, Workroom.name.label("workroom_name"))
        .outerjoin(Workroom, Workroom.id == OpinionForm.workroom_id).where(OpinionForm.id.in_(ids))
    )}
    return [Listed(id=row.id, tracking_no=row.tracking_no, status=row.status, submitted_at=row.submitted_at,
                   workroom_name=row.workroom_name, snippet=similarity.snippet(row.content or ""),
                   merged_into=row.merged_into_id)
            for form_id in ids if (row := rows.get(form_id)) is not None]
