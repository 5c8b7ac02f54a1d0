"""Open311 GeoReport v2: Minyi's categories as services, published forms as service requests.

The rules and queries of the mapping (docs/open311.md). The wire formats (XML, Spark JSON), the spec's
error shape and reading parameters off the request live in ``app/api/open311.py``.

- A service is an active category: its code, name, description and keywords. Every service is
  ``realtime`` (the form and its tracking number exist when the POST answers) and has metadata: two
  optional single-value attributes, the workroom where the opinion was heard and the submitter's consent
  to publication.
- A service request is a form whose submitter agreed to publication (``public``), identified by its
  tracking number. It shows the content, the public reply, the handling unit and the deadline, never a
  name, a phone number, an internal note or a photo.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, NotFound
from app.models import STATUS_LABELS, Category, FormStatus, HandlingUnit, OpinionForm, ServicePoint, Workroom
from app.schemas import dates
from app.schemas.reference import PHONE_PATTERN
from app.services import forms as form_service

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
MAX_RANGE = timedelta(days=90)  # the spec's default window and the widest start_date..end_date
MAX_REQUESTS = 1000  # the spec's default limit on one answer
STREAM_BATCH = 100  # rows read, rendered and sent at a time
MAX_DESCRIPTION = 4000  # the spec's limit on a request's description
WORKROOM_ATTRIBUTE = "workroom"
PUBLIC_ATTRIBUTE = "public"
OPEN = (FormStatus.submitted, FormStatus.assigned, FormStatus.answered)
CLOSED = (FormStatus.closed, FormStatus.declined)
# Before migration 0006 nothing recorded when categories or workrooms changed: the changeset of rows
# untouched since then.
BASELINE_CHANGESET = datetime(2026, 11, 27, tzinfo=UTC)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class BadRequest(AppError):
    """The spec's 400: a missing or malformed argument (its description says which)."""

    status = 400
    default_code = "bad_request"


def w3_time(value: datetime) -> str:
    """UTC in the spec's w3 format: ``2010-01-01T00:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_w3_time(name: str, text: str) -> datetime:
    """A w3/ISO 8601 datetime with its zone (``Z`` or ``±HH:MM``), or a bare date read as 00:00 UTC, in UTC;
    within the window every date input of Minyi keeps (app/schemas/dates.py)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"{name} 不是有效的时间，应如 2026-01-01T00:00:00Z。"
                         f" {name} is not a w3 datetime such as 2026-01-01T00:00:00Z.") from exc
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        value = value.replace(tzinfo=UTC)
    if value.tzinfo is None:
        raise BadRequest(f"{name} 须带时区（Z 或 +08:00）。 {name} must carry a time zone (Z or +08:00).")
    try:
        return dates.check_datetime(value).astimezone(UTC)
    except dates.DateRangeError as exc:
        raise BadRequest(f"{name}：{exc.message}。 {name} must fall between {dates.EARLIEST} and {dates.LATEST},"
                         f" its offset within ±14:00.") from exc


# --- services ---------------------------------------------------------------------------------------


async def list_services(session: AsyncSession) -> list[Category]:
    return list(await session.scalars(
        select(Category).where(Category.active.is_(True)).order_by(Category.sort_order, Category.id)
    ))


async def get_service(session: AsyncSession, service_code: str) -> Category:
    category = await session.scalar(select(Category).where(Category.code == service_code, Category.active.is_(True)))
    if category is None:
        raise NotFound(f"服务 {service_code} 不存在。 service_code {service_code} not found.", code="service_not_found")
    return category


async def list_workrooms(session: AsyncSession) -> list[Workroom]:
    return list(await session.scalars(select(Workroom).where(Workroom.active.is_(True)).order_by(Workroom.code)))


async def changeset(session: AsyncSession) -> datetime:
    """When the services or their definitions last changed (categories and workrooms), for discovery."""
    latest = [
        await session.scalar(select(func.max(Category.updated_at))),
        await session.scalar(select(func.max(Workroom.updated_at))),
    ]
    return max([BASELINE_CHANGESET, *(t for t in latest if t is not None)])


