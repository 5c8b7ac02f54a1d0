"""Request ids, access logs, ``GET /metrics`` and ``GET /readyz`` (issue 8.7).

- ``RequestContext``, a pure ASGI middleware wrapped around the whole app (outside Starlette's own error
  middleware, so a 500 carries it too): it keeps a sane incoming ``X-Request-ID`` or makes one, puts it in
  ``logs.request_id`` for every log line written while the request runs, returns it on every response,
  writes one access line (logger ``minyi.access``) and counts the request for /metrics.
- ``GET /metrics``: Prometheus text (0.0.4) from prometheus-client. Requests and latency are labelled with
  the matched route's path template (``/api/v1/forms/{form_id}``), ``unmatched`` when nothing matched:
  never a raw path. The database gauges (forms by status, the outbox) are read at scrape time. Each process
  counts on its own unless ``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus-client's multiprocess mode).
  With ``MINYI_METRICS_TOKEN`` it asks for that bearer token; in production without one it is 404
  unless ``MINYI_METRICS_OPEN=true`` (issue 15.7).
- ``GET /readyz``: the database answers and its schema is at the latest migration.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import case, column, func, inspect, literal_column, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import migrate
from app.http.problems import http_problem, problem_response
from app.config import TZ
from app.errors import Unavailable
from app.http.routing import GuardedRouter
from app.models import (
    DeliveryStatus,
    FormStatus,
    NoticeStatus,
    OpinionForm,
    StatCell,
    WebhookDelivery,
    WechatNotice,
    utcnow,
)
from app.services import logs, working_calendar

log = logging.getLogger("minyi")
access_log = logging.getLogger("minyi.access")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

# Registered with the services' counters (logs.REGISTRY): one registry for what this process counts.
HTTP_REQUESTS = Counter(
    "minyi_http_requests", "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"], registry=logs.REGISTRY,
)
HTTP_DURATION = Histogram(
    "minyi_http_request_duration_seconds", "Time from a request's arrival to its last byte sent, by route template",
    ["method", "route"], registry=logs.REGISTRY,
)


# --- request id, access log, request metrics ---------------------------------------------------------


def request_id_from(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when sane (at most 64 of ``[A-Za-z0-9._-]``), else a new one."""
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RouteTemplates:
    """The path template of the route a request matched, as a metrics label.

    The router leaves the matched route in ``scope["route"]``; with routers included under a prefix that
    object knows only its own part of the path, so the full template is looked up in a table built once
    from the app's routes. Requests the router answered without one (docs, static files, redirects) are
    matched against the same table; what matches nothing is ``unmatched``."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._by_route: dict[int, str] | None = None
        self._patterns: list[tuple[re.Pattern[str], str]] = []

    def _entries(self) -> Iterator[tuple[Any, Any]]:
        """(the route object the router puts in the scope, the object with the full path) for each route."""
        from fastapi import routing

        iter_contexts = getattr(routing, "iter_route_contexts", None)
        if iter_contexts is None:  # FastAPI copies included routes with their full path
            for route in self._app.routes:
                yield route, route
            return
        for context in iter_contexts(self._app.routes):
            yield context.original_route, context

    def _build(self) -> dict[int, str]:
        by_route: dict[int, str] = {}
        ambiguous: set[int] = set()
        for route, full in self._entries():
            template = getattr(full, "path_format", None)
            pattern = getattr(full, "path_regex", None)
            if not isinstance(template, str):
                continue
            if isinstance(pattern, re.Pattern):
                self._patterns.append((pattern, template))
            key = id(route)
            if key in by_route and by_route[key] != template:
                ambiguous.add(key)  # one router included twice: fall back to matching the path
            by_route[key] = template
        for key in ambiguous:
            del by_route[key]
        return by_route

    def __call__(self, scope: Scope, path: str, status: int) -> str:
        if self._by_route is None:
            self._by_route = self._build()
        route = scope.get("route")
        if route is not None and (template := self._by_route.get(id(route))) is not None:
            return template
        if status == 404 and route is None:
            return UNMATCHED
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return UNMATCHED


class RequestContext:
    """Pure ASGI: request id in, request id out, one access line and the request counted."""

    def __init__(self, app: ASGIApp, *, routes: Callable[[Scope, str, int], str]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_from(scope)
        token = logs.request_id.set(rid)
        method, path = scope["method"], scope["path"]  # the path without its query, as the router saw it
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception with nothing sent is a 500 to the client

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = self.routes(scope, path, status)
            method_label = method if method in _METHODS else "other"
            HTTP_REQUESTS.labels(method=method_label, route=route, status=str(status)).inc()
            HTTP_DURATION.labels(method=method_label, route=route).observe(elapsed)
            client = scope.get("client")
            # The path, never the query: tracking codes (/api/v1/track) and search words stay out of logs.
            access_log.info(
                "%s %s %d %.1f ms", method, path, status, elapsed * 1000,
                extra={"method": method, "path": path, "route": route, "status": status,
                       "duration_ms": round(elapsed * 1000, 1), "request_id": rid,
                       "client_ip": client[0] if client else None},
            )
            logs.request_id.reset(token)


# --- /metrics: what the database holds, read at scrape time ----------------------------------------------

OPEN_STATUSES = (FormStatus.submitted, FormStatus.assigned, FormStatus.answered)


async def form_counts(session: AsyncSession) -> dict[str, int]:
    """Forms by status, without counting every form.

    Closed and declined are final states, so the statistics counters (services/stats.py, kept in the same
    transaction as every action) hold exactly how many forms are in them: a sum over the month cells. The
    open statuses are counted live over the ``(status, id)`` index, in proportion to the open backlog. A read
    stays cheap however many forms were ever collected."""
    final = (await session.execute(
        select(func.coalesce(func.sum(StatCell.closed), 0), func.coalesce(func.sum(StatCell.declined), 0))
        .where(StatCell.grain == "m")
    )).one()
    counts = {status.value: 0 for status in FormStatus}
    counts[FormStatus.closed], counts[FormStatus.declined] = int(final[0]), int(final[1])
    rows = await session.execute(
        select(OpinionForm.status, func.count()).where(OpinionForm.status.in_(OPEN_STATUSES))
        .group_by(OpinionForm.status)
    )
    for status, count in rows:
        counts[status] = int(count)
    return counts


async def outbox_counts(session: AsyncSession) -> dict[str, tuple[int, int]]:
    """(pending, due now) of each outbox: webhook deliveries and WeChat reply notices, read over an index
    each (reply notices: ``(status, next_attempt_at)``; webhook deliveries: the claim's partial index over
    pending ones, which only a literal status lets either engine use)."""
    now = utcnow()
    result: dict[str, tuple[int, int]] = {}
    for kind, model, pending in (("webhook", WebhookDelivery, DeliveryStatus.pending),
                                 ("wechat_notice", WechatNotice, NoticeStatus.pending)):
        row = (await session.execute(
            select(func.count(), func.coalesce(func.sum(case((model.next_attempt_at <= now, 1), else_=0)), 0))
            .where(model.status == literal_column(f"'{pending.value}'"))
        )).one()
        result[kind] = (int(row[0]), int(row[1]))
    return result


@dataclass(frozen=True, eq=False)  # hashable by identity: a registry keeps its collectors in a dict
class DatabaseReadings:
    """What one scrape read from the database (None: the database did not answer)."""

    forms: dict[str, int] | None
    outbox: dict[str, tuple[int, int]] | None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("minyi_database_up", "1 when this scrape could read the database, else 0")
        up.add_metric([], 0 if self.forms is None else 1)
        yield up
        if self.forms is not None:
            forms = GaugeMetricFamily("minyi_forms", "Opinion forms by current status", labels=["status"])
            for status, count in self.forms.items():
                forms.add_metric([status], count)
            yield forms
        if self.outbox is not None:
            backlog = GaugeMetricFamily("minyi_outbox_backlog", "Pending outbox items (webhook deliveries, "
                                        "WeChat reply notices), waiting or due", labels=["kind"])
            due = GaugeMetricFamily("minyi_outbox_due", "Pending outbox items due now (not waiting for a retry)",
                                    labels=["kind"])
            for kind, (pending, due_now) in self.outbox.items():
                backlog.add_metric([kind], pending)
                due.add_metric([kind], due_now)
            yield backlog
            yield due


async def read_database(request: Request) -> DatabaseReadings:
    try:
        async with request.app.state.sessionmaker() as session:
            forms = await form_counts(session)
            outbox = await outbox_counts(session)
            await session.rollback()
    except Exception:  # a scrape still reports the request metrics (and minyi_database_up 0)
        log.warning("metrics: the database could not be read", exc_info=True)
        return DatabaseReadings(None, None)
    return DatabaseReadings(forms, outbox)


def counted_metrics() -> bytes:
    """This process's counters, or with ``PROMETHEUS_MULTIPROC_DIR`` set those of every process writing
    there (prometheus-client's documented multiprocess collector)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(logs.REGISTRY)


def _authorized(request: Request, token: str | None) -> bool:
    if not token:
        return True
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(credentials.strip().encode(), token.encode())


# --- /readyz -----------------------------------------------------------------------------------------


VERSION_TABLE = "alembic_version"  # Alembic's default, as alembic/env.py leaves it
VERSION_TABLE_COLUMN = table(VERSION_TABLE, column("version_num")).c.version_num


@cache
def head_revision() -> str | None:
    """The latest migration, read from the Alembic scripts once per process."""
    return migrate.head_revision()


def _current_revision(connection: Connection) -> str | None:
    """What ``alembic current`` says, read without Alembic's MigrationContext (which logs two INFO lines each
    time: noise at every probe)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    versions = connection.execute(select(VERSION_TABLE_COLUMN)).scalars().all()
    return ",".join(sorted(versions)) or None  # several heads: never equal to the one head we ship


# --- routes ------------------------------------------------------------------------------------------

router = GuardedRouter(tags=["operations"])


@router.get("/readyz", summary="Readiness (the database answers and its schema is at the latest migration)")
async def readyz(request: Request) -> JSONResponse:
    head = head_revision()
    try:
        async with request.app.state.engine.connect() as connection:
            current = await connection.run_sync(_current_revision)
    except Exception as exc:  # any driver error means "not ready"
        raise Unavailable("数据库不可用。", code="database_unavailable") from exc
    if current != head:
        raise Unavailable(
            f"数据库结构不是最新版本（当前 {current or '无'}，最新 {head}），请先运行 minyi migrate。",
            code="schema_outdated", extra={"current": current, "head": head},
        )
    return JSONResponse({"status": "ok", "database": "ok", "schema": current, "calendar": await _calendar(request)})


async def _calendar(request: Request) -> dict[str, Any]:
    """Ready either way; from 1 November it says when next year's holiday notice is still to be entered
    (services/working_calendar.py), so monitoring shows it before deadlines run into that year."""
    today = utcnow().astimezone(TZ).date()
    try:
        async with request.app.state.sessionmaker() as session:
            reminder = await working_calendar.notice_reminder(session, today=today)
    except Exception:  # the database answered the check above; a passing fault here is no reason to fail it
        log.exception("readyz: reading the working calendar failed")
        return {"status": "unknown"}
    if reminder is None:
        return {"status": "ok"}
    return {"status": "notice_missing", "year": reminder.year, "notice": reminder.title, "detail": reminder.detail}


def _served(settings: Any) -> bool:
    """In production /metrics exists only behind a token, or when MINYI_METRICS_OPEN says so: what it
    tells (routes, load, queues) is not for the open internet."""
    return settings.environment != "production" or bool(settings.metrics_token) or settings.metrics_open


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    if not _served(settings):
        raise StarletteHTTPException(status_code=404)  # answered as any unknown path is
    if not _authorized(request, settings.metrics_token):
        # Answered here: outside /api/ the error handlers would render a page for a person.
        return problem_response(http_problem(401, "需要有效的指标访问令牌（Authorization: Bearer）。",
                                             code="metrics_token_required"),
                                headers={"WWW-Authenticate": "Bearer"})
    readings = await read_database(request)
    scraped = CollectorRegistry()
    scraped.register(readings)
    body = counted_metrics() + generate_latest(scraped)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4, headers={"Cache-Control": "no-store"})


def install(app: FastAPI) -> None:
    """Wrap ``app`` in the request-id middleware and add /readyz and /metrics."""
    head_revision()  # read the migration scripts now, not on the first probe
    routes = RouteTemplates(app)
    build_stack = app.build_middleware_stack

    def build_with_request_context() -> ASGIApp:
        # Outside everything add_middleware can place, Starlette's ServerErrorMiddleware included: the 500 it
        # renders gets the request id, and the log lines of that error carry it.
        return RequestContext(build_stack(), routes=routes)

    app.build_middleware_stack = build_with_request_context  # type: ignore[method-assign]
    app.include_router(router)
