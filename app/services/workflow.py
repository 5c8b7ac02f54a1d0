"""The workflow actions on a form, as a town office runs them:
受理 → 批办 → 办理 (退回, 延期, 改派, 催办) → 答复 (or 当场答复) → 回访 → 办结 (or 重办), and 不予受理.

Every action is one function that locks the form, checks who may act and the current status, changes the
form, writes one ``FormEvent``, and records the counters' difference (``stats.contribution`` after minus
before), all in the caller's transaction. Two people acting on one form at once queue on the row lock;
the second then sees the new status and gets 409.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import TZ, Settings
from app.errors import Conflict, Invalid, InvalidTransition, PermissionDenied
from app.models import (
    STATUS_LABELS,
    Category,
    EventType,
    FormEvent,
    FormStatus,
    OpinionForm,
    Role,
    User,
    utcnow,
)
from app.services import changes as change_service
from app.services import deadlines, reference, working_days
from app.services import forms as form_service
from app.services import merging as merge_service
from app.services import search as search_service
from app.services import stats as stats_service
from app.services.auth import Principal
from app.services.deadlines import Supervision

DEFAULT_DUE_DAYS = 15

ACTION_LABELS = {
    "assign": "批办",
    "reassign": "改派",
    "return": "退回",
    "extension": "申请延期",
    "extension_decision": "审批延期",
    "reply": "答复",
    "answer_on_spot": "当场答复",
    "close": "办结",
    "decline": "不予受理",
    "reopen": "重办",
    "urge": "催办",
}

SUPERVISION_NOTES = {
    Supervision.warning: "预警：距办理期限不足 2 个工作日。",
    Supervision.overdue: "逾期：已超过办理期限。",
    Supervision.escalated: "督办：逾期已达 5 个工作日。",
}
LADDER = (Supervision.none, Supervision.warning, Supervision.overdue, Supervision.escalated)


# --- shared steps ------------------------------------------------------------------------------------


async def _lock(session: AsyncSession, form_id: int) -> tuple[OpinionForm, stats_service.Contribution]:
    """The form, row-locked, with its counters' contribution before the action changes it (and the
    database's working-day calendar loaded for the deadlines the action computes). A lead's followers are
    locked with it, in ascending id order (services/merging.py)."""
    form = await merge_service.lock(session, form_id)
    return form, stats_service.contribution(form)


def _require_office(principal: Principal) -> User:
    return principal.require_role(Role.admin, Role.coordinator)


def _require_unit_handler(principal: Principal, form: OpinionForm) -> User:
    user = principal.require_staff()
    if user.role != Role.handler or form.unit_id is None or form.unit_id != user.unit_id:
        raise PermissionDenied("只有承办这份意见的单位可以执行此操作。", code="not_your_unit")
    return user


def _require_status(form: OpinionForm, action: str, allowed: Collection[str]) -> None:
    if form.merged_into_id is not None:  # a follower moves with its lead: act on the lead
        raise merge_service.acting_on_follower(form)
    if form.status not in allowed:
        raise InvalidTransition(
            f"当前状态为“{STATUS_LABELS.get(form.status, form.status)}”，不能{ACTION_LABELS[action]}。",
            extra={"current_status": form.status, "action": action},
        )


async def _transition(
    session: AsyncSession,
    form: OpinionForm,
    before: stats_service.Contribution,
    *,
    principal: Principal,
    event: str,
    to_status: str | None,
    now: datetime,
    note: str | None = None,
    unit_id: int | None = None,
    internal: bool = False,
    data: Mapping[str, Any] | None = None,
) -> OpinionForm:
    from_status = form.status
    if to_status is not None:
        form.status = to_status
    form.updated_at = now
    user = principal.user
    written = FormEvent(
        form_id=form.id, type=event, at=now, actor_user_id=user.id if user else None,
        actor_label=principal.label if user else "系统", actor_role=principal.role, from_status=from_status,
        to_status=to_status, unit_id=unit_id, note=note,
        internal=internal, data=dict(data) if data else None,
    )
    session.add(written)
    await stats_service.record_change(session, before, stats_service.contribution(form))
    if search_service.changed(form):  # a reply written or withdrawn: the search index follows, here
        await search_service.index(session, [form])
    # A lead's followers take the same public step, each with its own event, counters and outbox rows.
    followed = [] if internal else await merge_service.follow(session, form, written)
    await session.flush()
    form = await form_service.get(session, form.id, with_events=True)
    if not internal:
        await change_service.record(session, [change_service.Happened(form, event, written.id, now),
                                              *await merge_service.published(session, followed)])
    return form


async def _default_due_at(session: AsyncSession, form: OpinionForm, now: datetime) -> datetime:
    due_days = DEFAULT_DUE_DAYS
    if form.category_id is not None:
        category = await session.get(Category, form.category_id)
        if category is not None:
            due_days = category.due_days
    return deadlines.due_at_after(now, due_days, TZ)


def _future(due_at: datetime, now: datetime) -> datetime:
    """A deadline a person set: later than now and within two years (deadlines.check_due_at)."""
    return deadlines.check_due_at(due_at, now, tz=TZ)


def _clear_extension(form: OpinionForm) -> None:
    form.extension_due_at = None
    form.extension_reason = None


def _first_answer(form: OpinionForm, now: datetime) -> None:
    """Record what the counts need about the first answer: when, on time, working days taken."""
    form.answered_at = now
    if form.first_answered_at is None:
        form.first_answered_at = now
        form.answered_on_time = form.due_at is None or now <= form.due_at
        submitted_on, answered_on = form.submitted_at.astimezone(TZ).date(), now.astimezone(TZ).date()
        form.answer_working_days = (
            deadlines.working_days_between(submitted_on, answered_on) if submitted_on < answered_on else 0)


# --- the actions -------------------------------------------------------------------------------------


async def assign(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    unit_id: int,
    instructions: str | None,
    due_at: datetime | None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> OpinionForm:
    """批办: the office gives a submitted form to a handling unit, with instructions and a deadline
    (the category's default in working days unless the coordinator sets another)."""
    now = now or utcnow()
    _require_office(principal)
    form, before = await _lock(session, form_id)
    _require_status(form, "assign", {FormStatus.submitted})
    unit = await reference.get_unit_or_raise(session, unit_id, invalid=True)
    form.unit_id = unit.id
    form.instructions = instructions
    form.due_at = _future(due_at, now) if due_at else await _default_due_at(session, form, now)
    form.supervision_recorded = Supervision.none
    form.assigned_at = now
    if form.first_assigned_at is None:
        form.first_assigned_at = now
    return await _transition(
        session, form, before, principal=principal, event=EventType.assigned, to_status=FormStatus.assigned,
        now=now, note=instructions, unit_id=unit.id,
        data={"unit_name": unit.name, "due_at": form.due_at.isoformat()},
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
    form, before = await _lock(session, form_id)
    _require_status(form, "reassign", {FormStatus.assigned})
    unit = await reference.get_unit_or_raise(session, unit_id, invalid=True)
    previous = form.unit_id
    if unit.id == previous:
        raise Invalid(f"该意见已由{unit.name}办理，请选择其他承办单位。", code="same_unit")
    form.unit_id = unit.id
    if instructions is not None:
        form.instructions = instructions
    form.assigned_at = now
    _clear_extension(form)
    return await _transition(
        session, form, before, principal=principal, event=EventType.reassigned, to_status=FormStatus.assigned,
        now=now, note=instructions, unit_id=unit.id, data={"from_unit_id": previous, "unit_name": unit.name},
    )


async def return_to_office(
    session: AsyncSession, *, principal: Principal, form_id: int, reason: str, now: datetime | None = None
) -> OpinionForm:
    """退回: the unit says "not ours", with a reason; the form goes back to the office's queue."""
    now = now or utcnow()
    form, before = await _lock(session, form_id)
    user = _require_unit_handler(principal, form)
    _require_status(form, "return", {FormStatus.assigned})
    form.unit_id = None
    form.due_at = None
    form.supervision_recorded = Supervision.none
    form.returned_count = (form.returned_count or 0) + 1
    _clear_extension(form)
    result = await _transition(
        session, form, before, principal=principal, event=EventType.returned, to_status=FormStatus.submitted,
        now=now, note=reason, unit_id=user.unit_id,
    )
    await stats_service.record_return(session, result, user.unit_id)  # type: ignore[arg-type]
    return result


async def request_extension(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    due_at: datetime,
    reason: str,
    now: datetime | None = None,
) -> OpinionForm:
    """延期申请: the unit asks for a later deadline, with a reason; a coordinator decides."""
    now = now or utcnow()
    form, before = await _lock(session, form_id)
    user = _require_unit_handler(principal, form)
    _require_status(form, "extension", {FormStatus.assigned})
    if form.extension_due_at is not None:
        raise Conflict("已有一项延期申请待审批。", code="extension_pending")
    if form.due_at is not None and due_at <= form.due_at:
        raise Invalid("申请的期限必须晚于当前办理期限。", code="invalid_due_at")
    form.extension_due_at = _future(due_at, now)
    form.extension_reason = reason
    return await _transition(
        session, form, before, principal=principal, event=EventType.extension_requested, to_status=None,
        now=now, note=reason, unit_id=user.unit_id, data={"requested_due_at": due_at.isoformat()},
    )


async def decide_extension(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    approve: bool,
    note: str | None,
    now: datetime | None = None,
) -> OpinionForm:
    """延期审批: a coordinator approves (the new deadline applies at once) or refuses the request."""
    now = now or utcnow()
    _require_office(principal)
    form, before = await _lock(session, form_id)
    _require_status(form, "extension_decision", {FormStatus.assigned})
    if form.extension_due_at is None:
        raise Conflict("没有待审批的延期申请。", code="no_pending_extension")
    requested = form.extension_due_at
    previous = form.due_at
    if approve:
        # Still within two years of today (a request stored before the window existed may not be).
        form.due_at = deadlines.check_due_at(requested, now, tz=TZ, future=False)
        # A later deadline may move the form down the ladder: let supervision record its levels afresh.
        form.supervision_recorded = Supervision.none
    _clear_extension(form)
    return await _transition(
        session, form, before, principal=principal,
        event=EventType.extension_approved if approve else EventType.extension_refused, to_status=None, now=now,
        note=note, unit_id=form.unit_id,
        data={"requested_due_at": requested.isoformat(), "previous_due_at": previous.isoformat() if previous else None},
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
    form, before = await _lock(session, form_id)
    if user.role == Role.handler:
        _require_unit_handler(principal, form)
    elif user.role not in (Role.admin, Role.coordinator):
        raise PermissionDenied("当前账号无权答复。", code="forbidden")
    _require_status(form, "reply", {FormStatus.assigned})
    form.reply = reply_text
    _first_answer(form, now)
    _clear_extension(form)
    return await _transition(
        session, form, before, principal=principal, event=EventType.answered, to_status=FormStatus.answered,
        now=now, note=reply_text, unit_id=form.unit_id,
        data={"internal_note": internal_note} if internal_note else None,
    )


async def answer_on_spot(
    session: AsyncSession, *, principal: Principal, form_id: int, reply_text: str, now: datetime | None = None
) -> OpinionForm:
    """当场答复: the question was settled at the stall; the representative who entered it (or the office)
    records the answer straight away."""
    now = now or utcnow()
    user = principal.require_staff()
    form, before = await _lock(session, form_id)
    if user.role == Role.representative:
        if form.entered_by_user_id != user.id and (
            user.representative_id is None or form.entered_by_representative_id != user.representative_id
        ):
            raise PermissionDenied("只有录入这份意见的党代表可以当场答复。", code="not_your_form")
    elif user.role not in (Role.admin, Role.coordinator):
        raise PermissionDenied("当前账号无权当场答复。", code="forbidden")
    _require_status(form, "answer_on_spot", {FormStatus.submitted})
    form.reply = reply_text
    _first_answer(form, now)
    return await _transition(
        session, form, before, principal=principal, event=EventType.answered_on_spot,
        to_status=FormStatus.answered, now=now, note=reply_text,
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
    form, before = await _lock(session, form_id)
    _require_status(form, "close", {FormStatus.answered})
    form.satisfaction = satisfaction
    form.closed_at = now
    return await _transition(
        session, form, before, principal=principal, event=EventType.closed, to_status=FormStatus.closed,
        now=now, note=note, data={"satisfaction": satisfaction} if satisfaction else None,
    )


async def reopen(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    reason: str,
    unit_id: int | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> OpinionForm:
    """重办: the resident is not satisfied; the form goes back to its unit (or another) with a new deadline."""
    now = now or utcnow()
    _require_office(principal)
    form, before = await _lock(session, form_id)
    _require_status(form, "reopen", {FormStatus.answered})
    target = unit_id if unit_id is not None else form.unit_id
    if target is None:
        raise Invalid("这份意见是当场答复的，重办时请指定承办单位（unit_id）。", code="unit_required")
    unit = await reference.get_unit_or_raise(session, target, invalid=True)
    form.unit_id = unit.id
    form.reply = None
    form.answered_at = None
    form.assigned_at = now
    if form.first_assigned_at is None:
        form.first_assigned_at = now
    form.due_at = await _default_due_at(session, form, now)
    form.supervision_recorded = Supervision.none
    form.reopened_count = (form.reopened_count or 0) + 1
    return await _transition(
        session, form, before, principal=principal, event=EventType.reopened, to_status=FormStatus.assigned,
        now=now, note=reason, unit_id=unit.id, data={"due_at": form.due_at.isoformat()},
    )


async def decline(
    session: AsyncSession, *, principal: Principal, form_id: int, reason: str, now: datetime | None = None
) -> OpinionForm:
    """不予受理: out of scope, with a reason the resident reads."""
    now = now or utcnow()
    _require_office(principal)
    form, before = await _lock(session, form_id)
    _require_status(form, "decline", {FormStatus.submitted})
    form.decline_reason = reason
    form.declined_at = now
    return await _transition(
        session, form, before, principal=principal, event=EventType.declined, to_status=FormStatus.declined,
        now=now, note=reason,
    )


async def urge(
    session: AsyncSession, *, principal: Principal, form_id: int, note: str | None, now: datetime | None = None
) -> OpinionForm:
    """催办: the office chases the unit on an open form. An event, no change of status."""
    now = now or utcnow()
    _require_office(principal)
    form, before = await _lock(session, form_id)
    _require_status(form, "urge", {FormStatus.assigned})
    return await _transition(
        session, form, before, principal=principal, event=EventType.urged, to_status=None, now=now,
        note=note, unit_id=form.unit_id,
    )


async def reissue_code(
    session: AsyncSession, *, principal: Principal, form_id: int, settings: Settings, now: datetime | None = None
) -> tuple[OpinionForm, str]:
    """补发查询码: a new verification code for a resident who lost theirs; the old one stops working at once.
    The office may, and the representative who entered the form (the resident is in front of them). An
    internal event records who did it and when; the code itself is returned once and stored only hashed."""
    now = now or utcnow()
    user = principal.require_staff()
    form, before = await _lock(session, form_id)
    entered_it = user.role == Role.representative and form.entered_by_user_id == user.id
    if not (principal.is_office or entered_it):
        if not await form_service.can_see(session, principal, form):
            raise PermissionDenied("您无权查看这份意见征询表。", code="form_forbidden")
        raise PermissionDenied("只有办公室或录入这份意见的党代表可以补发查询码。", code="forbidden")
    code = form_service.new_code()
    form.verification_hash = form_service.verification_hash(settings.secret_key, form.tracking_no, code)
    form = await _transition(session, form, before, principal=principal, event=EventType.code_reissued,
                             to_status=None, now=now, internal=True)
    return form, code


async def add_note(
    session: AsyncSession, *, principal: Principal, form_id: int, note: str, now: datetime | None = None
) -> OpinionForm:
    """An internal note: staff who can see the form may add one; residents and public tracking never see it."""
    now = now or utcnow()
    principal.require_staff()
    form, before = await _lock(session, form_id)
    if not await form_service.can_see(session, principal, form):
        raise PermissionDenied("您无权查看这份意见征询表。", code="form_forbidden")
    return await _transition(
        session, form, before, principal=principal, event=EventType.note, to_status=None, now=now, note=note,
        internal=True,
    )


async def clear_review(
    session: AsyncSession, *, principal: Principal, form_id: int, note: str | None, now: datetime | None = None
) -> OpinionForm:
    """The office has read a form WeChat's content check flagged and finds nothing wrong: the flag goes,
    and an internal event keeps what was flagged and who cleared it. (Content that is not acceptable is
    declined instead, with a reason the resident reads.)"""
    now = now or utcnow()
    _require_office(principal)
    form, before = await _lock(session, form_id)
    if form.review_flag is None:
        raise Conflict("这份意见没有待审核的内容标记。", code="not_flagged")
    flagged = {"review_flag": form.review_flag, "content_check": form.content_check}
    form.review_flag = None
    return await _transition(
        session, form, before, principal=principal, event=EventType.content_reviewed, to_status=None, now=now,
        note=note or "内容已人工审核，未见问题。", internal=True, data=flagged,
    )


# --- supervision -------------------------------------------------------------------------------------


async def supervise(session: AsyncSession, *, now: datetime | None = None, batch: int = 500) -> int:
    """Record an event for every open form that moved up the supervision ladder (预警 → 逾期 → 督办),
    once per level. Safe to run from several processes at once: each form is claimed with
    ``FOR UPDATE SKIP LOCKED`` (PostgreSQL) and its recorded level re-read under the lock.
    Returns the number of events written."""
    now = now or utcnow()
    today = now.astimezone(TZ).date()
    await working_days.load(session)
    horizon = deadlines.end_of_day(deadlines.last_warning_day(today))
    query = (
        select(OpinionForm)
        .where(
            OpinionForm.status == FormStatus.assigned,
            OpinionForm.due_at <= horizon,
            OpinionForm.supervision_recorded != Supervision.escalated,
        )
        .order_by(OpinionForm.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    written = 0
    last_id = 0
    while True:
        forms = (await session.scalars(query.where(OpinionForm.id > last_id))).all()
        if not forms:
            return written
        for form in forms:
            last_id = form.id
            level = deadlines.supervision_level(form.due_at, now, open_=True)
            recorded = LADDER.index(Supervision(form.supervision_recorded or "none"))
            for step in LADDER[recorded + 1 : LADDER.index(level) + 1]:
                session.add(FormEvent(
                    form_id=form.id, type=EventType.supervision, at=now, actor_label="系统", unit_id=form.unit_id,
                    note=SUPERVISION_NOTES[step], data={"level": str(step)},
                ))
                written += 1
            if LADDER.index(level) > recorded:
                form.supervision_recorded = level
        await session.flush()
