"""The register of activities (issue 20.2): what each workroom did, who was there, how many came.

``activity_counts`` is what the statistics, the representatives' records and the briefs count: every
caller counts activities the same way, by the day they were held (local days, inclusive bounds).

Who may do what:
- reading: staff (every role) and API clients holding ``forms:read`` or ``stats:read`` read every activity;
  everyone else (the public, residents, other clients) reads only the activities marked public, and one
  that is not public answers 404 as if it did not exist;
- recording, changing, deleting an activity and its photos: the office (admin, coordinator) for any
  workroom; a representative for the workrooms they belong to (both the activity's workroom and, when it
  is moved, the new one); nobody else (403).

What an activity must be (checked here, whatever door it came through: the API, the office page, an
import): a title of 1–100 characters, a place of at most 200, an account of at most 2,000, attendance
0–100,000, a day inside the window every date input keeps (app/schemas/dates.py), a kind of
``ActivityKind``, an active workroom, representatives who are active (any workroom's: joint activities
happen; one already on the activity may stay after being deactivated), and a service-point session, if
any, of the same workroom. The forms the activity produced are that session's forms.

Photos go through the forms' pipeline (services/photos.py: sniffed, decoded in a worker thread, re-encoded
without metadata, written whole then renamed) and live under ``photo_dir/activities/``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.config import Settings
from app.errors import Invalid, NotFound, PermissionDenied, Unavailable
from app.models import (
    ACTIVITY_KIND_LABELS,
    Activity,
    ActivityKind,
    ActivityPhoto,
    OpinionForm,
    Representative,
    Role,
    Scope,
    ServicePoint,
    User,
    Workroom,
    activity_representative,
    utcnow,
)
from app.schemas import dates
from app.services import forms as form_service
from app.services import photos as photo_service
from app.services import reference as reference_service
from app.services.auth import Principal
from app.services.pagination import paginate

log = logging.getLogger("minyi.activities")

OFFICE = (Role.admin, Role.coordinator)
READ_SCOPES = (Scope.forms_read, Scope.stats_read)
MAX_TITLE = 100
MAX_PLACE = 200
MAX_ACCOUNT = 2000
MAX_ATTENDANCE = 100_000
MAX_REPRESENTATIVES = 50
MAX_PHOTOS = 12  # an activity's photos (a form holds 6)
MAX_FORMS_LISTED = 200
PHOTO_FOLDER = "activities"  # under photo_dir, beside the forms' YYYY/MM/DD folders
FIELDS = ("workroom_code", "kind", "title", "held_on", "place", "attendance", "account", "public",
          "representative_ids", "service_point_id")


def kind_label(kind: str) -> str:
    return ACTIVITY_KIND_LABELS.get(kind, kind)


async def activity_counts(
    session: AsyncSession,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    workroom_id: int | None = None,
    representative_id: int | None = None,
) -> dict[str, Any]:
    """``{"activities": n, "attendance": people, "by_kind": {kind: n for every kind}}`` for the activities
    held in [date_from, date_to] (either bound may be None), of one workroom and/or with one representative
    present when asked."""
    query = select(Activity.kind, func.count(Activity.id), func.coalesce(func.sum(Activity.attendance), 0))
    if date_from is not None:
        query = query.where(Activity.held_on >= date_from)
    if date_to is not None:
        query = query.where(Activity.held_on <= date_to)
    if workroom_id is not None:
        query = query.where(Activity.workroom_id == workroom_id)
    if representative_id is not None:
        query = query.where(
            Activity.id.in_(
                select(activity_representative.c.activity_id).where(
                    activity_representative.c.representative_id == representative_id
                )
            )
        )
    rows = (await session.execute(query.group_by(Activity.kind))).all()
    by_kind = {kind: 0 for kind in ACTIVITY_KIND_LABELS}
    attendance = 0
    for kind, count, people in rows:
        by_kind[kind] = by_kind.get(kind, 0) + int(count)
        attendance += int(people)
    return {"activities": sum(by_kind.values()), "attendance": attendance, "by_kind": by_kind}


# --- who may ------------------------------------------------------------------------------------------


def sees_all(principal: Principal) -> bool:
    """Staff, and API clients with a read scope, read every activity; the rest only the public ones."""
    if principal.user is not None:
        return True
    return principal.client is not None and any(principal.has_scope(scope) for scope in READ_SCOPES)


async def writable_workroom_ids(session: AsyncSession, principal: Principal) -> set[int] | None:
    """The workrooms whose activities ``principal`` may record: None for every one (the office); a
    representative's own workrooms; 403 for anyone else."""
    user = principal.require_staff()
    if user.role in OFFICE:
        return None
    if user.role == Role.representative and user.representative_id is not None:
        return set(await reference_service.workroom_ids_of_representative(session, user.representative_id))
    raise PermissionDenied("只有办公室和党代表可以登记活动。", code="forbidden")


