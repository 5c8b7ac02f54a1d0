"""Idempotency-Key support: the first answer to a request is kept and replayed for its retries.

A key is claimed by inserting its row in the same transaction that does the work, so on PostgreSQL a
concurrent request with the same key blocks on the row until the first commits, then finds the stored
answer; on SQLite the write lock serialises them the same way. A batch of the submission queue first
tries optimistically: it looks its keys up (``look_up``), does the work, and inserts each key with its
answer (``keep_many``), one read and one insert per batch; only if another request took one of its keys
meanwhile does it roll back and claim all its keys first (``claim_many``), then keep the answers
(``store_many``).
Expired keys are pruned apart from the work (``prune``, once a minute per process); a claim only clears
its own key if that one has expired, so no submission waits on another's clean-up. Stored answers may hold a verification
code, so they are encrypted with a key derived from the app secret and deleted after the window: compressed,
then sealed with AES-GCM as raw bytes (``_seal``), so a key's row stays well under PostgreSQL's 2 KB TOAST
threshold (a Fernet token of the same answer, base64 of the uncompressed JSON, was ~2.3 KB and every keyed
submission wrote a TOAST row and its index entry too). Answers stored as Fernet tokens still replay.

Keys live in the caller's own namespace (``scope_of``): a staff user's, a resident's or an API client's
for a signed-in caller, and for the anonymous public the client address's (a keyed hash of it, so no
address is stored). The same key from another caller is another key: it files its own form, and never
gets back the first caller's answer (which holds their tracking number and verification code).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import zlib
from functools import lru_cache
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import and_, bindparam, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Invalid
from app.models import IdempotencyRecord, utcnow
from app.services.auth import Principal

MAX_KEY_LENGTH = 255
_SEALED = b"\x01"  # the first byte of an answer sealed by ``_seal`` (a Fernet token begins with "g")
_NONCE = 12
_AAD = b"minyi idempotency answer v1"
_TABLE = IdempotencyRecord.__table__


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any


@dataclass(frozen=True)
class Claim:
    """A request's key in its caller's namespace, and what the request was (its fingerprint, and what the
    same request hashed to before a change of fingerprint)."""

    scope: str
    key: str
    request_hash: str
    also_matches: tuple[str, ...] = ()

    @property
    def ident(self) -> tuple[str, str]:
        return (self.scope, self.key)


def in_progress() -> Conflict:
    return Conflict("相同 Idempotency-Key 的请求正在处理，请稍后重试。", code="idempotency_in_progress")


def reused() -> Invalid:
    return Invalid("该 Idempotency-Key 已用于另一份不同的请求。", code="idempotency_key_reused")


def _matching(idents: Collection[tuple[str, str]]) -> Any:
    return or_(*(and_(_TABLE.c.scope == scope, _TABLE.c.key == key) for scope, key in idents))


def scope_of(principal: Principal, *, client_address: str, secret_key: str) -> str:
    """The namespace of ``principal``'s keys: ``user:<id>``, ``resident:<id>``, ``client:<id>``, or for the
    anonymous public ``anon:<keyed hash of the client address>`` (45 characters: the column holds 64)."""
    if principal.user is not None:
        return f"user:{principal.user.id}"
    if principal.resident is not None:
        return f"resident:{principal.resident.id}"
    if principal.client is not None:
        return f"client:{principal.client.id}"
    digest = hmac.new(secret_key.encode(), b"idempotency-scope:" + client_address.encode(), hashlib.sha256)
    return "anon:" + digest.hexdigest()[:40]


def request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _fernet(secret_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"minyi-idempotency:" + secret_key.encode()).digest()))


@lru_cache(maxsize=4)
def _aead(secret_key: str) -> AESGCM:
    return AESGCM(hashlib.sha256(b"minyi-idempotency-aead:" + secret_key.encode()).digest())


def _seal(body: Any, secret_key: str) -> bytes:
    """``body`` as stored: its JSON compressed, then encrypted and authenticated (AES-256-GCM)."""
    nonce = os.urandom(_NONCE)
    plain = zlib.compress(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), 6)
    return _SEALED + nonce + _aead(secret_key).encrypt(nonce, plain, _AAD)


def _unseal(stored: bytes, secret_key: str) -> Any:
    if stored[:1] == _SEALED:
        nonce, sealed = stored[1:1 + _NONCE], stored[1 + _NONCE:]
        return json.loads(zlib.decompress(_aead(secret_key).decrypt(nonce, sealed, _AAD)))
    return json.loads(_fernet(secret_key).decrypt(stored))  # kept before answers were sealed


def validate_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Invalid("Idempotency-Key 须为 1–255 个可打印字符。", code="invalid_idempotency_key")
    return key


async def claim(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    request_hash: str,
    secret_key: str,
    ttl_seconds: int,
    now: datetime | None = None,
    also_matches: Collection[str] = (),
) -> Replay | None:
    """Claim ``key`` for this request (None), or return the first answer given for it. ``also_matches``: other
    fingerprints of the same request (what a door hashed before a change of fingerprint), so a retry of a
    request first sent before the change still replays within the keys' lifetime."""
    now = now or utcnow()
    validate_key(key)
    # Only this key, if it has expired: the rest are pruned apart (``prune``).
    await session.execute(delete(IdempotencyRecord).where(
        IdempotencyRecord.scope == scope, IdempotencyRecord.key == key,
        IdempotencyRecord.created_at < now - timedelta(seconds=ttl_seconds),
    ))
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    claimed = await session.execute(
        insert(IdempotencyRecord.__table__)
        .values(scope=scope, key=key, request_hash=request_hash, created_at=now)
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyRecord.__table__.c.key)
    )
    if claimed.first() is not None:
        return None
    record = await session.scalar(
        select(IdempotencyRecord)
        .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        .execution_options(populate_existing=True)
    )
    if record is None or record.status_code is None or record.response is None:
        raise in_progress()
    if record.request_hash != request_hash and record.request_hash not in also_matches:
        raise reused()
    body = _unseal(record.response, secret_key)
    return Replay(status_code=record.status_code, body=body)


