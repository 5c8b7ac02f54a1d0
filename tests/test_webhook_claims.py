"""Webhook claims stay cheap (issue 15, point 9): the claim reads through its indexes whatever the backlog
and whatever the planner's statistics, every delivery is capped, and a receiver failing for a day is
paused until its owner resumes it.

The plans are read, never timed: ``EXPLAIN`` (PostgreSQL) and ``EXPLAIN QUERY PLAN`` (SQLite) of every
statement the claim sends, captured as the driver receives them, over 100,000 pending deliveries.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Integer, String, bindparam, event, func, select, text

from app.db import transaction
from app.models import ApiClient, FormChange, UTCDateTime, Webhook, WebhookDelivery, utcnow
from app.services import webhooks as webhook_service
from tests.factories import build_world, submit
from tests.support.webhooks import api_client, attempts, create_hook, deliver, deliveries, hooked
from tests.webhook_receiver import Receiver

PENDING_ROWS = 100_000
HISTORY_ROWS = 20_000  # delivered long ago: the bulk of a real table, outside the partial indexes
HOOKS = 40
# Of the 40 webhooks (by position): three have a delivery in flight, five are paused, two belong to a
# revoked client; the other thirty may be served.
IN_FLIGHT, PAUSED, REVOKED = range(1, 4), range(4, 9), range(9, 11)
DUE_INDEX = "ix_webhook_delivery_pending_webhook_id_id"
LEASE_INDEX = "ix_webhook_delivery_pending_webhook_id_claimed_until"
CLAIM_INDEXES = {DUE_INDEX, LEASE_INDEX}
PRIMARY_KEY = "pk_webhook_delivery"

_FILL = text("""
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
    INSERT INTO webhook_delivery (webhook_id, change_id, status, attempts, next_attempt_at, claimed_until, created_at)
    SELECT :first + (i % :hooks), :change, :status, i % 10,
           CASE WHEN i % 3 = 0 THEN :due ELSE :later END,
           CASE WHEN :status = 'pending' AND i % :hooks IN (1, 2, 3) AND i <= :hooks THEN :lease END,
           :created
    FROM n
""").bindparams(
    bindparam("count", type_=Integer), bindparam("first", type_=Integer), bindparam("hooks", type_=Integer),
    bindparam("change", type_=Integer), bindparam("status", type_=String),
    bindparam("due", type_=UTCDateTime), bindparam("later", type_=UTCDateTime),
    bindparam("lease", type_=UTCDateTime), bindparam("created", type_=UTCDateTime),
)


async def fill(sessionmaker, *, first: int, change: int, count: int, status: str, now) -> None:
    """``count`` deliveries spread over the 40 webhooks: a third of them due, the rest waiting for a retry
    within the day; with ``pending``, one of each in-flight webhook's is claimed until after ``now``."""
    async with transaction(sessionmaker) as session:
        await session.execute(_FILL, {
            "count": count, "first": first, "hooks": HOOKS, "change": change, "status": status,
            "due": now - timedelta(minutes=5), "later": now + timedelta(hours=3),
            "lease": now + timedelta(seconds=60), "created": now - timedelta(hours=20),
        })


async def town(sessionmaker, client) -> tuple[int, int]:
    """Forty webhooks in the states above and one change to deliver; returns (first webhook id, change id)."""
    await build_world(sessionmaker)
    await submit(client)
    now = utcnow()
    async with transaction(sessionmaker) as session:
        revoked = ApiClient(name="已吊销", scopes=["webhooks"], key_prefix="mk_gone", key_hash="0" * 64, revoked_at=now)
        session.add(revoked)
        await session.flush()
        hooks = [
            Webhook(url=f"https://hooks{n}.example.cn/minyi", events=" form.submitted ", secret="-",
                    active=n not in PAUSED, paused_at=now if n in PAUSED else None,
                    paused_reason="failing" if n in PAUSED else None,
                    client_id=revoked.id if n in REVOKED else None, created_at=now)
            for n in range(HOOKS)
        ]
        session.add_all(hooks)
        await session.flush()
        change = await session.scalar(select(func.max(FormChange.id)))
        return hooks[0].id, change


