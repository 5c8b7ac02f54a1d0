"""Webhooks (回调): integrators' subscriptions to form changes, and their delivery from the outbox.

A webhook belongs to the API client that created it (scope ``webhooks``); an admin manages every one
and creates office-owned ones (no client). Its signing secret is shown once and stored encrypted with a
key derived from the app secret. After a rotation the previous secret keeps signing beside the new one
for ``ROTATION_GRACE``, so a receiver can switch without losing a delivery.

Delivery, the Standard Webhooks way (https://www.standardwebhooks.com): each ``WebhookDelivery`` (one
change to one webhook, written by ``changes.record`` in the action's transaction) is POSTed as
``{"id", "type", "at", "data"}`` with ``webhook-id`` (the change's stable id, the same on every retry and
redelivery, for the receiver to dedupe by), ``webhook-timestamp`` and ``webhook-signature``. A 2xx
answer delivers it; anything else is retried on ``RETRY_DELAYS`` (about a day), then it has failed.

``deliver_due`` is what workers run: a short transaction claims due deliveries (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, the write lock on SQLite) by setting a lease (``claimed_until``); the sends
happen outside any transaction; each result is recorded in a transaction of its own, and only changes
the delivery if the claim is still this worker's. A worker killed mid-send leaves its claims to expire
and another sends them again: at least once, never lost. A webhook's deliveries go out one after the
other in change order, and none is claimed while another of the same webhook is in flight; different
webhooks are sent concurrently, so one slow receiver never holds up the others.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Integer, String, Text, delete, exists, func, insert, literal, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app.config import TZ, Settings
from app.db import transaction
from app.errors import Conflict, Invalid, NotFound
from app.models import (
    ApiClient,
    DeliveryStatus,
    FormChange,
    Role,
    Scope,
    UTCDateTime,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)
from app.services import pagination
from app.services.auth import Principal
from app.services.changes import EVENT_TYPES

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
USER_AGENT = "Minyi-Webhooks/1"
# Wait after the n-th failed attempt; after the last one the delivery has failed. Ten attempts spread
# over about 24 hours (30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h), each wait ±10 % at random
# so receivers coming back from an outage are not hit by every worker at the same second.
RETRY_DELAYS: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s) for s in (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1
ROTATION_GRACE = timedelta(hours=24)
MAX_WEBHOOKS_PER_OWNER = 20
# At most this many deliveries of one webhook are claimed in one round, so a backlog at one receiver
# leaves room in the round for the others.
PER_WEBHOOK_PER_ROUND = 10
MAX_ERROR_CHARS = 500
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ENVIRONMENTS_ALLOWING_HTTP = frozenset({"development", "test"})


# --- secrets -----------------------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, *, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256(secret bytes, "id.timestamp.body")>``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _fernet(secret_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"minyi-webhook-secret:" + secret_key.encode()).digest()))


@dataclass(frozen=True)
class Secrets:
    """A webhook's signing secret, and the one it replaced while that still signs (after a rotation)."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def signing(self, now: datetime) -> list[str]:
        if self.previous and self.previous_until and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]


def _seal(secret_key: str, value: Secrets) -> str:
    raw = {"current": value.current, "previous": value.previous,
           "previous_until": value.previous_until.isoformat() if value.previous_until else None}
    return _fernet(secret_key).encrypt(json.dumps(raw).encode()).decode()


def _open(secret_key: str, sealed: str) -> Secrets:
    """The secrets of a webhook; raises ``InvalidToken`` when MINYI_SECRET_KEY changed since they were sealed."""
    raw = json.loads(_fernet(secret_key).decrypt(sealed.encode()))
    until = raw.get("previous_until")
    return Secrets(raw["current"], raw.get("previous"), datetime.fromisoformat(until) if until else None)


# --- rules -------------------------------------------------------------------------------------------


