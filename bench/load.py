"""Load N opinion forms (default 1,000,000) into a PostgreSQL database for the benchmarks.

    .venv/bin/python bench/load.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/minyi_bench \
        --forms 1000000 --fresh

Steps, each timed:

1. ``--fresh``: drop and recreate the database (refuses to load into a database that already has more
   forms than the demo town unless ``--fresh`` is given).
2. Migrate with Alembic (``app.migrate.upgrade``) and load the demo town (``app.services.demo.load``):
   11 workrooms, 30 representatives, 11 handling units, 14 service points, 8 categories, 4 users and
   107 forms, all written through the app's own services.
3. Generate N forms oldest first over the past two years and COPY them in batches with asyncpg
   (``copy_records_to_table``), with one ``submitted`` form_event each. The spread: 11 workrooms with
   uneven weights and ~12 % online forms without a workroom; 8 categories and ~5 % uncategorised;
   statuses that follow from each form's age (triage, answer and follow-up delays drawn per form, cut
   at "now"), with consistent timestamps: assigned/answered/closed forms carry unit_id, instructions,
   first_assigned_at/assigned_at and a due_at computed by the app's own working-day rule; answered
   ones first_answered_at/answered_at and a reply; closed ones closed_at and a satisfaction; declined
   ones declined_at and a reason. About 1 % of forms stay stuck with their unit, so the live "overdue"
   count has a real backlog to count; open forms carry the supervision level (预警/逾期/督办) the app's
   schedule would have recorded by now, where the schema has ``supervision_recorded``.
   Tracking numbers continue each year's sequence in the app's format (``LS2026-00108``; past 99,999
   a year they simply get a sixth digit) and ``tracking_sequence`` is set to each year's maximum.
   While copying, the opinion_form/form_event secondary indexes are dropped and rebuilt afterwards and
   foreign-key triggers are skipped (``session_replication_role = replica``, superuser only); the
   references are checked with anti-joins after the load instead. Each batch's search rows (issue 19.1:
   ``form_search``, the forms' tokens as ``app.services.search`` writes them) are copied with it, and the
   GIN index is rebuilt with the others.
4. Rebuild the counters with ``app.services.stats.rebuild``, VACUUM ANALYZE, then
   ``app.services.stats.verify`` (a full recount; ``--verify sample`` checks one month instead,
   ``--verify none`` skips it).

Loaded forms all have the verification code ``123456`` (HMAC-keyed with ``MINYI_SECRET_KEY``, else the
bench secret ``BENCH_SECRET`` that bench/run.py also starts the app with), so
``GET /api/v1/track/{tracking_no}?code=123456`` works on them.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import csv
import io
import hashlib
import hmac
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import migrate as migrations  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import create_engine, create_sessionmaker, transaction  # noqa: E402
from app.models import Category, HandlingUnit, Representative, ServicePoint, Workroom  # noqa: E402
from app.services import deadlines  # noqa: E402
from app.services import demo as demo_service  # noqa: E402
from app.services import search as search_service  # noqa: E402
from app.services import stats as stats_service  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/minyi_bench"
VERIFICATION_CODE = "123456"
# The secret the benchmark app runs with (bench/run.py uses the same): MINYI_SECRET_KEY, else this.
BENCH_SECRET = "minyi-bench-secret-key-not-for-production-0123456789abcdef"
SHANGHAI_OFFSET = timedelta(hours=8)  # Asia/Shanghai has had no daylight saving since 1991

FORM_COLUMNS = [
    "id", "tracking_no", "verification_hash", "content", "category_id", "channel", "workroom_id",
    "service_point_id", "submitter_name", "submitter_phone", "location", "public", "status", "unit_id",
    "instructions", "due_at", "reply", "satisfaction", "decline_reason", "submitted_at", "submitted_on",
    "first_assigned_at", "assigned_at", "first_answered_at", "answered_at", "closed_at", "declined_at",
    "updated_at", "entered_by_user_id", "entered_by_representative_id",
    # Columns of later schema revisions, copied only where the table has them.
    "answered_on_time", "answer_working_days", "supervision_recorded",
]
EVENT_COLUMNS = ["id", "form_id", "type", "at", "actor_user_id", "actor_label", "actor_role", "from_status",
                 "to_status", "note", "internal", "data"]

TOPICS = [
    "小区门口的路灯坏了好几盏，晚上出行不安全，希望尽快维修。",
    "菜场周边早上占道经营严重，电动车和行人都很难通过。",
    "村里的河道有垃圾漂浮，夏天气味很大，请安排清理。",
    "公交站台没有遮雨棚，老人等车很辛苦，建议加装。",
    "学校放学时段接送车辆拥堵，希望增派交警疏导。",
    "老旧小区加装电梯的补贴政策不清楚，希望有人来讲解。",
    "工业园区夜间噪音扰民，影响周边居民休息。",
    "农田灌溉渠年久失修，漏水严重，影响今年春耕。",
    "社区卫生服务站周末不开门，希望延长服务时间。",
    "小区停车位不足，消防通道经常被占用，存在安全隐患。",
    "希望在村口增设快递驿站，方便老人取件。",
    "路口红绿灯时间太短，老人过马路来不及。",
    "企业用工招聘信息希望能在工作室公开栏张贴。",
    "养老服务中心助餐点饭菜价格偏高，希望给予补贴。",
    "雨天小区地下车库进水，排水设施需要改造。",
    "希望多组织一些防诈骗宣传活动，老年人容易上当。",
]
PLACES = ["洛社镇", "新开河村", "双庙村", "张镇桥", "石塘湾", "杨市", "福山村", "五牧村", "花苑小区", "时代广场"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明"]
INSTRUCTIONS = ["请于期限内核实处理并答复群众。", "请现场查看后答复。", "请会同相关村（社区）协调解决。"]
REPLIES = ["已安排人员现场处理，问题已解决。", "已列入今年改造计划，预计下季度完工。", "经核实已协调相关单位整改到位。",
           "已向群众解释相关政策，群众表示理解。"]
DECLINES = ["不属于本镇职权范围，已告知群众向相关部门反映。", "所反映问题已通过司法途径处理。"]

# Outcome a form is heading for; how far it got follows from its age.
OUTCOMES = (("full", 0.85), ("stuck", 0.01), ("on_spot", 0.05), ("declined", 0.04), ("queue", 0.05))
CHANNEL_WITH_WORKROOM = (("workroom", 0.55), ("service_point", 0.30), ("phone", 0.10), ("other", 0.05))
CHANNEL_ONLINE = (("wechat", 0.6), ("web", 0.35), ("phone", 0.05))
SATISFACTION = (("satisfied", 0.78), ("basically_satisfied", 0.17), ("unsatisfied", 0.05))


def chooser(rng: random.Random, weighted: tuple[tuple[object, float], ...] | list[tuple[object, float]]):
    values = [v for v, _ in weighted]
    cum: list[float] = []
    total = 0.0
    for _, w in weighted:
        total += w
        cum.append(total)

    def pick() -> object:
        return values[bisect.bisect(cum, rng.random() * total)]

    return pick


def plain_url(url: str) -> str:
    """asyncpg wants postgresql://, SQLAlchemy postgresql+asyncpg://."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.steps: list[tuple[str, float]] = []
        self.last = self.start

    def step(self, name: str) -> None:
        now = time.perf_counter()
        self.steps.append((name, now - self.last))
        print(f"  {name:<44} {now - self.last:8.1f} s", flush=True)
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.start


