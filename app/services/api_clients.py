"""API clients (接口客户端): integrators' systems, each with scopes, a key shown once and a rate limit."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import Unauthorized
from app.models import ApiClient, utcnow

KEY_PREFIX = "mk_"
# Last use is written at most this often per client, so a busy client does not turn every read into a write.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def resolve_key(session: AsyncSession, key: str) -> ApiClient:
    client = await session.scalar(select(ApiClient).where(ApiClient.key_hash == key_hash(key)))
    if client is None or client.revoked_at is not None:
        raise Unauthorized("接口密钥无效或已吊销。", code="invalid_api_key")
    return client


async def note_use(sessionmaker: async_sessionmaker[AsyncSession], client: ApiClient) -> None:
    """Record that ``client`` was used now (at most once a minute per client and process)."""
    now = utcnow()
    if client.last_used_at is not None and now - client.last_used_at < LAST_USED_GRANULARITY:
        return
    client.last_used_at = now  # the cached, detached instance: later requests of this process skip the write
    async with sessionmaker() as session:
        await session.execute(update(ApiClient).where(ApiClient.id == client.id).values(last_used_at=now))
        await session.commit()
