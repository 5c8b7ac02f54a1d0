"""Users, passwords, bearer tokens and who is asking (the ``Principal``)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Invalid, PermissionDenied, Unauthorized
from app.models import ApiClient, AuthToken, HandlingUnit, Representative, Resident, Role, User, utcnow

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("minyi-timing-equaliser")

STAFF_ROLES = frozenset(Role)
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
OFFICE_ROLES = frozenset({Role.admin, Role.coordinator})


@dataclass(frozen=True)
class Principal:
    """Who is asking: a staff ``user``, a WeChat ``resident``, an integrator's API ``client``, or nobody
    (the anonymous public). At most one of the three is set."""

    user: User | None = None
    resident: Resident | None = None
    client: ApiClient | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.user is None and self.resident is None and self.client is None

    @property
    def role(self) -> str | None:
        return self.user.role if self.user else None

    @property
    def is_office(self) -> bool:
        return self.role in OFFICE_ROLES

    @property
    def is_staff(self) -> bool:
        return self.user is not None

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.username
        if self.resident is not None:
            return "微信用户"
        if self.client is not None:
            return f"接口：{self.client.name}"
        return "公众"

    def has_scope(self, scope: str) -> bool:
        return self.client is not None and scope in (self.client.scopes or ())

    def require_staff(self) -> User:
        if self.user is None:
            if self.client is not None or self.resident is not None:
                raise PermissionDenied("当前凭证无权执行此操作。", code="forbidden")
            raise Unauthorized()
        return self.user

    def require_role(self, *roles: str) -> User:
        user = self.require_staff()
        if user.role not in roles:
            raise PermissionDenied("当前账号无权执行此操作。", code="forbidden")
        return user

    def require_resident(self) -> Resident:
        if self.resident is None:
            if self.is_anonymous:
                raise Unauthorized("请先通过微信登录。", code="login_required")
            raise PermissionDenied("只有通过微信登录的居民可以使用此接口。", code="residents_only")
        return self.resident

    def require_scope(self, scope: str) -> ApiClient:
        """An API client holding ``scope``."""
        if self.client is None:
            if self.is_anonymous:
                raise Unauthorized()
            raise PermissionDenied("此接口仅供接口客户端（X-API-Key）使用。", code="api_clients_only")
        if not self.has_scope(scope):
            raise PermissionDenied(f"接口密钥缺少权限 {scope}。", code="missing_scope", extra={"scope": scope})
        return self.client

    def require_staff_or_scope(self, scope: str) -> None:
        """Staff (any role), or an API client holding ``scope``: the reads integrators share with staff."""
        if self.client is not None:
            self.require_scope(scope)
        else:
            self.require_staff()


ANONYMOUS = Principal()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str, password: str) -> bool:
    # argon2 is deliberately slow: keep it off the event loop.
    return await anyio.to_thread.run_sync(_verify, password_hash, password)


# Residents' tokens start with this (app/services/residents.py), so a bearer token is looked up in the
# right table at once; a staff token is random and must therefore never start with it by chance
# (1 login in 262,144 used to be refused as an unknown resident's).
RESIDENT_TOKEN_PREFIX = "wx_"


def new_staff_token() -> str:
    while (token := secrets.token_urlsafe(32)).startswith(RESIDENT_TOKEN_PREFIX):
        pass
    return token


def token_hash(token: str) -> str:
    """What is stored of a bearer token (staff and residents alike): its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def authenticate(session: AsyncSession, *, username: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    ok = await verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok or not user.active:
        raise Unauthorized("用户名或密码错误。", code="invalid_credentials")
    return user


async def issue_token(
    session: AsyncSession, *, user: User, ttl_seconds: int, now: datetime | None = None
) -> tuple[str, int]:
    now = now or utcnow()
    token = new_staff_token()
    session.add(AuthToken(token_hash=token_hash(token), user_id=user.id, created_at=now,
                          expires_at=now + timedelta(seconds=ttl_seconds)))
    await session.flush()
    return token, ttl_seconds


async def resolve_token(session: AsyncSession, token: str, *, now: datetime | None = None) -> User:
    now = now or utcnow()
    row = await session.execute(
        select(User, AuthToken)
        .join(AuthToken, AuthToken.user_id == User.id)
        .where(AuthToken.token_hash == token_hash(token))
    )
    found = row.first()
    if found is None:
        raise Unauthorized("登录凭证无效。", code="invalid_token")
    user, auth_token = found
    if auth_token.revoked_at is not None or auth_token.expires_at <= now or not user.active:
        raise Unauthorized("登录凭证已失效，请重新登录。", code="invalid_token")
    return user


async def revoke_token(session: AsyncSession, token: str, *, now: datetime | None = None) -> None:
    await session.execute(
        update(AuthToken)
        .where(AuthToken.token_hash == token_hash(token), AuthToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: str,
    unit_id: int | None = None,
    representative_id: int | None = None,
) -> User:
    if role not in STAFF_ROLES:
        raise Invalid(f"未知角色：{role}", code="invalid_role")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise Invalid(f"密码长度须为 {MIN_PASSWORD_LENGTH}–{MAX_PASSWORD_LENGTH} 个字符。", code="invalid_password")
    if role == Role.handler:
        if unit_id is None:
            raise Invalid("承办人账号必须绑定承办单位（unit_id）。", code="unit_required")
        if await session.get(HandlingUnit, unit_id) is None:
            raise Invalid(f"承办单位 {unit_id} 不存在。", code="unknown_unit")
    elif unit_id is not None:
        raise Invalid("只有承办人（handler）账号可以绑定承办单位。", code="invalid_binding")
    if role == Role.representative:
        if representative_id is None:
            raise Invalid("党代表账号必须绑定党代表（representative_id）。", code="representative_required")
        if await session.get(Representative, representative_id) is None:
            raise Invalid(f"党代表 {representative_id} 不存在。", code="unknown_representative")
    elif representative_id is not None:
        raise Invalid("只有党代表（representative）账号可以绑定党代表。", code="invalid_binding")
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"用户名 {username} 已存在。", code="username_taken")
    password_hash = await anyio.to_thread.run_sync(hash_password, password)
    user = User(username=username, password_hash=password_hash, role=role, unit_id=unit_id,
                representative_id=representative_id)
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # a concurrent request took the name between check and insert
        raise Conflict(f"用户名 {username} 已存在。", code="username_taken") from exc
    return user
