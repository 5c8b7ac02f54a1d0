"""The audit log (审计日志): who did what to the system's set-up, when and from where. Append-only: the
database itself refuses to change or delete a row (triggers, migration 0007)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_action_id", "action", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Who: a staff user, an API client (webhooks are theirs), or a command run on the server ("cli").
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    actor_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_client.id"))
    actor_label: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    # From where: the client IP (as a trusted proxy gave it) and the request id of the logs.
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    # What: a dotted verb (user.create, api_client.rotate, export.forms, lockout.lift, …), its target
    # (user:5, webhook:3, workroom:LS-01) and the particulars (never a secret or a key).
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
