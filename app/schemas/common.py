"""Shared schema pieces: local-time datetimes, pages, problem details."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from app.config import TZ
from app.errors import PROBLEM_JSON
from app.schemas.dates import local_iso


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
# For what the server reads back and sends; what a client sends is read by app/schemas/dates.py's types.
LocalDateTime = Annotated[
    datetime,
    BeforeValidator(_aware),
    PlainSerializer(local_iso, return_type=str, when_used="json"),
]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # every C0 control but \t \n \r, and DEL


def _reject_control_characters(value: object) -> object:
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ValueError("文本中含有不允许的控制字符。")
    elif isinstance(value, dict):
        for item in value.values():
            _reject_control_characters(item)
    elif isinstance(value, list):
        for item in value:
            _reject_control_characters(item)
    return value


class InputModel(BaseModel):
    """Base of every request body: text may not carry NUL or other control characters (PostgreSQL
    refuses NUL outright; SQLite would store it), so both engines answer 422 alike."""

    @model_validator(mode="before")
    @classmethod
    def _clean_text(cls, data: object) -> object:
        return _reject_control_characters(data)


# Every database id: positive and within PostgreSQL's integer, so no client-sent id can overflow a driver.
MAX_ID = 2_147_483_647
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


# --- errors (app/http/problems.py renders them; app/api/v1 declares them with ``problem``) ---------------


class FieldError(BaseModel):
    """One field FastAPI's validation refused."""

    loc: list[str | int] = Field(description="Where: (\"body\", field, ...), (\"query\", name), ...")
    msg: str
    type: str


class ImportRowError(BaseModel):
    """One cell an import refused: in a refused upload's problem, and in the job (schemas/imports.py)."""

    row: int | None = Field(description="row number as the spreadsheet shows it (header = 1); null: the whole file")
    column: str | None = Field(description="the header of the column, e.g. 姓名")
    reason: str


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 ``application/problem+json`` (app/http/problems.py renders every one)."""

    # Some errors carry more members (WeChat's errcode, ...): clients ignore what they do not know.
    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:minyi:problem:not_found"])
    title: str
    status: int
    detail: str = Field(description="给人看的说明（中文）")
    code: str = Field(description="Stable machine word clients switch on (not_found, forbidden, validation_error...)")
    instance: str | None = None
    errors: list[FieldError | ImportRowError] | None = Field(
        None, description="validation_error: one per refused field; an import's checks: one per row and column")
    retry_after: int | None = Field(None, description="rate_limited and lockouts: seconds, as in Retry-After")


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry answered as problem+json. (FastAPI also lists a ``model`` under the
    route's own media type, application/json; errors are only ever sent as problem+json.)"""
    return {
        "model": ProblemDetails,
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    }