async def may_write(session: AsyncSession, principal: Principal, workroom_id: int) -> bool:
    if principal.user is None:
        return False
    try:
        allowed = await writable_workroom_ids(session, principal)
    except PermissionDenied:
        return False
    return allowed is None or workroom_id in allowed


async def _require_write(session: AsyncSession, principal: Principal, workroom: Workroom) -> None:
    allowed = await writable_workroom_ids(session, principal)
    if allowed is not None and workroom.id not in allowed:
        raise PermissionDenied(f"只能登记、修改本人所在工作室的活动（{workroom.name} 不是您的工作室）。",
                               code="activity_forbidden")


# --- checking what is written ---------------------------------------------------------------------------


def field_error(field: str, message: str, code: str) -> Invalid:
    """A 422 naming its field as the API's validation errors do (``errors[].loc``)."""
    return Invalid(message, code=code, extra={"errors": [{"loc": ["body", field], "msg": message, "type": code}]})


def check_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The plain fields of ``data`` (those present) checked and cleaned: text stripped, bounds kept."""
    clean: dict[str, Any] = {}
    if "title" in data:
        title = str(data["title"] or "").strip()
        if not title:
            raise field_error("title", "请填写活动名称。", "title_required")
        if len(title) > MAX_TITLE:
            raise field_error("title", f"活动名称不能超过 {MAX_TITLE} 字。", "title_too_long")
        clean["title"] = title
    for name, limit, label in (("place", MAX_PLACE, "地点"), ("account", MAX_ACCOUNT, "活动简述")):
        if name in data:
            text = str(data[name] or "").strip()
            if len(text) > limit:
                raise field_error(name, f"{label}不能超过 {limit} 字。", f"{name}_too_long")
            clean[name] = text
    if "attendance" in data:
        value = data["attendance"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ATTENDANCE:
            raise field_error("attendance", f"参与人数应为 0 至 {MAX_ATTENDANCE} 之间的整数。", "invalid_attendance")
        clean["attendance"] = value
    if "kind" in data:
        kind = str(data["kind"])
        if kind not in ACTIVITY_KIND_LABELS:
            raise field_error("kind", f"活动类型应为 {'、'.join(ACTIVITY_KIND_LABELS.values())} 之一。", "invalid_kind")
        clean["kind"] = ActivityKind(kind).value
    if "held_on" in data:
        try:
            clean["held_on"] = dates.parse_date(data["held_on"])
        except dates.DateRangeError as exc:
            raise field_error("held_on", f"活动日期{exc.message}。", exc.kind) from None
    if "public" in data:
        clean["public"] = bool(data["public"])
    return clean


async def _workroom(session: AsyncSession, code: str) -> Workroom:
    workroom = await session.scalar(select(Workroom).where(Workroom.code == code))
    if workroom is None or not workroom.active:
        raise field_error("workroom_code", f"工作室 {code} 不存在或已停用。", "unknown_workroom")
    return workroom


async def _representatives(
    session: AsyncSession, ids: Sequence[int], *, keep: Sequence[Representative] = ()
) -> list[Representative]:
    """The representatives ``ids`` names, in that order: active ones, or ones already on the activity."""
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_REPRESENTATIVES:
        raise field_error("representative_ids", f"参加的党代表最多 {MAX_REPRESENTATIVES} 位。", "too_many_representatives")
    if not ids:
        return []
    kept = {r.id for r in keep}
    found = {r.id: r for r in await session.scalars(select(Representative).where(Representative.id.in_(ids)))}
    missing = [str(i) for i in ids if i not in found or not (found[i].active or i in kept)]
    if missing:
        raise field_error("representative_ids", f"党代表不存在或已停用：{'、'.join(missing)}", "unknown_representative")
    return [found[i] for i in ids]


async def _service_point(session: AsyncSession, service_point_id: int | None, workroom: Workroom) -> ServicePoint | None:
    if service_point_id is None:
        return None
    point = await session.get(ServicePoint, service_point_id)
    if point is None:
        raise field_error("service_point_id", f"流动服务点场次 {service_point_id} 不存在。", "unknown_service_point")
    if point.workroom_id != workroom.id:
        raise field_error("service_point_id", f"流动服务点场次 {service_point_id}（{point.title}）不属于{workroom.name}，"
                                              "只能关联同一工作室的场次。", "service_point_mismatch")
    return point


# --- reading ------------------------------------------------------------------------------------------


def _with_references(query: Select[Any]) -> Select[Any]:
    return query.options(
        selectinload(Activity.workroom), selectinload(Activity.representatives), selectinload(Activity.service_point)
    )


def _check_range(date_from: date | None, date_to: date | None) -> None:
    # No bound on the span: lists are paged, and an export is one workroom's or the town's few thousand rows.
    if date_from and date_to and date_to < date_from:
        raise Invalid("结束日期不能早于开始日期。", code="invalid_range")


@dataclass(frozen=True)
class ActivityFilter:
    workroom_code: str | None = None
    kind: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    representative_id: int | None = None
    public: bool | None = None
    workroom_ids: frozenset[int] | None = None  # the pages: a representative's own workrooms


async def _conditions(session: AsyncSession, principal: Principal, flt: ActivityFilter) -> list[Any]:
    _check_range(flt.date_from, flt.date_to)
    conditions: list[Any] = []
    if not sees_all(principal):
        conditions.append(Activity.public.is_(True))
    elif flt.public is not None:
        conditions.append(Activity.public.is_(flt.public))
    if flt.workroom_code:
        workroom_id = await session.scalar(select(Workroom.id).where(Workroom.code == flt.workroom_code))
        if workroom_id is None:
            raise NotFound(f"工作室 {flt.workroom_code} 不存在。", code="workroom_not_found")
        conditions.append(Activity.workroom_id == workroom_id)
    if flt.workroom_ids is not None:
        conditions.append(Activity.workroom_id.in_(sorted(flt.workroom_ids)))
    if flt.kind:
        conditions.append(Activity.kind == flt.kind)
    if flt.date_from is not None:
        conditions.append(Activity.held_on >= flt.date_from)
    if flt.date_to is not None:
        conditions.append(Activity.held_on <= flt.date_to)
    if flt.representative_id is not None:
        conditions.append(Activity.id.in_(
            select(activity_representative.c.activity_id)
            .where(activity_representative.c.representative_id == flt.representative_id)
        ))
    return conditions


async def list_activities(
    session: AsyncSession, *, principal: Principal, filters: ActivityFilter = ActivityFilter(), limit: int = 50,
    cursor: str | None = None,
) -> tuple[Sequence[Activity], str | None]:
    """The latest first (by day, then by id)."""
    query = _with_references(select(Activity)).where(*await _conditions(session, principal, filters))
    return await paginate(session, query.order_by(Activity.held_on.desc(), Activity.id.desc()), limit=limit,
                          cursor=cursor)


async def get_or_raise(session: AsyncSession, activity_id: int, *, principal: Principal) -> Activity:
    """The activity with its workroom, representatives and session; 404 ``activity_not_found`` when it does
    not exist or ``principal`` may not read it (not public)."""
    activity = await session.scalar(_with_references(select(Activity)).where(Activity.id == activity_id)
                                    .execution_options(populate_existing=True))
    if activity is None or not (activity.public or sees_all(principal)):
        raise NotFound(f"活动 {activity_id} 不存在。", code="activity_not_found")
    return activity


async def photos_of(session: AsyncSession, activity_ids: Sequence[int]) -> dict[int, list[ActivityPhoto]]:
    """Each activity's photos, oldest first (one query for a page of activities)."""
    result: dict[int, list[ActivityPhoto]] = {i: [] for i in activity_ids}
    if activity_ids:
        for photo in await session.scalars(
            select(ActivityPhoto).where(ActivityPhoto.activity_id.in_(activity_ids)).order_by(ActivityPhoto.id)
        ):
            result[photo.activity_id].append(photo)
    return result


