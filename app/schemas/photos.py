from __future__ import annotations

from pydantic import BaseModel, ConfigDict, computed_field

from app.schemas.common import LocalDateTime


class PhotoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    content_type: str
    size: int
    form_id: int
    width: int | None = None
    height: int | None = None
    created_at: LocalDateTime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        """Where the image is read (GET, with the same credentials or ``?code=`` as for the upload)."""
        return f"/api/v1/forms/{self.form_id}/photos/{self.id}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def thumbnail_url(self) -> str:
        """A small JPEG of it (at most 320 px a side) for lists, read like ``url``."""
        return f"/api/v1/forms/{self.form_id}/photos/{self.id}/thumbnail"
