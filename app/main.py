"""create_app(): settings, database, routers, error handlers, static files."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import __version__
from app.api import open311
from app.http import compression, hosts, observability, problems
from app.http.compression import Compression
from app.http.head import HeadAsGet
from app.http.headers import SecurityHeaders
from app.http.limits import BodySizeLimit, UrlGuard
from app.http.prg import PostRedirectGet
from app.http.polls import AnswerPolls, PollAnswers
from app.api.v1 import router as api_v1_router
from app.config import Settings, get_settings
from app.db import create_engine, create_sessionmaker, transaction
from app.services import exports as export_service
from app.services import imports as import_service
from app.services import lockouts, rate_limit, workflow
from app.services import webhooks as webhook_service
from app.services import wechat as wechat_service
from app.services import worker as worker_service
from app.services.intake import SubmissionQueue
from app.services.read_cache import ReadCache
from app.web.routes import router as web_router
from app.web.errors import page_problem
from app.web.render import FRONTEND

log = logging.getLogger("minyi")


async def _refreeze(first: float) -> None:
    """Freeze the collector's view again after ``first`` seconds of serving and after ten times as long.

    The lifespan freezes everything the app has built before its first request; what the first requests
    build and keep (compiled templates, SQLAlchemy's statement caches, pydantic's and the caches' entries) is
    still walked by every full collection, and a worker's full collection stalled every request it was
    serving for 25-40 ms (the office list's p99 in process: 35-40 ms -> 21 ms). Twice, not forever: a
    frozen object that later becomes cyclic garbage is never collected, so the leak stays bounded."""
    for delay in (first, first * 9):
        await asyncio.sleep(delay)
        gc.collect()
        gc.freeze()


async def _supervise_forever(sessionmaker: async_sessionmaker[AsyncSession], interval: int) -> None:
    """The in-process schedule of the supervision ladder. Several processes may run it: forms are
    claimed with SKIP LOCKED and each level is recorded once."""
    while True:
        try:
            async with transaction(sessionmaker) as session:
                written = await workflow.supervise(session)
            if written:
                log.info("supervision: %d event(s) recorded", written)
        except Exception:  # keep the schedule alive through a passing database fault
            log.exception("supervision run failed")
        await asyncio.sleep(interval)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = create_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (modules, the app, its routes) lives as long as the process: moved out
        # of the collector's sight, a full collection no longer walks it again and again under load.
        gc.freeze()
        refreeze = None
        if settings.gc_refreeze_seconds:
            refreeze = asyncio.create_task(_refreeze(settings.gc_refreeze_seconds))
        task = None
        if settings.supervise_interval_seconds:
            task = asyncio.create_task(_supervise_forever(app.state.sessionmaker, settings.supervise_interval_seconds))
        # Webhooks and reply notices, sent from this process (or from `minyi worker` processes instead).
        worker = None
        if settings.worker_in_process:
            # Its own sessions: what it writes (claims, attempts) is nothing the stats or token caches hold.
            worker = worker_service.Worker(create_sessionmaker(engine), settings, wechat=app.state.wechat,
                                           resolver=app.state.webhook_resolver)
            worker.start()
        yield
        if worker is not None:
            await worker.aclose()
        for background in (task, refreeze):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        await app.state.submissions.drain()
        await app.state.exports.shutdown()
        await app.state.imports.shutdown()
        if app.state.wechat is not None:
            await app.state.wechat.aclose()
        await app.state.rate_limiter.aclose()
        await app.state.lockouts.aclose()
        await engine.dispose()

    app = FastAPI(
        title="Minyi 民意 API",
        version=__version__,
        description="党代表工作室意见征询、批办、答复与统计。Opinion forms, reply tracking and counts.",
        lifespan=lifespan,
        # MINYI_ALLOWED_HOSTS, when set: a request naming another host is 400 on every route (app/http/hosts.py).
        dependencies=[Depends(hosts.check_host)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.stats_cache = ReadCache(settings.stats_cache_seconds)
    app.state.auth_cache = ReadCache(settings.auth_cache_seconds)
    # Few entries, 8 MB at most: a request list can be a megabyte, and the hot ones (the default list,
    # services) are few.
    app.state.open311_cache = ReadCache(settings.open311_cache_seconds, max_entries=32, max_bytes=8_000_000)

    def after_write_commit() -> None:
        app.state.stats_cache.invalidate()
        app.state.auth_cache.invalidate()
        app.state.open311_cache.invalidate()

    app.state.sessionmaker = create_sessionmaker(engine, after_write_commit=after_write_commit)
    app.state.submissions = SubmissionQueue(app.state.sessionmaker, settings)
    app.state.exports = export_service.ExportRunner(app.state.sessionmaker, settings.export_dir)
    app.state.imports = import_service.ImportRunner(app.state.sessionmaker)
    app.state.wechat = wechat_service.client_from_settings(settings, app.state.sessionmaker)
    # How webhook receivers' names are resolved, at each delivery and ping (tests install their own).
    app.state.webhook_resolver = webhook_service.system_resolver
    app.state.rate_limiter = rate_limit.create(settings)
    app.state.lockouts = lockouts.create(settings)
    app.state.poll_answers = PollAnswers(
        stats_cache=app.state.stats_cache, auth_cache=app.state.auth_cache, prefix="/api/v1/stats/"
    )
    problems.install(app)
    # Innermost: a browser's failed form POST becomes a redirect to a page that reloads cleanly (the page it
    # keeps is the app's own HTML, before compression and headers).
    app.add_middleware(PostRedirectGet)
    app.add_middleware(AnswerPolls, answers=app.state.poll_answers)
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes, photo_max_bytes=settings.photo_max_bytes)
    app.add_middleware(UrlGuard)
    # Pages, scripts and styles cross weak mobile networks compressed; small answers (polls) are left as they are.
    app.add_middleware(Compression, minimum_size=compression.MINIMUM_BYTES, compresslevel=compression.LEVEL)
    app.add_middleware(SecurityHeaders, hsts_seconds=settings.hsts_seconds)
    # A HEAD is the GET's answer without its body (after compression and headers, so its headers are the GET's).
    app.add_middleware(HeadAsGet)
    observability.install(app)
    if settings.trusted_proxy_list:
        # Outermost: every limit, log line and HSTS decision sees the client a trusted proxy names, and
        # X-Forwarded-* from anyone else is ignored.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    # Open311 first: its public list is the cheapest way for anyone to load the server, and routes are
    # matched in order (behind the API's ~150 routes, matching was a quarter of its time).
    app.include_router(open311.router)
    app.include_router(api_v1_router)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with each error answer only as the problem+json it is sent as (FastAPI also
        lists every response model under application/json)."""
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for answer in (operation.get("responses") or {}).values():
                        content = answer.get("content") or {}
                        if "application/problem+json" in content:
                            content.pop("application/json", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.open311_problem = open311.error_response

    @app.get("/healthz", tags=["operations"], summary="Liveness (never touches the database)")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    # The pages, their static files (our CSS and scripts; htmx from npm, never a CDN) and their errors.
    app.include_router(web_router)
    app.mount("/static/vendor/htmx", StaticFiles(directory=FRONTEND / "node_modules" / "htmx.org" / "dist",
                                                 check_dir=False), name="htmx")
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
    app.state.page_problem = page_problem

    return app
