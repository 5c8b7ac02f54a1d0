"""The audit log (审计日志, OWASP ASVS V7.1/V7.2): admin actions on users, API clients, webhooks,
reference data, exports that carry personal data, lockout lifts. Each is recorded in the transaction of
the action itself, so the log holds exactly what was done: an action rolled back leaves no line, a line is
never missing for an action that happened. Rows are never changed or deleted (the database refuses it).
Admins read it (``GET /api/v1/audit``) and export it (``GET /api/v1/audit/export.csv``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import TZ
from app.errors import Invalid
from app.models import AuditEvent, utcnow
from app.services import exports, logs
from app.services.auth import Principal

CLI_LABEL = "命令行 (cli)"
EXPORT_PAGE = 1000


async def record(
    session: AsyncSession,
    *,
    principal: Principal | None,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """One line in the caller's transaction. ``principal`` None: a command run on the server."""
    event = AuditEvent(
        at=at or utcnow(),
        actor_user_id=principal.user.id if principal and principal.user else None,
        actor_client_id=principal.client.id if principal and principal.client else None,
        actor_label=(principal.label if principal else CLI_LABEL)[:100],
        actor_role=principal.role if principal else None,
        ip=(ip or None) and ip[:64],
        request_id=logs.request_id.get(),
        action=action,
        target=target[:100] if target else None,
        details=details or None,
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None  # exact, or a prefix ending in "." (e.g. "api_client.")
    actor_user_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def _query(filters: AuditFilter) -> Any:
    query = select(AuditEvent)
    if filters.action:
        if filters.action.endswith("."):
            query = query.where(AuditEvent.action.startswith(filters.action, autoescape=True))
        else:
            query = query.where(AuditEvent.action == filters.action)
    if filters.actor_user_id is not None:
        query = query.where(AuditEvent.actor_user_id == filters.actor_user_id)
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.at < filters.until)
    return query


def encode_cursor(event_id: int) -> str:
    return f"a{event_id}"


def decode_cursor(cursor: str) -> int:
    if not (cursor.startswith("a") and cursor[1:].isdigit() and 0 < len(cursor) <= 20):
        raise Invalid("分页游标无效。", code="invalid_cursor")
    return int(cursor[1:])


async def list_events(
    session: AsyncSession, *, filters: AuditFilter, limit: int, cursor: str | None = None
) -> tuple[list[AuditEvent], str | None]:
    """Newest first, a page at a time (keyset on id)."""
    query = _query(filters)
    if cursor:
        query = query.where(AuditEvent.id < decode_cursor(cursor))
    rows = list(await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


CSV_COLUMNS = ("编号 id", "时间 at", "操作人 actor", "角色 role", "用户 user_id", "接口客户端 client_id", "IP",
               "请求 request_id", "操作 action", "对象 target", "详情 details")


def _row(event: AuditEvent) -> list[Any]:
    return [
        event.id, event.at.astimezone(TZ).isoformat(timespec="seconds"), event.actor_label, event.actor_role or "",
        event.actor_user_id or "", event.actor_client_id or "", event.ip or "", event.request_id or "", event.action,
        event.target or "", json.dumps(event.details, ensure_ascii=False, sort_keys=True) if event.details else "",
    ]


async def check_filters(session: AsyncSession, *, filters: AuditFilter) -> None:
    """Run the export's query once (one row) in the request's session: whatever the database makes of the
    filters happens before a streamed answer has sent its status (issue 15, point 2). The filters are
    bounded already (app/schemas/dates.py); this is the belt to those braces."""
    await session.scalars(_query(filters).limit(1))


async def stream_csv(sessionmaker: async_sessionmaker[AsyncSession], *, filters: AuditFilter) -> AsyncIterator[bytes]:
    """The whole log (or the filtered part), oldest first, as UTF-8 CSV with a BOM (Excel opens it right),
    read a page at a time so memory stays flat however long the log. Call ``check_filters`` first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield ("\ufeff" + buffer.getvalue()).encode()
    last = 0
    while True:
        async with sessionmaker() as session:
            page = list(await session.scalars(
                _query(filters).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(EXPORT_PAGE)
            ))
        if not page:
            return
        buffer.seek(0)
        buffer.truncate()
        for event in page:
            writer.writerow([exports.csv_value(value) for value in _row(event)])  # no CSV injection
        yield buffer.getvalue().encode()
        last = page[-1].id
