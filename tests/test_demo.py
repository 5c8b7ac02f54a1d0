"""The demo town: the numbers DESIGN quotes, reached through the real services."""

from __future__ import annotations

from sqlalchemy import func, select

from app.db import transaction
from app.models.paper import PaperBatch
from app.models import Activity, OpinionForm, Representative, ServicePoint, User, Workroom
from app.services import demo as demo_service
from app.services import stats as stats_service
from tests.support.logins import bearer, token_of


async def _load(sessionmaker, settings) -> bool:
    async with transaction(sessionmaker) as session:
        return await demo_service.load(session, settings=settings)


async def test_demo_town(client, sessionmaker, settings):
    """One load, every check of the town (a load takes seconds: the checks share it)."""
    assert await _load(sessionmaker, settings) is True
    await _has_107_forms_of_which_92_answered(client)
    await _has_its_shape(sessionmaker)
    await _has_a_month_of_rosters_with_check_ins(client, sessionmaker)
    # Not loaded twice: a second load finds the town and changes nothing.
    assert await _load(sessionmaker, settings) is False
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 107


async def _has_107_forms_of_which_92_answered(client):
    token = await token_of(client, "office", "minyi-office")
    summary = (await client.get("/api/v1/stats/summary", headers=bearer(token))).json()
    assert summary["collected"] == 107
    assert summary["answered"] == 92
    assert summary["answer_rate"] == round(92 / 107, 4)


async def _has_its_shape(sessionmaker):
    async with transaction(sessionmaker) as session:
        count = lambda model: session.scalar(select(func.count()).select_from(model))  # noqa: E731
        assert await count(Workroom) == 11
        assert 25 <= await count(Representative) <= 35
        assert await count(ServicePoint) >= 10
        place_types = set(await session.scalars(select(ServicePoint.place_type)))
        assert {"market", "village", "workshop"} <= place_types
        statuses = dict((await session.execute(
            select(OpinionForm.status, func.count()).group_by(OpinionForm.status))).all())
        assert statuses.get("answered", 0) + statuses.get("closed", 0) == 92
        assert {"submitted", "assigned", "answered", "closed", "declined"} <= set(statuses)
        assert len(set(await session.scalars(select(OpinionForm.category_id)))) >= 6
        assert len(set(await session.scalars(select(OpinionForm.workroom_id)))) >= 11
        months = {d.strftime("%Y-%m") for d in await session.scalars(select(OpinionForm.submitted_on))}
        assert len(months) >= 6
        assert set(await session.scalars(select(User.role))) == {"admin", "coordinator", "handler", "representative"}
        assert await stats_service.verify(session) == []
        # The paperwork (issue 20): activities over several months, most at a service-point session, and
        # a printed batch of paper forms with some entered.
        assert await count(Activity) >= 10
        assert await session.scalar(select(func.count()).where(Activity.service_point_id.is_not(None))) >= 5
        assert await count(PaperBatch) >= 1
        assert await session.scalar(select(func.count()).where(OpinionForm.paper_serial.is_not(None))) >= 1


async def _has_a_month_of_rosters_with_check_ins(client, sessionmaker):
    from datetime import timedelta

    from app.config import TZ
    from app.models import Shift, utcnow

    now = utcnow()
    async with transaction(sessionmaker) as session:
        shifts = list(await session.scalars(select(Shift).order_by(Shift.starts_at)))
    assert len(shifts) >= 11 * 6  # every workroom, two days a week, a month
    assert shifts[0].starts_at < now - timedelta(days=10) and shifts[-1].starts_at > now + timedelta(days=10)
    assert len({s.workroom_id for s in shifts}) == 11
    past = [s for s in shifts if s.ends_at <= now]
    kept = [s for s in past if s.checked_in_at is not None]
    assert 0 < len(kept) < len(past)  # most kept, a few missed
    assert all(s.checked_in_at is None for s in shifts if s.starts_at > now)
    by_rep: dict[int, list[Shift]] = {}
    for s in shifts:
        by_rep.setdefault(s.representative_id, []).append(s)
    for own in by_rep.values():  # never double-booked
        own.sort(key=lambda s: s.starts_at)
        assert all(a.ends_at <= b.starts_at for a, b in zip(own, own[1:]))
    days = {s.starts_at.astimezone(TZ).date() for s in shifts}
    token = await token_of(client, "office", "minyi-office")
    attendance = await client.get("/api/v1/attendance", params={"group": "workroom", "from": min(days).isoformat(),
                                                                "to": max(days).isoformat()},
                                  headers=bearer(token))
    assert attendance.status_code == 200, attendance.text
    rows = attendance.json()["items"]
    assert sum(r["planned"] for r in rows) == len(shifts)
    assert sum(r["checked_in"] for r in rows) == len(kept)
