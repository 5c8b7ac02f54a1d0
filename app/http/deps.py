"""Request-scoped dependencies: the session (unit of work), settings, who is asking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.http import hosts
from app.config import Settings
from app.db import transaction
from app.models import ApiClient, Resident, User
from app.schemas.common import MAX_ID
from app.services import api_clients as api_client_service
from app.services import audit as audit_service
from app.services import auth as auth_service
from app.services import residents as resident_service
from app.services.auth import ANONYMOUS, Principal

SESSION_COOKIE = "minyi_session"  # the pages' cookie session (app/web/session.py)


async def get_settings_dep(request: Request) -> Settings:
    # async: a plain def would be sent to the threadpool on every request that asks for the settings.
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with transaction(request.app.state.sessionmaker) as session:
        yield session


# scope="function": the commit runs when the endpoint returns, before the response is sent, so a client
# never sees a 2xx for work that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

_bearer = HTTPBearer(auto_error=False, description="令牌来自 POST /api/v1/auth/token")


_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="接口客户端密钥（POST /api/v1/api-clients）")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    cache = request.app.state.auth_cache
    if api_key is not None:
        return await client_principal(request, api_key)
    if credentials is not None:
        token = credentials.credentials
    elif request.method in ("GET", "HEAD") and request.cookies.get(SESSION_COOKIE):
        # A signed-in page reading the API (the dashboard polling the counts): reads only, so no CSRF risk.
        token = request.cookies[SESSION_COOKIE]
    else:
        return ANONYMOUS
    if token.startswith(resident_service.TOKEN_PREFIX):
        async def resolve_resident() -> Resident:
            async with request.app.state.sessionmaker() as session:
                resident = await resident_service.resolve_token(session, token)
                session.expunge(resident)
            return resident

        return Principal(resident=await cache.get_or_compute(("resident", token), resolve_resident))

    # A token this process checked moments ago is trusted for MINYI_AUTH_CACHE_SECONDS, unless this process
    # wrote anything since (a logout, a deactivated user): polls then need no database round trip at all.
    # On a miss the token is read in a short session of its own, not the request's: routes that need no
    # database (a cached poll, a queued submission) then open none.
    async def resolve() -> User:
        async with request.app.state.sessionmaker() as session:
            user = await auth_service.resolve_token(session, token)
            # Detached: the cached instance belongs to no session, so no request's rollback can expire it.
            session.expunge(user)
        return user

    user = await cache.get_or_compute(("token", token), resolve)
    return Principal(user=user)


async def client_principal(request: Request, key: str) -> Principal:
    """An API client by its key: checked like a token (and cached as briefly), then counted against the
    client's own rate limit on every request."""

    async def resolve() -> ApiClient:
        async with request.app.state.sessionmaker() as session:
            client = await api_client_service.resolve_key(session, key)
            session.expunge(client)
        return client

    client = await request.app.state.auth_cache.get_or_compute(("api-key", key), resolve)
    await request.app.state.rate_limiter.hit(f"client:{client.id}", client.rate_limit_per_minute)
    await api_client_service.note_use(request.app.state.sessionmaker, client)
    return Principal(client=client)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_current_user(principal: PrincipalDep) -> User:
    return principal.require_staff()


CurrentUser = Annotated[User, Depends(get_current_user)]


class Auditor:
    """Records one admin action in the request's own transaction (services/audit.py): it commits with the
    action or not at all."""

    def __init__(self, request: Request, session: AsyncSession, principal: Principal) -> None:
        self.request, self.session, self.principal = request, session, principal

    async def __call__(self, action: str, target: str | None = None, **details: Any) -> None:
        await audit_service.record(
            self.session, principal=self.principal, action=action, target=target, details=details or None,
            ip=self.request.client.host if self.request.client else None,
        )


async def get_auditor(request: Request, session: SessionDep, principal: PrincipalDep) -> Auditor:
    return Auditor(request, session, principal)


AuditDep = Annotated[Auditor, Depends(get_auditor)]


def bearer_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str | None:
    return credentials.credentials if credentials else None


def public_url(request: Request, path: str) -> str:
    """An absolute URL for residents' phones (QR codes, calendar subscriptions): MINYI_PUBLIC_URL when
    set, else this request's own base if its host is one the app may print (app/http/hosts.py; else 400
    ``host_not_allowed``)."""
    return hosts.base_url(request) + path


def public_url_for(request: Request, name: str, *, query: dict[str, str] | None = None, **params: str) -> str:
    """``public_url`` of a named route (with its query)."""
    url = request.url_for(name, **params)
    if query:
        url = url.include_query_params(**query)
    return public_url(request, url.path + (f"?{url.query}" if url.query else ""))


# Ids in paths: bounded like every id (see schemas.common.MAX_ID), so an absurd one is a 422, not a driver error.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]

# The contract's list parameters: ?limit= (default 50, max 200) and an opaque ?cursor=.
LimitQ = Annotated[int, Query(ge=1, le=200)]
CursorQ = Annotated[str | None, Query(max_length=100)]
