"""Opinion forms: submission, who may see which, listing and reading."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, make_dataclass
from dataclasses import field as dataclass_field
from dataclasses import fields as dataclass_fields
from types import SimpleNamespace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, false, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload, selectinload

from app import crypto
from app.config import TZ, Settings
from app.errors import Invalid, NotFound, PermissionDenied
from app.models import (
    Category,
    Channel,
    EventType,
    FormEvent,
    FormStatus,
    HandlingUnit,
    OpinionForm,
    Role,
    ServicePoint,
    SmsKind,
    TrackingSequence,
    Workroom,
    utcnow,
)
from app.schemas.common import MAX_ID
from app.schemas.forms import COLUMN_FILTERS, FormCreate, FormQuery
from app.services import changes as change_service
from app.services import deadlines, disclosure, reference, working_days
from app.services import search as search_service
from app.services import sms as sms_service
from app.services import stats as stats_service
from app.services.auth import Principal

MAX_PAGE = 200


# --- submission --------------------------------------------------------------------------------------


def verification_hash(secret_key: str, tracking_no: str, code: str) -> str:
    """Keyed with the app secret: a 6-digit code has too few values for a plain hash to protect it."""
    return hmac.new(secret_key.encode(), f"{tracking_no}:{code}".encode(), hashlib.sha256).hexdigest()


def new_code() -> str:
    """A verification code (查询码): six digits, from the system's CSPRNG."""
    return f"{secrets.randbelow(1_000_000):06d}"


def check_verification_code(secret_key: str, form: OpinionForm, code: str) -> bool:
    """The bare comparison. Doors never call it: they go through services/verification.py, the one guard
    (per-IP limit, per-number lock) for every place that takes a code."""
    return hmac.compare_digest(form.verification_hash, verification_hash(secret_key, form.tracking_no, code))


async def take_tracking_numbers(session: AsyncSession, *, prefix: str, year: int, count: int = 1) -> list[str]:
    """Take the next ``count`` numbers of ``year`` inside the caller's transaction.

    The upsert holds the sequence row's lock until commit, so concurrent writers queue for it; a
    rolled-back transaction gives its numbers back. Hence: never repeated, never skipped.
    """
    dialect = session.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = TrackingSequence.__table__
    statement = (
        insert_(table)
        .values(year=year, last_value=count)
        .on_conflict_do_update(index_elements=["year"], set_={"last_value": table.c.last_value + count})
        .returning(table.c.last_value)
    )
    last = (await session.execute(statement)).scalar_one()
    return [f"{prefix}{year}-{value:05d}" for value in range(last - count + 1, last + 1)]


# A submission as the front door takes it from every door: the fields of the one submission schema
# (``FormCreate``: a field added there is a field here), plus what doors and checks add: Open311's address
# id and media URL, and WeChat's content check (services/content_check.py).
Submission = make_dataclass(
    "Submission",
    [*((name, field.annotation) if field.is_required() else (name, field.annotation, dataclass_field(default=field.default))
       for name, field in FormCreate.model_fields.items()),
     ("address_id", str | None, dataclass_field(default=None)),
     ("media_url", str | None, dataclass_field(default=None)),
     ("review_flag", str | None, dataclass_field(default=None)),
     ("content_check", dict[str, Any] | None, dataclass_field(default=None))],
    frozen=True,
)
Submission.__module__ = __name__
# The columns written as submitted: every field of Submission named like a column of the form, but those
# submit_many works out itself (the channel, the service point, SMS consent and the phone's hash).
_AS_SUBMITTED = [f.name for f in dataclass_fields(Submission)
                 if f.name in OpinionForm.__table__.columns and f.name not in ("channel", "service_point_id", "sms_consent")]


class NewForm(SimpleNamespace):
    """A form just written by ``submit_many``: its columns and its loaded references as plain attributes,
    everything ``FormRead.build`` and ``stats.contribution`` read, without the cost of a mapped instance
    nobody will change (a hot path: one per submission)."""

    id: int


