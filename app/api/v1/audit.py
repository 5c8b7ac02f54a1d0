"""The audit log, for admins: read it a page at a time, or export it whole as CSV (services/audit.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from app.http.deps import AuditDep, CursorQ, LimitQ, PrincipalDep, SessionDep
from app.http.downloads import attachment
from app.http.routing import GuardedRouter
from app.models import AuditEvent, Role, utcnow
from app.schemas.common import MAX_ID, LocalDateTime, Page
from app.schemas.dates import BoundedDateTime
from app.services import audit as audit_service

router = GuardedRouter(tags=["audit"])

ActionQ = Annotated[str | None, Query(max_length=64, description="操作，如 api_client.create；以 . 结尾为前缀，如 webhook.")]
ActorQ = Annotated[int | None, Query(ge=1, le=MAX_ID, description="操作人的用户 id")]
SinceQ = Annotated[BoundedDateTime | None, Query(description="起始时间（含），ISO 8601；不带时区按北京时间")]
UntilQ = Annotated[BoundedDateTime | None, Query(description="截止时间（不含），ISO 8601；不带时区按北京时间")]


class AuditRead(BaseModel):
    id: int
    at: LocalDateTime
    actor: str
    actor_role: str | None
    actor_user_id: int | None
    actor_client_id: int | None
    ip: str | None
    request_id: str | None
    action: str
    target: str | None
    details: dict[str, Any] | None

    @classmethod
    def build(cls, event: AuditEvent) -> AuditRead:
        return cls(
            id=event.id, at=event.at, actor=event.actor_label, actor_role=event.actor_role,
            actor_user_id=event.actor_user_id, actor_client_id=event.actor_client_id, ip=event.ip,
            request_id=event.request_id, action=event.action, target=event.target, details=event.details,
        )


@router.get("/audit", response_model=Page[AuditRead], summary="The audit log, newest first (admin)")
async def list_audit(
    principal: PrincipalDep, session: SessionDep, action: ActionQ = None, actor_user_id: ActorQ = None,
    since: SinceQ = None, until: UntilQ = None, limit: LimitQ = 50, cursor: CursorQ = None,
) -> Page[AuditRead]:
    principal.require_role(Role.admin)
    filters = audit_service.AuditFilter(action=action, actor_user_id=actor_user_id, since=since, until=until)
    events, next_cursor = await audit_service.list_events(session, filters=filters, limit=limit, cursor=cursor)
    return Page(items=[AuditRead.build(e) for e in events], next_cursor=next_cursor)


@router.get("/audit/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with a BOM"}},
            summary="Export the audit log as CSV, oldest first (admin); the export is itself recorded")
async def export_audit(
    request: Request, principal: PrincipalDep, session: SessionDep, audit: AuditDep, action: ActionQ = None,
    actor_user_id: ActorQ = None, since: SinceQ = None, until: UntilQ = None,
) -> StreamingResponse:
    principal.require_role(Role.admin)
    filters = audit_service.AuditFilter(action=action, actor_user_id=actor_user_id, since=since, until=until)
    # Under a key of their own: the filter ``action`` must not be taken for the recorded action.
    used = {k: str(v) for k, v in vars(filters).items() if v is not None}
    await audit("audit.export", None, **({"filters": used} if used else {}))
    # Everything about the filters is settled before the stream sends its 200 (issue 15, point 2).
    await audit_service.check_filters(session, filters=filters)
    body = audit_service.stream_csv(request.app.state.sessionmaker, filters=filters)
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(body, media_type="text/csv; charset=utf-8",
                             headers=attachment(f"审计日志_{stamp}.csv", fallback=f"minyi-audit-{stamp}.csv"))
