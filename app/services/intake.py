"""Group commit for submissions: many residents submitting at once share one transaction.

A market morning or a WeChat campaign brings bursts of submissions. Written one transaction each, they
queue for the year's tracking-number row and pay a commit each. ``SubmissionQueue`` instead lets
requests wait in line while one batch is being written, then writes everything that arrived meanwhile
in the next transaction (``forms.submit_many``: a fixed number of statements per batch). Nothing waits
for a timer: alone, a submission is written at once; under load, batches grow by themselves.

Each request still gets its own answer only after its batch has committed, so a 201 always means the
form is saved. A refused submission (an unknown category…) is refused alone. If a batch fails as a
whole, each of its submissions is retried in a transaction of its own, so one bad row cannot sink the
others, and a database fault reaches exactly the requests it hit.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.services.auth import Principal
from app.services.forms import Accepted, Submission, submit_many

log = logging.getLogger(__name__)

# A batch's counter upsert carries up to 6 rows of 17 values per form: 100 forms stay far below the
# 32,767 bind parameters PostgreSQL and SQLite allow in one statement.
MAX_BATCH = 100
# After writing a batch of at least LINGER_AFTER, the writer waits LINGER_SECONDS for the next one to fill.
LINGER_AFTER = 4
LINGER_SECONDS = 0.001


@dataclass
class _Waiting:
    principal: Principal
    data: Submission
    future: asyncio.Future[Accepted]


class SubmissionQueue:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # how many transactions were written (tests and benchmarks read it)
        self.written = 0  # how many submissions they held

    async def submit(self, principal: Principal, data: Submission) -> Accepted:
        """Write one submission (with whatever else is waiting); raises Invalid if it was refused."""
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(principal, data, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        # Shielded: a client that hangs up does not cancel the write its batch is doing for others.
        return await asyncio.shield(future)

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (at shutdown)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write_all(self) -> None:
        batch: list[_Waiting] = []
        try:
            while True:
                if len(batch) >= LINGER_AFTER:
                    # Under load: the clients just answered are sending their next submissions; wait a
                    # moment for them rather than writing the first to arrive alone.
                    await asyncio.sleep(LINGER_SECONDS)
                if not self._waiting:
                    break
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                await self._write(batch)
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for waiting in [*batch, *self._waiting]:
                if not waiting.future.done():
                    waiting.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("shutting down"))
            self._waiting = []
            raise

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            async with transaction(self.sessionmaker) as session:
                results = await submit_many(session, [(w.principal, w.data) for w in batch], settings=self.settings)
            self.batches += 1
            self.written += len(batch)
        except Exception as exc:
            if len(batch) > 1:
                log.warning("a batch of %d submissions failed (%s); writing each alone", len(batch), exc)
                for waiting in batch:
                    await self._write([waiting])
                return
            results = [exc]
        for waiting, result in zip(batch, results, strict=True):
            if waiting.future.done():
                continue
            if isinstance(result, Exception):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)
