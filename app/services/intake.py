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

Submissions with an ``Idempotency-Key`` (every one the representatives' offline outbox and the WeChat
mini-program send) take the same line: the batch claims all its keys in one statement (sorted, so two
batches never wait on each other crosswise), writes the forms, and keeps every answer in one more; a key
already answered is replayed, a key twice in one batch is answered once. Expired keys are pruned apart
from the batches, once a minute, so no submission waits on another's clean-up.
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
from app.services.idempotency import Claim

log = logging.getLogger(__name__)

# A batch's counter upsert carries up to 6 rows of 17 values per form: 100 forms stay far below the
# 32,767 bind parameters PostgreSQL and SQLite allow in one statement.
MAX_BATCH = 100
# After writing a batch of at least LINGER_AFTER, the writer waits LINGER_SECONDS for the next one to fill.
LINGER_AFTER = 4
LINGER_SECONDS = 0.001
# How often (seconds) a process prunes expired idempotency keys, in a transaction of its own.
PRUNE_EVERY = 60.0

# What a door answers for a written form: its own shape (the API's FormCreated, Open311's list …), built
# in the write's transaction and kept as it is for a replay of the same key.
Answer = Callable[[Accepted, Sequence[FormPhoto]], Any]


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: Any  # the door's answer, the first one given for a key
    replayed: bool = False
    accepted: Accepted | None = None  # None for a replay


class _KeyTaken(Exception):
    """An optimistic batch found, at the end, one of its keys taken by another request meanwhile."""


@dataclass
class _Waiting:
    principal: Principal
    data: Submission
    answer: Answer | None
    claim: Claim | None
    future: asyncio.Future[Outcome]


