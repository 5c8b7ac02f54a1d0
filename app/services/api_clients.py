"""API clients (接口客户端): integrators' systems, each with scopes, a key shown once and a rate limit.

Admins create, change, rotate and revoke them. A key is ``mk_`` followed by 32 random bytes (urlsafe
base64); only its SHA-256 is stored, with its first characters (``key_prefix``) so people can tell keys
apart in lists. Every write here commits through the request's session, and a commit that wrote anything
drops this process's auth cache (``db.create_sessionmaker(after_write_commit=...)``): a rotated or revoked
key stops working in this process at once, and in the other processes within ``MINYI_AUTH_CACHE_SECONDS``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import Conflict, NotFound, PermissionDenied, Unauthorized
from app.models import ApiClient, DeliveryStatus, Scope, Webhook, WebhookDelivery, utcnow
from app.services.auth import Principal
from app.services.pagination import paginate

log = logging.getLogger("minyi")

KEY_PREFIX = "mk_"
SHOWN_PREFIX_LENGTH = 11  # "mk_" and 8 more: enough to tell keys apart, far too little to guess one
# Last use is written at most this often per client, so a busy client does not turn every read into a write.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def normalise_scopes(scopes: Iterable[str]) -> list[str]:
    """Known scopes only (anything else is the schema's 422), each once, in the order ``Scope`` lists them."""
    wanted = {Scope(s) for s in scopes}
    return [scope.value for scope in Scope if scope in wanted]


# --- who is asking -----------------------------------------------------------------------------------


async def resolve_key(session: AsyncSession, key: str) -> ApiClient:
    client = await session.scalar(select(ApiClient).where(ApiClient.key_hash == key_hash(key)))
    if client is None or client.revoked_at is not None:
        raise Unauthorized("接口密钥无效或已吊销。", code="invalid_api_key")
    return client


def require_client(principal: Principal) -> ApiClient:
    """The API client asking (``X-API-Key``); 401 for nobody, 403 for staff and residents."""
    if principal.client is None:
        if principal.is_anonymous:
            raise Unauthorized("请在 X-API-Key 请求头中提供接口密钥。", code="api_key_required")
        raise PermissionDenied("此接口仅供接口客户端（X-API-Key）使用。", code="api_clients_only")
    return principal.client


async def note_use(sessionmaker: async_sessionmaker[AsyncSession], client: ApiClient) -> None:
    """Record that ``client`` was used now: at most once a minute per client and process, and (by the
    guard in the UPDATE) at most once a minute per client across processes too.

    Bookkeeping only: written on the session's connection directly, so the commit does not count as a
    write that drops the process's caches (see ``db.create_sessionmaker``), and a failure is logged
    rather than refusing a request that could otherwise be served."""
    now = utcnow()
    if client.last_used_at is not None and now - client.last_used_at < LAST_USED_GRANULARITY:
        return
    client.last_used_at = now  # the cached, detached instance: later requests of this process skip the write
    try:
        async with sessionmaker() as session:
            connection = await session.connection()
            await connection.execute(
                update(ApiClient)
                .where(ApiClient.id == client.id,
                       or_(ApiClient.last_used_at.is_(None), ApiClient.last_used_at <= now - LAST_USED_GRANULARITY))
                .values(last_used_at=now)
            )
            await session.commit()
    except SQLAlchemyError as exc:
        log.warning("could not record the last use of API client %s: %s", client.id, exc)


# --- admin -------------------------------------------------------------------------------------------


async def list_clients(
    session: AsyncSession, *, limit: int, cursor: str | None = None
) -> tuple[Sequence[ApiClient], str | None]:
    return await paginate(session, select(ApiClient).order_by(ApiClient.id), limit=limit, cursor=cursor)


async def get(session: AsyncSession, client_id: int) -> ApiClient | None:
    return await session.get(ApiClient, client_id)


async def get_or_raise(session: AsyncSession, client_id: int) -> ApiClient:
    client = await get(session, client_id)
    if client is None:
        raise NotFound(f"接口客户端 {client_id} 不存在。", code="api_client_not_found")
    return client


async def _get_active_for_update(session: AsyncSession, client_id: int) -> ApiClient:
    # FOR UPDATE (PostgreSQL; SQLite's writers are serialised anyway): a revoke and a rotate of the same
    # client at the same moment run one after the other, so no key is handed out for a revoked client.
    client = await session.scalar(
        select(ApiClient).where(ApiClient.id == client_id).with_for_update().execution_options(populate_existing=True)
    )
    if client is None:
        raise NotFound(f"接口客户端 {client_id} 不存在。", code="api_client_not_found")
    if client.revoked_at is not None:
        raise Conflict(f"接口客户端 {client_id} 已吊销，不能再修改或更换密钥；请新建客户端。", code="client_revoked")
    return client


def _set_key(client: ApiClient) -> str:
    key = new_key()
    client.key_hash = key_hash(key)
    client.key_prefix = key[:SHOWN_PREFIX_LENGTH]
    return key


async def create(
    session: AsyncSession,
    *,
    name: str,
    scopes: Iterable[str],
    rate_limit_per_minute: int,
    created_by_user_id: int | None,
) -> tuple[ApiClient, str]:
    """A new client and its key (the only time the key exists outside the caller's hands)."""
    client = ApiClient(name=name, scopes=normalise_scopes(scopes), rate_limit_per_minute=rate_limit_per_minute,
                       created_by_user_id=created_by_user_id, created_at=utcnow())
    key = _set_key(client)
    session.add(client)
    await session.flush()
    return client, key


async def update_client(session: AsyncSession, *, client_id: int, data: dict[str, Any]) -> ApiClient:
    """Change ``name``, ``scopes`` or ``rate_limit_per_minute``; 409 ``client_revoked`` once revoked."""
    client = await _get_active_for_update(session, client_id)
    if "scopes" in data:
        data = {**data, "scopes": normalise_scopes(data["scopes"])}
    for field in ("name", "scopes", "rate_limit_per_minute"):
        if field in data:
            setattr(client, field, data[field])
    await session.flush()
    return client


async def rotate(session: AsyncSession, *, client_id: int) -> tuple[ApiClient, str]:
    """A new key for the client; the old one stops working (see the module's note on processes)."""
    client = await _get_active_for_update(session, client_id)
    key = _set_key(client)
    client.rotated_at = utcnow()
    await session.flush()
    return client, key


async def revoke(session: AsyncSession, *, client_id: int) -> ApiClient:
    """Revoke the client: its key stops working. Revoking again changes nothing (DELETE is idempotent)."""
    client = await session.scalar(
        select(ApiClient).where(ApiClient.id == client_id).with_for_update().execution_options(populate_existing=True)
    )
    if client is None:
        raise NotFound(f"接口客户端 {client_id} 不存在。", code="api_client_not_found")
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        # Its webhooks stop too: switched off, and what was still waiting to go out is settled as failed
        # (an admin can see it; a new key for a new client starts from the changes feed).
        webhook_ids = select(Webhook.id).where(Webhook.client_id == client.id).scalar_subquery()
        await session.execute(update(Webhook).where(Webhook.client_id == client.id).values(active=False))
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id.in_(webhook_ids), WebhookDelivery.status == DeliveryStatus.pending)
            .values(status=DeliveryStatus.failed, last_error="接口客户端已吊销，不再投递。", claimed_until=None)
        )
        await session.flush()
    return client
