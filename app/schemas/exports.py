from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import ExportJob, FormStatus
from app.schemas.common import DbId, InputModel, LocalDateTime
from app.schemas.dates import BoundedDate
from app.models import Supervision

ExportFormat = Literal["csv", "xlsx"]
StatsView = Literal["summary", "by-workroom", "by-category", "monthly", "by-unit", "by-representative"]


class FormExportFilters(InputModel):
    """The filters of GET /api/v1/forms, as a body."""

    model_config = ConfigDict(extra="forbid")

    status: list[FormStatus] | None = Field(None, max_length=len(FormStatus))
    workroom: Annotated[str | None, Field(max_length=32)] = None
    category: Annotated[str | None, Field(max_length=32)] = None
    unit_id: DbId | None = None
    overdue: bool | None = None
    q: Annotated[str | None, Field(max_length=100)] = None
    supervision: Supervision | None = None
    submitted_from: BoundedDate | None = None
    submitted_to: BoundedDate | None = None


class ExportCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["forms"] = "forms"
    format: ExportFormat = "xlsx"
    filters: FormExportFilters = Field(default_factory=FormExportFilters)


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