class SubmissionQueue:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # how many transactions were written (tests and benchmarks read it)
        self.written = 0  # how many submissions they held
        self._pruned_at = 0.0  # loop time of the last prune of expired idempotency keys
        self.raced = 0  # batches redone claiming first: a key was taken while they worked (tests read it)

    async def submit(
        self, principal: Principal, data: Submission, *, answer: Answer | None = None, claim: Claim | None = None
    ) -> Outcome:
        """Write one submission (with whatever else is waiting) and answer it with ``answer``; with a
        ``claim``, replay the first answer given for its key instead. Raises Invalid if it was refused
        (or its key was used for another request), Conflict if its key is still being handled elsewhere."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        # Its exception is seen even when the client hung up (the request's await was cancelled).
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._waiting.append(_Waiting(principal, data, answer, claim, future))
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
                await self._prune()
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                await self._write(batch)
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for waiting in [*batch, *self._waiting]:
                if not waiting.future.done():
                    waiting.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("shutting down"))
            self._waiting = []
            raise

    async def _prune(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            async with transaction(self.sessionmaker) as session:
                await idempotency_service.prune(session, ttl_seconds=self.settings.idempotency_ttl_seconds)
        except Exception:  # the next minute's prune will do; the submissions must not wait on it
            log.exception("pruning expired idempotency keys failed")

    async def _transaction(self, batch: list[_Waiting]) -> list[Outcome | Exception]:
        """The batch in one transaction: optimistically (keys looked up, answers inserted after the work);
        if another request took one of its keys meanwhile, rolled back and done again claiming first."""
        try:
            async with transaction(self.sessionmaker) as session:
                return await self._write_batch(session, batch, optimistic=True)
        except _KeyTaken:
            self.raced += 1
            async with transaction(self.sessionmaker) as session:
                return await self._write_batch(session, batch, optimistic=False)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            results = await self._transaction(batch)
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

    async def _write_batch(
        self, session: AsyncSession, batch: list[_Waiting], *, optimistic: bool
    ) -> list[Outcome | Exception]:
        """One transaction: the batch's keys looked up (``optimistic``) or claimed, the forms written, the
        keyed answers kept. Optimistic: raises ``_KeyTaken`` when a key was taken meanwhile."""
        settings = self.settings
        outcomes: list[Outcome | Exception | None] = [None] * len(batch)
        first: dict[tuple[str, str], int] = {}  # each key's first submission in this batch
        repeats: list[int] = []  # the same key again in this batch: answered with the first's answer
        for index, waiting in enumerate(batch):
            if waiting.claim is not None:
                if waiting.claim.ident in first:
                    repeats.append(index)
                else:
                    first[waiting.claim.ident] = index
        if first:
            found = await (idempotency_service.look_up if optimistic else idempotency_service.claim_many)(
                session, [batch[i].claim for i in first.values()],  # type: ignore[misc]
                secret_key=settings.secret_key, ttl_seconds=settings.idempotency_ttl_seconds,
            )
            for ident, replay in found.items():
                index = first[ident]
                outcomes[index] = (replay if isinstance(replay, Exception)
                                   else Outcome(replay.status_code, replay.body, replayed=True))
        skip = set(repeats)
        todo = [i for i in range(len(batch)) if outcomes[i] is None and i not in skip]
        results = await submit_many(session, [(batch[i].principal, batch[i].data) for i in todo], settings=settings)
        kept: list[tuple[Claim, int, Any]] = []
        refused: list[Claim] = []
        for index, result in zip(todo, results, strict=True):
            waiting = batch[index]
            if isinstance(result, Exception):
                outcomes[index] = result
                if waiting.claim is not None:
                    refused.append(waiting.claim)
                continue
            body = waiting.answer(result, []) if waiting.answer is not None else None
            outcomes[index] = Outcome(201, body, accepted=result)
            if waiting.claim is not None:
                kept.append((waiting.claim, 201, body))
        # Nothing is kept of a refusal: its key is free for the corrected request.
        if optimistic:
            if not await idempotency_service.keep_many(session, kept, secret_key=settings.secret_key,
                                                       ttl_seconds=settings.idempotency_ttl_seconds):
                raise _KeyTaken
        else:
            await idempotency_service.release(session, refused)
            await idempotency_service.store_many(session, kept, secret_key=settings.secret_key)
        for index in repeats:
            claim = batch[index].claim
            assert claim is not None
            earlier = batch[first[claim.ident]]
            answered = outcomes[first[claim.ident]]
            if not isinstance(answered, Outcome):
                outcomes[index] = idempotency_service.in_progress()
            elif claim.request_hash != earlier.claim.request_hash:  # type: ignore[union-attr]
                outcomes[index] = idempotency_service.reused()
            else:
                outcomes[index] = Outcome(answered.status_code, answered.body, replayed=True)
        return outcomes  # type: ignore[return-value]


# --- the front door ----------------------------------------------------------------------------------

# Set by WeChat's screening, never by the caller: not part of what the caller asked.
_NOT_ASKED = frozenset({"review_flag", "content_check"})


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
    claim = None
    if idempotency_key is not None:
        claim = Claim(
            scope=idempotency_service.scope_of(principal, client_address=client_address, secret_key=settings.secret_key),
            key=idempotency_key, request_hash=request_hash,
            also_matches=(previous_fingerprint(photos),) if previous_fingerprint else (),
        )
    if not photos:
        # Queued: written with whatever else is arriving, in one transaction (group commit, above); a key
        # is claimed and its answer kept in that same transaction.
        return await state.submissions.submit(principal, data, answer=answer, claim=claim)  # type: ignore[no-any-return]
    # Photos: claim the key, write, keep the answer, all in one transaction (nothing is kept of a refusal).
    async with transaction(state.sessionmaker) as session:
        if claim is not None:
            replay = await idempotency_service.claim(
                session, scope=claim.scope, key=claim.key, request_hash=claim.request_hash,
                secret_key=settings.secret_key, ttl_seconds=settings.idempotency_ttl_seconds,
                also_matches=claim.also_matches,
            )
            if replay is not None:
                return Outcome(replay.status_code, replay.body, replayed=True)
        (result,) = await submit_many(session, [(principal, data)], settings=settings)
        if isinstance(result, Exception):
            raise result
        stored = await photo_service.attach(session, form_id=result.form.id, photos=photos, settings=settings,
                                            uploaded_by=principal.label) if photos else []
        body = answer(result, stored)
        if claim is not None:
            await idempotency_service.store(session, scope=claim.scope, key=claim.key, status_code=201, body=body,
                                            secret_key=settings.secret_key)
    return Outcome(201, body, accepted=result)
