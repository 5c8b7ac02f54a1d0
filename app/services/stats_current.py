"""The summary's ``current`` counts held against the forms list (``minyi stats verify``).

Apart from ``stats`` because it reads the list's own conditions from ``forms``, which imports ``stats``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import FormStatus, OpinionForm, utcnow
from app.services import forms as form_service
from app.services import stats as stats_service
from app.services import working_days


async def recount(session: AsyncSession, *, now: datetime) -> dict[str, int]:
    """Each current count as the forms list counts it: one plain count per state, with the conditions
    ``forms.filtered_query`` applies for the filter ``stats.CURRENT_FILTERS`` names."""
    await working_days.load(session)
    conditions = {
        "pending_triage": OpinionForm.status == FormStatus.submitted,
        "in_progress": OpinionForm.status == FormStatus.assigned,
        "awaiting_followup": OpinionForm.status == FormStatus.answered,
        "overdue": form_service.supervision_condition("overdue", now),
        "escalated": form_service.supervision_condition("escalated", now),
        "extension_requested": form_service.pending_extension_condition(),
    }
    return {
        state: int(await session.scalar(select(func.count()).select_from(OpinionForm).where(conditions[state])) or 0)
        for state in stats_service.CURRENT_STATES
    }


async def verify(session: AsyncSession, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """The states whose count in the summary differs from the list's count; empty when they agree."""
    now = now or utcnow()
    shown = (await stats_service.summary(session, stats_service.StatsFilter(), now=now))["current"]
    listed = await recount(session, now=now)
    return [
        {"table": "current", "key": state, "expected": listed[state], "stored": shown[state]}
        for state in stats_service.CURRENT_STATES if listed[state] != shown[state]
    ]
