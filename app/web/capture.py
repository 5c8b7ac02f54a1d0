"""What the submit pages take beside the text: photos (the ``photos`` file input) and a place (the
``place`` list, or the phone's own ``latitude``/``longitude``). Shared by the resident's and the
representative's page; the checks themselves are the API's (services/photos.py, services/places.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile

from app.config import Settings
from app.errors import AppError, Invalid
from app.schemas.forms import PAGE_FIELDS
from app.services import photos as photo_service
from app.services import places

FIELD = "photos"
# The browser cannot put chosen files back into a page it renders again: say so with the problem.
AGAIN = "请重新选择照片。"


def is_photo_problem(error: AppError) -> bool:
    return "photo" in (error.code or "")


def photo_message(error: AppError) -> str:
    return f"{error.detail}{AGAIN}"


async def read_photos(form: FormData, settings: Settings) -> list[photo_service.Upload]:
    """The chosen photos, each read up to ``photo_max_bytes``; an input left empty (a no-JS form sends a
    part with no name and no bytes) is no photo. Raises the photo's ``AppError``."""
    files = [value for value in form.getlist(FIELD) if isinstance(value, UploadFile)]
    chosen = [f for f in files if f.filename or (f.size or 0) > 0]
    if len(chosen) > photo_service.MAX_PHOTOS:
        raise Invalid(f"每份意见最多附 {photo_service.MAX_PHOTOS} 张照片。", code="too_many_photos")
    return [await photo_service.read_upload(f, settings) for f in chosen]


def page_field_messages(name: str) -> dict[str, str] | None:
    """The message of a field the pages render from the one submission schema (PAGE_FIELDS), or None."""
    field = PAGE_FIELDS.get(name)
    if field is None:
        return None
    limit = field["max_length"]
    return {"*": f"{field['label']}不能超过 {limit} 个字。" if limit else f"{field['label']}填写有误。"}


async def place_fields(session: AsyncSession, form: FormData, data: dict[str, Any]) -> None:
    """Put the page's position or chosen place into ``data`` (the submission's fields)."""
    data.update(places.coordinates([str(form.get("latitude") or ""), str(form.get("longitude") or "")]))
    places.apply(data, await places.resolve(session, str(form.get("place") or "")[:64] or None))
