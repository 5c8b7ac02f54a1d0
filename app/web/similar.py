"""Pages of similar forms (issue 19): the "已有人反映过" hint while a form is written, a topic's forms, and the
hot topics the office dashboard shows (services/similar_forms.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import TooManyRequests
from app.http import abuse
from app.http.deps import IdPath, SessionDep, SettingsDep
from app.http.routing import GuardedRouter
from app.models import utcnow
from app.services import forms as form_service
from app.services import similar_forms
from app.web.render import render
from app.web.session import PagePrincipal, SignedIn

router = GuardedRouter()

HINTS_PER_IP_PER_MINUTE = 60  # one per pause in typing is a few a minute; more is someone mining
PERIOD_LABELS = {"week": "最近 7 天", "month": "最近 30 天"}
TREND_LABELS = {"up": "↑ 上升", "down": "↓ 下降", "same": "→ 持平"}


@router.get("/similar-hint")
async def similar_hint(
    request: Request, principal: PagePrincipal, session: SessionDep, settings: SettingsDep,
    content: Annotated[str, Query(max_length=2000)] = "",
    location: Annotated[str, Query(max_length=200)] = "",
    workroom_code: Annotated[str, Query(max_length=32)] = "",
    service_point_id: Annotated[str, Query(max_length=12)] = "",
    source: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The hint under a form's content box (htmx, on a pause in typing): up to three open forms of the
    same workroom that report the same issue, snippet and status only; public ones unless staff ask.
    Nothing to show, or asked too often: an empty hint (the form is sent all the same)."""
    try:
        await request.app.state.rate_limiter.hit(f"ip:hint:{abuse.client_ip(request)}", HINTS_PER_IP_PER_MINUTE)
    except TooManyRequests:
        return render(request, "public/_similar_hint.html", {"hints": []}, headers=_NO_STORE)
    # The area: the page's workroom or service point (public pages), or the representative's chosen source
    # ("w:<code>" or "p:<id>").
    kind, _, value = source.partition(":")
    if kind == "w":
        workroom_code = value
    elif kind == "p":
        service_point_id = value
    workroom_id = await similar_forms.area_of(session, workroom_code=workroom_code, service_point_id=service_point_id)
    staff = principal.user is not None
    visible = await form_service.visibility_condition(session, principal) if staff else None
    found = await similar_forms.hints(session, content=content, location=location, workroom_id=workroom_id,
                                     staff=staff, visible=visible, settings=settings)
    return render(request, "public/_similar_hint.html", {"hints": found}, headers=_NO_STORE)


_NO_STORE = {"Cache-Control": "no-store"}


async def hot_topics(session: AsyncSession) -> dict[str, list[Any]]:
    """The dashboard's hot topics of the week and of the month."""
    now = utcnow()
    return {period: await similar_forms.hot_topics(session, period=period, now=now) for period in PERIOD_LABELS}


@router.get("/office/topics/{topic_id}")
async def topic_page(
    topic_id: IdPath, request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep,
    period: Literal["week", "month", "all"] = "all",
) -> Response:
    topic = await similar_forms.get_topic(session, topic_id)
    since = similar_forms.period_window(period, utcnow())[0] if period != "all" else None
    visible = await form_service.visibility_condition(session, principal)
    ids = await similar_forms.topic_form_ids(session, topic_id, visible=visible, since=since)
    forms = await similar_forms.form_rows(session, ids)
    return render(request, "office/topic.html", {
        "topic": topic, "keywords": [w for w in topic.keywords.split("、") if w], "forms": forms,
        "period": period, "period_labels": {**PERIOD_LABELS, "all": "全部"},
    })
