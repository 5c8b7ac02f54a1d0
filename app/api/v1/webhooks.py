"""Webhooks: an API client with scope ``webhooks`` manages its own, an admin manages all of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response, status

from app.http.deps import AuditDep, CursorQ, IdPath, LimitQ, PrincipalDep, SessionDep, SettingsDep
from app.http.routing import GuardedRouter
from app.schemas.common import Page, problem
from app.schemas.webhooks import (
    DeliveryDetail,
    DeliveryRead,
    DeliveryStatusName,
    PingRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from app.services import views
from app.services import webhooks as webhook_service

router = GuardedRouter(tags=["integrations"])


@router.get("/webhooks", response_model=Page[WebhookRead], summary="List webhooks (secrets never shown)")
async def list_webhooks(
    principal: PrincipalDep, session: SessionDep, limit: LimitQ = 50, cursor: CursorQ = None
) -> Page[WebhookRead]:
    webhooks, next_cursor = await webhook_service.list_webhooks(session, principal=principal, limit=limit, cursor=cursor)
    return Page(items=[views.webhook_read(w) for w in webhooks], next_cursor=next_cursor)


@router.post("/webhooks", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED,
             responses={409: problem("The owner has as many webhooks as allowed (`too_many_webhooks`)")},
             summary="Create a webhook; its secret is shown only in this answer")
async def create_webhook(
    body: WebhookCreate, principal: PrincipalDep, session: SessionDep, settings: SettingsDep, audit: AuditDep
) -> WebhookCreated:
    webhook, secret = await webhook_service.create(
        session, principal=principal, url=body.url, events=body.events, settings=settings
    )
    await audit("webhook.create", f"webhook:{webhook.id}", url=webhook.url, events=[str(e) for e in body.events])
    return views.webhook_created(webhook, secret)


@router.get("/webhooks/{webhook_id}", response_model=WebhookRead)
async def get_webhook(webhook_id: IdPath, principal: PrincipalDep, session: SessionDep) -> WebhookRead:
    return views.webhook_read(await webhook_service.get_or_raise(session, principal=principal, webhook_id=webhook_id))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookRead, summary="Change url, events or active")
async def update_webhook(
    webhook_id: IdPath, body: WebhookUpdate, principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
    audit: AuditDep,
) -> WebhookRead:
    change = body.model_dump(exclude_unset=True)
    webhook = await webhook_service.update_webhook(
        session, principal=principal, webhook_id=webhook_id, data=change, settings=settings
    )
    await audit("webhook.update", f"webhook:{webhook_id}", **body.model_dump(mode="json", exclude_unset=True))
    return views.webhook_read(webhook)


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_webhook(webhook_id: IdPath, principal: PrincipalDep, session: SessionDep, audit: AuditDep) -> Response:
    await webhook_service.delete_webhook(session, principal=principal, webhook_id=webhook_id)
    await audit("webhook.delete", f"webhook:{webhook_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookCreated,
             summary="A new secret, shown once; the previous one keeps signing too for 24 hours")
async def rotate_secret(
    webhook_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep, audit: AuditDep
) -> WebhookCreated:
    webhook, secret = await webhook_service.rotate_secret(
        session, principal=principal, webhook_id=webhook_id, settings=settings
    )
    await audit("webhook.rotate_secret", f"webhook:{webhook_id}")
    return views.webhook_created(webhook, secret)


@router.post("/webhooks/{webhook_id}/resume", response_model=WebhookRead,
             summary="Switch a paused (or switched-off) webhook back on; its waiting deliveries are due now")
async def resume_webhook(webhook_id: IdPath, principal: PrincipalDep, session: SessionDep, audit: AuditDep) -> WebhookRead:
    webhook, was_paused = await webhook_service.resume(session, principal=principal, webhook_id=webhook_id)
    await audit("webhook.resume", f"webhook:{webhook_id}", was_paused=was_paused)
    return views.webhook_read(webhook)


@router.post("/webhooks/{webhook_id}/test", response_model=PingRead,
             summary="Send a signed webhook.ping now and report the receiver's answer (nothing is stored)")
async def ping_webhook(webhook_id: IdPath, request: Request, principal: PrincipalDep, settings: SettingsDep) -> PingRead:
    async with webhook_service.http_client() as http:
        msg_id, outcome = await webhook_service.ping(
            request.app.state.sessionmaker, http, principal=principal, webhook_id=webhook_id, settings=settings,
            resolver=request.app.state.webhook_resolver,
        )
    return PingRead(message_id=msg_id, delivered=outcome.delivered, status_code=outcome.status_code,
                    error=outcome.error, duration_ms=outcome.duration_ms)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryRead], summary="Deliveries, newest first")
async def list_deliveries(
    webhook_id: IdPath,
    principal: PrincipalDep,
    session: SessionDep,
    delivery_status: Annotated[DeliveryStatusName | None, Query(alias="status")] = None,
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Page[DeliveryRead]:
    rows, next_cursor = await webhook_service.list_deliveries(
        session, principal=principal, webhook_id=webhook_id, status=delivery_status, limit=limit, cursor=cursor
    )
    return Page(items=[views.delivery_read(d, c) for d, c in rows], next_cursor=next_cursor)


@router.get("/webhooks/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryDetail,
            summary="One delivery with its body and every attempt")
async def get_delivery(webhook_id: IdPath, delivery_id: IdPath, principal: PrincipalDep, session: SessionDep) -> DeliveryDetail:
    delivery, change, attempts = await webhook_service.delivery_detail(
        session, principal=principal, webhook_id=webhook_id, delivery_id=delivery_id
    )
    reads_forms = principal.client is None or principal.has_scope("forms:read")  # admins read every form
    return views.delivery_detail(delivery, change, attempts, reads_forms=reads_forms)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryRead,
             summary="Send a delivery again now (any status), with the same webhook-id")
async def redeliver(
    webhook_id: IdPath, delivery_id: IdPath, principal: PrincipalDep, session: SessionDep, audit: AuditDep
) -> DeliveryRead:
    delivery, change = await webhook_service.redeliver(
        session, principal=principal, webhook_id=webhook_id, delivery_id=delivery_id
    )
    await audit("webhook.redeliver", f"webhook:{webhook_id}", delivery_id=delivery_id)
    return views.delivery_read(delivery, change)
