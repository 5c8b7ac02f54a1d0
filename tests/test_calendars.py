"""iCalendar feeds of shifts and service point sessions: valid RFC 5545, secret URLs, resettable."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
from icalendar import Calendar

from app.config import TZ
from app.db import transaction
from app.models import Shift
from tests.factories import World, build_world


def _at(days: int, hour: int) -> datetime:
    day = datetime.now(TZ).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


async def _shift(sessionmaker: Any, world: World, who: str, workroom: str, days: int, start: int, end: int) -> int:
    async with transaction(sessionmaker) as session:
        shift = Shift(
            workroom_id=world.workrooms[workroom].id, representative_id=world.representatives[who].id,
            starts_at=_at(days, start), ends_at=_at(days, end),
        )
        session.add(shift)
        await session.flush()
        return shift.id


async def _session(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    body = {
        "workroom_code": "LS-01", "title": "洛社菜场流动服务点", "place_type": "market", "location": "洛社菜场东门",
        "starts_at": _at(5, 8).isoformat(), "ends_at": _at(5, 11).isoformat(),
        "representative_ids": [world.representatives["rep"].id],
    }
    body.update(fields)
    response = await client.post("/api/v1/service-points", json=body, headers=world.auth("coordinator"))
    assert response.status_code == 201, response.text
    return response.json()


async def _feed_url(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> str:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    url = urlsplit(response.json()["url"])
    assert url.path.endswith(".ics") and url.query.startswith("token=")
    return f"{url.path}?{url.query}"


def _events(body: bytes) -> dict[str, Any]:
    calendar = Calendar.from_ical(body)
    return {str(event["uid"]): event for event in calendar.walk("VEVENT")}


async def test_representative_feed_lists_their_shifts_and_sessions_at_the_right_times(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    mine = await _shift(sessionmaker, world, "rep", "LS-01", 1, 9, 12)
    await _shift(sessionmaker, world, "rep2", "LS-02", 1, 9, 12)  # someone else's
    await _shift(sessionmaker, world, "rep", "LS-01", -60, 9, 12)  # before the window
    await _shift(sessionmaker, world, "rep", "LS-01", 200, 9, 12)  # after it
    attended = await _session(client, world)
    await _session(client, world, title="李代表的会场", representative_ids=[world.representatives["rep2"].id])

    url = await _feed_url(client, f"/api/v1/calendars/representatives/{world.representatives['rep'].id}",
                          world.auth("rep"))
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"

    calendar = Calendar.from_ical(response.content)
    assert str(calendar["version"]) == "2.0" and str(calendar["prodid"])
    assert str(calendar["x-wr-timezone"]) == "Asia/Shanghai" and "张代表" in str(calendar["x-wr-calname"])
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["Asia/Shanghai"]
    assert b"\r\nX-PUBLISHED-TTL:PT1H\r\n" in response.content
    assert b"\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in response.content

    events = _events(response.content)
    assert set(events) == {f"shift-{mine}@minyi", f"service-point-{attended['id']}@minyi"}
    shift = events[f"shift-{mine}@minyi"]
    assert str(shift["summary"]) == "值班：镇区党代表工作室"
    assert str(shift["location"]) == "洛社镇"
    assert shift.decoded("dtstart") == _at(1, 9) and shift.decoded("dtend") == _at(1, 12)
    assert shift.decoded("dtstart").utcoffset() == timedelta(hours=8)
    assert shift["dtstart"].params["TZID"] == "Asia/Shanghai"
    assert shift.decoded("dtstamp").tzinfo is not None
    point = events[f"service-point-{attended['id']}@minyi"]
    assert str(point["summary"]) == "流动服务点：洛社菜场流动服务点"
    assert str(point["location"]) == "洛社菜场东门"
    assert point.decoded("dtstart") == _at(5, 8) and point.decoded("dtend") == _at(5, 11)
    assert "张代表" in str(point["description"])


async def test_uids_are_stable_and_the_feed_is_folded_crlf_text(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    await _shift(sessionmaker, world, "rep", "LS-01", 2, 14, 17)
    long_title = "石塘湾村老年活动中心门口的流动服务点，欢迎村民反映道路、环境与民生问题" * 2
    await _session(client, world, title=long_title[:100], location="石塘湾村" * 20)
    url = await _feed_url(client, f"/api/v1/calendars/representatives/{world.representatives['rep'].id}",
                          world.auth("coordinator"))
    first, second = (await client.get(url)).content, (await client.get(url)).content
    assert set(_events(first)) == set(_events(second)) and len(_events(first)) == 2

    assert first.endswith(b"\r\n")
    lines = first.split(b"\r\n")[:-1]
    assert b"\n" not in b"".join(lines) and b"\r" not in b"".join(lines)  # every line ends with CRLF, no bare LF
    assert max(len(line) for line in lines) <= 75
    assert any(line.startswith(b" ") for line in lines)  # the long Chinese text was folded ...
    for line in lines:
        line.decode("utf-8")  # ... between characters, never inside one's UTF-8 bytes
    assert lines[0] == b"BEGIN:VCALENDAR" and lines[-1] == b"END:VCALENDAR"
    summary = next(e for e in _events(first).values() if str(e["uid"]).startswith("service-point"))["summary"]
    assert str(summary) == f"流动服务点：{long_title[:100]}"  # unfolded intact


async def test_workroom_feed_lists_its_shifts_and_sessions(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    here = await _shift(sessionmaker, world, "rep", "LS-01", 1, 9, 12)
    await _shift(sessionmaker, world, "rep2", "LS-02", 1, 9, 12)
    point = await _session(client, world, representative_ids=[world.representatives["rep2"].id])
    await _session(client, world, workroom_code="LS-02", title="别处的会场")

    url = await _feed_url(client, "/api/v1/calendars/workrooms/LS-01", world.auth("coordinator"))
    response = await client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "text/calendar; charset=utf-8"
    events = _events(response.content)
    assert set(events) == {f"shift-{here}@minyi", f"service-point-{point['id']}@minyi"}
    assert str(events[f"shift-{here}@minyi"]["summary"]) == "值班：张代表"
    starts = events[f"shift-{here}@minyi"].decoded("dtstart")
    assert starts == _at(1, 9) and starts.astimezone(timezone.utc).hour == 1  # 09:00 in Shanghai is 01:00 UTC


async def test_a_wrong_or_missing_token_is_a_404_like_an_unknown_owner(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    url = await _feed_url(client, f"/api/v1/calendars/representatives/{rep_id}", world.auth("rep"))
    path = url.split("?")[0]
    unknown = await client.get("/api/v1/calendars/representatives/999999.ics?token=x")
    for attempt in (
        await client.get(path),
        await client.get(path, params={"token": "wrong"}),
        await client.get(path, params={"token": "令牌"}),
        await client.get(  # another representative's feed with this one's token
            f"/api/v1/calendars/representatives/{world.representatives['rep2'].id}.ics?{url.split('?')[1]}"
        ),
        await client.get("/api/v1/calendars/workrooms/LS-01.ics", params={"token": url.split("token=")[1]}),
        await client.get("/api/v1/calendars/workrooms/NOPE.ics", params={"token": "x"}),
    ):
        assert attempt.status_code == 404, attempt.text
        assert attempt.json() == unknown.json()


async def test_reset_replaces_the_url_and_the_old_one_stops_working(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    old = await _feed_url(client, f"/api/v1/calendars/representatives/{rep_id}", world.auth("rep"))
    assert await _feed_url(client, f"/api/v1/calendars/representatives/{rep_id}", world.auth("rep")) == old
    reset = await client.post(f"/api/v1/calendars/representatives/{rep_id}/reset", headers=world.auth("rep"))
    assert reset.status_code == 200
    new = urlsplit(reset.json()["url"])
    assert (await client.get(old)).status_code == 404
    assert (await client.get(f"{new.path}?{new.query}")).status_code == 200
    assert await _feed_url(client, f"/api/v1/calendars/representatives/{rep_id}", world.auth("admin")) == f"{new.path}?{new.query}"

    old_room = await _feed_url(client, "/api/v1/calendars/workrooms/LS-02", world.auth("admin"))
    reset = await client.post("/api/v1/calendars/workrooms/LS-02/reset", headers=world.auth("coordinator"))
    assert reset.status_code == 200
    assert (await client.get(old_room)).status_code == 404
    new = urlsplit(reset.json()["url"])
    assert (await client.get(f"{new.path}?{new.query}")).status_code == 200


async def test_only_the_representative_or_the_office_sees_a_feed_url(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    path = f"/api/v1/calendars/representatives/{rep_id}"
    assert (await client.get(path)).status_code == 401
    for who in ("rep2", "handler_a"):
        assert (await client.get(path, headers=world.auth(who))).status_code == 403, who
        assert (await client.post(f"{path}/reset", headers=world.auth(who))).status_code == 403, who
    for who in ("rep", "coordinator", "admin"):
        assert (await client.get(path, headers=world.auth(who))).status_code == 200, who
    assert (await client.get("/api/v1/calendars/representatives/999999", headers=world.auth("admin"))).status_code == 404

    for who in ("rep", "handler_a"):
        assert (await client.get("/api/v1/calendars/workrooms/LS-01", headers=world.auth(who))).status_code == 403
    assert (await client.post("/api/v1/calendars/workrooms/LS-01/reset", headers=world.auth("rep"))).status_code == 403
    assert (await client.get("/api/v1/calendars/workrooms/NOPE", headers=world.auth("admin"))).status_code == 404
