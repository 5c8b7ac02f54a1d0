"""Places a form can be about, for the pages' "在哪里" list: workrooms and service points, each as text and,
where known, latitude and longitude (WGS84).

A page offers the places near its source (``near``) under keys ``w:<workroom code>`` and ``p:<point id>``;
what comes back is resolved here again (``resolve``), so a submitted key never carries coordinates or
text of its own. A resident's own position ("使用我的位置") arrives as plain latitude and longitude
instead and is never replaced by a place's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models import ServicePoint, Workroom
from app.schemas.common import MAX_ID
from app.services import reference
from app.services import service_points as service_point_service

MAX_TEXT = 200  # the form's location column


@dataclass(frozen=True)
class Place:
    key: str
    label: str  # what the list shows
    text: str  # what the form's location becomes
    latitude: float | None = None
    longitude: float | None = None


def of_workroom(workroom: Workroom) -> Place:
    text = f"{workroom.name}（{workroom.address}）" if workroom.address else workroom.name
    return Place(key=f"w:{workroom.code}", label=text, text=text[:MAX_TEXT],
                 latitude=workroom.latitude, longitude=workroom.longitude)


def of_point(point: ServicePoint) -> Place:
    # A service point has no coordinates of its own (a market is not its workroom): text only.
    text = f"{point.title}（{point.location}）" if point.location else point.title
    return Place(key=f"p:{point.id}", label=text, text=text[:MAX_TEXT])


def near(workrooms: Iterable[Workroom], points: Iterable[ServicePoint]) -> list[Place]:
    """The list a page offers: its workrooms, then its service points, each once."""
    places: dict[str, Place] = {}
    for place in [*(of_workroom(w) for w in workrooms), *(of_point(p) for p in points)]:
        places.setdefault(place.key, place)
    return list(places.values())


async def resolve(session: AsyncSession, key: str | None) -> Place | None:
    """The place a submitted key names, or None for no key, a malformed one or one that names nothing
    (the place is optional: a stale list never refuses a form)."""
    kind, _, ref = (key or "").strip().partition(":")
    if kind == "w" and ref:
        workroom = await reference.get_workroom(session, ref[:32])
        return of_workroom(workroom) if workroom is not None and workroom.active else None
    if kind == "p" and ref.isdigit() and 1 <= int(ref) <= MAX_ID:
        try:
            point, _workroom = await service_point_service.with_workroom(session, int(ref))
        except NotFound:
            return None
        return of_point(point)
    return None


def apply(data: dict[str, Any], place: Place | None) -> None:
    """Fill a submission's location from ``place``: its text when none was typed, its coordinates when
    none were given (the resident's own position wins)."""
    if place is None:
        return
    if not str(data.get("location") or "").strip():
        data["location"] = place.text
    if data.get("latitude") in (None, "") and data.get("longitude") in (None, "") and place.latitude is not None:
        data["latitude"], data["longitude"] = place.latitude, place.longitude


def coordinates(values: Sequence[str]) -> dict[str, str]:
    """The page's latitude and longitude fields, left out when empty (the API's "both or neither")."""
    return {name: value.strip() for name, value in zip(("latitude", "longitude"), values, strict=True)
            if value and value.strip()}