async def prepare_database(url: str, fresh: bool) -> None:
    u = make_url(url)
    name = u.database
    admin = plain_url(str(u.set(database="postgres")))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and fresh:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = False
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@dataclass
class Reference:
    workroom_ids: list[int]
    service_points: dict[int, list[int]]  # workroom id -> service point ids
    categories: list[tuple[int, int]]  # (id, due_days)
    unit_ids: list[int]
    representative_ids: list[int]
    representatives_of: dict[int, list[int]]  # workroom id -> representative ids
    office_user_id: int | None


async def read_reference(url: str) -> Reference:
    conn = await asyncpg.connect(plain_url(url))
    try:
        workroom_ids = [r["id"] for r in await conn.fetch("SELECT id FROM workroom WHERE active ORDER BY code")]
        service_points: dict[int, list[int]] = {w: [] for w in workroom_ids}
        for r in await conn.fetch("SELECT id, workroom_id FROM service_point ORDER BY id"):
            service_points.setdefault(r["workroom_id"], []).append(r["id"])
        categories = [(r["id"], r["due_days"]) for r in
                      await conn.fetch("SELECT id, due_days FROM category WHERE active ORDER BY sort_order, id")]
        unit_ids = [r["id"] for r in await conn.fetch("SELECT id FROM handling_unit WHERE active ORDER BY id")]
        representative_ids = [r["id"] for r in await conn.fetch("SELECT id FROM representative ORDER BY id")]
        representatives_of: dict[int, list[int]] = {w: [] for w in workroom_ids}
        for r in await conn.fetch("SELECT representative_id, workroom_id FROM representative_workroom"):
            representatives_of.setdefault(r["workroom_id"], []).append(r["representative_id"])
        office = await conn.fetchval("SELECT id FROM app_user WHERE role = 'coordinator' ORDER BY id LIMIT 1")
    finally:
        await conn.close()
    if not workroom_ids or not categories or not unit_ids:
        raise SystemExit("reference data missing: workrooms, categories and units are needed")
    return Reference(workroom_ids, service_points, categories, unit_ids, representative_ids, representatives_of, office)