_FORM_COLUMNS = [c.key for c in OpinionForm.__table__.columns if c.key != "id"]


@dataclass(frozen=True)
class Accepted:
    """A written submission and its verification code (shown once, stored only as a keyed hash)."""

    form: NewForm
    code: str


class _References:
    """The categories, workrooms and service points a batch of submissions names, read once per batch."""

    def __init__(self) -> None:
        self.categories: dict[str, Category] = {}
        self.workrooms: dict[str, Workroom] = {}
        self.workrooms_by_id: dict[int, Workroom] = {}
        self.points: dict[int, ServicePoint] = {}

    @classmethod
    async def load(cls, session: AsyncSession, batch: Sequence[Submission]) -> _References:
        refs = cls()
        categories = {d.category for d in batch if d.category}
        points = {d.service_point_id for d in batch if d.service_point_id is not None and 1 <= d.service_point_id <= MAX_ID}
        if categories:
            refs.categories = {c.code: c for c in await session.scalars(select(Category).where(Category.code.in_(categories)))}
        if points:
            refs.points = {p.id: p for p in await session.scalars(select(ServicePoint).where(ServicePoint.id.in_(points)))}
        codes = {d.workroom_code for d in batch if d.workroom_code}
        ids = {p.workroom_id for p in refs.points.values()}
        if codes or ids:
            for workroom in await session.scalars(select(Workroom).where(or_(Workroom.code.in_(codes), Workroom.id.in_(ids)))):
                refs.workrooms[workroom.code] = refs.workrooms_by_id[workroom.id] = workroom
        return refs

    def resolve(self, data: Submission) -> tuple[Category | None, Workroom | None, ServicePoint | None]:
        """The submission's references, or Invalid naming the first one that does not exist."""
        category = None
        if data.category:
            category = self.categories.get(data.category)
            if category is None or not category.active:
                raise Invalid(f"类别 {data.category} 不存在。", code="unknown_category")
        workroom: Workroom | None = None
        point: ServicePoint | None = None
        if data.service_point_id is not None:
            point = self.points.get(data.service_point_id)
            if point is None:
                raise Invalid(f"流动服务点 {data.service_point_id} 不存在。", code="unknown_service_point")
            workroom = self.workrooms_by_id.get(point.workroom_id)
            if data.workroom_code and workroom is not None and workroom.code != data.workroom_code:
                raise Invalid("流动服务点不属于所填工作室。", code="workroom_mismatch")
        elif data.workroom_code:
            workroom = self.workrooms.get(data.workroom_code)
            if workroom is None or not workroom.active:
                raise Invalid(f"工作室 {data.workroom_code} 不存在。", code="unknown_workroom")
        return category, workroom, point


