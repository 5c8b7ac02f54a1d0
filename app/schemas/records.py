"""A representative's record of duty (履职档案, issue 20.3): the figures of one representative for a period,
and one row per representative of a workroom."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from app.schemas.common import LocalDateTime


class RecordFigures(BaseModel):
    """What one representative did in the period (or a workroom's total of its rows).

    Shifts starting in the period: ``shifts_scheduled`` = ``shifts_kept`` (checked in) + ``shifts_missed``
    (ended without a check-in) + ``shifts_upcoming`` (not ended, not checked in); ``attendance_rate`` =
    kept / (kept + missed), null while none is due. ``service_point_sessions``: sessions starting in the
    period the representative attended. ``activities``: activities held in the period with the
    representative present, ``activity_attendance`` the people who took part, ``activities_by_kind`` per
    kind. Forms: those the representative entered, submitted in the period (``forms_entered``), of them
    answered on the spot (当场答复), ever answered, closed, and the satisfaction recorded on closing;
    ``answer_rate`` = answered / entered, ``satisfaction_rate`` = (satisfied + basically satisfied) / rated,
    each null when its denominator is 0."""

    shifts_scheduled: int = 0
    shifts_kept: int = 0
    shifts_missed: int = 0
    shifts_upcoming: int = 0
    attendance_rate: float | None = None
    service_point_sessions: int = 0
    activities: int = 0
    activity_attendance: int = 0
    activities_by_kind: dict[str, int] = {}
    forms_entered: int = 0
    answered_on_spot: int = 0
    answered: int = 0
    closed: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    unsatisfied: int = 0
    answer_rate: float | None = None
    satisfaction_rate: float | None = None


class RecordPeriod(BaseModel):
    key: str  # 2026-11, 2026-Q4, 2026, or 2026-11-03_2026-12-05 for explicit from/to
    kind: str  # month | quarter | year | range
    label: str  # 2026年11月, 2026年第四季度, 2026年, 2026年11月3日至2026年12月5日
    first: date
    last: date


class RecordRepresentative(BaseModel):
    id: int
    name: str
    level: str
    workroom_codes: list[str]


class RecordRead(BaseModel):
    representative: RecordRepresentative
    period: RecordPeriod
    figures: RecordFigures
    as_of: LocalDateTime


class RecordWorkroom(BaseModel):
    code: str
    name: str


class WorkroomRecordRow(RecordFigures):
    representative_id: int
    name: str
    level: str
    active: bool


class WorkroomRecords(BaseModel):
    workroom: RecordWorkroom
    period: RecordPeriod
    items: list[WorkroomRecordRow]
    totals: RecordFigures
    as_of: LocalDateTime