async def claim_many(
    session: AsyncSession, claims: Collection[Claim], *, secret_key: str, ttl_seconds: int,
    now: datetime | None = None,
) -> dict[tuple[str, str], Replay | Exception]:
    """Claim every key of ``claims`` (distinct keys) in one statement. Returns, for each key that was not
    free, its first answer to replay or why not (``reused``: another request; ``in_progress``). Keys are
    inserted in one order everywhere, so two batches sharing keys never wait on each other crosswise."""
    if not claims:
        return {}
    now = now or utcnow()
    ordered = sorted(claims, key=lambda c: c.ident)
    for claim in ordered:
        validate_key(claim.key)
    idents = [c.ident for c in ordered]
    await session.execute(delete(_TABLE).where(_matching(idents), _TABLE.c.created_at < now - timedelta(seconds=ttl_seconds)))
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows = [{"scope": c.scope, "key": c.key, "request_hash": c.request_hash, "created_at": now} for c in ordered]
    claimed = {tuple(row) for row in await session.execute(
        insert(_TABLE).values(rows).on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(_TABLE.c.scope, _TABLE.c.key)
    )}
    taken = [c for c in ordered if c.ident not in claimed]
    if not taken:
        return {}
    records = {
        (row.scope, row.key): row
        for row in await session.execute(
            select(_TABLE.c.scope, _TABLE.c.key, _TABLE.c.request_hash, _TABLE.c.status_code, _TABLE.c.response)
            .where(_matching([c.ident for c in taken]))
        )
    }
    return {claim.ident: _judge(claim, records.get(claim.ident), secret_key) for claim in taken}


def _judge(claim: Claim, record: Any, secret_key: str) -> Replay | Exception:
    """What a request gets for a key that is already taken by ``record``."""
    if record is None or record.status_code is None or record.response is None:
        return in_progress()
    if record.request_hash != claim.request_hash and record.request_hash not in claim.also_matches:
        return reused()
    return Replay(record.status_code, _unseal(record.response, secret_key))


