"""Paper forms (纸质意见征询表, issue 20.1): numbered blank forms printed in batches, typed in at a desk when
they come back, and reconciled.

- **Serials.** ``P2026-00017``: ``P``, the year, and a number counted town-wide per year from
  ``paper_sequence`` with the same locked upsert as tracking numbers (``forms.take_tracking_numbers``), so
  two batches never overlap, on SQLite and on PostgreSQL alike, however many are made at once. A year's
  serials all have five digits (99,999 a year at most), so text order is number order and a batch's entries
  are ``opinion_form.paper_serial BETWEEN first_serial AND last_serial``, read on the serial's unique index.
- **Entry.** ``enter`` writes the form through ``forms.submit`` (the counters, search index, change feed and
  SMS outbox every form gets), in the request's transaction, then stamps its serial. The batch's row is
  locked first (PostgreSQL; SQLite's write transactions are serial anyway), so two desks typing the same
  serial queue and the second is told the first one's tracking number (409 ``paper_serial_taken``); the
  unique index on ``paper_serial`` is the last word either way. A voided serial is never entered, an
  entered one never voided.
- **Reconciliation (对账).** Per batch, session and workroom: handed out (printed), entered, voided, and
  missing (neither), the missing listed as ranges. It reads the serials of the batches asked about, which
  are bounded by the sheets the office printed (a town prints hundreds a month, not millions).
- **Who.** The office (admin, coordinator) creates batches and voids serials; they and the representatives
  of the batch's workroom read batches, print them and type them in; anyone else is refused (403).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import anyio
from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.config import TZ, Settings
from app.errors import Conflict, Invalid, NotFound, PermissionDenied
from app.models import (
    Channel,
    OpinionForm,
    PaperBatch,
    PaperSequence,
    PaperVoid,
    Role,
    ServicePoint,
    User,
    Workroom,
    utcnow,
)
from app.schemas.forms import FormCreate
from app.schemas.paper import MAX_PER_BATCH
from app.services import documents
from app.services import forms as form_service
from app.services import photos as photo_service
from app.services import reference
from app.services.auth import Principal
from app.services.pagination import paginate

PREFIX = "P"
DIGITS = 5
MAX_PER_YEAR = 10**DIGITS - 1
PAGE_SIZES = ("A4", "A5")
# The entry page a sheet's QR code opens (app/web/paper.py), with the serial filled in.
ENTRY_PATH = "/office/paper/entry"
_SERIAL = re.compile(r"P?(\d{4})-?(\d{1,5})")
SERIAL_HINT = "纸质表编号应为 P2026-00001 这样的编号。"


# --- serials -----------------------------------------------------------------------------------------


def serial_of(year: int, number: int) -> str:
    return f"{PREFIX}{year}-{number:0{DIGITS}d}"


def parse_serial(text: str) -> tuple[int, int]:
    """(year, number) of a typed serial: full-width characters, spaces, lower case, and a missing ``P``,
    dash or leading zeros are forgiven (``p2026-17`` is ``P2026-00017``). Anything else: 422
    ``invalid_paper_serial``."""
    cleaned = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or "")).upper()
    cleaned = cleaned.replace("—", "-").replace("－", "-")
    if not cleaned:
        raise Invalid(f"请填写纸质表编号。{SERIAL_HINT}", code="invalid_paper_serial")
    match = _SERIAL.fullmatch(cleaned[:32])
    if match is None or not 2000 <= int(match.group(1)) <= 2100 or int(match.group(2)) < 1:
        raise Invalid(f"“{(text or '').strip()[:32]}”不是有效的编号。{SERIAL_HINT}", code="invalid_paper_serial")
    return int(match.group(1)), int(match.group(2))


def normalise(text: str) -> str:
    return serial_of(*parse_serial(text))


def entry_path(serial: str) -> str:
    return f"{ENTRY_PATH}?serial={serial}"


@dataclass(frozen=True)
class SerialRange:
    first: str
    last: str
    count: int

    @property
    def label(self) -> str:
        return self.first if self.count == 1 else f"{self.first} 至 {self.last}"


def ranges(year: int, numbers: Sequence[int]) -> list[SerialRange]:
    """Sorted numbers as runs of consecutive ones: 3, 4, 5, 9 → P…-00003 至 P…-00005, P…-00009."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return [SerialRange(serial_of(year, first), serial_of(year, last), last - first + 1) for first, last in runs]


