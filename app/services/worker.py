"""The delivery worker: sends due webhook deliveries, WeChat reply notices and SMS from the outbox.

It runs inside each app process (``MINYI_WORKER_IN_PROCESS``, started and stopped by the app's lifespan)
or as processes of its own (``minyi worker``). Any number cooperate: work is claimed from the database
(``webhooks.deliver_due``, ``notices.send_due``, ``sms.send_due``), so a worker may die at any moment and another picks
up what it held once its lease ends.

Each loop works until nothing is due, then waits ``MINYI_WORKER_POLL_SECONDS``. A database or network
fault is logged and the loop goes on. Webhook rounds overlap: while one round waits on a slow receiver
(up to the webhook timeout), the next poll starts another round, which skips webhooks already in flight,
so other receivers keep getting theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.services import notices
from app.services import similar_forms
from app.services import sms as sms_service
from app.services import webhooks as webhook_service
from app.services import wechat as wechat_service

log = logging.getLogger(__name__)

# Webhook rounds one worker keeps in flight at most (each sends up to its own limit, concurrently).
MAX_ROUNDS = 4


def default_worker_id() -> str:
    """``host:pid:random``, recorded on every webhook attempt."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(2)}"


class Worker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        wechat: Any = None,
        worker_id: str | None = None,
        http: httpx.AsyncClient | None = None,
        resolver: webhook_service.Resolver | None = None,
        sms: sms_service.SmsProvider | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.resolver = resolver  # of webhook receivers' names (None: the system's)
        self.settings = settings
        self.wechat = wechat
        # The SMS provider: the one given, else the settings' own (closed with the worker); None: SMS not
        # offered, and anything still waiting is settled as failed.
        self._own_sms = sms is None
        self.sms = sms if sms is not None else sms_service.provider_from_settings(settings)
        if settings.sms_provider and (absent := sms_service.missing(settings)):
            log.warning("MINYI_SMS_PROVIDER=%s but %s unset: no SMS is offered or sent", settings.sms_provider,
                        ", ".join(absent))
        self.worker_id = (worker_id or default_worker_id())[:100]
        self._http = http
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- running -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run in the background of the current event loop (the app's lifespan)."""
        self._task = asyncio.create_task(self.run(), name=f"minyi-worker {self.worker_id}")

    def stop(self) -> None:
        """Ask the loops to end: no new round starts; sends in flight finish (within the webhook timeout)."""
        self._stopping.set()

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop and wait up to ``grace`` seconds; then cancel. A cancelled webhook send keeps its claim until
        the lease ends and is sent again then (by this or another worker; receivers dedupe by id). A cancelled
        WeChat notice is not: it may already have reached the resident and spent the credit, so it is
        settled as failed (see notices.py)."""
        self.stop()
        if self._task is None:
            await self._close_sms()
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception:  # the loops catch their own faults; whatever escaped must not break a shutdown
            log.exception("worker %s ended with an error", self.worker_id)
        self._task = None
        await self._close_sms()

    async def _close_sms(self) -> None:
        if self._own_sms and self.sms is not None:
            await self.sms.aclose()

    async def run(self) -> None:
        """Loop until ``stop()``."""
        log.info("worker %s started", self.worker_id)
        async with self._client() as http:
            await asyncio.gather(self._webhook_loop(http), self._notice_loop(), self._similar_loop())
        log.info("worker %s stopped", self.worker_id)

    async def run_until_idle(self) -> int:
        """Deliver and notify until nothing is due, and index new forms for similar forms (``minyi worker
        --once``); returns how many deliveries and notices were handled. Errors are raised, not logged."""
        total = 0
        async with self._client() as http:
            while True:
                handled = await webhook_service.deliver_due(
                    self.sessionmaker, http, worker_id=self.worker_id, settings=self.settings, resolver=self.resolver
                )
                handled += await notices.send_due(self.sessionmaker, self.wechat, self.settings)
                handled += await sms_service.send_due(self.sessionmaker, self.sms, self.settings)
                # Forms indexed for similar forms keep the loop going but are not deliveries: not counted.
                indexed = await similar_forms.index_round(self.sessionmaker, self.settings)
                if not handled and not indexed:
                    return total
                total += handled

    # --- loops ---------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._http is not None:
            yield self._http
            return
        async with webhook_service.http_client() as http:
            yield http

    async def _idle(self) -> None:
        """Wait one poll interval (±10 %, so workers started together drift apart), or until stopped."""
        pause = self.settings.worker_poll_seconds * random.uniform(0.9, 1.1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=pause)

    async def _round(self, http: httpx.AsyncClient) -> int:
        try:
            return await webhook_service.deliver_due(
                self.sessionmaker, http, worker_id=self.worker_id, settings=self.settings, resolver=self.resolver
            )
        except Exception:  # the database away for a moment, say: log it, try again after a pause
            log.exception("webhook delivery round failed")
            return 0

    async def _webhook_loop(self, http: httpx.AsyncClient) -> None:
        rounds: set[asyncio.Task[int]] = set()
        try:
            while not self._stopping.is_set():
                if len(rounds) < MAX_ROUNDS:
                    rounds.add(asyncio.create_task(self._round(http)))
                done, rounds = await asyncio.wait(
                    rounds, timeout=self.settings.worker_poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if done and not any(task.result() for task in done):
                    await self._idle()
            if rounds:
                await asyncio.wait(rounds)
        finally:
            for task in rounds:
                task.cancel()

    async def _notice_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await notices.send_due(self.sessionmaker, self.wechat, self.settings)
            except Exception:
                log.exception("reply notice round failed")
                handled = 0
            try:
                handled += await sms_service.send_due(self.sessionmaker, self.sms, self.settings)
            except Exception:
                log.exception("SMS round failed")
            if not handled:
                await self._idle()


    async def _similar_loop(self) -> None:
        """Index new forms for similar forms and topics (services/similar_forms.py), a batch at a time,
        resting three times as long as each batch took: at most a quarter of a core, so a burst of
        submissions is indexed a little later rather than served slower."""
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                handled = await similar_forms.index_round(self.sessionmaker, self.settings)
            except Exception:
                log.exception("similar forms indexing round failed")
                handled = 0
            if not handled:
                await self._idle()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=3 * (time.monotonic() - started))


async def run_process(settings: Settings, *, once: bool = False, worker_id: str | None = None) -> int:
    """``minyi worker``: a worker in a process of its own, until SIGTERM or SIGINT (or, with ``once``,
    until nothing is due). Returns how much was handled with ``once``, else 0."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    wechat = wechat_service.client_from_settings(settings, sessionmaker)
    worker = Worker(sessionmaker, settings, wechat=wechat, worker_id=worker_id)
    try:
        if once:
            return await worker.run_until_idle()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()
        return 0
    finally:
        await worker.aclose()  # closes the SMS client it made
        if wechat is not None:
            await wechat.aclose()
        await engine.dispose()