def normalize_events(events: Sequence[str]) -> str:
    """The stored form of a subscription: known types, each once, in ``EVENT_TYPES`` order, space-padded
    (the outbox's fan-out matches ``" <type> "``)."""
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown:
        raise Invalid(
            f"未知的事件类型：{', '.join(unknown)}。可订阅：{', '.join(EVENT_TYPES)}。", code="unknown_event",
            extra={"unknown": unknown, "allowed": list(EVENT_TYPES)},
        )
    chosen = [event for event in EVENT_TYPES if event in events]
    if not chosen:
        raise Invalid("请至少订阅一种事件。", code="no_events", extra={"allowed": list(EVENT_TYPES)})
    return " " + " ".join(chosen) + " "


def event_list(webhook: Webhook) -> list[str]:
    return webhook.events.split()


def _is_private_host(host: str) -> bool:
    if host in LOOPBACK_HOSTS or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def check_url(url: str, *, settings: Settings) -> str:
    """A receiver address: ``https://`` anywhere public. ``http://`` only to this machine (localhost,
    127.0.0.1, ::1) and only in development and test. In production, addresses of this machine and of
    private networks (as IP literals) are refused as well, so a client cannot aim our worker inside the
    office network."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise Invalid("回调地址无效。", code="invalid_webhook_url") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host or port == 0 or any(c.isspace() for c in url):
        raise Invalid("回调地址须为 http(s):// 开头的完整网址。", code="invalid_webhook_url")
    if parts.username is not None or parts.password is not None:
        raise Invalid("回调地址不能包含用户名或密码；请用签名验证来源。", code="invalid_webhook_url")
    production = settings.environment not in ENVIRONMENTS_ALLOWING_HTTP
    if scheme == "http" and (production or host not in LOOPBACK_HOSTS):
        raise Invalid("回调地址须使用 https（仅开发和测试环境允许 http://localhost）。", code="insecure_webhook_url")
    if production and _is_private_host(host):
        raise Invalid("回调地址不能指向本机或内网地址。", code="private_webhook_url")
    return url


def owner_of(principal: Principal) -> ApiClient | None:
    """Who manages webhooks here: an API client with scope ``webhooks`` (its own), or an admin (all of
    them; returns None). Anyone else: 401 or 403."""
    if principal.client is not None:
        return principal.require_scope(Scope.webhooks)
    principal.require_role(Role.admin)
    return None


def _mine(principal: Principal) -> Any:
    client = owner_of(principal)
    return Webhook.client_id == client.id if client is not None else true()


# --- managing webhooks -------------------------------------------------------------------------------


async def list_webhooks(
    session: AsyncSession, *, principal: Principal, limit: int, cursor: str | None
) -> tuple[Sequence[Webhook], str | None]:
    query = select(Webhook).where(_mine(principal)).order_by(Webhook.id)
    return await pagination.paginate(session, query, limit=limit, cursor=cursor)


async def get_or_raise(session: AsyncSession, *, principal: Principal, webhook_id: int, for_update: bool = False) -> Webhook:
    """The webhook if ``principal`` manages it; another client's webhook is a 404 like a missing one."""
    query = select(Webhook).where(Webhook.id == webhook_id, _mine(principal))
    if for_update:
        query = query.with_for_update()
    webhook = await session.scalar(query)
    if webhook is None:
        raise NotFound(f"回调 {webhook_id} 不存在。", code="webhook_not_found")
    return webhook


async def create(
    session: AsyncSession, *, principal: Principal, url: str, events: Sequence[str], settings: Settings,
    now: datetime | None = None,
) -> tuple[Webhook, str]:
    """A new webhook and its secret (the only time the secret is shown)."""
    client = owner_of(principal)
    client_id = client.id if client is not None else None
    owned = await session.scalar(select(func.count()).select_from(Webhook).where(
        Webhook.client_id == client_id if client_id is not None else Webhook.client_id.is_(None)))
    if (owned or 0) >= MAX_WEBHOOKS_PER_OWNER:
        raise Conflict(f"每个接口客户端最多 {MAX_WEBHOOKS_PER_OWNER} 个回调。", code="too_many_webhooks")
    secret = new_secret()
    webhook = Webhook(
        client_id=client_id, url=check_url(url, settings=settings), events=normalize_events(events),
        secret=_seal(settings.secret_key, Secrets(secret)), active=True, created_at=now or utcnow(),
    )
    session.add(webhook)
    await session.flush()
    return webhook, secret