# --- who may -----------------------------------------------------------------------------------------


async def workroom_scope(session: AsyncSession, principal: Principal) -> list[int] | None:
    """The workrooms whose papers ``principal`` handles: None for the office (all of them), a
    representative's own workrooms; 401/403 for everyone else (handling units, residents, API clients)."""
    user = principal.require_staff()
    if user.role in (Role.admin, Role.coordinator):
        return None
    if user.role == Role.representative:
        if user.representative_id is None:
            return []
        return await reference.workroom_ids_of_representative(session, user.representative_id)
    raise PermissionDenied("只有办公室工作人员和本工作室的党代表可以处理纸质征询表。", code="forbidden")


def _require_office(principal: Principal) -> User:
    user = principal.require_staff()
    if user.role not in (Role.admin, Role.coordinator):
        raise PermissionDenied("只有办公室工作人员可以打印和作废纸质征询表。", code="forbidden")
    return user


def _check_scope(scope: list[int] | None, batch: PaperBatch) -> None:
    if scope is not None and batch.workroom_id not in scope:
        raise PermissionDenied("这批纸质征询表属于其他工作室。", code="paper_batch_forbidden")


# --- batches -----------------------------------------------------------------------------------------


def _with_places(query: Select[Any]) -> Select[Any]:
    return query.options(selectinload(PaperBatch.workroom), selectinload(PaperBatch.service_point),
                         selectinload(PaperBatch.created_by), selectinload(PaperBatch.printed_by))


async def take_numbers(session: AsyncSession, *, year: int, count: int) -> int:
    """Reserve ``count`` consecutive numbers of ``year``; returns the first. The sequence row stays locked
    until commit, so concurrent batches queue for it (and a rolled-back one gives its numbers back)."""
    insert_ = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = PaperSequence.__table__
    statement = (
        insert_(table).values(year=year, last_value=count)
        .on_conflict_do_update(index_elements=["year"], set_={"last_value": table.c.last_value + count})
        .returning(table.c.last_value)
    )
    last = int((await session.execute(statement)).scalar_one())
    if last > MAX_PER_YEAR:
        raise Invalid(f"{year} 年的纸质表编号已用完（每年最多 {MAX_PER_YEAR} 份）。", code="paper_serials_exhausted")
    return last - count + 1


async def create_batch(
    session: AsyncSession,
    *,
    principal: Principal,
    workroom_code: str | None,
    service_point_id: int | None = None,
    count: int,
    page_size: str = "A4",
    note: str = "",
    now: datetime | None = None,
) -> PaperBatch:
    """A batch of ``count`` new serials for a workroom or one of its sessions (the office only)."""
    user = _require_office(principal)
    if not 1 <= count <= MAX_PER_BATCH:
        raise Invalid(f"每批张数应为 1 至 {MAX_PER_BATCH}；更多请分几批打印。", code="invalid_count")
    if page_size not in PAGE_SIZES:
        raise Invalid("纸张大小只能是 A4 或 A5。", code="invalid_page_size")
    point = None
    if service_point_id is not None:
        point = await session.get(ServicePoint, service_point_id)
        if point is None:
            raise Invalid(f"流动服务点 {service_point_id} 不存在。", code="unknown_service_point")
    if workroom_code:
        workroom = await session.scalar(select(Workroom).where(Workroom.code == workroom_code))
        if workroom is None or not workroom.active:
            raise Invalid(f"工作室 {workroom_code} 不存在或已停用。", code="unknown_workroom")
        if point is not None and point.workroom_id != workroom.id:
            raise Invalid("流动服务点不属于所选工作室。", code="workroom_mismatch")
    elif point is not None:
        workroom = await session.get(Workroom, point.workroom_id)
    else:
        raise Invalid("请选择工作室或流动服务点。", code="workroom_required")
    now = now or utcnow()
    year = now.astimezone(TZ).year
    first = await take_numbers(session, year=year, count=count)
    batch = PaperBatch(
        workroom_id=workroom.id, service_point_id=point.id if point else None, year=year, first_no=first,
        last_no=first + count - 1, first_serial=serial_of(year, first), last_serial=serial_of(year, first + count - 1),
        page_size=page_size, note=note.strip(), created_at=now, created_by_user_id=user.id,
    )
    session.add(batch)
    await session.flush()
    return await _load(session, batch.id)


