"""Webhooks in tests: API clients and webhooks made through the API, delivery rounds with the worker's
own client, and what the database holds of deliveries and attempts (tests/test_webhook*.py)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlalchemy import select

from app.config import Settings
from app.db import transaction
from app.models import ApiClient, WebhookAttempt, WebhookDelivery
from app.services import api_clients as api_client_service
from app.services import webhooks as webhook_service
from app.services.changes import EVENT_TYPES
from tests.webhook_receiver import Receiver


async def api_client(sessionmaker, *, scopes=("webhooks",), name="社区服务小程序") -> dict[str, str]:
    """An API client with ``scopes``; returns its X-API-Key header."""
    key = "mk_" + secrets.token_urlsafe(32)
    async with transaction(sessionmaker) as session:
        session.add(ApiClient(name=name, scopes=list(scopes), key_prefix=key[:8],
                              key_hash=api_client_service.key_hash(key)))
    return {"X-API-Key": key}


async def create_hook(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post("/api/v1/webhooks", json={"url": url, "events": events or list(EVENT_TYPES)},
                                 headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def hooked(client, world, receiver: Receiver, path: str = "hook", events: list[str] | None = None) -> dict[str, Any]:
    """A webhook (made by the admin) delivering to ``receiver`` on ``path``, its secret registered there."""
    hook = await create_hook(client, world.auth("admin"), receiver.url(path), events)
    receiver.expect(path, hook["secret"])
    return hook


async def deliver(sessionmaker, settings: Settings, *, now=None, worker_id: str = "test-worker", **kwargs: Any) -> int:
    async with webhook_service.http_client() as http:
        return await webhook_service.deliver_due(sessionmaker, http, worker_id=worker_id, settings=settings, now=now,
                                                 **kwargs)


async def deliveries(sessionmaker) -> list[WebhookDelivery]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())


async def attempts(sessionmaker, delivery_id: int | None = None) -> list[WebhookAttempt]:
    query = select(WebhookAttempt).order_by(WebhookAttempt.id)
    if delivery_id is not None:
        query = query.where(WebhookAttempt.delivery_id == delivery_id)
    async with sessionmaker() as session:
        return list((await session.scalars(query)).all())