async def forms_counts(session: AsyncSession, activities: Sequence[Activity]) -> dict[int, int]:
    """The forms each activity produced (its session's forms), by activity id; 0 without a session."""
    point_ids = {a.service_point_id for a in activities if a.service_point_id is not None}
    by_point: dict[int, int] = {}
    if point_ids:
        rows = await session.execute(
            select(OpinionForm.service_point_id, func.count(OpinionForm.id))
            .where(OpinionForm.service_point_id.in_(point_ids)).group_by(OpinionForm.service_point_id)
        )
        by_point = {int(point_id): int(n) for point_id, n in rows}
    return {a.id: by_point.get(a.service_point_id, 0) if a.service_point_id else 0 for a in activities}


async def produced_forms(session: AsyncSession, *, principal: Principal, activity: Activity) -> list[OpinionForm] | None:
    """The session's forms ``principal`` may see (staff only: None for anyone else), oldest first."""
    if principal.user is None:
        return None
    if activity.service_point_id is None:
        return []
    query = select(OpinionForm).where(OpinionForm.service_point_id == activity.service_point_id)
    visible = await form_service.visibility_condition(session, principal)
    if visible is not None:
        query = query.where(visible)
    return list(await session.scalars(query.order_by(OpinionForm.submitted_at, OpinionForm.id).limit(MAX_FORMS_LISTED)))