def service_notice(due_days: int | None) -> str | None:
    """What happens next, for a form of a category that is answered within ``due_days`` working days."""
    if due_days is None:
        return None
    return (f"意见将由镇党代表工作室转交承办单位办理，一般在 {due_days} 个工作日内答复。"
            f" The office refers it to a handling unit; a reply usually follows within {due_days} working days.")


def present(view: dict[str, Any]) -> dict[str, Any]:
    """``view`` without its empty optional fields: the spec lets a field that has no value "not be returned",
    and the official Swagger definitions type them as strings and numbers, never null (an empty XML element
    or a JSON null trips its checkers)."""
    return {key: value for key, value in view.items() if value is not None}


def service_view(category: Category) -> dict[str, Any]:
    return present({
        "service_code": category.code,
        "service_name": category.name,
        "description": category.description or None,
        "metadata": True,
        "type": "realtime",
        "keywords": category.keywords or None,
    })


def definition_view(category: Category, workrooms: list[Workroom]) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "attributes": [
            {
                "variable": True,
                "code": WORKROOM_ATTRIBUTE,
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": "工作室编号 · a workroom code",
                "order": 1,
                "description": "在哪个党代表工作室（或其流动服务点）听到的这条意见？"
                               " Which Party Representative Workroom heard this opinion?",
                "values": [{"key": w.code, "name": w.name} for w in workrooms],
            },
            {
                "variable": True,
                "code": PUBLIC_ATTRIBUTE,
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": "true 或 false · true or false",
                "order": 2,
                "description": "提交人是否同意公开意见内容及答复（不公开姓名、电话）？默认不公开。"
                               " Does the submitter agree to publish the opinion and its reply (never name or phone)?"
                               " Not published unless true.",
                "values": [{"key": "true", "name": "同意公开 · publish"}, {"key": "false", "name": "不公开 · private"}],
            },
        ],
    }


# --- service requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestQuery:
    """GET requests' filters, already read: ``ids`` overrides the rest (as the spec says)."""

    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] = ()  # "open", "closed"