async def submit_many(
    session: AsyncSession,
    batch: Sequence[tuple[Principal, Submission]],
    *,
    settings: Settings,
    now: datetime | None = None,
) -> list[Accepted | Invalid]:
    """Write a batch of submissions in the caller's transaction, in a fixed number of statements
    however many there are (reference lookups, tracking numbers, forms, events, counters): the group
    commit behind ``intake.SubmissionQueue``, and a batch of one for everything else.

    Returns, per submission in order, what was written or why it was refused (nothing is written for it).
    """
    now = now or utcnow()
    local_now = now.astimezone(settings.tz)
    refs = await _References.load(session, [data for _, data in batch])
    sms_offered = sms_service.offered(settings)
    results: list[Accepted | Invalid] = []
    written_rows: list[tuple[NewForm, dict[str, Any]]] = []
    for principal, data in batch:
        try:
            category, workroom, point = refs.resolve(data)
        except Invalid as refused:
            results.append(refused)
            continue
        user = principal.user
        row: dict[str, Any] = dict.fromkeys(_FORM_COLUMNS)
        row.update({name: getattr(data, name) for name in _AS_SUBMITTED})
        row.update(
            category_id=category.id if category else None,
            channel=data.channel or (Channel.wechat if principal.resident else Channel.service_point if point
                                     else Channel.workroom if workroom else Channel.web),
            workroom_id=workroom.id if workroom else None,
            service_point_id=point.id if point else None,
            submitter_phone_hash=crypto.phone_index(data.submitter_phone),
            # Kept only when SMS is offered and the phone can take one: what the worker may act on later.
            sms_consent=bool(data.sms_consent and sms_offered
                             and sms_service.mainland_mobile(data.submitter_phone)),
            sms_stopped_at=None,
            status=FormStatus.submitted,
            submitted_at=now,
            submitted_on=local_now.date(),
            updated_at=now,
            entered_by_user_id=user.id if user else None,
            entered_by_representative_id=user.representative_id if user and user.role == Role.representative else None,
            resident_id=principal.resident.id if principal.resident else None,
            api_client_id=principal.client.id if principal.client else None,
            returned_count=0,
            reopened_count=0,
            supervision_recorded="none",
        )
        accepted = Accepted(NewForm(category=category, workroom=workroom, service_point=point, unit=None),
                            new_code())
        results.append(accepted)
        written_rows.append((accepted.form, row))
    if not written_rows:
        return results

    numbers = await take_tracking_numbers(
        session, prefix=settings.tracking_prefix, year=local_now.year, count=len(written_rows)
    )
    codes = [r.code for r in results if isinstance(r, Accepted)]
    for (_form, row), number, code in zip(written_rows, numbers, codes, strict=True):
        row["tracking_no"] = number
        row["verification_hash"] = verification_hash(settings.secret_key, number, code)
    table = OpinionForm.__table__
    inserted = await session.execute(insert(table).returning(table.c.id, table.c.tracking_no), [r for _f, r in written_rows])
    ids = {number: form_id for form_id, number in inserted}
    for form, row in written_rows:
        form.__dict__.update(row, id=ids[row["tracking_no"]])
    forms = [form for form, _row in written_rows]
    await search_service.index(session, forms)  # the search index, in the same transaction
    actors = [principal for principal, data in batch]
    events = []
    for result, principal in zip(results, actors, strict=True):
        if isinstance(result, Accepted):
            user = principal.user
            events.append(dict(
                form_id=result.form.id, type=EventType.submitted, at=now, actor_user_id=user.id if user else None,
                actor_label=principal.label, actor_role=principal.role, from_status=None,
                to_status=FormStatus.submitted, unit_id=None, note=None, internal=False,
            ))
    event_table = FormEvent.__table__
    event_ids = dict((await session.execute(insert(event_table).returning(event_table.c.form_id, event_table.c.id),
                                            events)).all())
    await stats_service.record_new(session, forms)
    # The receipt by SMS, in this transaction: the plaintext code exists only here (and in the answer).
    await sms_service.queue(session, [
        sms_service.message_row(form_id=r.form.id, kind=SmsKind.receipt, phone=phone, now=now,
                                params=sms_service.receipt_params(r.form.tracking_no, r.code))
        for r in results if isinstance(r, Accepted) and (phone := sms_service.wants_sms(r.form))
    ])
    await change_service.record(
        session, [change_service.Happened(form, EventType.submitted, event_ids.get(form.id), now) for form in forms]
    )
    return results


async def submit(
    session: AsyncSession,
    *,
    principal: Principal,
    data: Submission,
    settings: Settings,
    now: datetime | None = None,
) -> tuple[NewForm, str]:
    """Create one form in the caller's transaction; returns it with its verification code."""
    (result,) = await submit_many(session, [(principal, data)], settings=settings, now=now)
    if isinstance(result, Invalid):
        raise result
    return result.form, result.code


# --- visibility --------------------------------------------------------------------------------------