async def service_points_for(session: AsyncSession, workroom_ids: Sequence[int], *, limit: int = 100) -> list[ServicePoint]:
    """The sessions an activity of these workrooms may be linked to, the latest first (the office form)."""
    if not workroom_ids:
        return []
    return list(await session.scalars(
        select(ServicePoint).options(selectinload(ServicePoint.workroom))
        .where(ServicePoint.workroom_id.in_(workroom_ids)).order_by(ServicePoint.starts_at.desc()).limit(limit)
    ))


# --- writing ------------------------------------------------------------------------------------------


async def create(session: AsyncSession, *, principal: Principal, data: dict[str, Any]) -> Activity:
    """A new activity from ``data`` (the fields of ``ActivityCreate``)."""
    user = principal.require_staff()
    if not data.get("workroom_code"):
        raise field_error("workroom_code", "请选择工作室。", "workroom_required")
    if "title" not in data or "held_on" not in data:
        raise field_error("title" if "title" not in data else "held_on", "请填写活动名称和日期。", "missing_field")
    workroom = await _workroom(session, str(data["workroom_code"]))
    await _require_write(session, principal, workroom)
    clean = check_fields({"kind": ActivityKind.other, "place": "", "attendance": 0, "account": "", "public": True,
                          **{k: v for k, v in data.items() if v is not None}})
    activity = Activity(
        workroom=workroom, created_by_user_id=user.id,
        representatives=await _representatives(session, data.get("representative_ids") or []),
        service_point=await _service_point(session, data.get("service_point_id"), workroom),
        **{k: clean[k] for k in ("kind", "title", "held_on", "place", "attendance", "account", "public")},
    )
    session.add(activity)
    await session.flush()
    return await get_or_raise(session, activity.id, principal=principal)


