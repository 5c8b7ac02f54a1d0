from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from app.http import abuse
from app.http.deps import AuditDep, CurrentUser, PrincipalDep, SessionDep, SettingsDep, bearer_token
from app.errors import Unauthorized
from app.http.routing import GuardedRouter
from app.models import Role
from app.schemas.auth import MeRead, TokenRead, UserCreate, UserRead
from app.schemas.common import problem
from app.services import auth as auth_service

router = GuardedRouter(tags=["auth"])


@router.post("/auth/token", response_model=TokenRead, summary="Log in (OAuth2 password flow)")
async def login(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
    settings: SettingsDep,
) -> TokenRead:
    await abuse.before_login(request, form.username)
    try:
        user = await auth_service.authenticate(session, username=form.username, password=form.password)
    except Unauthorized:
        await abuse.after_login(request, form.username, ok=False)
        raise
    await abuse.after_login(request, form.username, ok=True)
    token, expires_in = await auth_service.issue_token(session, user=user, ttl_seconds=settings.token_ttl_seconds)
    return TokenRead(access_token=token, expires_in=expires_in)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke the current token")
async def logout(user: CurrentUser, session: SessionDep, token: Annotated[str | None, Depends(bearer_token)]) -> None:
    if token:
        await auth_service.revoke_token(session, token)


@router.get("/auth/me", response_model=MeRead)
async def me(user: CurrentUser) -> MeRead:
    return MeRead.model_validate(user)


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED,
             responses={409: problem("The username is taken (`username_taken`)")})
async def create_user(body: UserCreate, principal: PrincipalDep, session: SessionDep, audit: AuditDep) -> UserRead:
    principal.require_role(Role.admin)
    user = await auth_service.create_user(session, **body.model_dump())
    await audit("user.create", f"user:{user.id}", username=user.username, role=user.role, unit_id=user.unit_id,
                representative_id=user.representative_id)
    return UserRead.model_validate(user)
