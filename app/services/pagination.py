"""Pages for the short reference lists (workrooms, representatives, units, categories).

Forms, which grow without bound, page by keyset (see ``forms.list_forms``); these lists stay small, so an
opaque offset cursor keeps them simple while honouring the contract's ``limit``/``cursor`` everywhere.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Invalid

MAX_OFFSET = 1_000_000


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        offset = int(value)
        if prefix != "o" or not 0 <= offset <= MAX_OFFSET:
            raise ValueError(cursor)
        return offset
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("分页游标无效。", code="invalid_cursor") from exc


async def paginate(
    session: AsyncSession, query: Select[Any], *, limit: int, cursor: str | None
) -> tuple[Sequence[Any], str | None]:
    offset = decode_offset(cursor)
    rows = list((await session.scalars(query.offset(offset).limit(limit + 1))).unique())
    next_cursor = encode_offset(offset + limit) if len(rows) > limit else None
    return rows[:limit], next_cursor
