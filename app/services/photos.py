"""Photos on forms (issue 6, point 5): read, checked, cleaned, stored, and shown only to whom may see them.

- An upload is read up to ``photo_max_bytes`` (+1 to tell "too large"); the request body limit
  (api/limits.py) bounds what the multipart parser spools to disk before that.
- Its type is taken from its first bytes, never from its name or declared type: JPEG, PNG and WebP are
  accepted; everything else (GIF, HEIC/HEIF, AVIF, BMP, TIFF, PDF, ...) is refused with 415.
- It is decoded with Pillow in a worker thread (at most ``DECODE_SLOTS`` at once per event loop, which
  bounds memory), refused above ``MAX_PIXELS`` before a pixel is decompressed, turned upright by its EXIF
  orientation, and re-encoded in its own format with no metadata at all: no EXIF (so no GPS, no camera, no
  time), no XMP, no comments, no text chunks. A colour profile is converted away (pixels to sRGB) rather
  than kept. Animated images keep their first frame.
- Files live under ``photo_dir`` as ``YYYY/MM/DD/<form id>-<random>.<ext>``, written to a temporary file,
  synced and renamed into place before their row is added, so a row never points at a missing file. If the
  transaction then fails, the file stays behind unreferenced (an orphan, harmless; a sweep may remove
  files no row names).
- A form holds at most ``MAX_PHOTOS`` photos, counted under the form's row lock.
- Lists and form pages show thumbnails made here (``thumbnail``): at most ``THUMB_SIDE`` pixels a side,
  JPEG, kept under ``photo_dir/thumbs/`` beside the key of their photo and made on first request, so
  photos stored before thumbnails existed get theirs too, and a lost thumbnail is made again.

Who may add or read a form's photos: the submitter (the resident whose token submitted it, the API client
that submitted it, or anyone holding its verification code as ``?code=``) and staff who can see the form;
an API client with ``forms:read`` may read them. Public tracking never shows photos. A code is checked
through the one verification guard (services/verification.py): the per-IP limit and the tracking number's
lock hold here as they hold for tracking.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from PIL import Image, ImageOps, JpegImagePlugin
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.config import Settings
from app.errors import (
    AppError,
    Conflict,
    Invalid,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from app.models import FormPhoto, FormStatus, OpinionForm, Scope, utcnow
from app.services import forms as form_service
from app.services import verification
from app.services.auth import Principal

try:  # Pillow's colour management (LittleCMS); without it, colour profiles are dropped instead of applied
    from PIL import ImageCms
except ImportError:  # pragma: no cover - every Pillow wheel ships it
    ImageCms = None  # type: ignore[assignment]

log = logging.getLogger("minyi.photos")

MAX_PHOTOS = 6
# Decoded size cap, checked from the header before anything is decompressed: 40 million pixels (a 12 MP
# phone photo is 12; a 40 MP RGB image is 120 MB decoded).
MAX_PIXELS = 40_000_000
# Photos decoded at once per event loop (each may need a few hundred MB at MAX_PIXELS).
DECODE_SLOTS = 2
JPEG_QUALITY = 85
WEBP_QUALITY = 85
# Thumbnails: the longest side in pixels (twice the 160 px a list shows, for sharp phone screens).
THUMB_SIDE = 320
THUMB_QUALITY = 75
THUMB_FOLDER = "thumbs"
# Forms in these states take no more photos.
CLOSED_STATUSES = frozenset({FormStatus.closed, FormStatus.declined})

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
ACCEPTED = "JPEG、PNG 或 WebP"


@dataclass(frozen=True)
class Upload:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class PreparedPhoto:
    content_type: str
    data: bytes
    width: int
    height: int
    sha256: str


# --- reading and cleaning ----------------------------------------------------------------------------


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:.3g}"


async def read_upload(upload: UploadFile, settings: Settings) -> Upload:
    """The uploaded file's bytes, at most ``photo_max_bytes``: 413 ``photo_too_large`` above, 422
    ``empty_photo`` when there is nothing."""
    limit = settings.photo_max_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"照片不能超过 {_megabytes(limit)} MB，请压缩后重试。", code="photo_too_large",
                              extra={"max_bytes": limit})
    if not data:
        raise Invalid("照片是空文件，请重新选择。", code="empty_photo")
    return Upload(filename=upload.filename, content_type=upload.content_type, data=data)


def sniff(data: bytes) -> str | None:
    """The image format by its signature (Pillow's format name), or None for anything we do not take."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """The pixels converted from their embedded profile to sRGB, so the profile can be dropped without
    shifting colours (a Display P3 photo would look dull otherwise). Unusable profile: pixels as they are."""
    if ImageCms is None or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                              outputMode="RGB" if image.mode == "CMYK" else image.mode)
    except Exception:  # noqa: BLE001 - a broken or exotic profile: keep the pixels, drop the profile
        return image
    return converted if converted is not None else image


def _normalise_mode(image: Image.Image, fmt: str) -> Image.Image:
    """A mode the output format stores as plain pixels (transparency as an alpha channel, no palette)."""
    transparent = "transparency" in image.info
    if fmt == "JPEG":
        return image if image.mode in ("L", "RGB") else image.convert("RGB")
    if fmt == "PNG":
        if image.mode == "P" or transparent:
            return image.convert("RGBA" if transparent or image.mode == "PA" else "RGB")
        if image.mode == "1":
            return image.convert("L")
        return image if image.mode in ("L", "LA", "RGB", "RGBA", "I;16", "I") else image.convert("RGBA")
    # WebP
    if image.mode in ("RGB", "RGBA"):
        return image
    return image.convert("RGBA" if transparent or "A" in image.mode else "RGB")


def prepare(data: bytes, *, max_pixels: int = MAX_PIXELS) -> PreparedPhoto:
    """Check, decode, turn upright and re-encode one photo without metadata (blocking: run it in a thread)."""
    fmt = sniff(data)
    if fmt is None:
        raise UnsupportedMediaType(f"只能上传 {ACCEPTED} 格式的照片。", code="unsupported_photo_type")
    too_many_pixels = Invalid(f"照片像素过多（上限 {max_pixels // 1_000_000} 百万像素），请缩小后重试。",
                              code="photo_too_many_pixels", extra={"max_pixels": max_pixels})
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as opened:
            width, height = opened.size
            if width * height > max_pixels:  # from the header: nothing is decompressed yet
                raise too_many_pixels
            opened.load()
            try:
                ImageOps.exif_transpose(opened, in_place=True)
            except Exception:  # noqa: BLE001 - unreadable EXIF: the photo stays as stored; its EXIF goes anyway
                pass
            icc = opened.info.get("icc_profile")
            image: Image.Image = opened
            if icc and opened.mode == "CMYK":  # print-ready JPEGs: through their own profile to RGB
                image, icc = _to_srgb(opened, icc), None
            image = _normalise_mode(image, fmt)
            if icc:
                image = _to_srgb(image, icc)
            # Nothing of the original's metadata may reach the encoder (JPEG, for one, copies a comment
            # from ``info`` unless told otherwise): the pixels alone.
            image.info = {}
            out = io.BytesIO()
            if fmt == "JPEG":
                image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
                tables = getattr(opened, "quantization", None)
                if out.tell() > len(data) and tables:
                    # A photo the phone already shrank (capture.js: ≤ 300 KB at a lower quality) would grow
                    # at ours: encoded again with its own tables, it stays the size it was sent at.
                    kept = io.BytesIO()
                    image.save(kept, "JPEG", qtables=tables, subsampling=JpegImagePlugin.get_sampling(opened),
                               optimize=True)
                    if kept.tell() < out.tell():
                        out = kept
            elif fmt == "PNG":
                image.save(out, "PNG", compress_level=6)
            else:
                image.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    except AppError:
        raise
    except Image.DecompressionBombError as exc:
        raise too_many_pixels from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types on malformed input
        raise Invalid("照片文件已损坏或无法识别，请重新选择。", code="invalid_photo") from exc
    encoded = out.getvalue()
    return PreparedPhoto(content_type=CONTENT_TYPES[fmt], data=encoded, width=image.width, height=image.height,
                         sha256=hashlib.sha256(encoded).hexdigest())


_decoders: RunVar[anyio.CapacityLimiter] = RunVar("minyi_photo_decoders")


def _decoder_slots() -> anyio.CapacityLimiter:
    try:
        return _decoders.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(DECODE_SLOTS)
        _decoders.set(limiter)
        return limiter


async def prepare_all(
    uploads: Sequence[Upload], *, settings: Settings, max_pixels: int = MAX_PIXELS
) -> list[PreparedPhoto]:
    """Each upload checked and cleaned (see ``prepare``), one after another, off the event loop.

    422 ``too_many_photos`` over ``MAX_PHOTOS``; per photo 415 ``unsupported_photo_type``, 422
    ``invalid_photo`` or ``photo_too_many_pixels``; with several, the problem names the photo
    (``photo_index``, from 0)."""
    if len(uploads) > MAX_PHOTOS:
        raise Invalid(f"每份意见最多附 {MAX_PHOTOS} 张照片。", code="too_many_photos",
                      extra={"max_photos": MAX_PHOTOS})
    prepared: list[PreparedPhoto] = []
    for index, upload in enumerate(uploads):
        try:
            prepared.append(await anyio.to_thread.run_sync(
                partial(prepare, upload.data, max_pixels=max_pixels), limiter=_decoder_slots()
            ))
        except AppError as refused:
            if len(uploads) > 1:
                refused.detail = f"第 {index + 1} 张照片：{refused.detail}"
                refused.extra["photo_index"] = index
            raise
    return prepared


# --- storing -----------------------------------------------------------------------------------------


def storage_key(form_id: int, content_type: str, *, now: datetime) -> str:
    return f"{now:%Y/%m/%d}/{form_id}-{secrets.token_urlsafe(16)}{EXTENSIONS[content_type]}"


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_files(root: Path, files: Sequence[tuple[str, bytes]]) -> None:
    """Each file written to a temporary name beside its place, synced, then renamed: a file is either
    whole or absent. On any failure the files of this call are removed again."""
    written: list[Path] = []
    try:
        for key, data in files:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            written.append(path)
            _sync_dir(path.parent)
    except BaseException:
        _remove_files(written)
        raise


def _remove_files(paths: Sequence[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove photo file %s", path)


async def count(session: AsyncSession, form_id: int) -> int:
    return int(await session.scalar(select(func.count()).select_from(FormPhoto).where(FormPhoto.form_id == form_id))
               or 0)


async def attach(
    session: AsyncSession,
    *,
    form_id: int,
    photos: Sequence[PreparedPhoto],
    settings: Settings,
    uploaded_by: str,
    now: datetime | None = None,
) -> list[FormPhoto]:
    """Store ``photos`` on the form in the caller's transaction: files first, then their rows (flushed).

    The form's row is locked (PostgreSQL; SQLite's write transaction serialises anyway) while its photos
    are counted, so two uploads at once cannot take it past ``MAX_PHOTOS`` (422 ``too_many_photos``).
    A failed file write is 503 ``photo_storage_unavailable``. If the caller's transaction fails after
    this, the files stay behind without a row (orphans), never the other way round."""
    if not photos:
        return []
    locked = select(OpinionForm.id).where(OpinionForm.id == form_id).with_for_update()
    if await session.scalar(locked) is None:
        raise NotFound(f"意见征询表 {form_id} 不存在。", code="form_not_found")
    existing = await count(session, form_id)
    if existing + len(photos) > MAX_PHOTOS:
        room = max(MAX_PHOTOS - existing, 0)
        raise Invalid(f"每份意见最多附 {MAX_PHOTOS} 张照片，这份意见还能再加 {room} 张。", code="too_many_photos",
                      extra={"max_photos": MAX_PHOTOS, "existing": existing})
    now = now or utcnow()
    keys = [storage_key(form_id, photo.content_type, now=now) for photo in photos]
    root = settings.photo_dir
    try:
        await anyio.to_thread.run_sync(_write_files, root, [(k, p.data) for k, p in zip(keys, photos, strict=True)])
    except OSError as exc:
        log.exception("could not store photos of form %s under %s", form_id, root)
        raise Unavailable("照片暂时无法保存，请稍后重试。", code="photo_storage_unavailable") from exc
    rows = [
        FormPhoto(form_id=form_id, content_type=photo.content_type, size=len(photo.data), width=photo.width,
                  height=photo.height, sha256=photo.sha256, storage_key=key, uploaded_by=uploaded_by[:100],
                  created_at=now)
        for key, photo in zip(keys, photos, strict=True)
    ]
    session.add_all(rows)
    try:
        await session.flush()
    except BaseException:
        await anyio.to_thread.run_sync(_remove_files, [root / key for key in keys])
        raise
    return rows


# --- who may see or add them -------------------------------------------------------------------------


def _hidden() -> NotFound:
    # The one answer for an unknown form, a wrong code and another resident's form: none can be probed.
    return NotFound("意见征询表不存在，或查询码不正确。", code="form_not_found")


async def _allowed(session: AsyncSession, principal: Principal, form: OpinionForm, *, for_upload: bool) -> bool:
    if principal.user is not None:
        return await form_service.can_see(session, principal, form)
    if principal.resident is not None:
        return form.resident_id is not None and form.resident_id == principal.resident.id
    if principal.client is not None:
        submitter = form.api_client_id is not None and form.api_client_id == principal.client.id
        if submitter and principal.has_scope(Scope.forms_write):
            return True
        return not for_upload and principal.has_scope(Scope.forms_read)
    return False


async def get_form(
    session: AsyncSession,
    *,
    principal: Principal,
    form_id: int,
    code: str | None,
    guard: verification.Guard,
    for_upload: bool = False,
) -> OpinionForm:
    """The form, if ``principal`` (or the verification ``code``) may see its photos, or add one
    (``for_upload``).

    - Nobody signed in and no code: 401 ``login_required`` (before the database is asked: nothing leaks).
    - Unknown form, wrong code, another resident's or API client's form: the same 404 ``form_not_found``.
    - A code is checked through ``guard``: past the client's limit, or while the form's number is locked
      (even for the right code), 429 (``rate_limited`` / ``tracking_locked``).
    - Staff who cannot see the form (or an API client lacking the scope): 403 ``form_forbidden``.
    - Uploading to a closed or declined form: 409 ``form_closed``.
    """
    if principal.is_anonymous and code is None:
        raise Unauthorized("请登录，或在地址中附上查询码（?code=）。", code="login_required")
    form = await session.get(OpinionForm, form_id)
    allowed = form is not None and await _allowed(session, principal, form, for_upload=for_upload)
    if not allowed and code is not None:
        # An unknown form is counted like a known one, so the guard's answers say nothing of what exists.
        allowed = await verification.check(guard, form, form_id=form_id, code=code)
    if form is None:
        raise _hidden()
    if not allowed:
        if code is not None or (principal.user is None and principal.client is None):
            raise _hidden()
        raise PermissionDenied("您无权查看这份意见征询表的照片。", code="form_forbidden")
    if for_upload and form.status in CLOSED_STATUSES:
        raise Conflict("已办结或不予受理的意见不能再添加照片。", code="form_closed", extra={"form_status": form.status})
    return form


async def list_photos(session: AsyncSession, form_id: int) -> list[FormPhoto]:
    return list(await session.scalars(select(FormPhoto).where(FormPhoto.form_id == form_id).order_by(FormPhoto.id)))


async def get_photo(session: AsyncSession, *, form_id: int, photo_id: int) -> FormPhoto:
    photo = await session.get(FormPhoto, photo_id)
    if photo is None or photo.form_id != form_id:
        raise NotFound("照片不存在。", code="photo_not_found")
    return photo


async def file_path(settings: Settings, photo: FormPhoto) -> Path:
    """Where ``photo``'s file is: 404 ``photo_not_found`` when the key leaves ``photo_dir`` (never ours) or
    the file is gone (logged: a file we wrote was lost)."""
    root = Path(settings.photo_dir).resolve()
    path = (root / photo.storage_key).resolve()
    if not path.is_relative_to(root):
        log.error("photo %s has a storage key outside the photo folder: %r", photo.id, photo.storage_key)
        raise NotFound("照片不存在。", code="photo_not_found")
    if not await anyio.Path(path).is_file():
        log.error("photo %s: file %s is missing", photo.id, path)
        raise NotFound("照片文件已丢失。", code="photo_not_found")
    return path


# --- thumbnails --------------------------------------------------------------------------------------


def make_thumbnail(data: bytes, *, side: int = THUMB_SIDE) -> bytes:
    """A JPEG of at most ``side`` pixels a side from a stored photo (already upright and without
    metadata; blocking: run it in a thread). Transparency is laid on white."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (side, side))  # JPEG: decode at a fraction of the size, much cheaper
        image = opened.convert("RGBA") if "A" in opened.mode or "transparency" in opened.info else opened.convert("RGB")
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        if image.mode == "RGBA":
            background = Image.new("RGB", image.size, "white")
            background.paste(image, mask=image.getchannel("A"))
            image = background
        out = io.BytesIO()
        image.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return out.getvalue()


