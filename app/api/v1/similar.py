"""Similar forms and hot topics (issue 19.2, 19.4; services/similar_forms.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from app.http.deps import IdPath, PrincipalDep, SessionDep, SettingsDep
from app.http.routing import GuardedRouter
from app.models import Scope, utcnow
from app.schemas.similar import HotTopicRead, HotTopics, SimilarForm, SimilarList
from app.services import forms as form_service
from app.services import similar_forms

router = GuardedRouter(tags=["similar"])


@router.get("/forms/{form_id}/similar", response_model=SimilarList,
            summary="The forms that report the same issue as this one (staff, as the forms list)")
async def similar(
    form_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SimilarList:
    form = await form_service.get_visible(session, principal, form_id, with_events=False)
    visible = await form_service.visibility_condition(session, principal)
    found = await similar_forms.similar_to(session, form, visible=visible, settings=settings, limit=limit)
    return SimilarList(items=[SimilarForm(**vars(s)) for s in found])


@router.get("/stats/hot-topics", response_model=HotTopics,
            summary="This week's or this month's topics: groups of similar forms, with their trend")
async def hot_topics(
    principal: PrincipalDep, session: SessionDep,
    period: Annotated[Literal["week", "month"], Query(description="week: the last 7 days; month: the last 30")] = "week",
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> HotTopics:
    principal.require_staff_or_scope(Scope.stats_read)
    now = utcnow()
    start, end = similar_forms.period_window(period, now)
    topics = await similar_forms.hot_topics(session, period=period, now=now, limit=limit)
    return HotTopics(period=period, date_from=start, date_to=end, items=[
        HotTopicRead(topic_id=t.topic_id, count=t.count, previous=t.previous, trend=t.trend, change=t.change,
                     keywords=t.keywords, workrooms=t.workrooms, first_form_id=t.first_form_id,
                     forms_url=f"/office/topics/{t.topic_id}?period={period}")
        for t in topics
    ])
