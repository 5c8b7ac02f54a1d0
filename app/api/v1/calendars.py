"""API: iCalendar feeds of shifts and service point sessions, and the URLs to subscribe to them.

- ``GET /calendars/representatives/{id}.ics?token=`` and ``GET /calendars/workrooms/{code}.ics?token=``:
  the feeds (``text/calendar``), for calendar apps; the token in the URL is the only credential, and a
  wrong or missing one is a 404.
- ``GET /calendars/representatives/{id}`` → ``{"url"}`` (that representative's own account, coordinator,
  admin; the token is created on first use); ``POST .../reset`` → a new URL, the old one stops working.
- ``GET /calendars/workrooms/{code}`` and ``POST .../reset``: the same for a workroom (coordinator, admin).

The ``.ics`` routes are declared before the JSON ones: ``{representative_id}`` would otherwise see "5.ics".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request, Response
from pydantic import BaseModel

from app.http.deps import IdPath, PrincipalDep, SessionDep, public_url_for
from app.http.downloads import attachment
from app.http.routing import GuardedRouter
from app.schemas.common import problem
from app.services import calendars as calendar_service
from app.services.calendars import FeedKind

router = GuardedRouter(prefix="/calendars", tags=["calendars"])

CodePath = Annotated[str, Path(max_length=32)]
TokenQ = Annotated[str | None, Query(description="订阅地址中的令牌")]
ICS = "text/calendar; charset=utf-8"


class FeedUrl(BaseModel):
    url: str


def _ics(body: bytes, filename: str, fallback: str) -> Response:
    """Calendar apps subscribe and ignore the name; a browser opening the URL saves the file under it."""
    return Response(body, media_type=ICS, headers={
        **attachment(filename, fallback=fallback),
        # The URL is a secret: keep it out of shared caches and out of Referer headers.
        "Cache-Control": "private, no-cache",
        "Referrer-Policy": "no-referrer",
    })


def _url(request: Request, route: str, token: str, **params: str) -> FeedUrl:
    return FeedUrl(url=public_url_for(request, route, query={"token": token}, **params))


@router.get(
    "/representatives/{representative_id}.ics", name="representative_calendar_feed",
    response_class=Response, responses={200: {"content": {"text/calendar": {}}}, 404: problem("Unknown or wrong token")},
    summary="A representative's shifts and service point sessions (iCalendar)",
)
async def representative_feed(representative_id: IdPath, session: SessionDep, token: TokenQ = None) -> Response:
    body = await calendar_service.representative_feed(session, representative_id=representative_id, token=token)
    return _ics(body, f"值班日历-代表{representative_id}.ics", f"minyi-representative-{representative_id}.ics")


@router.get(
    "/workrooms/{code}.ics", name="workroom_calendar_feed",
    response_class=Response, responses={200: {"content": {"text/calendar": {}}}, 404: problem("Unknown or wrong token")},
    summary="A workroom's shifts and service point sessions (iCalendar)",
)
async def workroom_feed(code: CodePath, session: SessionDep, token: TokenQ = None) -> Response:
    body = await calendar_service.workroom_feed(session, code=code, token=token)
    return _ics(body, f"值班日历-{code}.ics", f"minyi-workroom-{code}.ics")


@router.get("/representatives/{representative_id}", response_model=FeedUrl)
async def representative_feed_url(
    representative_id: IdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> FeedUrl:
    calendar_service.ensure_may_manage_representative_feed(principal, representative_id)
    await calendar_service.representative_or_raise(session, representative_id)
    token = await calendar_service.feed_token(session, kind=FeedKind.representative, owner_id=representative_id)
    return _url(request, "representative_calendar_feed", token, representative_id=str(representative_id))


@router.post("/representatives/{representative_id}/reset", response_model=FeedUrl)
async def reset_representative_feed(
    representative_id: IdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> FeedUrl:
    calendar_service.ensure_may_manage_representative_feed(principal, representative_id)
    await calendar_service.representative_or_raise(session, representative_id)
    token = await calendar_service.reset_token(session, kind=FeedKind.representative, owner_id=representative_id)
    return _url(request, "representative_calendar_feed", token, representative_id=str(representative_id))


@router.get("/workrooms/{code}", response_model=FeedUrl)
async def workroom_feed_url(code: CodePath, request: Request, principal: PrincipalDep, session: SessionDep) -> FeedUrl:
    calendar_service.ensure_may_manage_workroom_feed(principal)
    workroom = await calendar_service.workroom_or_raise(session, code)
    token = await calendar_service.feed_token(session, kind=FeedKind.workroom, owner_id=workroom.id)
    return _url(request, "workroom_calendar_feed", token, code=workroom.code)


@router.post("/workrooms/{code}/reset", response_model=FeedUrl)
async def reset_workroom_feed(code: CodePath, request: Request, principal: PrincipalDep, session: SessionDep) -> FeedUrl:
    calendar_service.ensure_may_manage_workroom_feed(principal)
    workroom = await calendar_service.workroom_or_raise(session, code)
    token = await calendar_service.reset_token(session, kind=FeedKind.workroom, owner_id=workroom.id)
    return _url(request, "workroom_calendar_feed", token, code=workroom.code)
