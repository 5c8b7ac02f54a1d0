from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.models import Role
from app.schemas.common import DbId, InputModel


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class MeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: str
    unit_id: int | None
    representative_id: int | None


class UserCreate(InputModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=8, max_length=128)
    role: Role
    unit_id: DbId | None = None
    representative_id: DbId | None = None


class UserRead(MeRead):
    active: bool