def plan_problems(engine: str, plan: str) -> list[str]:
    """What in a plan reads ``webhook_delivery`` other than by key or through a claim index with a
    webhook's id (a scan of the table, another index, or a whole index read for its predicate)."""
    problems = []
    lines = plan.splitlines()
    for number, line in enumerate(lines):
        if engine == "postgresql":
            if "Seq Scan on webhook_delivery" in line:
                problems.append(line.strip())
            used = re.search(r"(?:Scan using|Bitmap Index Scan on) (\S+)", line)
            if not used or not used.group(1).startswith(("ix_webhook_delivery", PRIMARY_KEY)):
                continue
            condition = lines[number + 1].strip() if number + 1 < len(lines) else ""
            keyed = condition.startswith("Index Cond: (id = ") and used.group(1) == PRIMARY_KEY
            by_webhook = condition.startswith("Index Cond: ((webhook_id = ") and used.group(1) in CLAIM_INDEXES
            # The lease index holds leased rows only: the live leases may be read at once.
            leases = condition.startswith("Index Cond: (claimed_until >= ") and used.group(1) == LEASE_INDEX
            if not (keyed or by_webhook or leases):
                problems.append(f"{line.strip()} / {condition}")
        elif re.search(r"\bwebhook_delivery(_\d+)?\b", line):
            used = re.search(r"^SEARCH \S+ USING (?:COVERING )?INDEX (\S+) \(webhook_id=", line)
            if not (used and used.group(1) in CLAIM_INDEXES) and "USING INTEGER PRIMARY KEY (rowid=?)" not in line:
                problems.append(line.strip())
    return problems


async def explain(app, statements: list[tuple[str, Any]]) -> list[str]:
    engine = app.state.engine
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    plans = []
    async with engine.connect() as connection:
        for statement, parameters in statements:
            rows = (await connection.exec_driver_sql(prefix + statement, parameters)).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
        await connection.rollback()
    return plans


async def statistics(app, state: str, *, before_backlog: bool) -> None:
    """Bring the planner's statistics to ``state``: ``none`` (never analysed), ``stale`` (analysed before
    the backlog came, when the table held history only), ``fresh`` (analysed with the backlog in)."""
    if state == "stale" and before_backlog or state == "fresh" and not before_backlog:
        async with app.state.engine.begin() as connection:
            await connection.exec_driver_sql("ANALYZE")


@pytest.mark.parametrize("stats", ["none", "stale", "fresh"])
async def test_a_claim_over_100000_pending_deliveries_reads_through_its_indexes(app, client, sessionmaker, db_engine, stats):
    first, change = await town(sessionmaker, client)
    now = utcnow()
    if db_engine == "postgresql":  # the statistics are the test's, not autovacuum's
        async with app.state.engine.begin() as connection:
            for table in ("webhook_delivery", "webhook"):
                await connection.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    await fill(sessionmaker, first=first, change=change, count=HISTORY_ROWS, status="delivered", now=now)
    await statistics(app, stats, before_backlog=True)
    await fill(sessionmaker, first=first, change=change, count=PENDING_ROWS, status="pending", now=now)
    await statistics(app, stats, before_backlog=False)
    async with sessionmaker() as session:
        pending = await session.scalar(select(func.count()).where(WebhookDelivery.status == "pending"))
    assert pending == PENDING_ROWS

    sent: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
            sent.append((statement, parameters))

    event.listen(app.state.engine.sync_engine, "before_cursor_execute", capture)
    try:
        jobs = await webhook_service._claim(sessionmaker, now=now, lease=60, limit=20)
    finally:
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", capture)

    # What was claimed: the oldest due, at most ten a webhook, none of a webhook paused, in flight or of
    # a revoked client.
    served = {first + n for n in range(HOOKS) if n not in (*IN_FLIGHT, *PAUSED, *REVOKED)}
    assert len(jobs) == 20 and {job.webhook_id for job in jobs} <= served
    per_webhook: dict[int, int] = {}
    for job in jobs:
        per_webhook[job.webhook_id] = per_webhook.get(job.webhook_id, 0) + 1
    assert max(per_webhook.values()) <= webhook_service.PER_WEBHOOK_PER_ROUND
    async with sessionmaker() as session:
        oldest_due = list((await session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
                   WebhookDelivery.webhook_id.in_(served))
            .order_by(WebhookDelivery.id).limit(20)
        )).all())
    assert sorted(job.delivery_id for job in jobs) == oldest_due

    # How: every statement reads deliveries through the claim's indexes (or by key), none scans them.
    plans = await explain(app, sent)
    assert len(plans) == 5  # the webhooks ready, their next due, those locked, the lease written, the jobs read
    report = "\n\n".join(f"{statement}\n--\n{plan}" for (statement, _), plan in zip(sent, plans, strict=True))
    assert [problem for plan in plans for problem in plan_problems(db_engine, plan)] == [], report
    ready, next_due = plans[0], plans[1]
    assert CLAIM_INDEXES <= set(re.findall(r"ix_webhook_delivery_\w+", ready)), report
    assert DUE_INDEX in next_due, report