async def update_webhook(
    session: AsyncSession, *, principal: Principal, webhook_id: int, data: dict[str, Any], settings: Settings,
) -> Webhook:
    """Change ``url``, ``events`` and/or ``active`` (only the keys present). Inactive webhooks get no new
    deliveries, and their pending ones wait until they are active again."""
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id, for_update=True)
    for key in ("url", "events", "active"):
        if key in data and data[key] is None:
            raise Invalid(f"{key} 不能为 null。", code="invalid_webhook")
    if "url" in data:
        webhook.url = check_url(data["url"], settings=settings)
    if "events" in data:
        webhook.events = normalize_events(data["events"])
    if "active" in data:
        webhook.active = bool(data["active"])
    await session.flush()
    return webhook


async def delete_webhook(session: AsyncSession, *, principal: Principal, webhook_id: int) -> None:
    """Remove a webhook with its deliveries and their attempts."""
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
    await session.execute(delete(Webhook).where(Webhook.id == webhook.id))


async def rotate_secret(
    session: AsyncSession, *, principal: Principal, webhook_id: int, settings: Settings, now: datetime | None = None,
) -> tuple[Webhook, str]:
    """A new secret (shown this once). Deliveries carry signatures by both the new and the previous
    secret for ``ROTATION_GRACE``, then by the new one only."""
    now = now or utcnow()
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id, for_update=True)
    try:
        previous: str | None = _open(settings.secret_key, webhook.secret).current
    except InvalidToken:
        previous = None  # sealed under another app secret: unusable anyway
    secret = new_secret()
    webhook.secret = _seal(settings.secret_key, Secrets(secret, previous, now + ROTATION_GRACE if previous else None))
    await session.flush()
    return webhook, secret


# --- deliveries, as owners see them -----------------------------------------------------------------


def message_id(change_id: int) -> str:
    """The stable id of a change: the ``webhook-id`` header, the body's ``id`` and the feed's ``id``."""
    return f"chg_{change_id}"


def local_time(value: datetime) -> str:
    return value.astimezone(TZ).isoformat()


def payload(change: FormChange) -> dict[str, Any]:
    """What a delivery's body carries, and (with ``form_id``) an item of ``GET /api/v1/changes``."""
    return {"id": message_id(change.id), "type": change.type, "at": local_time(change.at), "data": change.data}


def _encode_delivery_cursor(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(f"d:{delivery_id}".encode()).decode().rstrip("=")


def _decode_delivery_cursor(cursor: str) -> int:
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        delivery_id = int(value)
        if prefix != "d" or not 0 < delivery_id < 2**31:
            raise ValueError(cursor)
        return delivery_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("分页游标无效。", code="invalid_cursor") from exc


async def list_deliveries(
    session: AsyncSession, *, principal: Principal, webhook_id: int, status: str | None = None, limit: int,
    cursor: str | None,
) -> tuple[list[tuple[WebhookDelivery, FormChange]], str | None]:
    """A webhook's deliveries, newest first, with their changes."""
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
    query = (
        select(WebhookDelivery, FormChange).join(FormChange, FormChange.id == WebhookDelivery.change_id)
        .where(WebhookDelivery.webhook_id == webhook.id).order_by(WebhookDelivery.id.desc())
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if cursor:
        query = query.where(WebhookDelivery.id < _decode_delivery_cursor(cursor))
    rows = [(delivery, change) for delivery, change in (await session.execute(query.limit(limit + 1))).all()]
    next_cursor = _encode_delivery_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def get_delivery(
    session: AsyncSession, *, principal: Principal, webhook_id: int, delivery_id: int, for_update: bool = False,
) -> tuple[WebhookDelivery, FormChange]:
    webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
    query = (
        select(WebhookDelivery, FormChange).join(FormChange, FormChange.id == WebhookDelivery.change_id)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id)
    )
    if for_update:
        query = query.with_for_update(of=WebhookDelivery)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound(f"投递记录 {delivery_id} 不存在。", code="delivery_not_found")
    return row[0], row[1]


async def delivery_detail(
    session: AsyncSession, *, principal: Principal, webhook_id: int, delivery_id: int
) -> tuple[WebhookDelivery, FormChange, list[WebhookAttempt]]:
    """A delivery, its change and every attempt at it, oldest first."""
    delivery, change = await get_delivery(session, principal=principal, webhook_id=webhook_id, delivery_id=delivery_id)
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id).order_by(WebhookAttempt.id)
    return delivery, change, list((await session.scalars(query)).all())


