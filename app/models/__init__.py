"""All ORM models, imported here so ``Base.metadata`` knows every table (Alembic reads it)."""

from app.models.base import Base, UTCDateTime, utcnow
from app.models.exports import ExportJob, ExportStatus
from app.models.forms import (
    STATUS_LABELS,
    Channel,
    EventType,
    FormEvent,
    FormStatus,
    IdempotencyRecord,
    OpinionForm,
    Satisfaction,
    TrackingSequence,
)
from app.models.reference import (
    Category,
    HandlingUnit,
    PlaceType,
    Representative,
    RepresentativeLevel,
    ServicePoint,
    Workroom,
    representative_workroom,
    service_point_representative,
)
from app.models.rosters import CalendarFeed, ImportJob, Shift, ShiftSwap, SwapStatus
from app.models.stats import METRICS, StatCell, StatOwnerCell
from app.models.users import AuthToken, Role, User

__all__ = [
    "METRICS",
    "STATUS_LABELS",
    "AuthToken",
    "Base",
    "CalendarFeed",
    "Category",
    "Channel",
    "EventType",
    "ExportJob",
    "ExportStatus",
    "FormEvent",
    "FormStatus",
    "HandlingUnit",
    "IdempotencyRecord",
    "ImportJob",
    "OpinionForm",
    "PlaceType",
    "Representative",
    "RepresentativeLevel",
    "Role",
    "Satisfaction",
    "ServicePoint",
    "Shift",
    "ShiftSwap",
    "StatCell",
    "StatOwnerCell",
    "SwapStatus",
    "TrackingSequence",
    "UTCDateTime",
    "User",
    "Workroom",
    "representative_workroom",
    "service_point_representative",
    "utcnow",
]
