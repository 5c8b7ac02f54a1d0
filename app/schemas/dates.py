"""Dates and times a client sends: one bounded type for each, used by every input (issue 15, point 2).

Every date or datetime that comes in — a query parameter, a JSON or form field, a page's form, a cell of an
imported sheet, an Open311 argument — is read by ``BoundedDate`` or ``BoundedDateTime`` (or, outside
pydantic, by ``parse_date`` / ``parse_datetime`` / ``check_date`` / ``check_datetime``, which apply the
same rules). The rules:

- a date is ``YYYY-MM-DD`` (pydantic's reading; in JSON a date-only value), between ``EARLIEST``
  (1900-01-01) and ``LATEST`` (2100-12-31);
- a datetime is ISO 8601; without an offset it is Asia/Shanghai local time (as people in the town mean
  it); its date as written lies in the same window and its offset is at most ±14:00 (the widest any place
  on Earth uses);
- anything else is a normal validation error (422 ``validation_error`` for the API, naming the field; the
  page's message; the import row's error; Open311's 400), never a 500.

Inside the window every widening the services do — the end of a day, the day after, a local midnight
turned into UTC, a month's end, 90 days on — stays far from ``date.min``/``date.max``, and both databases
store and compare the values alike (PostgreSQL's range is wider; SQLite compares ISO strings, right for
four-digit years). A field whose domain is narrower (a deadline, say) adds its own check on top.

``next_day``, ``day_start`` and ``local_day_bounds`` are the widening helpers: safe for any date, even one
that never passed through these types (they clamp it into the window first).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any

from pydantic import (
    GetJsonSchemaHandler,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from app.config import TZ

EARLIEST = date(1900, 1, 1)
LATEST = date(2100, 12, 31)
MAX_OFFSET = timedelta(hours=14)
WINDOW = f"{EARLIEST.isoformat()} 至 {LATEST.isoformat()}"

# The messages a person reads (the API's ``errors[].msg``, a page's field message, an import row's reason).
DATE_INVALID = "不是有效的日期，应为 YYYY-MM-DD（如 2026-05-01）"
DATE_OUT_OF_RANGE = f"日期须在 {WINDOW} 之间"
DATETIME_INVALID = "不是有效的时间，应为 YYYY-MM-DDTHH:MM（如 2026-05-01T09:30，可带时区如 +08:00）"
OFFSET_OUT_OF_RANGE = "时区偏移须在 -14:00 至 +14:00 之间"

# Text must start as ISO 8601 does: pydantic would read bare digits as a Unix timestamp.
_ISO_START = re.compile(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}")

# The ``type`` of the errors above, as the API reports them (app/http/problems.py names the field in them).
ERROR_TYPES = frozenset({"date_invalid", "date_out_of_range", "datetime_invalid", "datetime_out_of_range",
                         "datetime_offset_out_of_range"})


class DateRangeError(ValueError):
    """A date or datetime refused by ``parse_*`` / ``check_*``; ``str()`` is the Chinese message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# --- the checks, shared by the pydantic types and by the code that reads values by hand ------------------


def check_date(value: date) -> date:
    """``value`` when inside the window, else ``DateRangeError``."""
    if isinstance(value, datetime):
        value = value.date()
    if not EARLIEST <= value <= LATEST:
        raise DateRangeError("date_out_of_range", DATE_OUT_OF_RANGE)
    return value


def check_datetime(value: datetime) -> datetime:
    """``value`` made aware (naive is Asia/Shanghai) when its date as written is inside the window and its
    offset at most ±14:00, else ``DateRangeError``."""
    if not EARLIEST <= value.date() <= LATEST:
        raise DateRangeError("datetime_out_of_range", DATE_OUT_OF_RANGE)
    if value.tzinfo is None:
        value = value.replace(tzinfo=TZ)
    offset = value.utcoffset()
    if offset is None or abs(offset) > MAX_OFFSET:
        raise DateRangeError("datetime_offset_out_of_range", OFFSET_OUT_OF_RANGE)
    return value


_date_adapter: TypeAdapter[date] = TypeAdapter(date)
_datetime_adapter: TypeAdapter[datetime] = TypeAdapter(datetime)


def parse_date(value: Any) -> date:
    """A date from text (``YYYY-MM-DD``) or a date, checked; ``DateRangeError`` otherwise."""
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        if not _ISO_START.match(str(value)):
            raise DateRangeError("date_invalid", DATE_INVALID)
        try:
            value = _date_adapter.validate_python(str(value).strip(), strict=False)
        except ValidationError:
            raise DateRangeError("date_invalid", DATE_INVALID) from None
    return check_date(value)