# --- caps: per delivery, per receiver ------------------------------------------------------------------


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


async def rounds(sessionmaker, settings, clock, *, until) -> Any:
    """Delivery rounds at each next attempt time, the clock moved (never slept), until nothing more is
    sent before ``until``; returns the clock."""
    while True:
        waiting = [d.next_attempt_at for d in await deliveries(sessionmaker) if d.status == "pending"]
        if not waiting or min(waiting) > until:
            return clock
        clock = max(clock, min(waiting))
        if not await deliver(sessionmaker, settings, now=clock):
            return clock


def test_the_caps_are_explicit():
    assert webhook_service.MAX_ATTEMPTS == 10 == len(webhook_service.RETRY_DELAYS) + 1
    # Pausing comes no later than the first delivery that fails for good after failing throughout.
    fastest_give_up = sum(webhook_service.RETRY_DELAYS, timedelta()) * (1 - webhook_service.JITTER)
    assert timedelta(hours=20) < webhook_service.PAUSE_AFTER <= fastest_give_up < timedelta(hours=24)


async def test_a_receiver_failing_for_a_day_is_paused_until_its_owner_resumes_it(
    client, sessionmaker, settings, receiver, caplog
):
    world = await build_world(sessionmaker)
    owner = await api_client(sessionmaker)
    hook = await create_hook(client, owner, receiver.url(), ["form.submitted"])
    receiver.expect("hook", hook["secret"])
    url = f"/api/v1/webhooks/{hook['id']}"
    receiver.fail_next(1000, status=503)
    await submit(client)
    start = utcnow()

    # Half a day of failures: the owner sees since when, nothing is paused yet.
    clock = await rounds(sessionmaker, settings, start, until=start + timedelta(hours=12))
    failing = (await client.get(url, headers=owner)).json()
    assert failing["active"] is True and failing["paused_at"] is None and failing["failing_since"] is not None
    await submit(client)  # a second change, waiting behind the first

    # The first delivery fails for good after its ten attempts: nothing reached the receiver for a day.
    with caplog.at_level(logging.WARNING, logger="app.services.webhooks"):
        clock = await rounds(sessionmaker, settings, clock, until=start + timedelta(hours=30))
    first, second = await deliveries(sessionmaker)
    assert (first.status, first.attempts) == ("failed", webhook_service.MAX_ATTEMPTS)
    assert second.status == "pending" and 0 < second.attempts < webhook_service.MAX_ATTEMPTS
    paused = (await client.get(url, headers=owner)).json()
    assert (paused["active"], paused["paused_reason"]) == (False, "failing") and paused["paused_at"] is not None
    assert any(f"webhook {hook['id']} paused (failing)" in r.getMessage() for r in caplog.records)
    audit = (await client.get("/api/v1/audit", params={"action": "webhook.pause"}, headers=world.auth("admin"))).json()
    (line,) = audit["items"]
    assert line["target"] == f"webhook:{hook['id']}" and line["details"]["reason"] == "failing"
    assert line["details"]["last_status_code"] == 503 and line["actor"] == webhook_service.WORKER_LABEL

    # Paused: no new deliveries, no claims, however late.
    tried = len(await attempts(sessionmaker))
    await submit(client)
    assert len(await deliveries(sessionmaker)) == 2
    assert await deliver(sessionmaker, settings, now=clock + timedelta(days=7)) == 0
    assert len(await attempts(sessionmaker)) == tried

    # The receiver is back: the owner pings it, then resumes; what was waiting goes out now.
    receiver.fail_next(0)
    ping = (await client.post(f"{url}/test", headers=owner)).json()
    assert ping["delivered"] is True
    resumed = await client.post(f"{url}/resume", headers=owner)
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["active"] is True and body["paused_at"] is body["paused_reason"] is body["failing_since"] is None
    assert await deliver(sessionmaker, settings) == 1  # due at the real now, no backoff left to wait
    assert [d.status for d in await deliveries(sessionmaker)] == ["failed", "delivered"]
    assert (await client.get(url, headers=owner)).json()["failing_since"] is None
    resumes = (await client.get("/api/v1/audit", params={"action": "webhook.resume"}, headers=world.auth("admin"))).json()
    assert [(r["target"], r["details"]) for r in resumes["items"]] == [(f"webhook:{hook['id']}", {"was_paused": True})]