async def look_up(
    session: AsyncSession, claims: Collection[Claim], *, secret_key: str, ttl_seconds: int,
    now: datetime | None = None,
) -> dict[tuple[str, str], Replay | Exception]:
    """Before the work, without claiming: for each of ``claims``' keys (distinct keys) that a committed,
    unexpired answer holds, that answer to replay or why not. The other keys look free; ``keep_many``
    finds out, after the work, whether they still were (the optimistic half of the submission queue)."""
    if not claims:
        return {}
    now = now or utcnow()
    for claim in claims:
        validate_key(claim.key)
    records = {
        (row.scope, row.key): row
        for row in await session.execute(
            select(_TABLE.c.scope, _TABLE.c.key, _TABLE.c.request_hash, _TABLE.c.status_code, _TABLE.c.response)
            .where(tuple_(_TABLE.c.scope, _TABLE.c.key).in_([c.ident for c in claims]),
                   _TABLE.c.created_at >= now - timedelta(seconds=ttl_seconds))
        )
    }
    return {claim.ident: _judge(claim, records[claim.ident], secret_key) for claim in claims if claim.ident in records}


async def keep_many(
    session: AsyncSession, answers: Collection[tuple[Claim, int, Any]], *, secret_key: str, ttl_seconds: int,
    now: datetime | None = None,
) -> bool:
    """After the work: insert every key with its answer in one statement (in one key order everywhere). An
    expired row of a key is replaced; a live one is left alone, and then this answers False: another
    request took the key meanwhile (another process, the same key, the same instant), and the caller must
    roll its transaction back and claim first (``claim_many``) instead."""
    if not answers:
        return True
    now = now or utcnow()
    expired_before = now - timedelta(seconds=ttl_seconds)
    rows = [{"scope": claim.scope, "key": claim.key, "request_hash": claim.request_hash, "created_at": now,
             "status_code": status, "response": _seal(body, secret_key), "expired_before": expired_before}
            for claim, status, body in sorted(answers, key=lambda answer: answer[0].ident)]
    kept = {tuple(row) for row in await session.execute(_store_statement(session.get_bind().dialect.name), rows)}
    return len(kept) == len(rows)


@lru_cache(maxsize=None)
def _store_statement(dialect: str) -> Any:
    """``keep_many``'s upsert, built once per dialect (its ``excluded`` alias copies the table's columns,
    which cost more app CPU per batch than running it); the expiry moment is a parameter of each row."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_TABLE)
    return statement.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={name: statement.excluded[name] for name in ("request_hash", "created_at", "status_code", "response")},
        where=_TABLE.c.created_at < bindparam("expired_before"),
    ).returning(_TABLE.c.scope, _TABLE.c.key)


async def store_many(session: AsyncSession, answers: Collection[tuple[Claim, int, Any]], *, secret_key: str) -> None:
    """Keep the first answer of each claimed key, in one statement."""
    if not answers:
        return
    await session.execute(
        update(_TABLE)
        .where(_TABLE.c.scope == bindparam("b_scope"), _TABLE.c.key == bindparam("b_key"))
        .values(status_code=bindparam("b_status"), response=bindparam("b_response")),
        [{"b_scope": claim.scope, "b_key": claim.key, "b_status": status,
          "b_response": _seal(body, secret_key)}
         for claim, status, body in answers],
    )


async def release(session: AsyncSession, claims: Collection[Claim]) -> None:
    """Give back keys claimed for requests that were refused: nothing is kept of a refusal."""
    if claims:
        await session.execute(delete(_TABLE).where(_matching([c.ident for c in claims])))


async def prune(session: AsyncSession, *, ttl_seconds: int, now: datetime | None = None) -> int:
    """Delete every key older than the window; how many."""
    now = now or utcnow()
    result = await session.execute(delete(_TABLE).where(_TABLE.c.created_at < now - timedelta(seconds=ttl_seconds)))
    return int(result.rowcount or 0)


async def store(
    session: AsyncSession, *, scope: str, key: str, status_code: int, body: Any, secret_key: str
) -> None:
    record = await session.get(IdempotencyRecord, (scope, key))
    if record is None:  # claim() always runs first in the same transaction
        raise RuntimeError("idempotency key was not claimed")
    record.status_code = status_code
    record.response = _seal(body, secret_key)
    await session.flush()