async def redeliver(
    session: AsyncSession, *, principal: Principal, webhook_id: int, delivery_id: int, now: datetime | None = None,
) -> tuple[WebhookDelivery, FormChange]:
    """Send a delivery again now, whatever its status, with a fresh set of attempts. The row is reset
    (its attempts so far stay listed), so the receiver gets the same ``webhook-id`` again. A send in
    flight at this moment loses its claim: its result is recorded as an attempt but changes nothing."""
    delivery, change = await get_delivery(
        session, principal=principal, webhook_id=webhook_id, delivery_id=delivery_id, for_update=True
    )
    delivery.status = DeliveryStatus.pending
    delivery.attempts = 0
    delivery.next_attempt_at = now or utcnow()
    delivery.claimed_until = None
    delivery.delivered_at = None
    await session.flush()
    return delivery, change


# --- sending -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one POST to a receiver came to."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def signed_headers(signing: Sequence[str], *, msg_id: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id=msg_id, timestamp=timestamp, body=body) for s in signing),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


async def post(http: httpx.AsyncClient, url: str, *, signing: Sequence[str], msg_id: str, body: str, timeout: float) -> Outcome:
    """POST one signed body; never raises for anything the receiver or the network does."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        # The whole exchange is bounded, not just each read: a receiver trickling bytes is a timeout too.
        async with asyncio.timeout(timeout):
            headers = signed_headers(signing, msg_id=msg_id, body=body)
            async with http.stream("POST", url, content=body.encode(), headers=headers, timeout=timeout,
                                   follow_redirects=False) as response:
                answer = b""
                async for chunk in response.aiter_bytes():
                    answer += chunk
                    if len(answer) >= MAX_ERROR_CHARS:
                        break
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(None, f"超时：{timeout:g} 秒内未应答 (timeout)", elapsed())
    except httpx.HTTPError as exc:
        return Outcome(None, _clip(f"连接失败 (connection error): {type(exc).__name__}: {exc}"), elapsed())
    except Exception as exc:  # a receiver address httpx cannot use, and the like: a failed attempt, not a crash
        return Outcome(None, _clip(f"发送失败 (send error): {type(exc).__name__}: {exc}"), elapsed())
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code, None, elapsed())
    text = answer.decode("utf-8", "replace").strip()
    return Outcome(response.status_code, _clip(f"接收方返回 HTTP {response.status_code}" + (f"：{text}" if text else "")),
                   elapsed())


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after ``attempts`` failed attempts, or None when the delivery has failed for good."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return RETRY_DELAYS[attempts - 1] * (1 + random.uniform(-JITTER, JITTER))


@dataclass(frozen=True)
class _Job:
    delivery_id: int
    webhook_id: int
    url: str
    sealed_secret: str
    attempts: int
    claimed_until: datetime  # the lease, and the token that says the claim is still ours
    msg_id: str
    body: str


def _lease(settings: Settings) -> float:
    return max(settings.webhook_lease_seconds, settings.webhook_timeout_seconds + 5)


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime, lease: float, limit: int
) -> list[_Job]:
    """Claim up to ``limit`` due deliveries, oldest first, at most ``PER_WEBHOOK_PER_ROUND`` per webhook
    and none of a webhook that has one in flight (so a webhook's changes go out in order)."""
    in_flight = aliased(WebhookDelivery)
    due = (
        select(
            WebhookDelivery.id,
            func.row_number().over(partition_by=WebhookDelivery.webhook_id, order_by=WebhookDelivery.id).label("n"),
        )
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .outerjoin(ApiClient, ApiClient.id == Webhook.client_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.pending,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            Webhook.active.is_(True),
            # A revoked client's webhooks get nothing more (its deliveries wait, as an inactive webhook's do).
            or_(Webhook.client_id.is_(None), ApiClient.revoked_at.is_(None)),
            ~exists().where(
                in_flight.webhook_id == WebhookDelivery.webhook_id,
                in_flight.status == DeliveryStatus.pending,
                in_flight.claimed_until >= now,
            ),
        )
        .subquery()
    )
    chosen = select(due.c.id).where(due.c.n <= PER_WEBHOOK_PER_ROUND).order_by(due.c.id).limit(limit)
    claimed_until = now + timedelta(seconds=lease)
    async with transaction(sessionmaker) as session:
        # Locks the chosen rows, skipping those another worker is claiming at this moment (PostgreSQL; on
        # SQLite the transaction holds the write lock), and checks again that they are still unclaimed.
        locked = (
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.id.in_(chosen),
                WebhookDelivery.status == DeliveryStatus.pending,
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            )
            .order_by(WebhookDelivery.id)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
        )
        ids = list((await session.scalars(locked)).all())
        if not ids:
            return []
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(claimed_until=claimed_until)
        )
        rows = (await session.execute(
            select(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.attempts, Webhook.url,
                   Webhook.secret, FormChange)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .join(FormChange, FormChange.id == WebhookDelivery.change_id)
            .where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id)
        )).all()
    return [
        _Job(delivery_id, webhook_id, url, sealed, attempts, claimed_until, message_id(change.id),
             json.dumps(payload(change), ensure_ascii=False, separators=(",", ":")))
        for delivery_id, webhook_id, attempts, url, sealed, change in rows
    ]


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession], job: _Job, outcome: Outcome, *, worker_id: str, at: datetime,
) -> None:
    """The attempt, always (unless the delivery is gone); the delivery's new state only while the claim
    is still ours (no other worker took it over after the lease, no redelivery reset it)."""
    attempts = job.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts, "last_status_code": outcome.status_code, "last_error": outcome.error,
        "claimed_until": None,
    }
    gone = outcome.status_code == 410
    if outcome.delivered:
        values.update(status=DeliveryStatus.delivered, delivered_at=at, last_error=None)
    elif gone:
        values.update(status=DeliveryStatus.failed,
                      last_error=_clip(f"{outcome.error}（接收方表示已不再接收：回调已停用 webhook disabled）"))
    else:
        delay = retry_delay(attempts)
        if delay is None:
            values.update(status=DeliveryStatus.failed)
        else:
            values.update(next_attempt_at=at + delay)
    async with transaction(sessionmaker) as session:
        await session.execute(insert(WebhookAttempt).from_select(
            ["delivery_id", "at", "worker", "status_code", "error", "duration_ms"],
            select(WebhookDelivery.id, literal(at, UTCDateTime), literal(worker_id, String),
                   literal(outcome.status_code, Integer), literal(outcome.error, Text),
                   literal(outcome.duration_ms, Integer))
            .where(WebhookDelivery.id == job.delivery_id),
        ))
        updated = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == job.delivery_id, WebhookDelivery.status == DeliveryStatus.pending,
                   WebhookDelivery.claimed_until == job.claimed_until)
            .values(**values)
        )
        if updated.rowcount == 0:
            log.info("webhook delivery %s: claim lost before its result was recorded", job.delivery_id)
        elif gone:
            await session.execute(update(Webhook).where(Webhook.id == job.webhook_id).values(active=False))
            log.warning("webhook %s answered 410 Gone: disabled", job.webhook_id)


