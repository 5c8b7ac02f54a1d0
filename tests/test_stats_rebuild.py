"""`minyi stats rebuild`: counters recomputed set-based from the forms equal the live counters."""

from __future__ import annotations

from sqlalchemy import update

from app.db import transaction
from app.models import StatCell
from app.services import demo as demo_service
from app.services import stats as stats_service


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
