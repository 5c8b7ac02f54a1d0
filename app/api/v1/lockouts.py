"""Lockouts in force (tracking numbers after wrong codes, accounts after failed logins), and lifting one
early: admins only (see app/http/abuse.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Request, status
from pydantic import BaseModel

from app.http import abuse
from app.http.deps import AuditDep, PrincipalDep
from app.errors import NotFound
from app.http.routing import GuardedRouter
from app.models import Role

router = GuardedRouter(tags=["lockouts"])

Kind = Literal["track", "login"]


class LockRead(BaseModel):
    kind: Kind
    subject: str
    seconds_left: int


@router.get("/lockouts", response_model=list[LockRead], summary="Lockouts in force (admin)")
async def list_lockouts(request: Request, principal: PrincipalDep, kind: Kind | None = None) -> list[LockRead]:
    principal.require_role(Role.admin)
    return [LockRead(kind=k, subject=s, seconds_left=max(1, round(left)))  # type: ignore[arg-type]
            for k, s, left in await abuse.current_locks(request, kind)]


@router.delete("/lockouts/{kind}/{subject}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Lift a lockout early (admin)")
async def lift_lockout(
    request: Request, principal: PrincipalDep, kind: Kind, subject: Annotated[str, Path(max_length=64)],
    audit: AuditDep,
) -> None:
    principal.require_role(Role.admin)
    if not await abuse.lift(request, kind, subject):
        raise NotFound(f"{subject} 当前未被锁定。", code="lockout_not_found")
    await audit("lockout.lift", f"{kind}:{subject}")