def window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The requested_datetime range searched: at most 90 days, the most recent 90 by default."""
    if start is not None and end is not None:
        if end < start:
            raise BadRequest("end_date 早于 start_date。 end_date is before start_date.")
        if end - start > MAX_RANGE:
            raise BadRequest("start_date 与 end_date 相距不得超过 90 天。 start_date and end_date may not span more than 90 days.")
        return start, end
    try:
        if start is not None:
            return start, start + MAX_RANGE
        if end is not None:
            return end - MAX_RANGE, end
    except OverflowError as exc:  # 9999-12-31 + 90 days
        raise BadRequest("日期超出范围。 The date is out of range.") from exc
    return now - MAX_RANGE, now


# Only what a request shows is read: the public list is the cheapest way for anyone on the internet to load
# the server, so no ORM objects, no columns that are never shown (names, phones, notes).
PUBLISHED_COLUMNS = (
    OpinionForm.tracking_no, OpinionForm.status, OpinionForm.content, OpinionForm.reply, OpinionForm.decline_reason,
    OpinionForm.submitted_at, OpinionForm.updated_at, OpinionForm.closed_at, OpinionForm.declined_at,
    OpinionForm.due_at, OpinionForm.location, OpinionForm.latitude, OpinionForm.longitude, OpinionForm.address_id,
    OpinionForm.media_url,
    Category.code.label("category_code"), Category.name.label("category_name"),
    Category.due_days.label("category_due_days"), HandlingUnit.name.label("unit_name"),
    ServicePoint.location.label("point_location"), Workroom.name.label("workroom_name"),
    Workroom.address.label("workroom_address"), Workroom.latitude.label("workroom_latitude"),
    Workroom.longitude.label("workroom_longitude"),
)


def _published() -> Any:
    return (
        select(*PUBLISHED_COLUMNS)
        .select_from(OpinionForm)
        .outerjoin(Category, Category.id == OpinionForm.category_id)
        .outerjoin(HandlingUnit, HandlingUnit.id == OpinionForm.unit_id)
        .outerjoin(ServicePoint, ServicePoint.id == OpinionForm.service_point_id)
        .outerjoin(Workroom, Workroom.id == OpinionForm.workroom_id)
        .where(OpinionForm.public)  # the partial index ix_opinion_form_public_submitted_at
    )


async def stream_requests(session: AsyncSession, query: RequestQuery, *, now: datetime) -> AsyncIterator[Row[Any]]:
    """The published forms the query asks for, newest first, at most ``MAX_REQUESTS``, a batch at a time
    from a server-side cursor: an answer of a thousand requests is never held whole as rows."""
    result = await session.stream(_requests_statement(query, now=now).execution_options(yield_per=STREAM_BATCH))
    # A batch at a time from the driver: row by row, each row was a trip through SQLAlchemy's greenlet bridge.
    async for rows in result.partitions():
        for row in rows:
            yield row


def _requests_statement(query: RequestQuery, *, now: datetime) -> Any:
    statement = _published()
    if query.ids:
        statement = statement.where(OpinionForm.tracking_no.in_(query.ids))
    else:
        start, end = window(query.start, query.end, now)
        statement = statement.where(OpinionForm.submitted_at >= start, OpinionForm.submitted_at <= end)
        if query.service_codes:
            statement = statement.where(
                OpinionForm.category_id.in_(select(Category.id).where(Category.code.in_(query.service_codes)))
            )
        wanted = {s for status in query.statuses for s in (OPEN if status == "open" else CLOSED)}
        if query.statuses and len(wanted) < len(OPEN) + len(CLOSED):
            statement = statement.where(OpinionForm.status.in_(sorted(wanted)))
    return statement.order_by(OpinionForm.submitted_at.desc(), OpinionForm.id.desc()).limit(MAX_REQUESTS)


async def get_request(session: AsyncSession, service_request_id: str) -> Row[Any]:
    form = (await session.execute(_published().where(OpinionForm.tracking_no == service_request_id))).one_or_none()
    if form is None:
        # Unpublished forms answer exactly like forms that do not exist.
        raise NotFound(f"服务请求 {service_request_id} 不存在或未公开。 service_request_id {service_request_id} not found.",
                       code="request_not_found")
    return form


def _status_notes(form: Row[Any]) -> str:
    if form.status in (FormStatus.answered, FormStatus.closed) and form.reply:
        return form.reply
    if form.status == FormStatus.declined and form.decline_reason:
        return form.decline_reason
    return STATUS_LABELS.get(form.status, form.status)


def _updated(form: Row[Any]) -> datetime:
    if form.status == FormStatus.closed and form.closed_at:
        return form.closed_at
    if form.status == FormStatus.declined and form.declined_at:
        return form.declined_at
    return form.updated_at


@dataclass(frozen=True)
class Town:
    """Where a request is when nothing more precise is known (``MINYI_OPEN311_TOWN_*``)."""

    address: str
    latitude: float
    longitude: float


def _place(form: Row[Any], town: Town) -> tuple[str, float, float]:
    """Address and coordinates: the form's own, else its service point's place, else its workroom's, else
    the town's, so that every published request has both (GeoReport clients place it on a map)."""
    address = form.location or form.point_location
    if not address:
        address = "，".join(part for part in (form.workroom_address, form.workroom_name) if part) or None
    address = address or town.address
    if form.latitude is not None and form.longitude is not None:
        return address, form.latitude, form.longitude
    if form.workroom_latitude is not None and form.workroom_longitude is not None:
        return address, form.workroom_latitude, form.workroom_longitude
    return address, town.latitude, town.longitude


def request_view(form: Row[Any], town: Town) -> dict[str, Any]:
    """One published form as a GeoReport v2 request, fields in the spec's order; fields with no value are
    left out (``present``)."""
    address, lat, long = _place(form, town)
    return present({
        "service_request_id": form.tracking_no,
        "status": "closed" if form.status in CLOSED else "open",
        "status_notes": _status_notes(form),
        "service_name": form.category_name or "未分类",
        "service_code": form.category_code or "",
        "description": form.content,
        "agency_responsible": form.unit_name if form.status != FormStatus.submitted else None,
        "service_notice": service_notice(form.category_due_days),
        "requested_datetime": w3_time(form.submitted_at),
        "updated_datetime": w3_time(_updated(form)),
        "expected_datetime": w3_time(form.due_at) if form.due_at else None,
        "address": address,
        "address_id": form.address_id,
        "lat": lat,
        "long": long,
        "media_url": form.media_url,
    })


