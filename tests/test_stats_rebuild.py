"""`minyi stats rebuild`: counters recomputed set-based from the forms equal the live counters."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from app import migrate
from app.db import create_engine, create_sessionmaker, transaction
from app.models import OpinionForm, StatCell, utcnow
from app.services import demo as demo_service
from app.services import stats as stats_service
from app.services import stats_current
from tests.conftest import make_settings


async def test_rebuild_and_verify_agree_with_the_live_counters_and_find_every_tampering(sessionmaker, settings):
    """On the demo town (loaded once: a load takes seconds, the checks share it):

    - ``rebuild`` reproduces the live counters exactly;
    - ``verify`` recounts one month at a time (issue 18.5: bounded memory at 10,000,000 forms), so the
      months' recounts must agree with the whole-table recount;
    - tampered counters are found and ``rebuild`` repairs them;
    - a stored cell in a month without forms, before the first form's month or after the last, up to the
      calendar's last month, is still reported."""
    from datetime import date

    async with transaction(sessionmaker) as session:
        await demo_service.load(session, settings=settings)
    async with transaction(sessionmaker) as session:
        live = await stats_service.stored(session)
        await stats_service.rebuild(session)
    async with transaction(sessionmaker) as session:
        assert await stats_service.stored(session) == live
        assert await stats_service.verify(session) == []

    async with transaction(sessionmaker) as session:
        months = {d.replace(day=1) for d in await session.scalars(select(OpinionForm.submitted_on))}
        assert len(months) >= 2  # the demo town spans months: the walk crosses month ends
        whole = await stats_service.recount(session)
        by_month: dict = {}
        for month in sorted(months):
            following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
            by_month.update(await stats_service.recount(session, start=month, end=following))
        assert by_month == whole == await stats_service.stored(session)

    async with transaction(sessionmaker) as session:
        await session.execute(update(StatCell).values(answered=StatCell.answered + 3))
    async with transaction(sessionmaker) as session:
        assert await stats_service.verify(session) != []
        await stats_service.rebuild(session)
    async with transaction(sessionmaker) as session:
        assert await stats_service.verify(session) == []
        summary = await stats_service.summary(session, stats_service.StatsFilter())
        assert (summary["collected"], summary["answered"]) == (107, 92)

    strays = [date(2001, 1, 1), date(2001, 1, 15), date(9999, 12, 31)]
    async with transaction(sessionmaker) as session:
        for day in strays:
            session.add(StatCell(grain="d", period=day, workroom_id=0, category_id=0, month=day.replace(day=1),
                                 collected=1))
    async with transaction(sessionmaker) as session:
        differences = await stats_service.verify(session)
    assert [(d["period"], d["stored"]["collected"], d["expected"]["collected"]) for d in differences] == [
        (day.isoformat(), 1, 0) for day in strays]


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