def parse_datetime(value: Any) -> datetime:
    """A datetime from ISO 8601 text or a datetime, checked and made aware; ``DateRangeError`` otherwise."""
    if not isinstance(value, datetime):
        if not _ISO_START.match(str(value)):
            raise DateRangeError("datetime_invalid", DATETIME_INVALID)
        try:
            value = _datetime_adapter.validate_python(str(value).strip(), strict=False)
        except ValidationError:
            raise DateRangeError("datetime_invalid", DATETIME_INVALID) from None
    return check_datetime(value)


# --- the pydantic types --------------------------------------------------------------------------------


def _validate_date(value: Any, handler: ValidatorFunctionWrapHandler) -> date:
    if isinstance(value, (datetime, int, float)) or (isinstance(value, str) and not _ISO_START.match(value)):
        # Not a day: pydantic would take a datetime's day, or read a number as a Unix timestamp.
        raise PydanticCustomError("date_invalid", DATE_INVALID)
    try:
        parsed = handler(value)
    except ValidationError:
        raise PydanticCustomError("date_invalid", DATE_INVALID) from None
    try:
        return check_date(parsed)
    except DateRangeError as exc:
        raise PydanticCustomError(exc.kind, exc.message) from None


def _validate_datetime(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    if isinstance(value, (int, float)) or (isinstance(value, str) and not _ISO_START.match(value)):
        # pydantic would read a number as a Unix timestamp: not what anyone typing a time means.
        raise PydanticCustomError("datetime_invalid", DATETIME_INVALID)
    try:
        parsed = handler(value)
    except ValidationError:
        raise PydanticCustomError("datetime_invalid", DATETIME_INVALID) from None
    try:
        return check_datetime(parsed)
    except DateRangeError as exc:
        raise PydanticCustomError(exc.kind, exc.message) from None


class _Window:
    """States the window in the JSON Schema (``formatMinimum``/``formatMaximum``, as ajv-formats spells
    them), so /openapi.json tells clients, and tests/test_date_edges.py finds every bounded field."""

    def __init__(self, minimum: str, maximum: str) -> None:
        self.minimum, self.maximum = minimum, maximum

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(formatMinimum=self.minimum, formatMaximum=self.maximum)
        return json_schema


def local_iso(value: datetime) -> str:
    """``value`` in Asia/Shanghai, ISO 8601 with its offset; as it is when that would leave the calendar
    (a time stored before the window existed, e.g. 9999-12-31T23:00:00Z, must still be readable)."""
    try:
        return value.astimezone(TZ).isoformat()
    except (OverflowError, ValueError):
        return value.isoformat()


# In: YYYY-MM-DD within the window. Out: YYYY-MM-DD.
BoundedDate = Annotated[date, WrapValidator(_validate_date), _Window(EARLIEST.isoformat(), LATEST.isoformat())]

# In: ISO 8601 within the window, an offset optional (local time when missing). Out: ISO 8601 in
# Asia/Shanghai with its offset (as ``LocalDateTime``).
BoundedDateTime = Annotated[
    datetime,
    WrapValidator(_validate_datetime),
    _Window(f"{EARLIEST.isoformat()}T00:00:00", f"{LATEST.isoformat()}T23:59:59"),
    PlainSerializer(local_iso, return_type=str, when_used="json"),
]


# --- widening a day safely -----------------------------------------------------------------------------


def clamp(day: date) -> date:
    """``day`` moved into the window (no input lets a date outside it in; data written before the window
    existed might hold one)."""
    return min(max(day, EARLIEST), LATEST)


def next_day(day: date) -> date:
    """The day after ``day`` (clamped first: never an OverflowError, even for ``date.max``)."""
    return clamp(day) + timedelta(days=1)


def day_start(day: date, tz: tzinfo = TZ) -> datetime:
    """00:00 of ``day`` (clamped) in ``tz``, aware: safe to turn into UTC."""
    return datetime.combine(clamp(day), time.min, tzinfo=tz)


def local_day_bounds(first: date, last: date, tz: tzinfo = TZ) -> tuple[datetime, datetime]:
    """[first 00:00, last+1 00:00) in ``tz``: the half-open span of the days first..last."""
    return day_start(first, tz), datetime.combine(next_day(last), time.min, tzinfo=tz)