async def thumbnail(settings: Settings, photo: FormPhoto) -> Path:
    """Where ``photo``'s thumbnail is, made first if it is not there yet (404 ``photo_not_found`` as
    ``file_path`` when the photo itself is gone)."""
    original = await file_path(settings, photo)
    root = Path(settings.photo_dir).resolve()
    path = root / THUMB_FOLDER / f"{photo.storage_key}.jpg"
    if await anyio.Path(path).is_file():
        return path

    def make() -> None:
        _write_files(root, [(f"{THUMB_FOLDER}/{photo.storage_key}.jpg", make_thumbnail(original.read_bytes()))])

    try:
        await anyio.to_thread.run_sync(make, limiter=_decoder_slots())
    except OSError as exc:
        log.exception("could not make the thumbnail of photo %s", photo.id)
        raise Unavailable("缩略图暂时无法生成，请稍后重试。", code="photo_storage_unavailable") from exc
    return path


async def first_photos(session: AsyncSession, form_ids: Sequence[int]) -> dict[int, tuple[FormPhoto, int]]:
    """For a page of forms: each form's first photo and how many it has (forms without photos left out)."""
    if not form_ids:
        return {}
    counted = (
        select(FormPhoto.form_id, func.min(FormPhoto.id).label("first"), func.count().label("n"))
        .where(FormPhoto.form_id.in_(form_ids)).group_by(FormPhoto.form_id).subquery()
    )
    rows = await session.execute(
        select(FormPhoto, counted.c.n).join(counted, FormPhoto.id == counted.c.first)
    )
    return {photo.form_id: (photo, int(n)) for photo, n in rows}
