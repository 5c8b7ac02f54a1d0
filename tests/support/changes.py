"""Reading ``GET /api/v1/changes`` in tests.

On PostgreSQL the feed shows a change only once every transaction on the server that began before it
has ended (the txid horizon); under parallel test workers some other test's transaction is often
running, so a test waits, with a deadline, for the changes it expects instead of assuming they are
visible at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


async def read(client: httpx.AsyncClient, headers: dict[str, str], *, cursor: str | None = None,
               limit: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if cursor is not None:
        params["cursor"] = cursor
    if limit is not None:
        params["limit"] = limit
    response = await client.get("/api/v1/changes", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def read_until(
    client: httpx.AsyncClient, headers: dict[str, str], count: int, *, cursor: str | None = None, limit: int = 50,
    within: float = 30.0,
) -> tuple[list[dict[str, Any]], str | None]:
    """Page through the feed from ``cursor`` until ``count`` items came (waiting, with a deadline, while a
    page is empty); every page's items and the last cursor."""
    items: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while len(items) < count:
        page = await read(client, headers, cursor=cursor, limit=limit)
        assert len(page["items"]) <= limit
        items += page["items"]
        if page["items"]:
            assert page["next_cursor"] is not None
        cursor = page["next_cursor"]
        if not page["items"]:
            assert time.monotonic() < deadline, f"only {len(items)} of {count} changes within {within} s"
            await asyncio.sleep(0.05)
    return items, cursor