async def visibility_condition(session: AsyncSession, principal: Principal) -> Any:
    """The SQL condition selecting the forms ``principal`` may see (None: all of them)."""
    if principal.client is not None:  # an integrator reading with forms:read sees every form
        principal.require_scope("forms:read")
        return None
    user = principal.require_staff()
    if user.role in (Role.admin, Role.coordinator):
        return None
    if user.role == Role.handler:
        return OpinionForm.unit_id == user.unit_id if user.unit_id is not None else false()
    if user.role == Role.representative:
        conditions = [OpinionForm.entered_by_user_id == user.id]
        if user.representative_id is not None:
            workroom_ids = await reference.workroom_ids_of_representative(session, user.representative_id)
            conditions.append(OpinionForm.entered_by_representative_id == user.representative_id)
            if workroom_ids:
                conditions.append(OpinionForm.workroom_id.in_(workroom_ids))
        return or_(*conditions)
    return false()


async def can_see(session: AsyncSession, principal: Principal, form: OpinionForm) -> bool:
    if principal.client is not None:
        return principal.has_scope("forms:read")
    user = principal.user
    if user is None:
        return False
    if user.role in (Role.admin, Role.coordinator):
        return True
    if user.role == Role.handler:
        return user.unit_id is not None and form.unit_id == user.unit_id
    if user.role == Role.representative:
        if form.entered_by_user_id == user.id:
            return True
        if user.representative_id is None:
            return False
        if form.entered_by_representative_id == user.representative_id:
            return True
        workroom_ids = await reference.workroom_ids_of_representative(session, user.representative_id)
        return form.workroom_id in workroom_ids
    return False


def sees_personal_data(principal: Principal) -> bool:
    """Submitters' names and phone numbers, representatives' phones: whole only for the office
    (services/disclosure.py holds the policy)."""
    return disclosure.sees_personal_data(principal)


# --- reading -----------------------------------------------------------------------------------------


def _with_references(query: Select[Any]) -> Select[Any]:
    return query.options(
        joinedload(OpinionForm.category),
        joinedload(OpinionForm.workroom),
        joinedload(OpinionForm.unit),
    )


async def get(session: AsyncSession, form_id: int, *, with_events: bool = False, for_update: bool = False) -> OpinionForm:
    await working_days.load(session)  # the calendar its read (supervision, deadlines) counts on
    query = _with_references(select(OpinionForm).where(OpinionForm.id == form_id))
    if with_events:
        query = query.options(selectinload(OpinionForm.events), selectinload(OpinionForm.photos),
                              selectinload(OpinionForm.sms_messages),
                              # merged into one suggestion (services/merging.py): a follower's lead, a lead's followers
                              selectinload(OpinionForm.lead), selectinload(OpinionForm.followers))
    if for_update:
        # Row lock on PostgreSQL (of the form row only); on SQLite the write transaction already serialises.
        query = query.with_for_update(of=OpinionForm)
    form = (await session.scalars(query.execution_options(populate_existing=True))).unique().one_or_none()
    if form is None:
        raise NotFound(f"意见征询表 {form_id} 不存在。", code="form_not_found")
    return form


async def get_visible(
    session: AsyncSession, principal: Principal, form_id: int, *, with_events: bool = True,
) -> OpinionForm:
    """The form if ``principal`` may see it; ``with_events=False`` for a read of its own fields only (no
    timeline, photos or messages)."""
    principal.require_staff_or_scope("forms:read")
    form = await get(session, form_id, with_events=with_events)
    if not await can_see(session, principal, form):
        raise PermissionDenied("您无权查看这份意见征询表。", code="form_forbidden")
    return form


async def get_by_tracking_no(session: AsyncSession, tracking_no: str) -> OpinionForm | None:
    query = _with_references(select(OpinionForm).where(OpinionForm.tracking_no == tracking_no))
    return (await session.scalars(query.options(selectinload(OpinionForm.events)))).unique().one_or_none()


