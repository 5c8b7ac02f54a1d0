"""API: the register of activities (活动登记, issue 20.2).

- ``GET /activities``, ``GET /activities/{id}``: staff and API clients with ``forms:read`` or ``stats:read``
  read every activity; everyone else (the public, residents, other clients) only the public ones — one that
  is not public answers 404. Filters: ``workroom``, ``kind``, ``from``/``to`` (the day it was held,
  inclusive), ``representative`` (present), ``public`` (staff).
- ``POST``, ``PATCH``, ``DELETE``: the office for any workroom, a representative for their own workrooms.
- ``/activities/{id}/photos``: upload (multipart ``file``; who may change the activity), list, read, read a
  thumbnail (who may read the activity), delete (who may change it).
- ``GET /activities/export.{xlsx|csv}`` (coordinator, admin): the import's columns, so an export re-imports.

Representatives appear with name and level only, never a phone number. See services/activities.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Query, Request, Response, status
from fastapi.responses import FileResponse


from app.db import transaction
from app.http.routing import GuardedRouter
from app.http.uploads import uploaded_photo
from app.http.deps import CursorQ, IdPath, LimitQ, PrincipalDep, SessionDep, SettingsDep
from app.http.downloads import attachment
from app.models import Activity, ActivityKind, ActivityPhoto, OpinionForm, utcnow
from app.schemas.activities import (
    ActivityCreate,
    ActivityDetail,
    ActivityPhotoRead,
    ActivityRead,
    ActivityUpdate,
    ProducedForm,
)
from app.schemas.common import DbId, Page, problem
from app.schemas.dates import BoundedDate
from app.schemas.imports import TemplateFormat
from app.schemas.service_points import AttendingRepresentative
from app.services import activities as activity_service
from app.services import exports as export_service
from app.services import imports as import_service
from app.services import photos as photo_service

router = GuardedRouter(prefix="/activities", tags=["activities"])

FromQ = Annotated[BoundedDate | None, Query(alias="from", description="首日（含，按活动日期），YYYY-MM-DD")]
ToQ = Annotated[BoundedDate | None, Query(alias="to", description="末日（含），YYYY-MM-DD")]
WorkroomQ = Annotated[str | None, Query(max_length=32, description="工作室编号")]
RepresentativeQ = Annotated[DbId | None, Query(alias="representative", description="参加的党代表编号")]
CACHE_SECONDS = 3600
IMAGE = {200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}, "description": "The image"}}
_UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": "一张照片（JPEG、PNG 或 WebP）"}},
    }}},
}


def photo_read(photo: ActivityPhoto) -> ActivityPhotoRead:
    return ActivityPhotoRead(id=photo.id, activity_id=photo.activity_id, content_type=photo.content_type,
                             size=photo.size, width=photo.width, height=photo.height, created_at=photo.created_at)


def _read(activity: Activity, photos: list[ActivityPhoto], forms_count: int) -> dict[str, object]:
    return dict(
        id=activity.id, kind=activity.kind, kind_label=activity_service.kind_label(activity.kind),
        title=activity.title, held_on=activity.held_on, place=activity.place, workroom_code=activity.workroom.code,
        workroom_name=activity.workroom.name, attendance=activity.attendance, account=activity.account,
        public=activity.public,
        representatives=[AttendingRepresentative(id=r.id, name=r.name, level=r.level) for r in activity.representatives],
        service_point_id=activity.service_point_id,
        service_point_title=activity.service_point.title if activity.service_point else None,
        forms_count=forms_count, photos=[photo_read(p) for p in photos],
        created_at=activity.created_at, updated_at=activity.updated_at,
    )


def _produced(forms: list[OpinionForm] | None) -> list[ProducedForm] | None:
    if forms is None:
        return None
    return [ProducedForm(id=f.id, tracking_no=f.tracking_no, status=f.status, submitted_at=f.submitted_at)
            for f in forms]


async def _detail(session: SessionDep, principal: PrincipalDep, activity: Activity) -> ActivityDetail:
    photos = (await activity_service.photos_of(session, [activity.id]))[activity.id]
    counts = await activity_service.forms_counts(session, [activity])
    forms = await activity_service.produced_forms(session, principal=principal, activity=activity)
    return ActivityDetail(**_read(activity, photos, counts[activity.id]), forms=_produced(forms))


@router.get("", response_model=Page[ActivityRead],
            summary="Activities, the latest first (staff and read-scoped clients: all; others: the public ones)")
async def list_activities(
    principal: PrincipalDep, session: SessionDep, workroom: WorkroomQ = None, kind: ActivityKind | None = None,
    date_from: FromQ = None, date_to: ToQ = None, representative: RepresentativeQ = None,
    public: Annotated[bool | None, Query(description="仅工作人员：只看公开（true）或不公开（false）的")] = None,
    limit: LimitQ = 50, cursor: CursorQ = None,
) -> Page[ActivityRead]:
    filters = activity_service.ActivityFilter(
        workroom_code=workroom, kind=kind.value if kind else None, date_from=date_from, date_to=date_to,
        representative_id=representative, public=public,
    )
    activities, next_cursor = await activity_service.list_activities(
        session, principal=principal, filters=filters, limit=limit, cursor=cursor)
    photos = await activity_service.photos_of(session, [a.id for a in activities])
    counts = await activity_service.forms_counts(session, activities)
    return Page(items=[ActivityRead(**_read(a, photos[a.id], counts[a.id])) for a in activities],
                next_cursor=next_cursor)


@router.post("", response_model=ActivityDetail, status_code=status.HTTP_201_CREATED,
             summary="Record an activity (the office; a representative for their own workrooms)")
async def create_activity(body: ActivityCreate, principal: PrincipalDep, session: SessionDep) -> ActivityDetail:
    activity = await activity_service.create(session, principal=principal, data=body.model_dump())
    return await _detail(session, principal, activity)


@router.get("/export.{fmt}", response_class=Response,
            responses={200: {"content": {export_service.XLSX_MEDIA_TYPE: {}, export_service.CSV_MEDIA_TYPE: {}},
                             "description": "The .xlsx or CSV file, in the import template's columns"}},
            summary="Activities as .xlsx or CSV (coordinator, admin); re-imports as they are")
async def export_activities(
    fmt: TemplateFormat, principal: PrincipalDep, session: SessionDep, workroom: WorkroomQ = None,
    kind: ActivityKind | None = None, date_from: FromQ = None, date_to: ToQ = None,
    representative: RepresentativeQ = None,
) -> Response:
    filters = activity_service.ActivityFilter(
        workroom_code=workroom, kind=kind.value if kind else None, date_from=date_from, date_to=date_to,
        representative_id=representative,
    )
    content = await import_service.activities_file(session, principal=principal, filters=filters, fmt=fmt)
    filename = export_service.file_name("活动登记", fmt, utcnow())
    return Response(content, media_type=export_service.MEDIA_TYPES[fmt], headers=attachment(filename))


@router.get("/{activity_id}", response_model=ActivityDetail,
            summary="One activity; `forms` (staff only) lists the forms its session produced that they may see")
async def get_activity(activity_id: IdPath, principal: PrincipalDep, session: SessionDep) -> ActivityDetail:
    activity = await activity_service.get_or_raise(session, activity_id, principal=principal)
    return await _detail(session, principal, activity)


@router.patch("/{activity_id}", response_model=ActivityDetail,
              summary="Change an activity (the office; a representative for their own workrooms)")
async def update_activity(
    activity_id: IdPath, body: ActivityUpdate, principal: PrincipalDep, session: SessionDep
) -> ActivityDetail:
    activity = await activity_service.update(
        session, principal=principal, activity_id=activity_id, data=body.model_dump(exclude_unset=True))
    return await _detail(session, principal, activity)


@router.delete("/{activity_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete an activity and its photos (the office; a representative for their own workrooms)")
async def delete_activity(
    activity_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
    background: BackgroundTasks,
) -> Response:
    keys = await activity_service.delete(session, principal=principal, activity_id=activity_id)
    background.add_task(activity_service.remove_files, settings, keys)  # after the commit
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- photos -------------------------------------------------------------------------------------------


@router.post(
    "/{activity_id}/photos", status_code=status.HTTP_201_CREATED, response_model=ActivityPhotoRead,
    summary="Add one photo to an activity (who may change it)", openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        413: problem("Photo over MINYI_PHOTO_MAX_BYTES"),
        415: problem("Not JPEG, PNG or WebP (judged by content), or not multipart/form-data"),
        422: problem("Corrupt photo, too many pixels, or the activity already holds 12 photos"),
    },
)
async def upload_photo(
    activity_id: IdPath, request: Request, principal: PrincipalDep, settings: SettingsDep
) -> ActivityPhotoRead:
    sessionmaker = request.app.state.sessionmaker
    # Who may add is settled before a byte is read, in a short transaction of its own (no write lock is held
    # while the photo arrives and is re-encoded); and again in the writing transaction.
    async with transaction(sessionmaker) as session:
        await activity_service.writable(session, principal=principal, activity_id=activity_id)
    upload = await uploaded_photo(request)
    (prepared,) = await photo_service.prepare_all([upload], settings=settings)
    async with transaction(sessionmaker) as session:
        photo = await activity_service.attach_photo(session, principal=principal, activity_id=activity_id,
                                                    photo=prepared, settings=settings)
        return photo_read(photo)


@router.get("/{activity_id}/photos", response_model=Page[ActivityPhotoRead],
            summary="An activity's photos (who may read the activity)")
async def list_photos(activity_id: IdPath, principal: PrincipalDep, session: SessionDep) -> Page[ActivityPhotoRead]:
    await activity_service.get_or_raise(session, activity_id, principal=principal)
    photos = (await activity_service.photos_of(session, [activity_id]))[activity_id]
    return Page(items=[photo_read(p) for p in photos], next_cursor=None)  # at most MAX_PHOTOS: one page


def _image(path: object, photo: ActivityPhoto, *, thumbnail: bool) -> FileResponse:
    extension = ".jpg" if thumbnail else photo_service.EXTENSIONS.get(photo.content_type, "")
    name = f"activity-photo-{photo.id}{'-thumbnail' if thumbnail else ''}{extension}"
    return FileResponse(
        path, media_type="image/jpeg" if thumbnail else photo.content_type, filename=name,  # type: ignore[arg-type]
        content_disposition_type="inline",
        headers={"Cache-Control": f"private, max-age={CACHE_SECONDS}", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/{activity_id}/photos/{photo_id}", response_class=FileResponse, responses=IMAGE,
            summary="One photo's image (who may read the activity)")
async def read_photo(
    activity_id: IdPath, photo_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
) -> FileResponse:
    photo = await activity_service.get_photo(session, principal=principal, activity_id=activity_id, photo_id=photo_id)
    return _image(await photo_service.file_path(settings, photo), photo, thumbnail=False)  # type: ignore[arg-type]


@router.get("/{activity_id}/photos/{photo_id}/thumbnail", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}, "description": "The thumbnail"}},
            summary="One photo's thumbnail, a JPEG of at most 320 px a side (who may read the activity)")
async def read_thumbnail(
    activity_id: IdPath, photo_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
) -> FileResponse:
    photo = await activity_service.get_photo(session, principal=principal, activity_id=activity_id, photo_id=photo_id)
    return _image(await photo_service.thumbnail(settings, photo), photo, thumbnail=True)  # type: ignore[arg-type]


@router.delete("/{activity_id}/photos/{photo_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete one photo of an activity (who may change it)")
async def delete_photo(
    activity_id: IdPath, photo_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep,
    background: BackgroundTasks,
) -> Response:
    keys = await activity_service.delete_photo(session, principal=principal, activity_id=activity_id,
                                               photo_id=photo_id)
    background.add_task(activity_service.remove_files, settings, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
