"""iCalendar (RFC 5545) feeds of duty shifts (值班) and mobile service point sessions (流动服务点).

Two kinds of feed: a representative's (their shifts and the sessions they attend) and a workroom's (its shifts
and its sessions). A feed's URL carries an unguessable token (``secrets.token_urlsafe(32)``) stored in
``CalendarFeed``: calendar apps cannot send our bearer tokens, so the URL itself is the read-only
capability. A wrong or missing token is a 404 that looks exactly like an unknown owner, and the token is
compared in constant time. Resetting the token replaces it, so the old URL stops working at once.

Events run from 30 days ago to 180 days ahead; times are written in Asia/Shanghai with its VTIMEZONE.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.config import TZ

if TYPE_CHECKING:  # icalendar is imported when a feed is written: ~3 MB of every worker otherwise
    from icalendar import Calendar, Event
from app.errors import NotFound, PermissionDenied
from app.models import (
    CalendarFeed,
    PlaceType,
    Representative,
    ServicePoint,
    Shift,
    Workroom,
    service_point_representative,
    utcnow,
)
from app.services.auth import Principal

PAST = timedelta(days=30)
AHEAD = timedelta(days=180)
REFRESH = timedelta(hours=1)  # how often we ask calendar apps to poll
PRODID = "-//Minyi//Minyi 民意 Rosters//ZH"
UID_DOMAIN = "minyi"

PLACE_LABELS = {
    PlaceType.market: "集市", PlaceType.village: "村组", PlaceType.workshop: "车间",
    PlaceType.event: "活动", PlaceType.other: "其他",
}


class FeedKind(StrEnum):
    representative = "representative"
    workroom = "workroom"


def _feed_missing() -> NotFound:
    # One answer for an unknown owner, a missing token and a wrong one: the URL reveals nothing.
    return NotFound("日历不存在或链接已失效。", code="calendar_not_found")


# --- who may see a feed's URL --------------------------------------------------------------------------


def ensure_may_manage_representative_feed(principal: Principal, representative_id: int) -> None:
    """The representative's own account, or a coordinator or admin."""
    user = principal.require_staff()
    if principal.is_office or user.representative_id == representative_id:
        return
    raise PermissionDenied("只能查看本人的日历订阅地址。", code="forbidden")


def ensure_may_manage_workroom_feed(principal: Principal) -> None:
    user = principal.require_staff()
    if not principal.is_office:
        raise PermissionDenied(f"账号 {user.username} 无权管理工作室的日历订阅。", code="forbidden")


async def representative_or_raise(session: AsyncSession, representative_id: int) -> Representative:
    representative = await session.get(Representative, representative_id)
    if representative is None:
        raise NotFound(f"党代表 {representative_id} 不存在。", code="representative_not_found")
    return representative


async def workroom_or_raise(session: AsyncSession, code: str) -> Workroom:
    workroom = await session.scalar(select(Workroom).where(Workroom.code == code))
    if workroom is None:
        raise NotFound(f"工作室 {code} 不存在。", code="workroom_not_found")
    return workroom


# --- tokens ------------------------------------------------------------------------------------------


async def _feed(session: AsyncSession, kind: FeedKind, owner_id: int) -> CalendarFeed | None:
    return await session.scalar(
        select(CalendarFeed).where(CalendarFeed.kind == kind.value, CalendarFeed.owner_id == owner_id)
    )


async def feed_token(session: AsyncSession, *, kind: FeedKind, owner_id: int) -> str:
    """The feed's token, created on first use. Two first uses at once: one insert wins the unique index,
    the other reads the winner's token."""
    feed = await _feed(session, kind, owner_id)
    if feed is not None:
        return feed.token
    try:
        async with session.begin_nested():
            feed = CalendarFeed(kind=kind.value, owner_id=owner_id, token=secrets.token_urlsafe(32))
            session.add(feed)
    except IntegrityError:
        feed = await _feed(session, kind, owner_id)
        if feed is None:  # pragma: no cover - the conflicting row vanished again
            raise
    return feed.token


async def reset_token(session: AsyncSession, *, kind: FeedKind, owner_id: int) -> str:
    feed = await _feed(session, kind, owner_id)
    if feed is None:
        return await feed_token(session, kind=kind, owner_id=owner_id)
    feed.token = secrets.token_urlsafe(32)
    feed.created_at = utcnow()
    await session.flush()
    return feed.token


async def _check_token(session: AsyncSession, kind: FeedKind, owner_id: int, token: str | None) -> None:
    feed = await _feed(session, kind, owner_id)
    # Compared as bytes: compare_digest refuses non-ASCII str, and a token from a URL may be anything.
    expected = feed.token.encode() if feed is not None else secrets.token_bytes(32)
    if not secrets.compare_digest(expected, (token or "").encode()) or feed is None or not token:
        raise _feed_missing()


# --- the feeds ---------------------------------------------------------------------------------------


def _calendar(name: str) -> Calendar:
    from icalendar import Calendar, vDuration

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", "Asia/Shanghai")
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))  # an X- property: typed by hand, else it is text
    return calendar


