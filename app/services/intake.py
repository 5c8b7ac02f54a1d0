"""The one front door for submissions, and the group commit behind it.

``submit_form`` takes a submission from every door — the JSON API (and so the WeChat mini-program), the
public page, the representative's page, Open311 — and does, once and the same for all: photos (checked and
cleaned), WeChat's content screening (for residents), idempotency (a key claimed in the caller's own
namespace, the first answer kept and replayed), the write (queued, or in the key's transaction), and the
events, counters and outbox entries that ``forms.submit_many`` writes with the form. A door only turns its
input into a ``forms.Submission`` and the answer into its own shape (``answer``), and keeps its HTTP
concerns (limits, cookies, redirects).

Group commit: many residents submitting at once share one transaction.

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
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.models import FormPhoto
from app.services import content_check
from app.services import idempotency as idempotency_service
from app.services import photos as photo_service
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


# --- the front door ----------------------------------------------------------------------------------

# What a door answers for a written form: its own shape (the API's FormCreated, Open311's list …), built
# in the write's transaction and kept as it is for a replay of the same key.
Answer = Callable[[Accepted, Sequence[FormPhoto]], Any]

# Set by WeChat's screening, never by the caller: not part of what the caller asked.
_NOT_ASKED = frozenset({"review_flag", "content_check"})


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: Any  # the door's answer, the first one given for a key
    replayed: bool = False
    accepted: Accepted | None = None  # None for a replay


def fingerprint(door: str, data: Submission, photos: Sequence[photo_service.PreparedPhoto] = ()) -> str:
    """What a key promises: this door, and the submission normalised — every field left at its default
    (absent, None, empty or blank text) left out — plus the photos' digests. A phone's retry that spans an
    upgrade adding an optional field is the same request; another content is not."""
    asked: dict[str, Any] = {}
    for field in dataclasses.fields(Submission):
        value = getattr(data, field.name)
        if isinstance(value, str):
            value = value.strip() or None
        if field.name in _NOT_ASKED or value is None or value == field.default:
            continue
        asked[field.name] = value
    if photos:
        asked["photos"] = [photo.sha256 for photo in photos]
    return idempotency_service.request_hash([door, asked])


async def submit_form(
    state: Any,
    principal: Principal,
    data: Submission,
    *,
    door: str,
    answer: Answer,
    client_address: str,
    idempotency_key: str | None = None,
    uploads: Sequence[photo_service.Upload] = (),
    previous_fingerprint: Callable[[Sequence[photo_service.PreparedPhoto]], str] | None = None,
) -> Outcome:
    """Write one submission through the front door. ``state`` is the app's (its settings, sessionmaker,
    submission queue and WeChat client). Raises ``Invalid`` (a refused submission, a photo, a key reused
    for another request), ``Conflict`` (the same key still being handled) or what the photos raise.
    ``previous_fingerprint``: what this door hashed for a key before the front door, so that a phone's
    retry of a request first sent before this upgrade still replays while its key lives (24 h)."""
    settings: Settings = state.settings
    if idempotency_key is not None:
        idempotency_service.validate_key(idempotency_key)
    photos = await photo_service.prepare_all(uploads, settings=settings) if uploads else []
    request_hash = fingerprint(door, data, photos)  # before the screening: WeChat's verdict is not the request
    # Text from WeChat's residents goes through WeChat's own check first, when enabled (risky: Invalid).
    data = await content_check.screen(state.wechat, principal=principal, data=data, settings=settings)
    if idempotency_key is None and not photos:
        # Queued: written with whatever else is arriving, in one transaction (group commit, above).
        accepted = await state.submissions.submit(principal, data)
        return Outcome(201, answer(accepted, []), accepted=accepted)
    # A key: claim it, write, keep the answer, all in one transaction (nothing is kept of a refusal).
    scope = idempotency_service.scope_of(principal, client_address=client_address, secret_key=settings.secret_key)
    async with transaction(state.sessionmaker) as session:
        if idempotency_key is not None:
            replay = await idempotency_service.claim(
                session, scope=scope, key=idempotency_key, request_hash=request_hash,
                secret_key=settings.secret_key, ttl_seconds=settings.idempotency_ttl_seconds,
                also_matches=(previous_fingerprint(photos),) if previous_fingerprint else (),
            )
            if replay is not None:
                return Outcome(replay.status_code, replay.body, replayed=True)
        (result,) = await submit_many(session, [(principal, data)], settings=settings)
        if isinstance(result, Exception):
            raise result
        stored = await photo_service.attach(session, form_id=result.form.id, photos=photos, settings=settings,
                                            uploaded_by=principal.label) if photos else []
        body = answer(result, stored)
        if idempotency_key is not None:
            await idempotency_service.store(session, scope=scope, key=idempotency_key, status_code=201, body=body,
                                            secret_key=settings.secret_key)
    return Outcome(201, body, accepted=result)
