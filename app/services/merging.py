"""合并办理: similar forms merged into one suggestion (建议), and unmerged again (issue 19.3).

One form is the *lead*; the others are its *followers* (``OpinionForm.merged_into_id``). A follower keeps
its own tracking number, its own resident and its own place in every count, and follows the lead's case:

- **Merge** (``merge``, the office only). Each follower saves its own workflow state in ``merge_snapshot``
  (``RESTORED``) and takes the lead's (``SHARED``; ``_take``), with an event on each side: ``merged_into``
  on the follower (its resident reads "已与同类意见 … 合并办理"), ``merged`` on the lead (staff only).
  Refused, all or nothing, with a stable code each: a lead that is itself a follower or is finished, a form
  that is missing, already merged elsewhere, a lead of others, finished, or with another handling unit than
  the lead's (``merge_across_units``: the coordinator reassigns first).
- **Following** (``follow``, called by ``workflow._transition``). Every public action on the lead is
  taken by each follower in the same transaction: the same state and reply, its own event (same actor and
  note, ``data`` naming the lead), its own counters' change and its own outbox rows, so webhooks, WeChat and
  SMS reply notices reach every follower's resident. Actions on a follower itself are refused
  (``merged_form``: ``acting_on_follower``), but for internal notes and what concerns that form alone
  (a new verification code, the content-check flag).
- **Unmerge** (``unmerge``, the office only). A follower goes back exactly to its snapshot: the state it
  had when it was merged, whatever the lead did meanwhile (its timeline keeps what happened while merged).
  On a lead, every follower does.

Counters change only through ``stats.record_change(before, after)`` per form, so ``stats.verify`` agrees
after any merge, action and unmerge: a follower counts as assigned, answered and closed when it is (that is,
when its lead is), and goes back with its snapshot.

Locks, always in ascending id order, the set read first without locks and read again under them: a workflow
action (``lock``) locks its form and, on a lead, the followers; ``merge`` the lead and the forms joining;
``unmerge`` a follower and its lead, or a lead and its followers. Every change to a group locks its lead, so
the group cannot change while the lead's row is held. Concurrent merges and actions queue instead of
deadlocking; followers merged between an action's first read and its lock are found by the second read and
locked after the lead.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.config import TZ
from app.errors import Conflict, Invalid, NotFound
from app.models import STATUS_LABELS, EventType, FormEvent, FormStatus, OpinionForm, Role, UTCDateTime, User, utcnow
from app.services import changes as change_service
from app.services import deadlines
from app.services import forms as form_service
from app.services import search as search_service
from app.services import stats as stats_service
from app.services.auth import Principal

MAX_FOLLOWERS = 100  # forms merged in one request

# The case's state, the same for every form of a suggestion: a follower copies these from its lead.
SHARED = (
    "status", "unit_id", "instructions", "due_at", "reply", "satisfaction", "decline_reason", "extension_due_at",
    "extension_reason", "supervision_recorded", "assigned_at", "answered_at", "closed_at", "declined_at",
)
# Everything the workflow changes on a form: what a follower saves when it is merged and gets back when it is
# unmerged. Beyond SHARED, the form's own history: when it was first assigned and first answered (on time,
# in how many working days), how often it was returned and reopened.
RESTORED = (*SHARED, "first_assigned_at", "first_answered_at", "answered_on_time", "answer_working_days",
            "returned_count", "reopened_count")
_TIMES = frozenset(name for name in RESTORED if isinstance(OpinionForm.__table__.c[name].type, UTCDateTime))
FINISHED = (FormStatus.closed, FormStatus.declined)


# --- reading -----------------------------------------------------------------------------------------


async def follower_ids(session: AsyncSession, lead_id: int) -> list[int]:
    return list(await session.scalars(
        select(OpinionForm.id).where(OpinionForm.merged_into_id == lead_id).order_by(OpinionForm.id)))


async def _unmerge_ids(session: AsyncSession, form_id: int) -> set[int]:
    """The forms unmerging ``form_id`` changes: a follower and its lead, or a lead and its followers."""
    lead_id = await session.scalar(select(OpinionForm.merged_into_id).where(OpinionForm.id == form_id))
    return {form_id, lead_id} if lead_id is not None else {form_id, *await follower_ids(session, form_id)}


async def _lock_rows(session: AsyncSession, ids: Collection[int]) -> None:
    """Row locks on ``ids`` in ascending id order (PostgreSQL; SQLite's write transaction serialises)."""
    await session.execute(select(OpinionForm.id).where(OpinionForm.id.in_(sorted(ids)))
                          .order_by(OpinionForm.id).with_for_update())


async def _lock_for_unmerge(session: AsyncSession, form_id: int) -> None:
    """Lock what unmerging ``form_id`` changes, in ascending id order: the set is read first without locks,
    then again under them (a merge or unmerge committed in between changes it: locked in a second round)."""
    ids = await _unmerge_ids(session, form_id)
    while True:
        await _lock_rows(session, ids)
        found = await _unmerge_ids(session, form_id)
        if found <= ids:
            return
        ids |= found


async def _load(session: AsyncSession, ids: Iterable[int], *, for_update: bool = False) -> dict[int, OpinionForm]:
    """The forms of ``ids`` with their references, read afresh (and row-locked in ascending id order)."""
    query = (select(OpinionForm).where(OpinionForm.id.in_(sorted(set(ids)))).order_by(OpinionForm.id)
             .options(joinedload(OpinionForm.category), joinedload(OpinionForm.workroom), joinedload(OpinionForm.unit))
             .execution_options(populate_existing=True))
    if for_update:
        query = query.with_for_update(of=OpinionForm)
    return {form.id: form for form in (await session.scalars(query)).unique()}


async def lock(session: AsyncSession, form_id: int) -> OpinionForm:
    """For a workflow action on ``form_id``: the form, row-locked, and when it is a lead its followers too,
    all in ascending id order (a follower's own actions are refused, or concern it alone: its lead stays
    unlocked). A follower comes with its lead loaded, for the message refusing the action
    (``acting_on_follower``)."""
    ids = {form_id, *await follower_ids(session, form_id)}
    while True:
        if len(ids) > 1:
            await _lock_rows(session, ids)
        form = await form_service.get(session, form_id, for_update=True)
        # Read again under the lead's lock (merging locks it too): followers merged in between are locked now.
        found = {form_id, *await follower_ids(session, form_id)}
        if found <= ids:
            break
        ids |= found
    if form.merged_into_id is not None:
        set_committed_value(form, "lead", await session.get(OpinionForm, form.merged_into_id))
    return form


def acting_on_follower(form: OpinionForm) -> Conflict:
    """The refusal of a workflow action on a follower: it moves with its lead."""
    lead = form.__dict__.get("lead")  # loaded by ``lock``
    number = lead.tracking_no if lead is not None else f"#{form.merged_into_id}"
    return Conflict(f"这份意见已并入 {number} 合并办理，请在主件上办理。", code="merged_form",
                    extra={"merged_into": form.merged_into_id})


# --- the state a follower takes, saves and gets back --------------------------------------------------


def snapshot(form: OpinionForm) -> dict[str, Any]:
    """The form's workflow state as JSON (times in ISO 8601 with their offset)."""
    return {name: (value.isoformat() if name in _TIMES and value is not None else value)
            for name in RESTORED for value in (getattr(form, name),)}


def restore(form: OpinionForm, saved: dict[str, Any]) -> None:
    for name in RESTORED:
        if name in saved:
            value = saved[name]
            setattr(form, name, datetime.fromisoformat(value) if name in _TIMES and value is not None else value)


def _take(follower: OpinionForm, lead: OpinionForm, *, event: str, now: datetime) -> None:
    """The follower takes the lead's state, as the step ``event`` (or the merge) leaves it; what counts
    about the follower itself is worked out as the workflow would: first assigned when it first has a unit,
    first answered (on time against its deadline, working days since its own submission) when it first has
    an answer, one more return or reopening when the lead was returned or reopened."""
    for name in SHARED:
        setattr(follower, name, getattr(lead, name))
    if follower.first_assigned_at is None and follower.unit_id is not None:
        follower.first_assigned_at = now
    if follower.first_answered_at is None and follower.status in (FormStatus.answered, FormStatus.closed):
        # As workflow._first_answer.
        follower.first_answered_at = now
        follower.answered_on_time = follower.due_at is None or now <= follower.due_at
        submitted_on, answered_on = follower.submitted_at.astimezone(TZ).date(), now.astimezone(TZ).date()
        follower.answer_working_days = (
            deadlines.working_days_between(submitted_on, answered_on) if submitted_on < answered_on else 0)
    if event == EventType.returned:
        follower.returned_count = (follower.returned_count or 0) + 1
    elif event == EventType.reopened:
        follower.reopened_count = (follower.reopened_count or 0) + 1
    follower.updated_at = now


def _event(form: OpinionForm, principal: Principal, *, type_: str, now: datetime, from_status: str | None,
           note: str | None, data: dict[str, Any], to_status: str | None = None) -> FormEvent:
    """An event of a merge or an unmerge, as ``workflow._transition`` writes its own."""
    user = principal.user
    return FormEvent(
        form_id=form.id, type=type_, at=now, actor_user_id=user.id if user else None,
        actor_label=principal.label if user else "系统", actor_role=principal.role, from_status=from_status,
        to_status=to_status, unit_id=form.unit_id, note=note, internal=False, data=data,
    )


async def published(session: AsyncSession, events: Sequence[FormEvent]) -> list[change_service.Happened]:
    """After a flush: what the outbox publishes for ``events``, their forms read again with their references
    (their unit may have changed)."""
    if not events:
        return []
    forms = await _load(session, [e.form_id for e in events])
    return [change_service.Happened(forms[e.form_id], e.type, e.id, e.at) for e in events]


# --- following the lead ------------------------------------------------------------------------------


async def follow(session: AsyncSession, lead: OpinionForm, written: FormEvent) -> list[FormEvent]:
    """A public step ``written`` was just taken on ``lead`` (changed, not yet flushed): each follower takes
    it too, with its own event and counters' change (rows already locked by ``lock``). Flushes; returns the
    followers' events, for ``workflow._transition`` to publish with the lead's (``published``)."""
    ids = await follower_ids(session, lead.id)
    if not ids:  # most forms lead no one: no second read
        return []
    followers = await _load(session, ids)
    events = []
    for follower in followers.values():
        before = stats_service.contribution(follower)
        from_status = follower.status
        _take(follower, lead, event=written.type, now=written.at)
        event = FormEvent(
            form_id=follower.id, type=written.type, at=written.at, actor_user_id=written.actor_user_id,
            actor_label=written.actor_label, actor_role=written.actor_role, from_status=from_status,
            to_status=written.to_status, unit_id=written.unit_id, note=written.note, internal=False,
            data={**(written.data or {}), "lead_id": lead.id, "lead_tracking_no": lead.tracking_no},
        )
        session.add(event)
        events.append(event)
        await stats_service.record_change(session, before, stats_service.contribution(follower))
        if written.type == EventType.returned and written.unit_id is not None:
            await stats_service.record_return(session, follower, written.unit_id)
    changed = [f for f in followers.values() if search_service.changed(f)]
    await search_service.index(session, changed)
    await session.flush()
    return events


# --- merge and unmerge -------------------------------------------------------------------------------


def _require_office(principal: Principal) -> User:
    return principal.require_role(Role.admin, Role.coordinator)


def _finished(form: OpinionForm) -> str:
    return STATUS_LABELS.get(form.status, form.status)


async def merge(
    session: AsyncSession, *, principal: Principal, lead_id: int, form_ids: Sequence[int], now: datetime | None = None
) -> OpinionForm:
    """合并办理: ``form_ids`` follow the form ``lead_id`` from now on. All or nothing; a form already merged
    into this lead is left as it is (merging it again changes nothing)."""
    now = now or utcnow()
    _require_office(principal)
    wanted = list(dict.fromkeys(form_ids))
    if not 1 <= len(wanted) <= MAX_FOLLOWERS:
        raise Invalid(f"一次可合并 1 至 {MAX_FOLLOWERS} 份意见。", code="invalid_merge")
    if lead_id in wanted:
        raise Invalid("不能把一份意见并入它自己。", code="merge_into_itself")
    # The rows whose state decides: the lead (not a follower, so a group of its own) and each form to join.
    forms = await _load(session, [lead_id, *wanted], for_update=True)
    lead = forms.get(lead_id)
    if lead is None:
        raise NotFound(f"意见征询表 {lead_id} 不存在。", code="form_not_found")
    if lead.merged_into_id is not None:
        number = await _tracking_no(session, lead.merged_into_id)
        raise Conflict(f"{lead.tracking_no} 已并入 {number}，不能作为主件；请并入 {number}。",
                       code="lead_is_merged", extra={"merged_into": lead.merged_into_id})
    if lead.status in FINISHED:
        raise Conflict(f"主件 {lead.tracking_no} 已{_finished(lead)}，不能再并入意见。", code="lead_finished",
                       extra={"current_status": lead.status})
    missing = [form_id for form_id in wanted if form_id not in forms]
    if missing:
        raise Invalid(f"意见征询表 {'、'.join(map(str, missing))} 不存在。", code="unknown_form",
                      extra={"form_ids": missing})
    leads_of_others = set(await session.scalars(
        select(OpinionForm.merged_into_id).where(OpinionForm.merged_into_id.in_(wanted)).distinct()))
    joining: list[OpinionForm] = []
    for form_id in wanted:
        form = forms[form_id]
        if form.merged_into_id == lead.id:
            continue
        if form.merged_into_id is not None:
            number = await _tracking_no(session, form.merged_into_id)
            raise Conflict(f"{form.tracking_no} 已并入 {number}，请先取消合并。", code="already_merged",
                           extra={"form_id": form.id, "merged_into": form.merged_into_id})
        if form.id in leads_of_others:
            raise Conflict(f"{form.tracking_no} 已有并入的意见，不能再并入其他意见；可以把它作为主件，或先取消合并。",
                           code="form_is_lead", extra={"form_id": form.id})
        if form.status in FINISHED:
            raise Conflict(f"{form.tracking_no} 已{_finished(form)}，不能合并。", code="form_finished",
                           extra={"form_id": form.id, "current_status": form.status})
        if lead.unit_id is not None and form.unit_id is not None and form.unit_id != lead.unit_id:
            lead_unit = lead.unit.name if lead.unit else str(lead.unit_id)
            form_unit = form.unit.name if form.unit else str(form.unit_id)
            raise Conflict(
                f"不能跨承办单位合并：{form.tracking_no} 由{form_unit}承办，主件 {lead.tracking_no} 由{lead_unit}承办。"
                f"请先把它改派给{lead_unit}，再合并。",
                code="merge_across_units",
                extra={"form_id": form.id, "unit_id": form.unit_id, "lead_unit_id": lead.unit_id},
            )
        joining.append(form)
    if not joining:
        return await form_service.get(session, lead.id, with_events=True)

    events = []
    for form in joining:  # ascending id order, as locked
        before = stats_service.contribution(form)
        from_status = form.status
        form.merge_snapshot = snapshot(form)
        form.merged_into_id = lead.id
        _take(form, lead, event=EventType.merged_into, now=now)
        event = _event(form, principal, type_=EventType.merged_into, now=now, from_status=from_status,
                       to_status=form.status, note=f"已与同类意见 {lead.tracking_no} 合并办理。",
                       data={"lead_id": lead.id, "lead_tracking_no": lead.tracking_no})
        session.add(event)
        events.append(event)
        await stats_service.record_change(session, before, stats_service.contribution(form))
    await search_service.index(session, [f for f in joining if search_service.changed(f)])
    numbers = [f.tracking_no for f in joining]
    lead.updated_at = now
    session.add(_event(lead, principal, type_=EventType.merged, now=now, from_status=lead.status,
                       note=f"并入同类意见 {len(joining)} 份：{'、'.join(numbers)}。",
                       data={"form_ids": [f.id for f in joining], "tracking_nos": numbers}))
    await session.flush()
    await change_service.record(session, await published(session, events))
    return await form_service.get(session, lead.id, with_events=True)


async def unmerge(
    session: AsyncSession, *, principal: Principal, form_id: int, now: datetime | None = None
) -> OpinionForm:
    """取消合并: a follower goes back to the state it had when it was merged; on a lead, every follower does.
    Returns the form asked about."""
    now = now or utcnow()
    _require_office(principal)
    await _lock_for_unmerge(session, form_id)
    form = await form_service.get(session, form_id, for_update=True)
    if form.merged_into_id is not None:
        lead_id, leaving_ids = form.merged_into_id, [form.id]
    else:
        lead_id, leaving_ids = form.id, await follower_ids(session, form.id)
        if not leaving_ids:
            raise Conflict(f"{form.tracking_no} 没有合并，无需取消合并。", code="not_merged")
    forms = await _load(session, [lead_id, *leaving_ids])
    lead = forms[lead_id]
    events = []
    for leaving_id in leaving_ids:
        follower = forms[leaving_id]
        before = stats_service.contribution(follower)
        from_status = follower.status
        restore(follower, follower.merge_snapshot or {})
        follower.merged_into_id = None
        follower.merge_snapshot = None
        follower.updated_at = now
        event = _event(follower, principal, type_=EventType.unmerged, now=now, from_status=from_status,
                       to_status=follower.status, note="已取消合并，恢复单独办理。",
                       data={"lead_id": lead.id, "lead_tracking_no": lead.tracking_no})
        session.add(event)
        events.append(event)
        await stats_service.record_change(session, before, stats_service.contribution(follower))
    leaving = [forms[i] for i in leaving_ids]
    await search_service.index(session, [f for f in leaving if search_service.changed(f)])
    numbers = [f.tracking_no for f in leaving]
    lead.updated_at = now
    session.add(_event(lead, principal, type_=EventType.merge_removed, now=now, from_status=lead.status,
                       note=f"取消合并：{'、'.join(numbers)} 恢复单独办理。",
                       data={"form_ids": leaving_ids, "tracking_nos": numbers}))
    await session.flush()
    await change_service.record(session, await published(session, events))
    return await form_service.get(session, form_id, with_events=True)


async def _tracking_no(session: AsyncSession, form_id: int) -> str:
    return await session.scalar(select(OpinionForm.tracking_no).where(OpinionForm.id == form_id)) or f"#{form_id}"


# --- the office page's input: tracking numbers --------------------------------------------------------

_SEPARATORS = re.compile(r"[\s,，、;；]+")


async def ids_of_numbers(session: AsyncSession, text: str) -> list[int]:
    """The forms named by tracking numbers written one after another (spaces, commas, 、 or new lines between
    them), in that order; a number that does not exist is refused by name."""
    numbers = list(dict.fromkeys(n.strip().upper() for n in _SEPARATORS.split(text or "") if n.strip()))
    if not numbers:
        raise Invalid("请填写要合并的意见编号。", code="invalid_merge")
    if len(numbers) > MAX_FOLLOWERS:
        raise Invalid(f"一次可合并 1 至 {MAX_FOLLOWERS} 份意见。", code="invalid_merge")
    if any(len(n) > 32 for n in numbers):
        raise Invalid("意见编号过长，请核对。", code="unknown_tracking_no")
    # Numbers are upper case (the prefix is A–Z, config.tracking_prefix): the unique index finds each.
    found = dict((await session.execute(
        select(OpinionForm.tracking_no, OpinionForm.id).where(OpinionForm.tracking_no.in_(numbers)))).all())
    unknown = [n for n in numbers if n not in found]
    if unknown:
        raise Invalid(f"没有编号为 {'、'.join(unknown)} 的意见，请核对。", code="unknown_tracking_no",
                      extra={"tracking_nos": unknown})
    return [found[n] for n in numbers]
