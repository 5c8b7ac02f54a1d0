from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models import RepresentativeLevel
from app.schemas.common import InputModel

CODE_PATTERN = r"^[A-Za-z0-9-]{2,32}$"


def _refuse_null(value: object) -> object:
    # PATCH: an omitted field is left alone; an explicit null would reach a NOT NULL column (a 500).
    if value is None:
        raise ValueError("此字段不能为空（null）；不修改请省略该字段。")
    return value


class WorkroomCreate(InputModel):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    address: str = Field("", max_length=200)
    area: str = Field("", max_length=100)
    active: bool = True
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)


class WorkroomUpdate(InputModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    address: str | None = Field(None, max_length=200)
    area: str | None = Field(None, max_length=100)
    active: bool | None = None
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)

    @field_validator("name", "address", "area", "active")
    @classmethod
    def _not_null(cls, value: object) -> object:
        return _refuse_null(value)


class WorkroomRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    address: str
    area: str
    active: bool
    latitude: float | None = None
    longitude: float | None = None


PHONE_PATTERN = r"^\+?[0-9][0-9\- ]{4,19}$"


class RepresentativeCreate(InputModel):
    name: str = Field(min_length=1, max_length=64)
    level: RepresentativeLevel = RepresentativeLevel.town
    phone: str | None = Field(None, pattern=PHONE_PATTERN)
    workroom_codes: list[str] = Field(default_factory=list, max_length=50)
    active: bool = True


class RepresentativeUpdate(InputModel):
    name: str | None = Field(None, min_length=1, max_length=64)
    level: RepresentativeLevel | None = None
    phone: str | None = Field(None, pattern=PHONE_PATTERN)
    workroom_codes: list[str] | None = Field(None, max_length=50)
    active: bool | None = None

    @field_validator("name", "level", "active", "workroom_codes")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # workroom_codes too: null must not silently empty the list; send [] to clear it.
        return _refuse_null(value)


class RepresentativeRead(BaseModel):
    id: int
    name: str
    level: str
    phone: str | None
    workroom_codes: list[str]
    active: bool


class UnitCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)


class UnitRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    active: bool


class CategoryCreate(InputModel):
    code: str = Field(pattern=r"^[a-z0-9_]{2,32}$")
    name: str = Field(min_length=1, max_length=64)
    due_days: int = Field(15, ge=1, le=365)
    # Shown to Open311 clients as the service's description and keywords (comma separated).
    description: str = Field("", max_length=1000)
    keywords: str = Field("", max_length=200)


class CategoryUpdate(InputModel):
    name: str | None = Field(None, min_length=1, max_length=64)
    due_days: int | None = Field(None, ge=1, le=365)
    description: str | None = Field(None, max_length=1000)
    keywords: str | None = Field(None, max_length=200)
    active: bool | None = None

    @field_validator("name", "due_days", "description", "keywords", "active")
    @classmethod
    def _not_null(cls, value: object) -> object:
        return _refuse_null(value)


class CategoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    due_days: int
    description: str = ""
    keywords: str = ""
    active: bool = True