async def _release(sessionmaker: async_sessionmaker[AsyncSession], jobs: Sequence[_Job]) -> None:
    """Give back claims this round had no time left to use."""
    async with transaction(sessionmaker) as session:
        for job in jobs:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == job.delivery_id, WebhookDelivery.claimed_until == job.claimed_until)
                .values(claimed_until=None)
            )


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    *,
    worker_id: str,
    settings: Settings,
    now: datetime | None = None,
    limit: int = 20,
    concurrency: int = 8,
) -> int:
    """One round: claim the deliveries due at ``now``, send them, record the results. Returns how many
    were sent (0: nothing was due). ``now`` moves the clock for claiming and scheduling (tests); the
    ``webhook-timestamp`` is always the real time of sending."""
    now = now or utcnow()
    lease = _lease(settings)
    timeout = settings.webhook_timeout_seconds
    jobs = await _claim(sessionmaker, now=now, lease=lease, limit=limit)
    if not jobs:
        return 0
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    by_webhook: dict[int, list[_Job]] = {}
    for job in jobs:
        by_webhook.setdefault(job.webhook_id, []).append(job)

    async def send_in_order(chain: list[_Job]) -> int:
        sent = 0
        for index, job in enumerate(chain):
            async with gate:
                # A send may only start while the lease still covers its whole timeout; what does not fit
                # is given back for the next round instead of risking a second worker sending it too.
                if time.monotonic() - started + timeout > lease:
                    await _release(sessionmaker, chain[index:])
                    return sent
                try:
                    secrets_ = _open(settings.secret_key, job.sealed_secret)
                except InvalidToken:
                    outcome = Outcome(None, "无法解密签名密钥（MINYI_SECRET_KEY 已更改？请轮换密钥）", 0)
                else:
                    at = now + timedelta(seconds=time.monotonic() - started)
                    outcome = await post(http, job.url, signing=secrets_.signing(at), msg_id=job.msg_id,
                                         body=job.body, timeout=timeout)
                at = now + timedelta(seconds=time.monotonic() - started)
                await _record(sessionmaker, job, outcome, worker_id=worker_id, at=at)
                sent += 1
        return sent

    results = await asyncio.gather(*(send_in_order(chain) for chain in by_webhook.values()), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return sum(r for r in results if isinstance(r, int))


async def ping(
    sessionmaker: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, *, principal: Principal,
    webhook_id: int, settings: Settings,
) -> tuple[str, Outcome]:
    """Send a signed ``webhook.ping`` to the webhook's address now and return what came back. Nothing is
    stored; the database is not held while the receiver answers."""
    async with transaction(sessionmaker) as session:
        webhook = await get_or_raise(session, principal=principal, webhook_id=webhook_id)
        url, sealed = webhook.url, webhook.secret
    now = utcnow()
    msg_id = f"ping_{secrets.token_hex(8)}"
    body = json.dumps({"id": msg_id, "type": "webhook.ping", "at": local_time(now), "data": {"webhook_id": webhook_id}},
                      ensure_ascii=False, separators=(",", ":"))
    try:
        signing = _open(settings.secret_key, sealed).signing(now)
    except InvalidToken:
        return msg_id, Outcome(None, "无法解密签名密钥（MINYI_SECRET_KEY 已更改？请轮换密钥）", 0)
    return msg_id, await post(http, url, signing=signing, msg_id=msg_id, body=body,
                              timeout=settings.webhook_timeout_seconds)


def http_client() -> httpx.AsyncClient:
    """The client workers send with: no redirects followed (a 3xx is a failed attempt), the proxy from
    the environment if any (HTTPS_PROXY)."""
    return httpx.AsyncClient(follow_redirects=False, headers={"user-agent": USER_AGENT})
