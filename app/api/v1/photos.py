"""Photos on forms: upload one (``wx.uploadFile``), list them, read one.

The submitter is known by a resident token, the submitting API client's key, or the form's verification
code as ``?code=``; staff by their token (or, for the GET routes, the pages' session cookie, so the office
form page can show the photos). See services/photos.py for every rule. A code goes through the one
verification guard (services/verification.py): the per-IP limit, and the tracking number's lock that
tracking shows, hold here too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, status
from fastapi.responses import FileResponse

from app.http import abuse
from app.http.routing import GuardedRouter
from app.http.uploads import uploaded_photo
from app.http.deps import IdPath, PrincipalDep, SessionDep, SettingsDep
from app.db import transaction
from app.schemas.common import Page, problem
from app.schemas.photos import PhotoRead
from app.services import photos as photo_service

router = GuardedRouter(tags=["integrations"])

# ``?code=``: the 6-digit verification code given at submission.
CodeQ = Annotated[str | None, Query(min_length=1, max_length=16, description="提交时得到的查询码（提交者无令牌时）")]
CACHE_SECONDS = 3600

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary",
                                        "description": "一张照片（JPEG、PNG 或 WebP）；wx.uploadFile 的 name 填 file"}},
            },
        },
    },
}


@router.post(
    "/forms/{form_id}/photos",
    status_code=status.HTTP_201_CREATED,
    response_model=PhotoRead,
    summary="Add one photo to a form (the submitter, or staff who can see it)",
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        401: problem("Nobody signed in and no ?code="),
        404: problem("Unknown form, wrong code, or not this resident's form (one answer for all)"),
        409: problem("The form is closed or declined"),
        429: problem("Too many code attempts from this client (`rate_limited`), or the form's tracking number "
                     "is locked after wrong codes (`tracking_locked`), as in public tracking"),
        413: problem("Photo over MINYI_PHOTO_MAX_BYTES"),
        415: problem("Not JPEG, PNG or WebP (judged by content)"),
        422: problem("Corrupt photo, too many pixels, or the form already holds 6 photos"),
    },
)
async def upload_photo(
    form_id: IdPath, request: Request, principal: PrincipalDep, settings: SettingsDep, code: CodeQ = None
) -> PhotoRead:
    sessionmaker = request.app.state.sessionmaker
    guard = abuse.verification_guard(request)  # one guard for both looks: the code counts once
    # Who may add is settled before a byte of the photo is read or decoded, in a short read of its own:
    # no transaction (on SQLite: no write lock) is held while the photo arrives and is re-encoded.
    async with transaction(sessionmaker) as session:
        await photo_service.get_form(session, principal=principal, form_id=form_id, code=code, guard=guard,
                                     for_upload=True)
    upload = await uploaded_photo(request)
    (prepared,) = await photo_service.prepare_all([upload], settings=settings)
    async with transaction(sessionmaker) as session:
        # Again, in the writing transaction: the form may have been closed meanwhile.
        await photo_service.get_form(session, principal=principal, form_id=form_id, code=code, guard=guard,
                                     for_upload=True)
        (photo,) = await photo_service.attach(session, form_id=form_id, photos=[prepared], settings=settings,
                                              uploaded_by=principal.label)
        return PhotoRead.model_validate(photo)


@router.get("/forms/{form_id}/photos", response_model=Page[PhotoRead],
            summary="A form's photos (the submitter, staff who can see it, API clients with forms:read)")
async def list_photos(
    form_id: IdPath, request: Request, principal: PrincipalDep, session: SessionDep, code: CodeQ = None,
) -> Page[PhotoRead]:
    await photo_service.get_form(session, principal=principal, form_id=form_id, code=code,
                                 guard=abuse.verification_guard(request))
    photos = await photo_service.list_photos(session, form_id)
    # At most MAX_PHOTOS: always one page.
    return Page(items=[PhotoRead.model_validate(p) for p in photos], next_cursor=None)


@router.get(
    "/forms/{form_id}/photos/{photo_id}",
    response_class=FileResponse,
    summary="One photo's image (the submitter, staff who can see the form, API clients with forms:read)",
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}},
                     "description": "The image, re-encoded without metadata"}},
)
async def read_photo(
    form_id: IdPath, photo_id: IdPath, request: Request, principal: PrincipalDep, session: SessionDep,
    settings: SettingsDep, code: CodeQ = None,
) -> FileResponse:
    await photo_service.get_form(session, principal=principal, form_id=form_id, code=code,
                                 guard=abuse.verification_guard(request))
    photo = await photo_service.get_photo(session, form_id=form_id, photo_id=photo_id)
    path = await photo_service.file_path(settings, photo)
    extension = photo_service.EXTENSIONS.get(photo.content_type, "")
    return FileResponse(
        path, media_type=photo.content_type, filename=f"photo-{photo.id}{extension}", content_disposition_type="inline",
        headers={"Cache-Control": f"private, max-age={CACHE_SECONDS}", "X-Content-Type-Options": "nosniff"},
    )


@router.get(
    "/forms/{form_id}/photos/{photo_id}/thumbnail",
    response_class=FileResponse,
    summary="One photo's thumbnail, a JPEG of at most 320 px a side (who may read the photo)",
    responses={200: {"content": {"image/jpeg": {}}, "description": "The thumbnail"}},
)
async def read_thumbnail(
    form_id: IdPath, photo_id: IdPath, request: Request, principal: PrincipalDep, session: SessionDep,
    settings: SettingsDep, code: CodeQ = None,
) -> FileResponse:
    await photo_service.get_form(session, principal=principal, form_id=form_id, code=code,
                                 guard=abuse.verification_guard(request))
    photo = await photo_service.get_photo(session, form_id=form_id, photo_id=photo_id)
    path = await photo_service.thumbnail(settings, photo)
    return FileResponse(
        path, media_type="image/jpeg", filename=f"photo-{photo.id}-thumbnail.jpg", content_disposition_type="inline",
        headers={"Cache-Control": f"private, max-age={CACHE_SECONDS}", "X-Content-Type-Options": "nosniff"},
    )
