"""Photos on forms. PLACEHOLDER: the photos helper fills this in (issue 6, point 5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.config import Settings
from app.models import FormPhoto

MAX_PHOTOS = 6


@dataclass(frozen=True)
class Upload:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class PreparedPhoto:
    content_type: str
    data: bytes
    width: int
    height: int
    sha256: str


async def read_upload(upload: UploadFile, settings: Settings) -> Upload:
    raise NotImplementedError


async def prepare_all(uploads: Sequence[Upload], *, settings: Settings) -> list[PreparedPhoto]:
    if uploads:
        raise NotImplementedError
    return []


async def attach(
    session: AsyncSession, *, form_id: int, photos: Sequence[PreparedPhoto], settings: Settings, uploaded_by: str
) -> list[FormPhoto]:
    raise NotImplementedError
