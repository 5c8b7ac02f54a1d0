"""Import jobs: representatives and duty rosters from .xlsx/.csv, checked whole, written all or nothing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.models import ImportJob
from app.schemas.common import ImportRowError, LocalDateTime

ImportKind = Literal["representatives", "shifts", "activities"]
TemplateFormat = Literal["xlsx", "csv"]


class ImportJobRead(BaseModel):
    id: int
    kind: ImportKind
    file_name: str
    status: Literal["pending", "running", "done", "failed"]
    progress: int = Field(description="rows checked so far")
    total: int | None = Field(description="data rows in the file")
    imported: int = Field(description="rows written (0 unless done)")
    errors: list[ImportRowError]
    created_at: LocalDateTime
    finished_at: LocalDateTime | None
    url: str

    @classmethod
    def build(cls, job: ImportJob) -> ImportJobRead:
        return cls(
            id=job.id, kind=job.kind, file_name=job.file_name, status=job.status, progress=job.progress,
            total=job.total, imported=job.imported, errors=[ImportRowError(**e) for e in job.errors or []],
            created_at=job.created_at, finished_at=job.finished_at, url=f"/api/v1/imports/{job.id}",
        )