async def _load(session: AsyncSession, batch_id: int) -> PaperBatch:
    batch = await session.scalar(_with_places(select(PaperBatch)).where(PaperBatch.id == batch_id)
                                 .execution_options(populate_existing=True))
    if batch is None:
        raise NotFound(f"纸质征询表批次 {batch_id} 不存在。", code="paper_batch_not_found")
    return batch


async def get_batch(session: AsyncSession, *, principal: Principal, batch_id: int) -> PaperBatch:
    scope = await workroom_scope(session, principal)
    batch = await _load(session, batch_id)
    _check_scope(scope, batch)
    return batch


async def list_batches(
    session: AsyncSession,
    *,
    principal: Principal,
    workroom_code: str | None = None,
    service_point_id: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[Sequence[PaperBatch], str | None]:
    """The batches ``principal`` may see, newest first."""
    scope = await workroom_scope(session, principal)
    query = _with_places(select(PaperBatch)).where(*await _filters(session, scope, workroom_code, service_point_id))
    return await paginate(session, query.order_by(PaperBatch.id.desc()), limit=limit, cursor=cursor)


async def _filters(session: AsyncSession, scope: list[int] | None, workroom_code: str | None,
                   service_point_id: int | None) -> list[Any]:
    filters: list[Any] = []
    if scope is not None:
        filters.append(PaperBatch.workroom_id.in_(scope))
    if workroom_code:
        workroom_id = await session.scalar(select(Workroom.id).where(Workroom.code == workroom_code))
        if workroom_id is None:
            raise NotFound(f"工作室 {workroom_code} 不存在。", code="workroom_not_found")
        filters.append(PaperBatch.workroom_id == workroom_id)
    if service_point_id is not None:
        filters.append(PaperBatch.service_point_id == service_point_id)
    return filters


async def batch_of_serial(session: AsyncSession, serial: str) -> PaperBatch | None:
    """The batch a (normalised) serial was printed in, or None."""
    return await session.scalar(
        select(PaperBatch).where(PaperBatch.first_serial <= serial, PaperBatch.last_serial >= serial)
    )


def label(batch: PaperBatch) -> str:
    """Where a batch's sheets were handed out: the session's title and day, or the workroom."""
    if batch.service_point is not None:
        return f"{batch.service_point.title}（{batch.service_point.starts_at.astimezone(TZ):%Y-%m-%d}）"
    return batch.workroom.name


# --- reconciliation ----------------------------------------------------------------------------------


@dataclass
class Entry:
    serial: str
    form_id: int
    tracking_no: str


@dataclass
class Tally:
    handed_out: int = 0
    entered: int = 0
    voided: int = 0
    missing_ranges: list[SerialRange] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.handed_out - self.entered - self.voided

    def add(self, other: Tally) -> None:
        self.handed_out += other.handed_out
        self.entered += other.entered
        self.voided += other.voided
        self.missing_ranges += other.missing_ranges

    def as_dict(self) -> dict[str, Any]:
        return {"handed_out": self.handed_out, "entered": self.entered, "voided": self.voided,
                "missing": self.missing,
                "missing_ranges": [{"first": r.first, "last": r.last, "count": r.count} for r in self.missing_ranges]}


@dataclass
class BatchState:
    """One batch reconciled: its tally, the forms typed in from it and its voided serials."""

    batch: PaperBatch
    tally: Tally
    entries: list[Entry]
    voids: list[PaperVoid]
    missing: list[int]  # the numbers neither entered nor voided, in order

    def next_serial(self, after: str | None = None) -> str | None:
        """The next serial to type in: the first missing one after ``after`` (the one just entered), else
        the first missing one; None when every sheet is entered or voided."""
        if not self.missing:
            return None
        try:
            year, number = parse_serial(after) if after else (None, 0)
        except Invalid:  # a garbled ``after`` in a URL: start from the top
            year, number = None, 0
        if year == self.batch.year:
            later = [n for n in self.missing if n > number]
            if later:
                return serial_of(self.batch.year, later[0])
        return serial_of(self.batch.year, self.missing[0])


async def reconcile(session: AsyncSession, batches: Sequence[PaperBatch]) -> dict[int, BatchState]:
    """Each batch's state, in two statements however many batches."""
    if not batches:
        return {}
    ids = [b.id for b in batches]
    entered = await session.execute(
        select(PaperBatch.id, OpinionForm.paper_serial, OpinionForm.id, OpinionForm.tracking_no)
        .join(OpinionForm, OpinionForm.paper_serial.between(PaperBatch.first_serial, PaperBatch.last_serial))
        .where(PaperBatch.id.in_(ids))
        .order_by(OpinionForm.paper_serial)
    )
    entries: dict[int, list[Entry]] = defaultdict(list)
    for batch_id, serial, form_id, tracking_no in entered:
        entries[batch_id].append(Entry(serial, form_id, tracking_no))
    voids: dict[int, list[PaperVoid]] = defaultdict(list)
    for void in await session.scalars(select(PaperVoid).options(selectinload(PaperVoid.voided_by))
                                      .where(PaperVoid.batch_id.in_(ids)).order_by(PaperVoid.serial)
                                      .execution_options(populate_existing=True)):
        voids[void.batch_id].append(void)
    states: dict[int, BatchState] = {}
    for batch in batches:
        done = {int(e.serial.rsplit("-", 1)[1]) for e in entries[batch.id]}
        done |= {int(v.serial.rsplit("-", 1)[1]) for v in voids[batch.id]}
        missing = [n for n in range(batch.first_no, batch.last_no + 1) if n not in done]
        tally = Tally(handed_out=batch.last_no - batch.first_no + 1, entered=len(entries[batch.id]),
                      voided=len(voids[batch.id]), missing_ranges=ranges(batch.year, missing))
        states[batch.id] = BatchState(batch, tally, entries[batch.id], voids[batch.id], missing)
    return states


async def batch_state(session: AsyncSession, *, principal: Principal, batch_id: int) -> BatchState:
    batch = await get_batch(session, principal=principal, batch_id=batch_id)
    return (await reconcile(session, [batch]))[batch.id]


@dataclass
class Summary:
    totals: Tally
    workrooms: list[tuple[Workroom, int, Tally]]  # (workroom, batches, tally), by workroom code
    sessions: list[tuple[ServicePoint, Workroom, int, Tally]]  # by the session's start, newest first


async def summary(
    session: AsyncSession, *, principal: Principal, workroom_code: str | None = None,
    service_point_id: int | None = None,
) -> Summary:
    """Reconciliation of every batch ``principal`` may see (narrowed to a workroom or a session): in
    total, per workroom (its own batches and its sessions') and per session."""
    scope = await workroom_scope(session, principal)
    filters = await _filters(session, scope, workroom_code, service_point_id)
    batches = list(await session.scalars(_with_places(select(PaperBatch)).where(*filters).order_by(PaperBatch.id)))
    states = await reconcile(session, batches)
    totals = Tally()
    by_workroom: dict[int, tuple[Workroom, list[int], Tally]] = {}
    by_session: dict[int, tuple[ServicePoint, Workroom, list[int], Tally]] = {}
    for batch in batches:
        tally = states[batch.id].tally
        totals.add(tally)
        by_workroom.setdefault(batch.workroom_id, (batch.workroom, [], Tally()))
        by_workroom[batch.workroom_id][1].append(batch.id)
        by_workroom[batch.workroom_id][2].add(tally)
        if batch.service_point is not None:
            by_session.setdefault(batch.service_point.id, (batch.service_point, batch.workroom, [], Tally()))
            by_session[batch.service_point.id][2].append(batch.id)
            by_session[batch.service_point.id][3].add(tally)
    return Summary(
        totals=totals,
        workrooms=[(w, len(ids), t) for w, ids, t in sorted(by_workroom.values(), key=lambda row: row[0].code)],
        sessions=[(p, w, len(ids), t) for p, w, ids, t in
                  sorted(by_session.values(), key=lambda row: (row[0].starts_at, row[0].id), reverse=True)],
    )


# --- voiding -----------------------------------------------------------------------------------------


async def _lock(session: AsyncSession, batch_id: int) -> None:
    """Hold the batch's row until commit: entries and voids of one batch queue (PostgreSQL)."""
    await session.scalar(select(PaperBatch.id).where(PaperBatch.id == batch_id).with_for_update())


async def void_serials(
    session: AsyncSession, *, principal: Principal, batch_id: int, serials: Sequence[str], reason: str,
    now: datetime | None = None,
) -> list[PaperVoid]:
    """Void (作废) serials of the batch: all or none. 422 for a serial of another batch or garbage, 409
    ``paper_serial_entered`` for one already typed in (naming its form), 409 ``paper_serial_voided`` for one
    voided before."""
    user = _require_office(principal)
    batch = await _load(session, batch_id)
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise Invalid("请填写作废原因（不超过 200 字）。", code="invalid_reason")
    wanted: list[str] = []
    for text in serials:
        serial = normalise(text)
        if not batch.first_serial <= serial <= batch.last_serial:
            raise Invalid(f"{serial} 不在这一批（{batch.first_serial} 至 {batch.last_serial}）中。",
                          code="paper_serial_not_in_batch")
        if serial not in wanted:
            wanted.append(serial)
    await _lock(session, batch.id)
    taken = (await session.execute(
        select(OpinionForm.paper_serial, OpinionForm.tracking_no).where(OpinionForm.paper_serial.in_(wanted))
        .order_by(OpinionForm.paper_serial)
    )).first()
    if taken is not None:
        raise Conflict(f"{taken[0]} 已录入为意见 {taken[1]}，不能作废。", code="paper_serial_entered",
                       extra={"serial": taken[0], "tracking_no": taken[1]})
    voided = await session.scalar(select(PaperVoid.serial).where(PaperVoid.serial.in_(wanted)).order_by(PaperVoid.serial))
    if voided is not None:
        raise Conflict(f"{voided} 已经作废。", code="paper_serial_voided", extra={"serial": voided})
    now = now or utcnow()
    rows = [PaperVoid(batch_id=batch.id, serial=s, reason=reason, voided_at=now, voided_by_user_id=user.id)
            for s in sorted(wanted)]
    session.add_all(rows)
    await session.flush()
    return rows


# --- entering a returned paper -----------------------------------------------------------------------


@dataclass
class Entered:
    form: form_service.NewForm
    code: str
    batch: PaperBatch
    serial: str
    photos: int
    next_serial: str | None


async def _taken_by(session: AsyncSession, serial: str) -> Conflict | None:
    first = (await session.execute(
        select(OpinionForm.id, OpinionForm.tracking_no).where(OpinionForm.paper_serial == serial)
    )).first()
    if first is None:
        return None
    return Conflict(f"编号 {serial} 的纸质表已经录入过，意见编号 {first.tracking_no}，不能重复录入。",
                    code="paper_serial_taken", extra={"serial": serial, "tracking_no": first.tracking_no,
                                                       "form_id": first.id})


async def check_serial(session: AsyncSession, *, principal: Principal, serial: str,
                       batch_id: int | None = None) -> tuple[str, PaperBatch]:
    """The normalised serial and its batch, when it may be entered now by ``principal``; else the reason:
    422 ``invalid_paper_serial`` / ``paper_serial_unknown`` / ``paper_serial_not_in_batch``, 403 for
    another workroom's papers, 409 ``paper_serial_voided`` / ``paper_serial_taken``."""
    scope = await workroom_scope(session, principal)
    serial = normalise(serial)
    found = await batch_of_serial(session, serial)
    if found is None:
        raise Invalid(f"编号 {serial} 不在任何已打印的批次中，请核对纸上的编号。", code="paper_serial_unknown")
    if batch_id is not None and found.id != batch_id:
        raise Invalid(f"编号 {serial} 不属于这一批。", code="paper_serial_not_in_batch")
    batch = await _load(session, found.id)
    _check_scope(scope, batch)
    voided = await session.scalar(select(PaperVoid).where(PaperVoid.serial == serial))
    if voided is not None:
        raise Conflict(f"编号 {serial} 的纸质表已作废（{voided.reason}），不能录入。", code="paper_serial_voided",
                       extra={"serial": serial})
    taken = await _taken_by(session, serial)
    if taken is not None:
        raise taken
    return serial, batch


async def enter(
    session: AsyncSession,
    *,
    principal: Principal,
    serial: str,
    fields: dict[str, Any],
    settings: Settings,
    batch_id: int | None = None,
    photos: Sequence[photo_service.PreparedPhoto] = (),
    now: datetime | None = None,
) -> Entered:
    """Type in one returned paper: a form like any other (``forms.submit``), collected where the batch was
    handed out, credited to whoever enters it, with the sheet's ``photos`` (a scan) attached and its serial
    stamped. ``fields``: content, category, submitter_name, submitter_phone, public (checked by the door's
    schema; checked again here as a submission)."""
    serial, batch = await check_serial(session, principal=principal, serial=serial, batch_id=batch_id)
    await _lock(session, batch.id)
    taken = await _taken_by(session, serial)  # typed in at another desk while this one waited for the lock
    if taken is not None:
        raise taken
    where: dict[str, Any] = (
        {"service_point_id": batch.service_point_id, "channel": Channel.service_point}
        if batch.service_point_id is not None
        else {"workroom_code": batch.workroom.code, "channel": Channel.workroom}
    )
    data = FormCreate.model_validate({**fields, **where})
    form, code = await form_service.submit(
        session, principal=principal, data=form_service.Submission(**data.model_dump()), settings=settings, now=now,
    )
    try:
        async with session.begin_nested():
            await session.execute(update(OpinionForm).where(OpinionForm.id == form.id).values(paper_serial=serial))
    except IntegrityError:  # the unique index: entered meanwhile by a path that did not take the lock
        raise await _taken_by(session, serial) or Conflict(f"编号 {serial} 已经录入过。", code="paper_serial_taken")
    form.paper_serial = serial
    stored = await photo_service.attach(session, form_id=form.id, photos=photos, settings=settings,
                                        uploaded_by=principal.label) if photos else []
    state = (await reconcile(session, [batch]))[batch.id]
    return Entered(form, code, batch, serial, len(stored), state.next_serial(after=serial))


# --- the printed sheets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    """What every sheet of a batch shares, besides its serial."""

    title: str
    place: tuple[str, ...]  # the workroom, and the session when there is one
    categories: tuple[str, ...]
    page_size: str
    entry_url: Callable[[str], str]  # a serial's absolute entry URL (its QR code)


@dataclass(frozen=True)
class Printing:
    """A batch ready to print: its file name, what every sheet shares, and the serials."""

    filename: str
    sheet: Sheet
    serials: list[str]


async def print_batch(
    session: AsyncSession, *, principal: Principal, batch_id: int, page_size: str | None, base_url: str,
    settings: Settings, now: datetime | None = None,
) -> Printing:
    """What the batch's PDF holds (one sheet per serial, ``page_size`` or the batch's own), recording who
    printed it and when. The door commits, then ``render``s: a PDF of hundreds of pages takes seconds, and on
    SQLite no transaction may hold the database meanwhile."""
    batch = await get_batch(session, principal=principal, batch_id=batch_id)
    size = page_size or batch.page_size
    if size not in PAGE_SIZES:
        raise Invalid("纸张大小只能是 A4 或 A5。", code="invalid_page_size")
    documents.cjk_font(settings.cjk_font)  # 503 cjk_font_missing before anything is recorded
    categories, _ = await reference.list_categories(session, active_only=True)
    place = (batch.workroom.name, label(batch)) if batch.service_point is not None else (batch.workroom.name,)
    sheet = Sheet(title="意见征询表", place=place, categories=tuple(c.name for c in categories), page_size=size,
                  entry_url=lambda serial: base_url.rstrip("/") + entry_path(serial))
    batch.printed_at = now or utcnow()
    batch.printed_by_user_id = principal.user.id if principal.user else None
    await session.flush()
    return Printing(f"纸质意见征询表_{batch.first_serial}-{batch.last_serial}_{size}.pdf", sheet,
                    [serial_of(batch.year, n) for n in range(batch.first_no, batch.last_no + 1)])


async def render(printing: Printing, *, settings: Settings) -> bytes:
    """The PDF, written off the event loop."""
    return await anyio.to_thread.run_sync(
        partial(render_pdf, printing.sheet, printing.serials, configured_font=settings.cjk_font))


def _qr(pdf: Any, text: str, x: float, y: float, side: float) -> None:
    """``text`` as a QR code drawn in vector (runs of dark modules as rectangles): sharp on any printer."""
    import segno

    # A fixed mask: choosing the best of eight costs more than drawing the page, and any mask reads.
    code = segno.make(text, error="m", mask=2)
    rows = list(code.matrix_iter(border=0))
    module = side / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                pdf.rect(x + start * module, y + r * module, (c - start) * module, module, style="F")
            else:
                c += 1
    pdf.link(x, y, side, side, text)


def _fit(pdf: Any, text: str, width: float) -> str:
    """``text`` cut to ``width`` (with "…"): a long workroom or session name never runs off the sheet."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def render_pdf(sheet: Sheet, serials: Sequence[str], *, configured_font: Any = None) -> bytes:
    """One blank form per serial (blocking: run it off the event loop). Top: the title, where it is handed
    out, the serial, and the QR code of the serial's entry page; then ruled lines for the opinion (as many
    as the page leaves), a box per category, name and phone, consent to publish, and the privacy note."""
    a5 = sheet.page_size == "A5"
    pdf = documents.new_pdf(page_format=sheet.page_size, title=f"{sheet.title} {serials[0]}–{serials[-1]}",
                            configured_font=configured_font)
    pdf.set_auto_page_break(False)
    family = documents.FAMILY
    width = pdf.w - pdf.l_margin - pdf.r_margin
    left, top = pdf.l_margin, 10.0 if a5 else pdf.t_margin
    qr_side = 22.0 if a5 else 28.0
    line_gap = 7.5 if a5 else 9.0
    small, body, big = (7.5, 9.5, 17) if a5 else (8.5, 11, 22)
    text_h = body * 0.5  # a line of body text, in mm
    head_w = width - qr_side - 4
    columns = 3 if a5 else 4
    column = width / columns
    box = 3.2 if a5 else 3.8
    rows = -(-len(sheet.categories) // columns)
    foot = pdf.h - (9 if a5 else 13)  # the footer line; the privacy note sits above it
    # Under the ruled lines: the categories, name and phone, consent to publish, the note, the privacy note.
    below = 5 + (text_h + 2.5) + rows * (box + 3) + 4 + (text_h + 6) + (text_h + 2) + 4 + small
    pdf.set_font(family, "", body)
    categories = [_fit(pdf, name, column - box - 3) for name in sheet.categories]
    place = [_fit(pdf, line, head_w) for line in sheet.place]
    pdf.set_font(family, "", small)
    footer = [_fit(pdf, " · ".join((*sheet.place, f"编号 {serial}")), width) for serial in serials]
    for serial, footer_text in zip(serials, footer, strict=True):
        pdf.add_page()
        # Header: the title and place on the left, the serial and its QR code on the right.
        pdf.set_xy(left, top)
        pdf.set_font(family, "B", big)
        pdf.cell(head_w, big * 0.5, sheet.title)
        pdf.set_xy(left, top + big * 0.5 + 2)
        pdf.set_font(family, "", body)
        for line in place:
            pdf.set_x(left)
            pdf.cell(head_w, text_h, line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_xy(left, pdf.get_y() + 1.5)
        pdf.set_font(family, "B", body + 3)
        pdf.cell(head_w, (body + 3) * 0.5, f"编号：{serial}")
        qr_x = pdf.w - pdf.r_margin - qr_side
        _qr(pdf, sheet.entry_url(serial), qr_x, top, qr_side)
        pdf.set_font(family, "", small - 1.5)
        pdf.set_xy(qr_x - 3, top + qr_side + 0.5)
        pdf.cell(qr_side + 6, 3, "工作人员扫码录入", align="C")
        y = max(pdf.get_y() + 4, top + qr_side + 6)
        pdf.set_draw_color(0, 0, 0)
        pdf.set_line_width(0.3)
        pdf.line(left, y, left + width, y)
        y += 3
        # 意见内容: ruled lines to write on, as many as the page leaves (at least four).
        pdf.set_xy(left, y)
        pdf.set_font(family, "B", body)
        pdf.cell(width, text_h, "意见内容（请写清事情、地点）：")
        y += text_h + 1
        pdf.set_line_width(0.15)
        pdf.set_draw_color(110, 110, 110)
        for _ in range(max(4, int((foot - small - 4 - y - below) // line_gap))):
            y += line_gap
            pdf.line(left, y, left + width, y)
        y += 5
        # 类别: a box per active category, as many to a row as fit.
        pdf.set_draw_color(0, 0, 0)
        pdf.set_xy(left, y)
        pdf.cell(width, text_h, "类别（请在方框内打 √，可不选）：")
        y += text_h + 2.5
        pdf.set_font(family, "", body)
        for index, name in enumerate(categories):
            bx, by = left + index % columns * column, y + index // columns * (box + 3)
            pdf.rect(bx, by, box, box)
            pdf.set_xy(bx + box + 1.5, by - 0.3)
            pdf.cell(column - box - 2, box + 0.6, name)
        y += rows * (box + 3) + 4
        # 姓名, 电话: lines to write on.
        pdf.set_font(family, "B", body)
        half = width / 2
        for offset, caption in ((0, "姓名："), (half, "电话：")):
            pdf.set_xy(left + offset, y)
            pdf.cell(14, text_h, caption)
            pdf.line(left + offset + 13, y + text_h, left + offset + half - 6, y + text_h)
        y += text_h + 6
        # 是否愿意公开
        pdf.set_xy(left, y)
        pdf.cell(30 if a5 else 34, text_h, "是否愿意公开：")
        x = pdf.get_x()
        pdf.set_font(family, "", body)
        for caption in ("愿意", "不愿意"):
            pdf.rect(x, y + 0.6, box, box)
            pdf.set_xy(x + box + 1.5, y)
            pdf.cell(16, text_h, caption)
            x += box + 18
        y += text_h + 2
        pdf.set_font(family, "", small)
        pdf.set_xy(left, y)
        pdf.cell(width, small * 0.48, "选择“愿意”：意见内容和答复可在网上公开，您的姓名和电话始终不公开。")
        # The privacy note, and the serial again at the foot, where a torn-off top still leaves it.
        pdf.set_xy(left, foot - small * 0.96 - 2)
        pdf.multi_cell(width, small * 0.48, "个人信息说明：您留下的姓名和电话只用于办理意见和回访，不公开，"
                                            "不作他用。不留姓名电话也可以提交。")
        pdf.set_xy(left, foot)
        pdf.cell(width, 4, footer_text, align="R")
    return documents.pdf_bytes(pdf)


# --- demo data ---------------------------------------------------------------------------------------


async def demo(session: AsyncSession, *, principal: Principal,
               service_points: Sequence[ServicePoint], now: datetime) -> PaperBatch | None:
    """The demo town's paper forms: sheets printed the day before the busiest session already held, its
    forms typed in from them (the demo's forms of that session, so the town's counts stay as the demo
    tells them), one sheet voided (spoiled in the rain) and four still missing."""
    held = {p.id: p for p in service_points if p.ends_at <= now}
    counts = dict((await session.execute(
        select(OpinionForm.service_point_id, func.count()).where(OpinionForm.service_point_id.in_(held))
        .group_by(OpinionForm.service_point_id))).all())
    if not counts:
        return None
    point = held[max(counts, key=lambda point_id: (counts[point_id], held[point_id].ends_at))]
    forms = list(await session.scalars(
        select(OpinionForm.id).where(OpinionForm.service_point_id == point.id).order_by(OpinionForm.id).limit(20)))
    printed_at = point.starts_at - timedelta(days=1)
    batch = await create_batch(session, principal=principal, workroom_code=None, service_point_id=point.id,
                               count=len(forms) + 5, page_size="A5", note="集市摆摊用", now=printed_at)
    batch.printed_at, batch.printed_by_user_id = printed_at, batch.created_by_user_id
    await session.flush()
    for number, form_id in enumerate(forms, start=batch.first_no):
        await session.execute(update(OpinionForm).where(OpinionForm.id == form_id)
                              .values(paper_serial=serial_of(batch.year, number)))
    await void_serials(session, principal=principal, batch_id=batch.id, reason="下雨淋湿，字迹不清",
                       serials=[serial_of(batch.year, batch.first_no + len(forms))], now=point.ends_at)
    return batch