async def test_a_receiver_that_answers_again_within_the_day_is_not_paused(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver, events=["form.submitted"])
    receiver.fail_next(6, status=500)  # six attempts over about 45 minutes
    await submit(client)
    start = utcnow()
    await rounds(sessionmaker, settings, start, until=start + timedelta(days=2))
    (delivery,) = await deliveries(sessionmaker)
    assert (delivery.status, delivery.attempts) == ("delivered", 7)
    read = (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=world.auth("admin"))).json()
    assert read["active"] is True and read["failing_since"] is None and read["paused_at"] is None


async def test_an_old_failure_alone_does_not_pause_a_receiver(client, sessionmaker, settings, receiver):
    """Pausing takes a delivery that failed for good (its ten attempts, about a day) while nothing reached
    the receiver: a failure after a quiet spell, however long ago the streak began, does not."""
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver, events=["form.submitted"])
    url = f"/api/v1/webhooks/{hook['id']}"
    async with transaction(sessionmaker) as session:  # failing since three days, nothing sent since
        (await session.get(Webhook, hook["id"])).failing_since = utcnow() - timedelta(days=3)
    receiver.fail_next(1000, status=500)
    await submit(client)
    start = utcnow()
    assert await deliver(sessionmaker, settings, now=start) == 1
    assert (await client.get(url, headers=world.auth("admin"))).json()["active"] is True
    await rounds(sessionmaker, settings, start, until=start + timedelta(hours=30))
    (delivery,) = await deliveries(sessionmaker)
    assert (delivery.status, delivery.attempts) == ("failed", webhook_service.MAX_ATTEMPTS)
    assert (await client.get(url, headers=world.auth("admin"))).json()["paused_reason"] == "failing"


async def test_switching_a_paused_webhook_on_resumes_it_and_resuming_an_active_one_changes_nothing(
    client, sessionmaker, settings, receiver
):
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver, events=["form.submitted"])
    url = f"/api/v1/webhooks/{hook['id']}"
    same = (await client.post(f"{url}/resume", headers=world.auth("admin"))).json()
    assert same["active"] is True and same["paused_at"] is None
    await submit(client)
    receiver.fail_next(1, status=410)
    await deliver(sessionmaker, settings)
    gone = (await client.get(url, headers=world.auth("admin"))).json()
    assert (gone["active"], gone["paused_reason"]) == (False, "gone") and gone["paused_at"] is not None
    on = (await client.patch(url, json={"active": True}, headers=world.auth("admin"))).json()
    assert on["active"] is True and on["paused_at"] is None and on["paused_reason"] is None
    assert (await client.post("/api/v1/webhooks/999999/resume", headers=world.auth("admin"))).status_code == 404
