"""Residents who come through the WeChat mini-program: login by code2Session, their tokens, their forms,
and the notice credits they give (WeChat's one-time subscription model)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Unauthorized
from app.models import Resident, ResidentToken, utcnow

# Residents' tokens carry a prefix, so a bearer token is looked up in the right table at once.
TOKEN_PREFIX = "wx_"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    session: AsyncSession, *, resident: Resident, ttl_seconds: int, now: datetime | None = None
) -> tuple[str, int]:
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ResidentToken(token_hash=_token_hash(token), resident_id=resident.id, created_at=now,
                              expires_at=now + timedelta(seconds=ttl_seconds)))
    await session.flush()
    return token, ttl_seconds


async def resolve_token(session: AsyncSession, token: str, *, now: datetime | None = None) -> Resident:
    now = now or utcnow()
    found = (await session.execute(
        select(Resident, ResidentToken)
        .join(ResidentToken, ResidentToken.resident_id == Resident.id)
        .where(ResidentToken.token_hash == _token_hash(token))
    )).first()
    if found is None:
        raise Unauthorized("登录凭证无效。", code="invalid_token")
    resident, row = found
    if row.revoked_at is not None or row.expires_at <= now or not resident.active:
        raise Unauthorized("登录凭证已失效，请重新登录。", code="invalid_token")
    return resident
