"""Shared schema pieces: local-time datetimes, pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, PlainSerializer

from app.config import TZ


def _aware(value: object) -> object:
    # A datetime without an offset is read as Asia/Shanghai local time, as people in the town mean it.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=TZ)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return parsed.replace(tzinfo=TZ) if parsed.tzinfo is None else parsed
    return value


# In: ISO 8601, an offset optional (local time when missing). Out: ISO 8601 in Asia/Shanghai, with offset.
LocalDateTime = Annotated[
    datetime,
    BeforeValidator(_aware),
    PlainSerializer(lambda value: value.astimezone(TZ).isoformat(), return_type=str, when_used="json"),
]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