async def update(session: AsyncSession, *, principal: Principal, activity_id: int, data: dict[str, Any]) -> Activity:
    """Change the fields present in ``data``; ``service_point_id: None`` unlinks the session."""
    principal.require_staff()
    activity = await get_or_raise(session, activity_id, principal=principal)
    await _require_write(session, principal, activity.workroom)
    workroom = activity.workroom
    if data.get("workroom_code") and data["workroom_code"] != workroom.code:
        workroom = await _workroom(session, str(data["workroom_code"]))
        await _require_write(session, principal, workroom)
    clean = check_fields({k: v for k, v in data.items() if k not in ("workroom_code", "representative_ids",
                                                                      "service_point_id")})
    representatives = activity.representatives
    if "representative_ids" in data:
        representatives = await _representatives(session, data["representative_ids"] or [], keep=representatives)
    point_id = data["service_point_id"] if "service_point_id" in data else activity.service_point_id
    point = await _service_point(session, point_id, workroom)
    # Everything checked: only now is the activity changed (a refusal above leaves it as it was).
    activity.representatives = representatives
    activity.service_point = point
    activity.workroom = workroom
    for name, value in clean.items():
        setattr(activity, name, value)
    activity.updated_at = utcnow()
    await session.flush()
    return await get_or_raise(session, activity.id, principal=principal)


async def delete(session: AsyncSession, *, principal: Principal, activity_id: int) -> list[str]:
    """Delete the activity and its photos' rows; returns the photos' storage keys, whose files the caller
    removes once the transaction has committed (``remove_files``)."""
    activity = await get_or_raise(session, activity_id, principal=principal)
    await _require_write(session, principal, activity.workroom)
    keys = [p.storage_key for p in (await photos_of(session, [activity.id]))[activity.id]]
    # Its representatives' rows go with it (the relationship is loaded), its photos' rows by ON DELETE CASCADE.
    await session.delete(activity)
    await session.flush()
    return keys


# --- photos -------------------------------------------------------------------------------------------


def storage_key(activity_id: int, content_type: str, *, now: datetime) -> str:
    return f"{PHOTO_FOLDER}/{now:%Y/%m/%d}/{activity_id}-{secrets.token_urlsafe(16)}{photo_service.EXTENSIONS[content_type]}"


async def writable(session: AsyncSession, *, principal: Principal, activity_id: int) -> Activity:
    """The activity, when ``principal`` may change it (and its photos)."""
    principal.require_staff()
    activity = await get_or_raise(session, activity_id, principal=principal)
    await _require_write(session, principal, activity.workroom)
    return activity


async def attach_photo(
    session: AsyncSession, *, principal: Principal, activity_id: int, photo: photo_service.PreparedPhoto,
    settings: Settings, now: datetime | None = None,
) -> ActivityPhoto:
    """Store one prepared photo on the activity (its row locked while its photos are counted: 422
    ``too_many_photos`` past ``MAX_PHOTOS``). The file first, then its row; a failed write is 503."""
    await writable(session, principal=principal, activity_id=activity_id)
    await session.scalar(select(Activity.id).where(Activity.id == activity_id).with_for_update())
    existing = int(await session.scalar(
        select(func.count()).select_from(ActivityPhoto).where(ActivityPhoto.activity_id == activity_id)) or 0)
    if existing >= MAX_PHOTOS:
        raise Invalid(f"每项活动最多 {MAX_PHOTOS} 张照片，请先删除不需要的照片。", code="too_many_photos",
                      extra={"max_photos": MAX_PHOTOS, "existing": existing})
    now = now or utcnow()
    key = storage_key(activity_id, photo.content_type, now=now)
    root = settings.photo_dir
    try:
        # The forms' writer: a temporary file synced, then renamed (services/photos.py).
        await anyio.to_thread.run_sync(photo_service._write_files, root, [(key, photo.data)])
    except OSError as exc:
        log.exception("could not store a photo of activity %s under %s", activity_id, root)
        raise Unavailable("照片暂时无法保存，请稍后重试。", code="photo_storage_unavailable") from exc
    row = ActivityPhoto(activity_id=activity_id, content_type=photo.content_type, size=len(photo.data),
                        width=photo.width, height=photo.height, sha256=photo.sha256, storage_key=key,
                        uploaded_by=principal.label[:100], created_at=now)
    session.add(row)
    try:
        await session.flush()
    except BaseException:
        await anyio.to_thread.run_sync(photo_service._remove_files, [Path(root) / key])
        raise
    return row