# --- filing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filed:
    """A POST's arguments, as strings, after the HTTP layer refused repeats."""

    service_code: str
    lat: str | None = None
    long: str | None = None
    address_string: str | None = None
    address_id: str | None = None
    description: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    media_url: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()


def _coordinate(name: str, text: str, bound: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise BadRequest(f"{name} 须为 -{bound:g} 到 {bound:g} 之间的数（WGS84）。 {name} must be a WGS84 number within ±{bound:g}.")
    return value


def _text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if _CONTROL.search(value):
        raise BadRequest(f"{name} 含有控制字符。 {name} contains control characters.")
    if len(value) > limit:
        raise BadRequest(f"{name} 超过 {limit} 个字符。 {name} is longer than {limit} characters.")
    return value or None


def _name(first: str | None, last: str | None) -> str | None:
    if not first and not last:
        return None
    if all(part.isascii() for part in (first or "", last or "")):
        return " ".join(part for part in (first, last) if part)  # "John Smith"
    return f"{last or ''}{first or ''}"  # 张 + 三 → 张三: the family name first


def submission(filed: Filed) -> form_service.Submission:
    """The form a POST asks for, or BadRequest naming the first argument that is missing or malformed.

    The service code and workroom are resolved by ``forms.submit_many`` (unknown → Invalid).
    """
    lat = long = None
    if (filed.lat is None) != (filed.long is None):
        raise BadRequest("lat 与 long 须同时提供。 lat and long must be sent together.")
    if filed.lat is not None and filed.long is not None:
        lat = _coordinate("lat", filed.lat, 90)
        long = _coordinate("long", filed.long, 180)
    address = _text("address_string", filed.address_string, 200)
    address_id = _text("address_id", filed.address_id, 64)
    if lat is None and address is None and address_id is None:
        raise BadRequest("须提供位置：lat 和 long、address_string 或 address_id。"
                         " A location is required: lat & long, address_string or address_id.")
    description = _text("description", filed.description, MAX_DESCRIPTION)
    if description is None:
        raise BadRequest("description 必填：没有内容的意见无法办理。"
                         " description is required: an opinion without content cannot be handled.")
    first = _text("first_name", filed.first_name, 32)
    last = _text("last_name", filed.last_name, 32)
    phone = _text("phone", filed.phone, 32)
    if phone is not None and not re.fullmatch(PHONE_PATTERN, phone):
        raise BadRequest("phone 不是有效的电话号码。 phone is not a valid phone number.")
    media_url = _text("media_url", filed.media_url, 500)
    if media_url is not None and not re.fullmatch(r"https?://[^\s/]+[^\s]*", media_url):
        raise BadRequest("media_url 须为 http(s) 链接。 media_url must be an http(s) URL.")

    workroom: str | None = None
    public = False
    for code, value in filed.attributes:
        if code == WORKROOM_ATTRIBUTE:
            workroom = _text("attribute[workroom]", value, 32)
        elif code == PUBLIC_ATTRIBUTE:
            if value not in ("true", "false"):
                raise BadRequest("attribute[public] 须为 true 或 false。 attribute[public] must be true or false.")
            public = value == "true"
        else:
            raise BadRequest(f"服务定义中没有属性 {code}。 attribute {code} is not in the service definition.")
    name = _name(first, last)
    if name is not None and len(name) > 64:
        raise BadRequest("first_name 与 last_name 合计过长（最多 64 字）。 first_name and last_name together are too long (64).")
    return form_service.Submission(
        content=description, category=filed.service_code, channel="other", workroom_code=workroom,
        submitter_name=name, submitter_phone=phone, location=address,
        latitude=lat, longitude=long, address_id=address_id, media_url=media_url, public=public,
    )
