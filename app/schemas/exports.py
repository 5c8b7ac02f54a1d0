from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import ExportJob
from app.schemas.common import InputModel, LocalDateTime
from app.schemas.forms import FormQueryBody

ExportFormat = Literal["csv", "xlsx"]
StatsView = Literal["summary", "by-workroom", "by-category", "monthly", "by-unit", "by-representative",
                   "activities"]


class ExportCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["forms"] = "forms"
    format: ExportFormat = "xlsx"
    filters: FormQueryBody = Field(default_factory=FormQueryBody)


class ExportJobRead(BaseModel):
    id: int
    kind: str
    format: str
    status: str
    progress: int
    total: int | None
    filters: dict[str, Any]
    error: str | None
    created_at: LocalDateTime
    started_at: LocalDateTime | None
    finished_at: LocalDateTime | None
    download_url: str | None

    @classmethod
    def build(cls, job: ExportJob) -> ExportJobRead:
        return cls(
            id=job.id, kind=job.kind, format=job.format, status=job.status, progress=job.progress, total=job.total,
            filters=job.filters, error=job.error, created_at=job.created_at, started_at=job.started_at,
            finished_at=job.finished_at,
            download_url=f"/api/v1/exports/{job.id}/download" if job.status == "done" else None,
        )