async def get_photo(session: AsyncSession, *, principal: Principal, activity_id: int, photo_id: int) -> ActivityPhoto:
    """A photo of an activity ``principal`` may read (404 ``activity_not_found`` / ``photo_not_found``)."""
    await get_or_raise(session, activity_id, principal=principal)
    photo = await session.get(ActivityPhoto, photo_id)
    if photo is None or photo.activity_id != activity_id:
        raise NotFound("照片不存在。", code="photo_not_found")
    return photo


async def delete_photo(session: AsyncSession, *, principal: Principal, activity_id: int, photo_id: int) -> list[str]:
    await writable(session, principal=principal, activity_id=activity_id)
    photo = await get_photo(session, principal=principal, activity_id=activity_id, photo_id=photo_id)
    await session.delete(photo)
    await session.flush()
    return [photo.storage_key]


def _remove(root: Path, keys: Sequence[str]) -> None:
    photo_service._remove_files([root / key for key in keys]
                                + [root / photo_service.THUMB_FOLDER / f"{key}.jpg" for key in keys])


async def remove_files(settings: Settings, keys: Sequence[str]) -> None:
    """The files (and thumbnails) of deleted photos: call after the deletion committed. A file left
    behind is an orphan, harmless."""
    if keys:
        await anyio.to_thread.run_sync(_remove, Path(settings.photo_dir), list(keys))


# --- statistics ---------------------------------------------------------------------------------------


async def activity_stats(
    session: AsyncSession, *, date_from: date | None = None, date_to: date | None = None,
    workroom_id: int | None = None,
) -> dict[str, Any]:
    """``activity_counts`` for the totals and the kinds, and the same counts per workroom (each row equal
    to ``activity_counts`` of that workroom; workrooms without activities are left out), by code."""
    totals = await activity_counts(session, date_from=date_from, date_to=date_to, workroom_id=workroom_id)
    query = (
        select(Workroom.code, Workroom.name, Activity.kind, func.count(Activity.id),
               func.coalesce(func.sum(Activity.attendance), 0))
        .join(Workroom, Workroom.id == Activity.workroom_id)
        .group_by(Workroom.code, Workroom.name, Activity.kind)
    )
    if date_from is not None:
        query = query.where(Activity.held_on >= date_from)
    if date_to is not None:
        query = query.where(Activity.held_on <= date_to)
    if workroom_id is not None:
        query = query.where(Activity.workroom_id == workroom_id)
    rows: dict[str, dict[str, Any]] = {}
    for code, name, kind, count, people in await session.execute(query):
        row = rows.setdefault(code, {"workroom": code, "name": name, "activities": 0, "attendance": 0,
                                     "by_kind": dict.fromkeys(ACTIVITY_KIND_LABELS, 0)})
        row["activities"] += int(count)
        row["attendance"] += int(people)
        row["by_kind"][kind] = row["by_kind"].get(kind, 0) + int(count)
    return {**totals, "by_workroom": [rows[code] for code in sorted(rows)]}


# --- export (the rows an import reads back) -------------------------------------------------------------


async def for_export(
    session: AsyncSession, *, principal: Principal, filters: ActivityFilter, limit: int = 20_000
) -> list[Activity]:
    """Activities in the order of the day they were held (then id), with their references."""
    query = _with_references(select(Activity)).where(*await _conditions(session, principal, filters))
    return list(await session.scalars(query.order_by(Activity.held_on, Activity.id).limit(limit)))


# --- the demo town --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoActivity:
    workroom_code: str
    kind: str
    title: str
    days_ago: int
    place: str
    attendance: int
    account: str
    representative_indexes: tuple[int, ...] = ()
    service_point_index: int | None = None  # demo_data.SERVICE_POINTS: the session it ran
    public: bool = True