# chinese_calendar.is_workday costs ~20 us a call (it validates the date against its whole table); the
# loader asks about the same ~730 days millions of times, so memoise it for this process only.
deadlines.is_working_day = lru_cache(maxsize=None)(deadlines.is_working_day)


@lru_cache(maxsize=None)
def _due_at(assigned_local_day: date, due_days: int) -> datetime:
    # The app's rule: the end of the due_days-th working day after the day of assignment, local time.
    return deadlines.end_of_day(deadlines.add_working_days(assigned_local_day, due_days)).astimezone(UTC)


@lru_cache(maxsize=None)
def _working_days(start: date, end: date) -> int:
    return deadlines.working_days_between(start, end)


@lru_cache(maxsize=None)
def _supervision(due_at: datetime | None, now: datetime) -> str:
    # The level the app's supervision schedule would already have recorded for an open form, so the
    # server's first supervision pass (at start-up) finds the loaded backlog up to date.
    return str(deadlines.supervision_level(due_at, now, open_=True))


class FormGenerator:
    """Deterministic (seeded) forms, oldest first."""

    def __init__(self, ref: Reference, *, n: int, now: datetime, days: int, seed: int, secret_key: str,
                 prefix: str, first_id: int, first_event_id: int, sequences: dict[int, int]) -> None:
        self.ref, self.n, self.now = ref, n, now
        self.rng = rng = random.Random(seed)
        self.secret = secret_key.encode()
        self.prefix = prefix
        self.next_id = first_id
        self.next_event_id = first_event_id
        self.sequences = dict(sequences)  # year -> last value used
        # Submission moments, oldest first: uniform days over the window, daytime-heavy hours (local). Made
        # one day at a time (``_moments``), so memory does not grow with N (10,000,000 forms: issue 18.5).
        self.start = now - timedelta(days=days)
        self.moments = self._moments(n, days)
        self.pos = 0
        wr_weights = [(w, 1.0 + 2.5 / (i + 1)) for i, w in enumerate(ref.workroom_ids)]
        self.pick_workroom = chooser(rng, wr_weights)
        cat_weights = [(c, w) for c, w in zip(ref.categories, [24, 20, 9, 17, 10, 8, 5, 7][:len(ref.categories)] +
                                              [5] * max(0, len(ref.categories) - 8), strict=True)]
        self.pick_category = chooser(rng, cat_weights)
        self.pick_outcome = chooser(rng, OUTCOMES)
        self.pick_channel_wr = chooser(rng, CHANNEL_WITH_WORKROOM)
        self.pick_channel_online = chooser(rng, CHANNEL_ONLINE)
        self.pick_satisfaction = chooser(rng, SATISFACTION)
        self.contents = [f"{t}（{p}）" for t in TOPICS for p in PLACES]

    def _moments(self, n: int, days: int) -> Iterator[float]:
        """``n`` submission moments as seconds after ``self.start``, ascending, never in the last hour.

        Each local day of the window gets its share of ``n`` in proportion to its hours' weights that fall
        inside the window (the first and last days are partial), rounded so the shares sum to ``n``; a day's
        moments are drawn (hour by weight, then a uniform second), sorted and yielded. Only one day's moments
        are held at a time."""
        rng = self.rng
        hour_weights = [1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 15, 12, 8, 10, 14, 15, 13, 10, 7, 6, 5, 4, 2, 1]
        first_midnight = (self.start + SHANGHAI_OFFSET).replace(hour=0, minute=0, second=0, microsecond=0)
        base = (self.start + SHANGHAI_OFFSET - first_midnight).total_seconds()  # window start, into day 0
        limit = days * 86400 - 3600  # nothing in the last hour

        def window(day: int) -> tuple[float, float]:  # the part of local day ``day`` inside the window
            lo, hi = day * 86400 - base, (day + 1) * 86400 - base
            return max(lo, 0.0), min(hi, float(limit))

        def weight(day: int) -> float:
            lo, hi = window(day)
            total = 0.0
            for hour, w in enumerate(hour_weights):
                h_lo = day * 86400 - base + hour * 3600
                overlap = min(hi, h_lo + 3600) - max(lo, h_lo)
                if overlap > 0:
                    total += w * overlap / 3600
            return total

        weights = [weight(day) for day in range(days + 2)]
        whole = sum(weights)
        exact = [n * w / whole for w in weights]
        shares = [int(x) for x in exact]
        # The remainder, one each to the days with the largest fractions (ties broken by the seeded rng).
        order = sorted(range(len(exact)), key=lambda d: (shares[d] - exact[d], rng.random()))
        for day in order[: n - sum(shares)]:
            shares[day] += 1
        for day, count in enumerate(shares):
            if not count:
                continue
            lo, hi = window(day)
            hours = [(h, w) for h, w in enumerate(hour_weights)
                     if day * 86400 - base + h * 3600 < hi and day * 86400 - base + (h + 1) * 3600 > lo]
            pick_hour = chooser(rng, hours)
            moments: list[float] = []
            while len(moments) < count:
                s = day * 86400 - base + pick_hour() * 3600 + rng.random() * 3600
                if lo <= s <= hi:
                    moments.append(s)
            moments.sort()
            yield from moments

    def batch(self, size: int) -> tuple[list[tuple], list[tuple]]:
        rng, ref, now = self.rng, self.ref, self.now
        forms: list[tuple] = []
        events: list[tuple] = []
        end = min(self.pos + size, self.n)
        contents, rnd = self.contents, rng.random
        for i in range(self.pos, end):
            submitted_at = self.start + timedelta(seconds=next(self.moments))
            local = submitted_at + SHANGHAI_OFFSET
            submitted_on = local.date()
            year = local.year
            seq = self.sequences.get(year, 0) + 1
            self.sequences[year] = seq
            tracking_no = f"{self.prefix}{year}-{seq:05d}"
            form_id = self.next_id
            self.next_id += 1

            online = rnd() < 0.12
            workroom_id = None if online else self.pick_workroom()
            if online:
                channel = self.pick_channel_online()
            else:
                channel = self.pick_channel_wr()
            service_point_id = None
            if channel == "service_point":
                points = ref.service_points.get(workroom_id) or []
                if points:
                    service_point_id = points[int(rnd() * len(points))]
                else:
                    channel = "workroom"
            category = None if rnd() < 0.05 else self.pick_category()
            category_id, due_days = (category if category else (None, 15))
            rep_id = None
            if channel in ("workroom", "service_point"):
                reps = ref.representatives_of.get(workroom_id) or ref.representative_ids
                rep_id = reps[int(rnd() * len(reps))] if reps else None
            entered_by_user = ref.office_user_id if channel in ("phone", "other") else None
            named = rnd() < 0.6
            name = (SURNAMES[int(rnd() * len(SURNAMES))] + GIVEN[int(rnd() * len(GIVEN))]) if named else None
            phone = f"13{int(rnd() * 10)}{int(rnd() * 1e8):08d}" if named and rnd() < 0.7 else None
            content = contents[int(rnd() * len(contents))] + f" #{form_id}"
            vhash = hmac.new(self.secret, f"{tracking_no}:{VERIFICATION_CODE}".encode(), hashlib.sha256).hexdigest()

            status = "submitted"
            unit_id = instructions = due_at = reply = satisfaction = decline_reason = None
            first_assigned_at = assigned_at = first_answered_at = answered_at = closed_at = declined_at = None
            updated_at = submitted_at
            outcome = self.pick_outcome()
            # Triage within hours to a few days.
            triage = submitted_at + timedelta(seconds=rng.expovariate(1 / 86400) + 600)
            if outcome == "queue":
                pass  # still in the queue only if recent; older ones were triaged like the others
            if outcome == "queue" and (now - submitted_at) > timedelta(days=7):
                outcome = "full"
            if outcome == "declined" and triage < now:
                status, declined_at, decline_reason, updated_at = "declined", triage, DECLINES[i % 2], triage
            elif outcome == "on_spot":
                at = submitted_at + timedelta(minutes=5 + rnd() * 30)
                if at < now:
                    status, first_answered_at, answered_at, reply, updated_at = "answered", at, at, REPLIES[i % 4], at
                    close = at + timedelta(seconds=rng.expovariate(1 / (5 * 86400)) + 3600)
                    if close < now and rnd() < 0.7:
                        status, closed_at, updated_at = "closed", close, close
                        satisfaction = self.pick_satisfaction()
            elif outcome in ("full", "stuck") and triage < now:
                status = "assigned"
                unit_id = ref.unit_ids[int(rnd() * len(ref.unit_ids))]
                instructions = INSTRUCTIONS[i % 3]
                first_assigned_at = assigned_at = updated_at = triage
                due_at = _due_at((triage + SHANGHAI_OFFSET).date(), due_days)
                if outcome == "full":
                    # Most replies come before the deadline, a few after it.
                    answer = triage + timedelta(seconds=rng.expovariate(1 / (6 * 86400)) + 3600)
                    if answer < now:
                        status, first_answered_at, answered_at, reply, updated_at = (
                            "answered", answer, answer, REPLIES[i % 4], answer)
                        close = answer + timedelta(seconds=rng.expovariate(1 / (5 * 86400)) + 3600)
                        if close < now and rnd() < 0.8:
                            status, closed_at, updated_at = "closed", close, close
                            satisfaction = self.pick_satisfaction()
            supervision = _supervision(due_at, now) if status == "assigned" else "none"
            on_time = working_days = None
            if first_answered_at is not None:
                on_time = due_at is None or first_answered_at <= due_at
                working_days = _working_days(submitted_on, (first_answered_at + SHANGHAI_OFFSET).date())
            forms.append((
                form_id, tracking_no, vhash, content, category_id, channel, workroom_id, service_point_id,
                name, phone, None, rnd() < 0.3, status, unit_id, instructions, due_at, reply, satisfaction,
                decline_reason, submitted_at, submitted_on, first_assigned_at, assigned_at, first_answered_at,
                answered_at, closed_at, declined_at, updated_at, entered_by_user, rep_id, on_time, working_days,
                supervision,
            ))
            events.append((
                self.next_event_id, form_id, "submitted", submitted_at, entered_by_user,
                "公众" if entered_by_user is None else "office", None if entered_by_user is None else "coordinator",
                None, "submitted", None, False, None,
            ))
            self.next_event_id += 1
        self.pos = end
        return forms, events