def supervision_condition(level: str, now: datetime) -> Any:
    """Open forms at one level of the ladder, as day cut-offs over the deadline index (the same rule as
    ``deadlines.supervision_level``, which every form read shows)."""
    today = now.astimezone(TZ).date()
    open_ = OpinionForm.status == FormStatus.assigned
    escalated_through = deadlines.end_of_day(deadlines.last_escalated_day(today))
    if level == "warning":
        return and_(open_, OpinionForm.due_at >= now,
                    OpinionForm.due_at <= deadlines.end_of_day(deadlines.last_warning_day(today)))
    if level == "overdue":
        return and_(open_, OpinionForm.due_at < now, OpinionForm.due_at > escalated_through)
    if level == "escalated":
        return and_(open_, OpinionForm.due_at < now, OpinionForm.due_at <= escalated_through)
    if level == "none":
        return or_(~open_, OpinionForm.due_at.is_(None),
                   OpinionForm.due_at > deadlines.end_of_day(deadlines.last_warning_day(today)))
    raise Invalid(f"未知督办级别：{level}", code="invalid_supervision")


# Assigned forms whose unit asked for a later deadline not yet decided (延期申请待审批): the counters' gauge
# and the list's filter share one condition.
pending_extension_condition = stats_service.pending_extension_condition


def encode_cursor(form_id: int) -> str:
    return base64.urlsafe_b64encode(f"f:{form_id}".encode()).decode().rstrip("=")


