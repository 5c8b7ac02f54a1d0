"""The demo town: 洛社镇's 11 workrooms, 30 representatives, units, service point sessions, 107 forms of
which 92 are answered or closed, and a month of duty rosters around today with their check-ins, all
entered through the same services as real work (so every counter is what a recount says), backdated."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models import (
    HandlingUnit,
    OpinionForm,
    Representative,
    Role,
    ServicePoint,
    User,
    Workroom,
    utcnow,
)
from app.services import activities as activity_service
from app.services import auth as auth_service
from app.services import demo_data as data
from app.services import forms as form_service
from app.services import paper_forms as paper_service
from app.services import rosters
from app.services import workflow
from app.services.auth import ANONYMOUS, Principal

# (username, password, role): printed at start-up in demo mode, and nowhere else.
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("admin", "minyi-admin", Role.admin),
    ("office", "minyi-office", Role.coordinator),
    ("chengjian", "minyi-handler", Role.handler),
    ("daibiao", "minyi-daibiao", Role.representative),
)


async def is_empty(session: AsyncSession) -> bool:
    workrooms = await session.scalar(select(func.count()).select_from(Workroom))
    forms = await session.scalar(select(func.count()).select_from(OpinionForm))
    return not workrooms and not forms


async def load(session: AsyncSession, *, settings: Settings, now: datetime | None = None, force: bool = False) -> bool:
    """Load the demo town; False (and nothing written) when the database already has data."""
    if not force and not await is_empty(session):
        return False
    now = now or utcnow()
    tz = settings.tz
    today = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)

    workrooms: dict[str, Workroom] = {}
    for w in data.WORKROOMS:
        workrooms[w.code] = Workroom(code=w.code, name=w.name, address=w.address, area=w.area,
                                     latitude=w.latitude, longitude=w.longitude, created_at=now)
        session.add(workrooms[w.code])
    representatives: list[Representative] = []
    for r in data.REPRESENTATIVES:
        rep = Representative(name=r.name, level=r.level, phone=r.phone, created_at=now)
        rep.workrooms = [workrooms[c] for c in r.workroom_codes]
        representatives.append(rep)
        session.add(rep)
    units = [HandlingUnit(name=u.name, created_at=now) for u in data.UNITS]
    session.add_all(units)
    service_points: list[ServicePoint] = []
    for p in data.SERVICE_POINTS:
        starts_at = today + timedelta(days=p.day_offset, hours=p.start_hour)
        point = ServicePoint(workroom=workrooms[p.workroom_code], title=p.title, place_type=p.place_type,
                             location=p.location, starts_at=starts_at, ends_at=starts_at + timedelta(hours=p.hours),
                             created_at=now)
        point.representatives = [representatives[i] for i in p.representative_indexes]
        service_points.append(point)
        session.add(point)
    await session.flush()

    users: dict[str, User] = {}
    for username, password, role in DEMO_USERS:
        users[role] = await auth_service.create_user(
            session, username=username, password=password, role=role,
            unit_id=units[0].id if role == Role.handler else None,
            representative_id=representatives[0].id if role == Role.representative else None,
        )
    office = Principal(users[Role.coordinator])
    handler = Principal(users[Role.handler])
    daibiao = Principal(users[Role.representative])
    daibiao_workrooms = {w.code for w in representatives[0].workrooms}

    # Oldest first, so tracking numbers rise with time as they would have.
    for index, spec in sorted(enumerate(data.FORMS), key=lambda item: (-item[1].days_ago, item[0])):
        submitted_at = today - timedelta(days=spec.days_ago, hours=-(9 + index % 8), minutes=-(index * 7 % 60))
        submitted_at = min(submitted_at, now - timedelta(hours=6))
        point = service_points[spec.service_point_index] if spec.service_point_index is not None else None
        workroom_code = None if point else spec.workroom_code
        if spec.channel in ("workroom", "service_point") and (
            (point and point.workroom.code in daibiao_workrooms) or workroom_code in daibiao_workrooms
        ):
            enterer = daibiao
        elif spec.channel in ("phone", "other"):
            enterer = office
        else:
            enterer = ANONYMOUS
        form, _code = await form_service.submit(
            session, principal=enterer, settings=settings, now=submitted_at,
            data=form_service.Submission(
                content=spec.content, category=spec.category, channel=spec.channel, workroom_code=workroom_code,
                service_point_id=point.id if point else None, submitter_name=spec.submitter_name,
                submitter_phone=spec.submitter_phone, public=spec.public,
                location=spec.place[0] if spec.place else None,
                latitude=spec.place[1] if spec.place else None, longitude=spec.place[2] if spec.place else None,
            ),
        )
        # Each later step a little after the one before, never in the future.
        step = min(timedelta(days=2), (now - submitted_at) / 5)
        at = submitted_at + step
        if spec.outcome == "declined":
            await workflow.decline(session, principal=office, form_id=form.id, reason=spec.decline_reason or "", now=at)
            continue
        if spec.outcome == "submitted":
            continue
        unit = units[spec.unit_index or 0]
        answered = spec.outcome in ("answered", "closed")
        if answered and spec.channel == "service_point" and index % 4 == 0:
            # Settled at the stall: 当场答复, no unit involved.
            await workflow.answer_on_spot(session, principal=office, form_id=form.id, reply_text=spec.reply or "",
                                          now=at)
        else:
            if index % 9 == 0 and unit.id != units[0].id:
                # First sent to 镇城建办 by mistake; it returns the form (退回) and the office reassigns it.
                await workflow.assign(session, principal=office, form_id=form.id, unit_id=units[0].id,
                                      instructions=spec.instructions, due_at=None, now=at)
                at += step / 4
                await workflow.return_to_office(session, principal=handler, form_id=form.id,
                                                reason="该事项不属于本单位职责，请改派相关单位。", now=at)
                at += step / 4
            # Old forms still open were given a short deadline, so the office sees overdue and escalated cases.
            due_at = at + timedelta(days=1) if spec.outcome == "assigned" and spec.days_ago >= 6 else None
            await workflow.assign(session, principal=office, form_id=form.id, unit_id=unit.id,
                                  instructions=spec.instructions, due_at=due_at, now=at)
            if spec.outcome == "assigned":
                continue
            if unit.id == units[0].id and index % 5 == 0:
                # 延期: the unit asks for more time and the office approves.
                await workflow.request_extension(session, principal=handler, form_id=form.id,
                                                 due_at=at + timedelta(days=40), reason="需协调多个部门现场踏勘。",
                                                 now=at + step / 3)
                await workflow.decide_extension(session, principal=office, form_id=form.id, approve=True,
                                                note="同意延期。", now=at + step / 2)
            replier = handler if unit.id == units[0].id else office
            await workflow.reply(session, principal=replier, form_id=form.id, reply_text=spec.reply or "",
                                 internal_note=None, now=at + step)
        if spec.outcome == "closed":
            await workflow.close(session, principal=office, form_id=form.id, satisfaction=spec.satisfaction,
                                 note="电话回访完成。", now=at + 2 * step)
    await paper_service.demo(session, principal=office, service_points=service_points, now=now)
    await workflow.supervise(session, now=now)
    await _rosters(session, workrooms=list(workrooms.values()), representatives=representatives, today=today,
                   now=now, office=users[Role.coordinator])
    await activity_service.load_demo(session, workrooms=workrooms, representatives=representatives,
                                     service_points=service_points, office=users[Role.coordinator], today=today)
    await session.flush()
    return True


# Each workroom receives visitors on two weekdays, mornings or afternoons (as the town's notice board says).
SESSION_HOURS = ((time(9), time(11, 30)), (time(14, 30), time(17)))


async def _rosters(
    session: AsyncSession, *, workrooms: list[Workroom], representatives: list[Representative], today: datetime,
    now: datetime, office: User,
) -> None:
    """A month of duty rosters around today, the members of each workroom taking turns (a representative
    of two workrooms is never booked twice a day), and check-ins for the shifts already over: most kept,
    a few missed, as attendance reports show."""
    busy: set[tuple[date, int]] = set()
    turns = dict.fromkeys(range(len(workrooms)), 0)
    specs: list[rosters.ShiftSpec] = []
    for offset in range(-15, 16):
        day = (today + timedelta(days=offset)).date()
        if rosters.is_public_holiday(day):
            continue
        for index, workroom in enumerate(workrooms):
            if day.isoweekday() not in {index % 5 + 1, (index + 2) % 5 + 1}:
                continue
            members = [r for r in representatives if workroom in r.workrooms]
            for attempt in range(len(members)):
                member = members[(turns[index] + attempt) % len(members)]
                if (day, member.id) not in busy:
                    busy.add((day, member.id))
                    turns[index] += attempt + 1
                    start, end = SESSION_HOURS[index % 2]
                    specs.append((workroom.id, member.id, datetime.combine(day, start, tzinfo=today.tzinfo),
                                  datetime.combine(day, end, tzinfo=today.tzinfo)))
                    break
    shifts = await rosters.add_shifts(session, shifts=specs, actor=office, now=now)
    for number, shift in enumerate(sorted(shifts, key=lambda s: (s.starts_at, s.workroom_id))):
        if shift.ends_at <= now and number % 7 != 3:
            shift.checked_in_at = shift.starts_at - timedelta(minutes=10 - number % 15)
