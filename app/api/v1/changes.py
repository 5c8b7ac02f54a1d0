"""The changes feed: every public step of every form, in commit order, for integrators that sync."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from app.http.deps import LimitQ, PrincipalDep, SessionDep
from app.http.routing import GuardedRouter
from app.models import Role, Scope
from app.schemas.common import Page
from app.schemas.webhooks import ChangeRead
from app.services import changes as change_service
from app.services import views

router = GuardedRouter(tags=["integrations"])


@router.get(
    "/changes",
    response_model=Page[ChangeRead],
    summary="Form changes after a cursor, oldest first (API clients with forms:read, admins, coordinators)",
    description=(
        "Items are webhook bodies plus `form_id`, with the same `id` (`chg_<n>`). Keep `next_cursor` and ask "
        "with it again: it is non-null once anything was read and, when nothing new has committed yet, it is "
        "the cursor you sent. A page shorter than `limit` means you are up to date for now. On PostgreSQL a "
        "change appears only once every transaction that began before it has ended, so a late commit is "
        "never skipped."
    ),
)
async def list_changes(
    principal: PrincipalDep,
    session: SessionDep,
    limit: LimitQ = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[ChangeRead]:
    if principal.client is not None:
        principal.require_scope(Scope.forms_read)
    else:
        principal.require_role(Role.admin, Role.coordinator)
    changes, next_cursor = await change_service.feed(session, cursor=cursor or None, limit=limit)
    return Page(items=[views.change_read(c) for c in changes], next_cursor=next_cursor)