def _event(uid: str, *, stamp: datetime, starts_at: datetime, ends_at: datetime, summary: str,
           location: str, description: str) -> Event:
    from icalendar import Event

    event = Event()
    event.add("uid", f"{uid}@{UID_DOMAIN}")
    event.add("dtstamp", stamp)
    event.add("dtstart", starts_at.astimezone(TZ))
    event.add("dtend", ends_at.astimezone(TZ))
    event.add("summary", summary)
    if location:
        event.add("location", location)
    if description:
        event.add("description", description)
    event.add("status", "CONFIRMED")
    return event


def _shift_event(shift: Shift, *, stamp: datetime, for_workroom: bool) -> Event:
    workroom = shift.workroom
    who = shift.representative.name
    return _event(
        f"shift-{shift.id}", stamp=stamp, starts_at=shift.starts_at, ends_at=shift.ends_at,
        summary=f"值班：{who}" if for_workroom else f"值班：{workroom.name}",
        location=workroom.address or workroom.name,
        description=f"{workroom.name}（{workroom.code}）党代表 {who} 值班。",
    )


def _session_event(point: ServicePoint, *, stamp: datetime) -> Event:
    names = "、".join(r.name for r in point.representatives) or "待定"
    place = PLACE_LABELS.get(point.place_type, "其他")  # StrEnum keys: a plain string finds them
    return _event(
        f"service-point-{point.id}", stamp=stamp, starts_at=point.starts_at, ends_at=point.ends_at,
        summary=f"流动服务点：{point.title}", location=point.location or point.workroom.name,
        description=f"{point.workroom.name}流动服务点（{place}）。参加的党代表：{names}。",
    )


def _finish(calendar: Calendar, events: Sequence[Event], *, first: datetime, last: datetime) -> bytes:
    events = sorted(events, key=lambda e: (e.decoded("dtstart"), str(e["uid"])))
    for event in events:
        calendar.add_component(event)
    # The VTIMEZONE covers the window and every event in it, even one that began before the window opened
    # (Asia/Shanghai has kept +08:00 since 1991, so it is a single STANDARD block).
    starts = [first.astimezone(TZ), *(e.decoded("dtstart") for e in events)]
    ends = [last.astimezone(TZ), *(e.decoded("dtend") for e in events)]
    calendar.add_missing_timezones(first_date=min(starts).date(), last_date=max(ends).date() + timedelta(days=1))
    return calendar.to_ical()


def _shifts_query(first: datetime, last: datetime) -> Select[tuple[Shift]]:
    return (
        select(Shift)
        .options(selectinload(Shift.workroom), selectinload(Shift.representative))
        .where(Shift.ends_at > first, Shift.starts_at < last)
        .order_by(Shift.starts_at, Shift.id)
    )


def _sessions_query(first: datetime, last: datetime) -> Select[tuple[ServicePoint]]:
    return (
        select(ServicePoint)
        .options(selectinload(ServicePoint.workroom), selectinload(ServicePoint.representatives))
        .where(ServicePoint.ends_at > first, ServicePoint.starts_at < last)
        .order_by(ServicePoint.starts_at, ServicePoint.id)
    )


async def representative_feed(
    session: AsyncSession, *, representative_id: int, token: str | None, now: datetime | None = None
) -> bytes:
    await _check_token(session, FeedKind.representative, representative_id, token)
    representative = await session.get(Representative, representative_id)
    if representative is None:
        raise _feed_missing()
    now = now or utcnow()
    first, last = now - PAST, now + AHEAD
    shifts = await session.scalars(_shifts_query(first, last).where(Shift.representative_id == representative_id))
    points = await session.scalars(
        _sessions_query(first, last).where(
            ServicePoint.id.in_(
                select(service_point_representative.c.service_point_id).where(
                    service_point_representative.c.representative_id == representative_id
                )
            )
        )
    )
    events = [_shift_event(s, stamp=now, for_workroom=False) for s in shifts]
    events += [_session_event(p, stamp=now) for p in points]
    return _finish(_calendar(f"{representative.name} · 值班与流动服务点"), events, first=first, last=last)


async def workroom_feed(session: AsyncSession, *, code: str, token: str | None, now: datetime | None = None) -> bytes:
    workroom = await session.scalar(select(Workroom).where(Workroom.code == code))
    # An unknown workroom still compares a token, so it answers like a wrong token, in about the same time.
    await _check_token(session, FeedKind.workroom, workroom.id if workroom else 0, token)
    if workroom is None:  # pragma: no cover - no feed row has owner 0, so _check_token has refused already
        raise _feed_missing()
    now = now or utcnow()
    first, last = now - PAST, now + AHEAD
    shifts = await session.scalars(_shifts_query(first, last).where(Shift.workroom_id == workroom.id))
    points = await session.scalars(_sessions_query(first, last).where(ServicePoint.workroom_id == workroom.id))
    events = [_shift_event(s, stamp=now, for_workroom=True) for s in shifts]
    events += [_session_event(p, stamp=now) for p in points]
    return _finish(_calendar(f"{workroom.name} · 值班与流动服务点"), events, first=first, last=last)