def encode_ranked_cursor(ceiling: int, offset: int) -> str:
    """The next page of a search in relevance order: ``offset`` into the ranking of the matches up to the
    form ``ceiling`` (the newest match when the first page was read; later forms stay out of it)."""
    return base64.urlsafe_b64encode(f"r:{ceiling}:{offset}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, list[int]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, *values = raw.split(":")
        numbers = [int(v) for v in values]
        # Only values we could have issued: anything else is forged, and an out-of-range id would reach the driver.
        if not (prefix == "f" and len(numbers) == 1 and 1 <= numbers[0] <= MAX_ID
                or prefix == "r" and len(numbers) == 2 and 1 <= numbers[0] < MAX_ID
                and 1 <= numbers[1] <= search_service.WINDOW):
            raise ValueError(cursor)
        return prefix, numbers
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("分页游标无效。", code="invalid_cursor") from exc


def decode_cursor(cursor: str) -> int:
    prefix, numbers = _decode(cursor)
    if prefix != "f":
        raise Invalid("分页游标无效。", code="invalid_cursor")
    return numbers[0]


async def filtered_query(
    session: AsyncSession, *, principal: Principal, filters: FormQuery, now: datetime, with_references: bool = True,
    text_search: bool = True,
) -> Select[Any]:
    """The forms ``principal`` may see that match ``filters``, unordered: the one definition of the list's
    filters, shared by the list, its count and the exports. ``text_search=False`` leaves out ``q`` (for
    ``search.newest``, which applies it its own way to the rest)."""
    await working_days.load(session)  # the ladder's cut-offs, and the rows' reads, count on this calendar
    query = select(OpinionForm)
    if with_references:
        query = _with_references(query)
    visible = await visibility_condition(session, principal)
    if visible is not None:
        query = query.where(visible)
    if filters.status:
        query = query.where(OpinionForm.status.in_(list(filters.status)))
    if filters.workroom:
        query = query.join(Workroom, OpinionForm.workroom_id == Workroom.id).where(Workroom.code == filters.workroom)
    if filters.category:
        query = query.join(Category, OpinionForm.category_id == Category.id).where(Category.code == filters.category)
    if filters.unit_id is not None:
        query = query.where(OpinionForm.unit_id == filters.unit_id)
    if filters.overdue is True:
        query = query.where(OpinionForm.status == FormStatus.assigned, OpinionForm.due_at < now)
    elif filters.overdue is False:
        query = query.where(or_(OpinionForm.status != FormStatus.assigned, OpinionForm.due_at.is_(None),
                                OpinionForm.due_at >= now))
    if filters.supervision:
        query = query.where(supervision_condition(filters.supervision, now))
    if filters.extension_requested is True:
        query = query.where(pending_extension_condition())
    elif filters.extension_requested is False:
        query = query.where(~pending_extension_condition())
    if filters.q and text_search:  # words of the content, reply, location or number (services/search.py)
        query = query.where(search_service.condition(session, search_service.parse(filters.q)))
    if filters.submitted_from:
        query = query.where(OpinionForm.submitted_on >= filters.submitted_from)
    if filters.submitted_to:
        query = query.where(OpinionForm.submitted_on <= filters.submitted_to)
    if filters.phone:
        # Exact match through the keyed hash: phone numbers are encrypted, never compared in clear.
        if not sees_personal_data(principal):
            raise PermissionDenied("按电话号码查找仅限可查看个人信息的人员。", code="personal_data_forbidden")
        query = query.where(OpinionForm.submitter_phone_hash == crypto.phone_index(filters.phone))
    if filters.review is True:
        query = query.where(OpinionForm.review_flag.is_not(None))
    elif filters.review is False:
        query = query.where(OpinionForm.review_flag.is_(None))
    if filters.ids:  # the rows the office selected (its bulk export)
        query = query.where(OpinionForm.id.in_(list(filters.ids)))
    for name, column in COLUMN_FILTERS.items():  # the filters that are an exact match on a column
        value = getattr(filters, name)
        if value is not None:
            query = query.where(OpinionForm.__table__.columns[column] == value)
    return query


async def count_forms(
    session: AsyncSession, *, principal: Principal, filters: FormQuery, now: datetime | None = None,
    max_id: int | None = None, at_most: int | None = None,
) -> int:
    """How many forms ``filters`` select; with ``at_most``, counted no further than ``at_most + 1`` (so a
    list of millions costs what a list of ``at_most`` does, and the caller still sees that there are more)."""
    query = await filtered_query(session, principal=principal, filters=filters, now=now or utcnow(),
                                 with_references=False)
    if max_id is not None:
        query = query.where(OpinionForm.id <= max_id)
    if at_most is not None:
        query = query.with_only_columns(OpinionForm.id).limit(at_most + 1)
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def list_forms(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: FormQuery,
    limit: int = 50,
    cursor: str | None = None,
    sort: str | None = None,
    now: datetime | None = None,
) -> tuple[list[OpinionForm], str | None]:
    """Newest first, keyset-paginated by id: a page costs the same however deep it is. With ``q``, by
    relevance unless ``sort="newest"`` (``_search_page``)."""
    limit = max(1, min(limit, MAX_PAGE))
    if filters.q:
        return await _search_page(session, principal=principal, filters=filters, limit=limit, cursor=cursor,
                                  sort=sort, now=now or utcnow())
    query = await filtered_query(session, principal=principal, filters=filters, now=now or utcnow())
    if cursor:
        query = query.where(OpinionForm.id < decode_cursor(cursor))
    rows = list((await session.scalars(query.order_by(OpinionForm.id.desc()).limit(limit + 1))).unique())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def _in_order(session: AsyncSession, ids: Sequence[int]) -> list[OpinionForm]:
    """The forms of ``ids`` with their references, in that order."""
    if not ids:
        return []
    rows = (await session.scalars(_with_references(select(OpinionForm).where(OpinionForm.id.in_(list(ids)))))).unique()
    by_id = {form.id: form for form in rows}
    return [by_id[i] for i in ids if i in by_id]


async def _search_page(
    session: AsyncSession, *, principal: Principal, filters: FormQuery, limit: int, cursor: str | None,
    sort: str | None, now: datetime,
) -> tuple[list[OpinionForm], str | None]:
    """A page of the forms found by ``q`` (services/search.py). By relevance: the newest ``search.WINDOW``
    matches ranked, the page's ``r`` cursor an offset into that ranking (bounded by the newest match when
    the first page was read, so new forms do not shift it); past them, older matches newest first with the
    list's own ``f`` cursor. Newest first: ``f`` cursors throughout."""
    search = search_service.parse(filters.q or "")
    base = await filtered_query(session, principal=principal, filters=filters, now=now, with_references=False,
                                text_search=False)
    prefix, numbers = _decode(cursor) if cursor else ("", [])
    by_relevance = sort != "newest" and search.indexed
    if prefix == "r" and not by_relevance:
        raise Invalid("分页游标无效。", code="invalid_cursor")
    if by_relevance and prefix != "f":
        ceiling, offset = numbers if prefix == "r" else (None, 0)
        found = await search_service.newest(session, base, search, n=search_service.WINDOW + 1,
                                            before=ceiling + 1 if ceiling else None)
        window = found[:search_service.WINDOW]
        order = await search_service.ranked(session, search, window)
        page = order[offset:offset + limit]
        if offset + limit < len(order):
            next_cursor: str | None = encode_ranked_cursor(ceiling or window[0], offset + limit)
        elif len(found) > len(window):  # older matches follow, newest first
            next_cursor = encode_cursor(window[-1])
        else:
            next_cursor = None
        return await _in_order(session, page), next_cursor
    found = await search_service.newest(session, base, search, n=limit + 1, before=numbers[0] if numbers else None)
    next_cursor = encode_cursor(found[limit - 1]) if len(found) > limit else None
    return await _in_order(session, found[:limit]), next_cursor


# The office's desk table (issue 17.2): each column it sorts by. "supervision" sorts by the deadline the
# ladder is read from; the references sort by their names.
SORTS = ("number", "received", "workroom", "category", "content", "status", "unit", "due", "supervision")
# The desk counts its forms up to this many, and says "more" beyond (issue 18.5): counting a list of
# millions exactly would cost the page more than everything else on it, and 400 pages of 25 are more than
# anyone turns; the office narrows the filters instead.
TABLE_COUNT_LIMIT = 10_000
_NEVER_NULL_SORTS = frozenset({"number", "received", "content", "status"})


def indexed_sort(sort: str, filters: FormQuery) -> bool:
    """Whether an index serves ``sort`` over ``filters``' forms, however many: received time and state
    always (``(status, submitted_at, id)``, ``(status, id)``); the number unless the list is of some states
    only (the forms of one state cluster in time, so the number's index would be walked past millions of
    others first: 9.6 s for the triage queue by number at 10 M); the deadline when the list holds assigned
    forms only (the open-deadline index)."""
    some_states = (bool(filters.status) or filters.overdue is True or filters.extension_requested is True
                   or filters.supervision is not None)
    if sort in ("received", "status"):
        return True
    if sort == "number":
        return not some_states
    only_assigned = (filters.overdue is True or filters.extension_requested is True
                     or filters.supervision in ("warning", "overdue", "escalated")
                     or [str(s) for s in filters.status] == [FormStatus.assigned])
    return sort in ("due", "supervision") and only_assigned


# A search (``q``) is counted up to this many forms, and sorted among the newest this many: a word found in
# 100,000 forms costs a page what 500 do (services/search.py); more words narrow it.
SEARCH_COUNT_LIMIT = 500


@dataclass(frozen=True)
class TablePage:
    rows: list[OpinionForm]
    total: int  # counted up to ``limit`` + 1: more than the limit means "more"
    sort: str  # the order the rows are in: the one asked for, or "received" (see table_page)
    limit: int  # how far it was counted: TABLE_COUNT_LIMIT, or SEARCH_COUNT_LIMIT with q


def _sorted(query: Select[Any], sort: str, descending: bool) -> Select[Any]:
    """``query`` ordered by the desk's column ``sort``, then by id."""
    workroom, category, unit = aliased(Workroom), aliased(Category), aliased(HandlingUnit)
    column: Any
    if sort == "workroom":
        query, column = query.outerjoin(workroom, OpinionForm.workroom_id == workroom.id), workroom.name
    elif sort == "category":
        query, column = query.outerjoin(category, OpinionForm.category_id == category.id), category.name
    elif sort == "unit":
        query, column = query.outerjoin(unit, OpinionForm.unit_id == unit.id), unit.name
    else:
        column = {"number": OpinionForm.tracking_no, "content": OpinionForm.content, "status": OpinionForm.status,
                  "due": OpinionForm.due_at, "supervision": OpinionForm.due_at}.get(sort, OpinionForm.submitted_at)
    ordered = column.desc() if descending else column.asc()
    if sort not in _NEVER_NULL_SORTS:
        ordered = ordered.nulls_last()
    return query.order_by(ordered, OpinionForm.id.desc() if descending else OpinionForm.id.asc())


async def table_page(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: FormQuery,
    sort: str = "received",
    descending: bool = True,
    page: int = 1,
    per_page: int = 50,
    now: datetime | None = None,
) -> TablePage:
    """One numbered page of the forms ``filters`` select, sorted by a column of the desk table, and how many
    there are, counted up to ``TABLE_COUNT_LIMIT + 1``. Numbered pages (an offset) rather than a cursor: the
    office jumps to a page and sorts by any column. The columns that are never NULL sort without NULLS
    LAST, so an index in that order serves the page (received time: the ``(submitted_at, id)`` index)
    instead of a sort of every matching form. Over more forms than the limit, an order no index serves
    (a name, the content, the deadline of a list not only of assigned forms) would sort millions for one
    page: such a list is sorted by received time instead, and ``sort`` says so."""
    now = now or utcnow()
    per_page = max(1, min(per_page, MAX_PAGE))
    if filters.q:
        return await _search_table_page(session, principal=principal, filters=filters, sort=sort,
                                        descending=descending, page=page, per_page=per_page, now=now)
    sort = "received" if sort == "relevance" else sort
    total = await count_forms(session, principal=principal, filters=filters, now=now, at_most=TABLE_COUNT_LIMIT)
    if total > TABLE_COUNT_LIMIT and not indexed_sort(sort, filters):
        sort = "received"
    query = await filtered_query(session, principal=principal, filters=filters, now=now)
    rows = await session.scalars(_sorted(query, sort, descending).offset((max(page, 1) - 1) * per_page).limit(per_page))
    return TablePage(list(rows.unique()), total, sort, TABLE_COUNT_LIMIT)


async def _search_table_page(
    session: AsyncSession, *, principal: Principal, filters: FormQuery, sort: str, descending: bool, page: int,
    per_page: int, now: datetime,
) -> TablePage:
    """The desk's page of a search: the newest ``SEARCH_COUNT_LIMIT`` (+ 1, to know there are more) matches
    found once (services/search.py), then ordered by relevance, or by any column among themselves."""
    search = search_service.parse(filters.q or "")
    base = await filtered_query(session, principal=principal, filters=filters, now=now, with_references=False,
                                text_search=False)
    found = await search_service.newest(session, base, search, n=SEARCH_COUNT_LIMIT + 1)
    ids = found[:SEARCH_COUNT_LIMIT]
    offset = (max(page, 1) - 1) * per_page
    if sort == "relevance":
        order = await search_service.ranked(session, search, ids)
        rows = await _in_order(session, order[offset:offset + per_page])
    elif ids:
        query = _with_references(select(OpinionForm).where(OpinionForm.id.in_(ids)))
        rows = list((await session.scalars(_sorted(query, sort, descending).offset(offset).limit(per_page))).unique())
    else:
        rows = []
    return TablePage(rows, len(found), sort, SEARCH_COUNT_LIMIT)


async def unit_name(session: AsyncSession, unit_id: int | None) -> str | None:
    if unit_id is None:
        return None
    return await session.scalar(select(HandlingUnit.name).where(HandlingUnit.id == unit_id))


async def count_all(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)
