"""API clients (接口客户端): admins manage integrators' keys; a client reads its own settings at ``/me``."""

from __future__ import annotations

from fastapi import Response, status

from app.http.deps import AuditDep, CursorQ, IdPath, LimitQ, PrincipalDep, SessionDep, SettingsDep
from app.http.routing import GuardedRouter
from app.models import Role
from app.schemas.api_clients import ApiClientCreate, ApiClientRead, ApiClientSelf, ApiClientUpdate, ApiClientWithKey
from app.schemas.common import Page, problem
from app.services import api_clients as api_client_service

router = GuardedRouter(prefix="/api-clients", tags=["integrations"])

# An answer carrying a key must not be kept by any cache on the way.
NO_STORE = {"Cache-Control": "no-store"}
REVOKED = {409: problem("The client is revoked: nothing about it changes any more (`client_revoked`)")}


@router.get("/me", response_model=ApiClientSelf, summary="The calling API client itself (X-API-Key)")
async def me(principal: PrincipalDep, session: SessionDep) -> ApiClientSelf:
    client = api_client_service.require_client(principal)
    return ApiClientSelf.build(await api_client_service.get_or_raise(session, client.id))


@router.get("", response_model=Page[ApiClientRead], summary="List API clients (admin; keys are never shown)")
async def list_api_clients(
    principal: PrincipalDep, session: SessionDep, limit: LimitQ = 50, cursor: CursorQ = None
) -> Page[ApiClientRead]:
    principal.require_role(Role.admin)
    clients, next_cursor = await api_client_service.list_clients(session, limit=limit, cursor=cursor)
    return Page(items=[ApiClientRead.build(c) for c in clients], next_cursor=next_cursor)


@router.post("", response_model=ApiClientWithKey, status_code=status.HTTP_201_CREATED,
             summary="Create an API client (admin); its key is shown in this answer only")
async def create_api_client(
    body: ApiClientCreate, principal: PrincipalDep, session: SessionDep, settings: SettingsDep, response: Response,
    audit: AuditDep,
) -> ApiClientWithKey:
    admin = principal.require_role(Role.admin)
    client, key = await api_client_service.create(
        session, name=body.name, scopes=body.scopes,
        rate_limit_per_minute=body.rate_limit_per_minute or settings.api_rate_limit_per_minute,
        created_by_user_id=admin.id,
    )
    await audit("api_client.create", f"api_client:{client.id}", name=client.name, scopes=[str(s) for s in body.scopes],
                rate_limit_per_minute=client.rate_limit_per_minute)
    response.headers.update(NO_STORE)
    return ApiClientWithKey.build_with_key(client, key)


@router.get("/{client_id}", response_model=ApiClientRead, summary="One API client (admin)")
async def get_api_client(client_id: IdPath, principal: PrincipalDep, session: SessionDep) -> ApiClientRead:
    principal.require_role(Role.admin)
    return ApiClientRead.build(await api_client_service.get_or_raise(session, client_id))


@router.patch("/{client_id}", response_model=ApiClientRead, responses=REVOKED,
              summary="Change an API client's name, scopes or rate limit (admin)")
async def update_api_client(
    client_id: IdPath, body: ApiClientUpdate, principal: PrincipalDep, session: SessionDep, audit: AuditDep
) -> ApiClientRead:
    principal.require_role(Role.admin)
    change = body.model_dump(exclude_unset=True)
    client = await api_client_service.update_client(session, client_id=client_id, data=change)
    await audit("api_client.update", f"api_client:{client_id}", **body.model_dump(mode="json", exclude_unset=True))
    return ApiClientRead.build(client)


@router.post("/{client_id}/rotate", response_model=ApiClientWithKey, responses=REVOKED,
             summary="Replace an API client's key (admin); the old key stops working")
async def rotate_api_client_key(
    client_id: IdPath, principal: PrincipalDep, session: SessionDep, response: Response, audit: AuditDep
) -> ApiClientWithKey:
    principal.require_role(Role.admin)
    client, key = await api_client_service.rotate(session, client_id=client_id)
    await audit("api_client.rotate", f"api_client:{client_id}")
    response.headers.update(NO_STORE)
    return ApiClientWithKey.build_with_key(client, key)


@router.delete("/{client_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Revoke an API client (admin); its key stops working")
async def revoke_api_client(client_id: IdPath, principal: PrincipalDep, session: SessionDep, audit: AuditDep) -> Response:
    principal.require_role(Role.admin)
    await api_client_service.revoke(session, client_id=client_id)
    await audit("api_client.revoke", f"api_client:{client_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
