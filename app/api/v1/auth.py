from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import CurrentUser, PrincipalDep, SessionDep, SettingsDep, bearer_token
from app.models import Role
from app.schemas.auth import MeRead, TokenRead, UserCreate, UserRead
from app.services import auth as auth_service

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=TokenRead, summary="Log in (OAuth2 password flow)")
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> TokenRead:
    user = await auth_service.authenticate(session, username=form.username, password=form.password)
    token, expires_in = await auth_service.issue_token(session, user=user, ttl_seconds=settings.token_ttl_seconds)
    return TokenRead(access_token=token, expires_in=expires_in)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke the current token")
async def logout(user: CurrentUser, session: SessionDep, token: Annotated[str | None, Depends(bearer_token)]) -> None:
    if token:
        await auth_service.revoke_token(session, token)


@router.get("/auth/me", response_model=MeRead)
async def me(user: CurrentUser) -> MeRead:
    return MeRead.model_validate(user)


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, principal: PrincipalDep, session: SessionDep) -> UserRead:
    principal.require_role(Role.admin)
    user = await auth_service.create_user(session, **body.model_dump())
    return UserRead.model_validate(user)
