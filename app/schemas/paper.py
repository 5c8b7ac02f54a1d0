"""Paper forms (纸质意见征询表, issue 20.1): printed batches, voided serials, entries and reconciliation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.schemas.common import DbId, InputModel, LocalDateTime
from app.schemas.forms import Text
from app.schemas.reference import CODE_PATTERN, PHONE_PATTERN

MAX_PER_BATCH = 500  # sheets in one batch (one PDF); a bigger print run is several batches
PageSize = Literal["A4", "A5"]
SERIAL_PATTERN_HINT = "P2026-00001"


class PaperBatchCreate(InputModel):
    """A batch for a workroom, or for one of its service-point sessions (its workroom is then the
    session's: ``workroom_code`` may be left out)."""

    workroom_code: str | None = Field(None, pattern=CODE_PATTERN)
    service_point_id: DbId | None = None
    count: int = Field(ge=1, le=MAX_PER_BATCH, description=f"张数：1–{MAX_PER_BATCH}")
    page_size: PageSize = "A4"
    note: str = Field("", max_length=200)


class VoidRequest(InputModel):
    """Serials of the batch to void (作废): each like ``P2026-00003``; a spoiled or lost sheet."""

    serials: list[str] = Field(min_length=1, max_length=MAX_PER_BATCH)
    reason: str = Field(min_length=1, max_length=200)

    @field_validator("reason")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("请填写作废原因。")
        return value


class PaperFormCreate(InputModel):
    """A returned paper form typed in: its serial and what the resident wrote. Where it was collected and
    the channel come from the batch (its session: ``service_point``; else its workroom: ``workroom``)."""

    serial: str = Field(min_length=1, max_length=32, description=f"纸质表编号，如 {SERIAL_PATTERN_HINT}")
    content: Text
    category: str | None = Field(None, max_length=32)
    submitter_name: str | None = Field(None, max_length=64)
    submitter_phone: str | None = Field(None, pattern=PHONE_PATTERN)
    public: bool = False

    @field_validator("category", "submitter_name", "submitter_phone", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        """A box left empty on the paper (and so on the desk) is no value; text is trimmed."""
        if isinstance(value, str):
            return value.strip() or None
        return value


class SerialRange(BaseModel):
    """Serials ``first`` … ``last`` (both included), ``count`` of them."""

    first: str
    last: str
    count: int


class Tally(BaseModel):
    """Reconciliation (对账): serials printed and handed out, entered as forms, voided, and missing
    (neither entered nor voided), with the missing ones as ranges."""

    handed_out: int
    entered: int
    voided: int
    missing: int
    missing_ranges: list[SerialRange]


class PaperBatchRead(BaseModel):
    id: int
    workroom_code: str
    workroom_name: str
    service_point_id: int | None
    service_point_title: str | None
    first_serial: str
    last_serial: str
    count: int
    page_size: str
    note: str
    created_at: LocalDateTime
    created_by: str | None
    printed_at: LocalDateTime | None
    printed_by: str | None
    reconciliation: Tally


class PaperEntryRead(BaseModel):
    serial: str
    form_id: int
    tracking_no: str


class PaperVoidRead(BaseModel):
    serial: str
    reason: str
    voided_at: LocalDateTime
    voided_by: str | None


class PaperBatchDetail(PaperBatchRead):
    entries: list[PaperEntryRead]
    voids: list[PaperVoidRead]
    next_serial: str | None  # the first serial neither entered nor voided; None when none is left


class ReconciliationRow(Tally):
    workroom_code: str
    workroom_name: str
    service_point_id: int | None = None
    service_point_title: str | None = None
    batches: int


class Reconciliation(BaseModel):
    totals: Tally
    workrooms: list[ReconciliationRow]
    sessions: list[ReconciliationRow]
    as_of: LocalDateTime


class PaperFormCreated(BaseModel):
    id: int
    tracking_no: str
    verification_code: str
    status: str
    submitted_at: LocalDateTime
    paper_serial: str
    batch_id: int
    next_serial: str | None
