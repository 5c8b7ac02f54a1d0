"""The workflow actions on a form (批办 → 答复 → 办结, with 改派, 重办 and 不予受理).

Every action is one function that locks the form, checks who may act and the current status, writes the
new status and one ``FormEvent``, and updates the counters, all in the caller's transaction. Two people
acting on one form at once queue on the row lock; the second then sees the new status and gets 409.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import Invalid, InvalidTransition, PermissionDenied
from app.models import STATUS_LABELS, Category, EventType, FormEvent, FormStatus, OpinionForm, Role, utcnow
from app.services import deadlines, reference
from app.services import forms as form_service
from app.services import stats as stats_service
from app.services.auth import Principal

DEFAULT_DUE_DAYS = 15

ACTION_LABELS = {
    "assign": "批办",
    "reassign": "改派",
    "reply": "答复",
    "close": "办结",
    "decline": "不予受理",
    "reopen": "重办",
}


async def _lock(session: AsyncSession, form_id: int) -> OpinionForm:
    return await form_service.get(session, form_id, for_update=True)


def _require_office(principal: Principal) -> None:
    principal.require_role(Role.admin, Role.coordinator)


def _require_status(form: OpinionForm, action: str, allowed: Collection[str]) -> None:
    if form.status not in allowed:
        raise InvalidTransition(
            f"当前状态为“{STATUS_LABELS.get(form.status, form.status)}”，不能{ACTION_LABELS[action]}。",
            extra={"current_status": form.status, "action": action},
        )


async def _transition(
    session: AsyncSession,
    form: OpinionForm,
    *,
    principal: Principal,
    event: str,
    to_status: str | None,
    now: datetime,
    note: str | None = None,
    data: Mapping[str, Any] | None = None,
    counts: Mapping[str, int] | None = None,
) -> OpinionForm:
    from_status = form.status
    if to_status is not None:
        form.status = to_status
    form.updated_at = now
    user = principal.user
    session.add(FormEvent(
        form_id=form.id, type=event, at=now, actor_user_id=user.id if user else None,
        actor_label=principal.label, actor_role=principal.role, from_status=from_status,
        to_status=to_status, note=note, data=dict(data) if data else None,
    ))
    if counts:
        await stats_service.record(session, form, counts)
    await session.flush()
    return await form_service.get(session, form.id, with_events=True)


async def _default_due_at(session: AsyncSession, form: OpinionForm, now: datetime, settings: Settings) -> datetime:
    due_days = DEFAULT_DUE_DAYS
    if form.category_id is not None:
        category = await session.get(Category, form.category_id)
        if category is not None:
            due_days = category.due_days
    return deadlines.due_at_after(now, due_days, settings.tz)


def _check_due_at(due_at: datetime, now: datetime) -> datetime:
    if due_at <= now:
        raise Invalid("办理期限必须晚于当前时间。", code="invalid_due_at")
    return due_at


async def assign(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    unit_id: int,
    instructions: str | None,
    due_at: datetime | None,
    settings: Settings,
    now: datetime | None = None,
) -> OpinionForm:
    """批办: the office gives a submitted form to a handling unit, with instructions and a deadline."""
    now = now or utcnow()
    _require_office(principal)
    form = await _lock(session, form_id)
    _require_status(form, "assign", {FormStatus.submitted})
    unit = await reference.get_unit_or_raise(session, unit_id, invalid=True)
    form.unit_id = unit.id
    form.instructions = instructions
    form.due_at = _check_due_at(due_at, now) if due_at else await _default_due_at(session, form, now, settings)
    form.assigned_at = now
    first = form.first_assigned_at is None
    if first:
        form.first_assigned_at = now
    return await _transition(
        session, form, principal=principal, event=EventType.assigned, to_status=FormStatus.assigned, now=now,
        note=instructions, data={"unit_id": unit.id, "unit_name": unit.name, "due_at": form.due_at.isoformat()},
        counts={"assigned": 1 if first else 0},
    )


async def reassign(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    unit_id: int,
    instructions: str | None,
    now: datetime | None = None,
) -> OpinionForm:
    """改派: the office moves an assigned form to another unit; the deadline stands."""
    now = now or utcnow()
    _require_office(principal)
    form = await _lock(session, form_id)
    _require_status(form, "reassign", {FormStatus.assigned})
    unit = await reference.get_unit_or_raise(session, unit_id, invalid=True)
    previous = form.unit_id
    if unit.id == previous:
        raise Invalid(f"该意见已由{unit.name}办理，请选择其他承办单位。", code="same_unit")
    form.unit_id = unit.id
    if instructions is not None:
        form.instructions = instructions
    form.assigned_at = now
    return await _transition(
        session, form, principal=principal, event=EventType.reassigned, to_status=FormStatus.assigned, now=now,
        note=instructions, data={"from_unit_id": previous, "unit_id": unit.id, "unit_name": unit.name},
    )


async def reply(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    reply_text: str,
    internal_note: str | None,
    now: datetime | None = None,
) -> OpinionForm:
    """答复: the unit (or the office) writes the public reply, with an optional staff-only note."""
    now = now or utcnow()
    user = principal.require_staff()
    form = await _lock(session, form_id)
    if user.role == Role.handler:
        if form.unit_id is None or form.unit_id != user.unit_id:
            raise PermissionDenied("只有承办单位可以答复这份意见征询表。", code="not_your_unit")
    elif user.role not in (Role.admin, Role.coordinator):
        raise PermissionDenied("当前账号无权答复。", code="forbidden")
    _require_status(form, "reply", {FormStatus.assigned})
    form.reply = reply_text
    form.answered_at = now
    first = form.first_answered_at is None
    if first:
        form.first_answered_at = now
    return await _transition(
        session, form, principal=principal, event=EventType.answered, to_status=FormStatus.answered, now=now,
        note=reply_text, data={"internal_note": internal_note} if internal_note else None,
        counts={"answered": 1 if first else 0},
    )


async def close(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    satisfaction: str | None,
    note: str | None,
    now: datetime | None = None,
) -> OpinionForm:
    """办结: after the follow-up call (回访) the office closes the form, recording satisfaction."""
    now = now or utcnow()
    _require_office(principal)
    form = await _lock(session, form_id)
    _require_status(form, "close", {FormStatus.answered})
    form.satisfaction = satisfaction
    form.closed_at = now
    return await _transition(
        session, form, principal=principal, event=EventType.closed, to_status=FormStatus.closed, now=now,
        note=note, data={"satisfaction": satisfaction} if satisfaction else None, counts={"closed": 1},
    )


async def reopen(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    reason: str,
    settings: Settings,
    now: datetime | None = None,
) -> OpinionForm:
    """重办: the resident is not satisfied; the form goes back to its unit with a new deadline."""
    now = now or utcnow()
    _require_office(principal)
    form = await _lock(session, form_id)
    _require_status(form, "reopen", {FormStatus.answered})
    form.reply = None
    form.answered_at = None
    form.assigned_at = now
    form.due_at = await _default_due_at(session, form, now, settings)
    return await _transition(
        session, form, principal=principal, event=EventType.reopened, to_status=FormStatus.assigned, now=now,
        note=reason, data={"unit_id": form.unit_id, "due_at": form.due_at.isoformat()},
    )


async def decline(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    reason: str,
    now: datetime | None = None,
) -> OpinionForm:
    """不予受理: out of scope, with a reason the resident reads."""
    now = now or utcnow()
    _require_office(principal)
    form = await _lock(session, form_id)
    _require_status(form, "decline", {FormStatus.submitted})
    form.decline_reason = reason
    form.declined_at = now
    return await _transition(
        session, form, principal=principal, event=EventType.declined, to_status=FormStatus.declined, now=now,
        note=reason, counts={"declined": 1},
    )
