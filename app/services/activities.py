"""The register of activities (issue 20.2): what each workroom did, who was there, how many came.

``activity_counts`` is what the statistics, the representatives' records and the briefs count: every
caller counts activities the same way, by the day they were held (local days, inclusive bounds).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ACTIVITY_KIND_LABELS, Activity, activity_representative


async def activity_counts(
    session: AsyncSession,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    workroom_id: int | None = None,
    representative_id: int | None = None,
) -> dict[str, Any]:
    """``{"activities": n, "attendance": people, "by_kind": {kind: n for every kind}}`` for the activities
    held in [date_from, date_to] (either bound may be None), of one workroom and/or with one representative
    present when asked."""
    query = select(Activity.kind, func.count(Activity.id), func.coalesce(func.sum(Activity.attendance), 0))
    if date_from is not None:
        query = query.where(Activity.held_on >= date_from)
    if date_to is not None:
        query = query.where(Activity.held_on <= date_to)
    if workroom_id is not None:
        query = query.where(Activity.workroom_id == workroom_id)
    if representative_id is not None:
        query = query.where(
            Activity.id.in_(
                select(activity_representative.c.activity_id).where(
                    activity_representative.c.representative_id == representative_id
                )
            )
        )
    rows = (await session.execute(query.group_by(Activity.kind))).all()
    by_kind = {kind: 0 for kind in ACTIVITY_KIND_LABELS}
    attendance = 0
    for kind, count, people in rows:
        by_kind[kind] = by_kind.get(kind, 0) + int(count)
        attendance += int(people)
    return {"activities": sum(by_kind.values()), "attendance": attendance, "by_kind": by_kind}