DEMO_ACTIVITIES: tuple[DemoActivity, ...] = (
    DemoActivity("LS-01", "market", "洛社菜市场党代表集市服务", 148, "洛社菜市场东门（人民路口）", 86,
                 "在菜市场东门摆摊接待，收集群众对市场周边停车、路面积水等问题的意见，现场解答政策咨询。",
                 (4, 19), 0),
    DemoActivity("LS-02", "party_service", "石塘湾村文化礼堂党群服务日", 135, "石塘湾村文化礼堂", 64,
                 "联合村两委开展党群服务日，提供政策宣讲、法律咨询和健康义诊，收集意见建议。", (5, 12), 1),
    DemoActivity("LS-03", "visit", "张镇桥工业集中区企业走访", 121, "张镇桥工业集中区", 38,
                 "走访区内 6 家企业，了解用工、物流和配套设施方面的困难，现场记录企业诉求。", (3, 22), 2),
    DemoActivity("LS-11", "party_service", "花苑社区邻里节党代表接待", 107, "花苑社区中心广场", 152,
                 "借邻里节开展党代表接待，居民反映楼道照明、垃圾分类点设置等问题。", (1, 9, 20), 3),
    DemoActivity("LS-05", "visit", "双庙村村民议事厅走访座谈", 93, "双庙村村民议事厅", 41,
                 "与村民代表座谈，听取对农村道路养护和河道整治的意见。", (14, 24), 4),
    DemoActivity("LS-08", "market", "杨市农贸市场集市服务", 80, "杨市农贸市场北门", 97,
                 "在农贸市场开展集市服务，收集意见并当场答复部分咨询。", (16, 27), 5),
    DemoActivity("LS-01", "study", "党代表履职能力专题学习", 72, "洛社镇党群服务中心三楼会议室", 0,
                 "集中学习党代表任期制有关规定和意见办理流程，交流履职经验。", (0, 1, 4, 19), None, False),
    DemoActivity("LS-04", "visit", "万马村纺织企业车间走访", 66, "万马村工业小区", 45,
                 "深入纺织企业车间，听取职工对通勤班车、食堂和技能培训的意见。", (13, 23), 6),
    DemoActivity("LS-07", "party_service", "福山村敬老服务活动", 52, "福山村老年活动中心", 73,
                 "为老年人提供理发、测血压等志愿服务，同时收集对养老服务的意见建议。", (7, 17, 26), 7),
    DemoActivity("LS-06", "party_service", "新开河村防汛安全宣传", 38, "新开河村运河堤岸", 58,
                 "开展防汛安全宣传，发放宣传资料，排查沿河隐患点。", (6, 15), 8),
    DemoActivity("LS-09", "market", "秦村村文体广场集市服务", 24, "秦村村文体广场", 69,
                 "结合广场文艺演出开展集市服务，群众反映健身器材损坏、广场照明不足等问题。", (10, 28), 9),
    DemoActivity("LS-10", "visit", "红明村高标准农田田头走访", 11, "红明村南片高标准农田", 27,
                 "到田头走访种植大户，了解灌溉设施和机耕路使用情况。", (18, 29), 10),
    DemoActivity("LS-02", "study", "学习贯彻党代表工作室工作规范", 6, "石塘湾村党群服务站", 0,
                 "工作室党代表集中学习工作规范，研究下阶段接待安排。", (5, 12), None, False),
)


async def load_demo(
    session: AsyncSession, *, workrooms: dict[str, Workroom], representatives: Sequence[Representative],
    service_points: Sequence[ServicePoint], office: User, today: datetime,
) -> list[Activity]:
    """The demo town's register of activities over the last five months: most ran one of its past
    service-point sessions (held that day, its representatives present), a few were study sessions."""
    created = []
    for spec in DEMO_ACTIVITIES:
        point = service_points[spec.service_point_index] if spec.service_point_index is not None else None
        held_on = point.starts_at.astimezone(today.tzinfo).date() if point else (today - timedelta(days=spec.days_ago)).date()
        activity = Activity(
            kind=spec.kind, title=spec.title, held_on=held_on, place=spec.place, workroom=workrooms[spec.workroom_code],
            service_point=point, attendance=spec.attendance, account=spec.account, public=spec.public,
            created_by_user_id=office.id,
            representatives=[representatives[i] for i in spec.representative_indexes if i < len(representatives)],
        )
        session.add(activity)
        created.append(activity)
    await session.flush()
    return created
