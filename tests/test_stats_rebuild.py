"""`minyi stats rebuild`: counters recomputed set-based from the forms equal the live counters."""

from __future__ import annotations

from sqlalchemy import func, select, update

from app import migrate
from app.db import create_engine, create_sessionmaker, transaction
from app.models import OpinionForm, StatCell, utcnow
from app.services import demo as demo_service
from app.services import stats as stats_service
from app.services import stats_current
from tests.conftest import make_settings


async def test_rebuild_reproduces_the_live_counters_exactly(sessionmaker, settings):
    async with transaction(sessionmaker) as session:
        await demo_service.load(session, settings=settings)
    async with transaction(sessionmaker) as session:
        live = await stats_service.stored(session)
        await stats_service.rebuild(session)
    async with transaction(sessionmaker) as session:
        assert await stats_service.stored(session) == live
        assert await stats_service.verify(session) == []


async def test_rebuild_repairs_tampered_counters(sessionmaker, settings):
    async with transaction(sessionmaker) as session:
        await demo_service.load(session, settings=settings)
    async with transaction(sessionmaker) as session:
        await session.execute(update(StatCell).values(answered=StatCell.answered + 3))
    async with transaction(sessionmaker) as session:
        assert await stats_service.verify(session) != []
        await stats_service.rebuild(session)
    async with transaction(sessionmaker) as session:
        assert await stats_service.verify(session) == []
        summary = await stats_service.summary(session, stats_service.StatsFilter())
        assert (summary["collected"], summary["answered"]) == (107, 92)


async def test_migration_0013_fills_the_state_gauges_of_existing_counters(empty_db_url, settings):
    """A database counted before the gauges and answer buckets existed: upgrading fills them equal to a
    recount, so ``current`` and the days-to-answer chart are right from the first read (the demo town's
    forms are in every open state, and many are answered)."""
    await migrate.upgrade(empty_db_url)
    engine = create_engine(make_settings(empty_db_url))
    maker = create_sessionmaker(engine)
    try:
        async with transaction(maker) as session:
            await demo_service.load(session, settings=settings)
            await session.execute(update(StatCell).values(now_submitted=99, answered_le1=99))  # replaced, not kept
        await engine.dispose()
        await migrate.downgrade(empty_db_url, "0012")
        await migrate.upgrade(empty_db_url)
        async with transaction(maker) as session:
            assert await stats_service.verify(session) == []
            current = (await stats_service.summary(session, stats_service.StatsFilter()))["current"]
            by_status = await stats_current.recount(session, now=utcnow())
            buckets = await stats_service.answer_days(session, stats_service.StatsFilter())
            answered = await session.scalar(
                select(func.count()).select_from(OpinionForm).where(OpinionForm.answer_working_days.is_not(None)))
        assert current == by_status
        assert current["pending_triage"] and current["in_progress"] and current["awaiting_followup"], current
        assert sum(b["answered"] for b in buckets) == answered > 0
    finally:
        await engine.dispose()
