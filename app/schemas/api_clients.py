from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from app.config import MAX_LIMIT_PER_MINUTE
from app.models import ApiClient, Scope
from app.schemas.common import InputModel, LocalDateTime

Name = Annotated[str, Field(min_length=1, max_length=100, description="便于辨认的名称，如「区网格平台」")]
Scopes = Annotated[list[Scope], Field(min_length=1, max_length=10,
                                      description="forms:write、forms:read、stats:read、webhooks 中的一项或多项")]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT_PER_MINUTE,
                             description="每分钟请求数上限（平滑计算：空闲后可一次用完一分钟的额度）")]


class ApiClientCreate(InputModel):
    name: Name
    scopes: Scopes
    # Omitted or null: MINYI_API_RATE_LIMIT_PER_MINUTE (600).
    rate_limit_per_minute: Limit | None = None


class ApiClientUpdate(InputModel):
    name: Name | None = None
    scopes: Scopes | None = None
    rate_limit_per_minute: Limit | None = None

    @field_validator("name", "scopes", "rate_limit_per_minute")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # PATCH: an omitted field is left alone; an explicit null is a mistake, not "clear it".
        if value is None:
            raise ValueError("此字段不能为空（null）；不修改请省略该字段。")
        return value


class ApiClientRead(BaseModel):
    """A client as admins see it: never its key, only the key's first characters."""

    id: int
    name: str
    scopes: list[str]
    key_prefix: str
    rate_limit_per_minute: int
    active: bool
    created_by_user_id: int | None
    created_at: LocalDateTime
    rotated_at: LocalDateTime | None
    revoked_at: LocalDateTime | None
    last_used_at: LocalDateTime | None

    @classmethod
    def build(cls, client: ApiClient) -> ApiClientRead:
        return cls(
            id=client.id, name=client.name, scopes=list(client.scopes or ()), key_prefix=client.key_prefix,
            rate_limit_per_minute=client.rate_limit_per_minute, active=client.revoked_at is None,
            created_by_user_id=client.created_by_user_id, created_at=client.created_at,
            rotated_at=client.rotated_at, revoked_at=client.revoked_at, last_used_at=client.last_used_at,
        )


class ApiClientWithKey(ApiClientRead):
    """The answer to create and rotate: the only time the key is shown. Keep it; it cannot be shown again."""

    key: str

    @classmethod
    def build_with_key(cls, client: ApiClient, key: str) -> ApiClientWithKey:
        return cls(**ApiClientRead.build(client).model_dump(), key=key)


class ApiClientSelf(BaseModel):
    """``GET /api/v1/api-clients/me``: what a client may know about itself."""

    id: int
    name: str
    scopes: list[str]
    key_prefix: str
    rate_limit_per_minute: int
    created_at: LocalDateTime
    rotated_at: LocalDateTime | None
    last_used_at: LocalDateTime | None

    @classmethod
    def build(cls, client: ApiClient) -> ApiClientSelf:
        return cls(
            id=client.id, name=client.name, scopes=list(client.scopes or ()), key_prefix=client.key_prefix,
            rate_limit_per_minute=client.rate_limit_per_minute, created_at=client.created_at,
            rotated_at=client.rotated_at, last_used_at=client.last_used_at,
        )