async def secondary_indexes(conn: asyncpg.Connection, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the indexes on ``table`` that back no constraint."""
    rows = await conn.fetch(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
           WHERE i.schemaname = 'public' AND i.tablename = $1
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
           ORDER BY i.indexname""", table)
    return [(r["indexname"], r["indexdef"]) for r in rows]


async def copy_columns(conn: asyncpg.Connection, table: str, known: list[str]) -> list[str]:
    """The known columns the table has; refuses a table with a required column this loader cannot fill."""
    rows = await conn.fetch(
        """SELECT column_name, is_nullable, column_default FROM information_schema.columns
           WHERE table_schema = 'public' AND table_name = $1""", table)
    present = {r["column_name"] for r in rows}
    required = [r["column_name"] for r in rows if r["column_name"] not in known and r["is_nullable"] == "NO"
                and r["column_default"] is None]
    if required:
        raise SystemExit(f"{table} has required columns this loader does not fill: {required}")
    return [c for c in known if c in present]


SEARCHED = {name: FORM_COLUMNS.index(name) for name in search_service.SEARCHED}


async def copy_search_rows(conn: asyncpg.Connection, forms: list[tuple]) -> None:
    """The batch's ``form_search`` rows, tokenized by the app's own code and copied as CSV (asyncpg has no
    binary format for tsvector); one batch in memory at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    form_id = FORM_COLUMNS.index("id")
    for row in forms:
        writer.writerow((row[form_id], search_service.tsvector_text({n: row[i] for n, i in SEARCHED.items()})))
    await conn.copy_to_table("form_search", source=io.BytesIO(buffer.getvalue().encode()),
                             columns=["form_id", "document"], format="csv")


async def copy_forms(url: str, ref: Reference, args: argparse.Namespace, secret_key: str, prefix: str,
                     timer: Timer) -> dict[str, int]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        first_id = (await conn.fetchval("SELECT coalesce(max(id), 0) FROM opinion_form")) + 1
        first_event_id = (await conn.fetchval("SELECT coalesce(max(id), 0) FROM form_event")) + 1
        sequences = {r["year"]: r["last_value"] for r in await conn.fetch("SELECT year, last_value FROM tracking_sequence")}
        now = datetime.now(UTC).replace(microsecond=0)
        gen = FormGenerator(ref, n=args.forms, now=now, days=args.days, seed=args.seed, secret_key=secret_key,
                            prefix=prefix, first_id=first_id, first_event_id=first_event_id, sequences=sequences)
        timer.step(f"plan {args.forms:,} submission times")

        form_columns = await copy_columns(conn, "opinion_form", FORM_COLUMNS)
        event_columns = await copy_columns(conn, "form_event", EVENT_COLUMNS)
        pick_form = itemgetter(*[FORM_COLUMNS.index(c) for c in form_columns])
        pick_event = itemgetter(*[EVENT_COLUMNS.index(c) for c in event_columns])
        dropped: list[tuple[str, str]] = []
        if args.defer_indexes:
            for table in ("opinion_form", "form_event", "form_search"):
                dropped += await secondary_indexes(conn, table)
            for name, _ in dropped:
                await conn.execute(f'DROP INDEX "{name}"')
        await conn.execute("SET session_replication_role = replica")  # skip FK triggers while copying
        gen_time = copy_time = search_time = 0.0
        while gen.pos < gen.n:
            t0 = time.perf_counter()
            forms, events = gen.batch(args.batch)
            all_columns = forms
            if len(form_columns) < len(FORM_COLUMNS):
                forms = [pick_form(r) for r in forms]
            if len(event_columns) < len(EVENT_COLUMNS):
                events = [pick_event(r) for r in events]
            t1 = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table("opinion_form", records=forms, columns=form_columns)
                await conn.copy_records_to_table("form_event", records=events, columns=event_columns)
                t2 = time.perf_counter()
                await copy_search_rows(conn, all_columns)
            t3 = time.perf_counter()
            gen_time += t1 - t0
            copy_time += t2 - t1
            search_time += t3 - t2
            if gen.pos % (args.batch * 10) == 0 or gen.pos == gen.n:
                print(f"    {gen.pos:>10,} forms  (generate {gen_time:6.1f} s, copy {copy_time:6.1f} s, "
                      f"search rows {search_time:6.1f} s)", flush=True)
        await conn.execute("SET session_replication_role = origin")
        timer.step(f"generate + COPY (gen {gen_time:.0f} s, copy {copy_time:.0f} s, search {search_time:.0f} s)")

        if dropped:
            await conn.execute("SET maintenance_work_mem = '512MB'")
            for _, definition in dropped:
                await conn.execute(definition)
            timer.step(f"rebuild {len(dropped)} secondary indexes")

        for year, last in sorted(gen.sequences.items()):
            await conn.execute(
                """INSERT INTO tracking_sequence (year, last_value) VALUES ($1, $2)
                   ON CONFLICT (year) DO UPDATE SET last_value = greatest(tracking_sequence.last_value, $2)""",
                year, last)
        check = await conn.fetch(
            """SELECT substring(tracking_no from '^[A-Z]*([0-9]{4})-')::int AS year,
                      max(substring(tracking_no from '-([0-9]+)$')::int) AS top
               FROM opinion_form GROUP BY 1""")
        seqs = {r["year"]: r["last_value"] for r in await conn.fetch("SELECT year, last_value FROM tracking_sequence")}
        for r in check:
            if seqs.get(r["year"]) != r["top"]:
                raise SystemExit(f"tracking_sequence {r['year']} = {seqs.get(r['year'])}, max used {r['top']}")
        for table in ("opinion_form", "form_event"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        missing = await conn.fetchval(
            "SELECT count(*) FROM opinion_form f LEFT JOIN form_search s ON s.form_id = f.id WHERE s.form_id IS NULL")
        if missing:
            raise SystemExit(f"{missing} forms without their search row")
        # The FK triggers were skipped: prove every reference resolves.
        orphans = await conn.fetchval(
            """SELECT (SELECT count(*) FROM form_event e LEFT JOIN opinion_form f ON f.id = e.form_id WHERE f.id IS NULL)
                    + (SELECT count(*) FROM opinion_form f LEFT JOIN workroom w ON w.id = f.workroom_id
                       WHERE f.workroom_id IS NOT NULL AND w.id IS NULL)
                    + (SELECT count(*) FROM opinion_form f LEFT JOIN category c ON c.id = f.category_id
                       WHERE f.category_id IS NOT NULL AND c.id IS NULL)
                    + (SELECT count(*) FROM opinion_form f LEFT JOIN handling_unit u ON u.id = f.unit_id
                       WHERE f.unit_id IS NOT NULL AND u.id IS NULL)
                    + (SELECT count(*) FROM opinion_form f LEFT JOIN service_point p ON p.id = f.service_point_id
                       WHERE f.service_point_id IS NOT NULL AND p.id IS NULL)
                    + (SELECT count(*) FROM opinion_form f LEFT JOIN representative r
                       ON r.id = f.entered_by_representative_id
                       WHERE f.entered_by_representative_id IS NOT NULL AND r.id IS NULL)""")
        if orphans:
            raise SystemExit(f"{orphans} dangling references after the load")
        timer.step("tracking_sequence, id sequences, FK check")
        counts = {r["status"]: r["n"] for r in
                  await conn.fetch("SELECT status, count(*) AS n FROM opinion_form GROUP BY status ORDER BY 1")}
        counts["overdue"] = await conn.fetchval(
            "SELECT count(*) FROM opinion_form WHERE status = 'assigned' AND due_at < now()")
        counts["years"] = seqs
        return counts
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    url = sqlalchemy_url(args.database_url)
    secret_key = os.environ.get("MINYI_SECRET_KEY", BENCH_SECRET)
    settings = Settings(database_url=url, secret_key=secret_key)
    timer = Timer()
    print(f"loading {args.forms:,} forms into {make_url(url).render_as_string(hide_password=True)}", flush=True)
    await prepare_database(url, args.fresh)
    timer.step("create database" + (" (fresh)" if args.fresh else ""))
    await migrations.upgrade(url)
    timer.step("migrate (alembic upgrade head)")

    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            existing = await session.scalar(text("SELECT count(*) FROM opinion_form"))
            if existing and existing > 107:
                raise SystemExit(f"the database already has {existing:,} forms: use --fresh to start over")
            if not existing:
                await demo_service.load(session, settings=settings)
        timer.step("demo town (reference data, 4 users, 107 forms)")
        ref = await read_reference(url)
        counts = await copy_forms(url, ref, args, secret_key, settings.tracking_prefix, timer)

        async with transaction(create_sessionmaker(engine)) as session:
            cells = await stats_service.rebuild(session)
        timer.step(f"stats.rebuild ({cells:,} cells)")

        conn = await asyncpg.connect(plain_url(url))
        try:
            await conn.execute("VACUUM ANALYZE")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        timer.step("VACUUM ANALYZE + CHECKPOINT")

        if args.verify != "none":
            async with transaction(create_sessionmaker(engine)) as session:
                if args.verify == "full":
                    differences = await stats_service.verify(session)
                else:
                    differences = await verify_sample(session)
            if differences:
                print(f"!! {len(differences)} counter cells differ from a recount, e.g. {differences[:3]}")
                raise SystemExit(1)
            timer.step(f"stats.verify ({args.verify}): counters match a recount")

        async with transaction(create_sessionmaker(engine)) as session:
            summary = await stats_service.summary(session, stats_service.StatsFilter())
    finally:
        await engine.dispose()

    conn = await asyncpg.connect(plain_url(url))
    try:
        sizes = await conn.fetch(
            """SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) AS size FROM pg_class
               WHERE relname IN ('opinion_form', 'form_event', 'stat_cell', 'form_search') ORDER BY relname""")
        db_size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
    finally:
        await conn.close()
    print(f"\nstatus counts: { {k: v for k, v in counts.items() if k != 'years'} }")
    print(f"tracking_sequence: {counts['years']}")
    print(f"summary: {summary}")
    print("sizes: " + ", ".join(f"{r['relname']} {r['size']}" for r in sizes) + f"; database {db_size}")
    print(f"total {timer.total():.1f} s")


async def verify_sample(session) -> list[dict]:  # type: ignore[no-untyped-def]
    """Recount the day cells of one month (the latest full one) straight from the forms."""
    month = await session.scalar(text(
        "SELECT date_trunc('month', max(submitted_on) - interval '1 month')::date FROM opinion_form"))
    rows = await session.execute(text(
        """SELECT submitted_on, coalesce(workroom_id, 0), coalesce(category_id, 0), count(*),
                  count(first_assigned_at), count(first_answered_at), count(closed_at), count(declined_at)
           FROM opinion_form WHERE submitted_on >= :m AND submitted_on < (:m + interval '1 month')
           GROUP BY 1, 2, 3"""), {"m": month})
    expected = {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}
    cells = await session.execute(text(
        """SELECT period, workroom_id, category_id, collected, assigned, answered, closed, declined FROM stat_cell
           WHERE grain = 'd' AND period >= :m AND period < (:m + interval '1 month')"""), {"m": month})
    actual = {(r[0], r[1], r[2]): tuple(r[3:]) for r in cells if any(r[3:])}
    return [{"key": str(k), "expected": expected.get(k), "stored": actual.get(k)}
            for k in set(expected) | set(actual) if expected.get(k) != actual.get(k)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=os.environ.get("MINYI_BENCH_DATABASE_URL", DEFAULT_URL),
                   help=f"PostgreSQL URL (default {DEFAULT_URL})")
    p.add_argument("--forms", type=int, default=1_000_000, help="forms to load (default 1,000,000)")
    p.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    p.add_argument("--days", type=int, default=730, help="spread submissions over this many days (default 730)")
    p.add_argument("--batch", type=int, default=50_000, help="rows per COPY batch (default 50,000)")
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--verify", choices=("full", "sample", "none"), default="full",
                   help="check the counters against a recount (default full)")
    p.add_argument("--no-defer-indexes", dest="defer_indexes", action="store_false",
                   help="keep secondary indexes while copying (slower)")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main_async(parse_args()))
