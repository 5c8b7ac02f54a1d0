"""Photos on forms (issue 6, point 5): uploads checked by content and cleaned of metadata, stored under
MINYI_PHOTO_DIR, shown to the submitter and to staff, never in public tracking.

Every test runs on SQLite and on PostgreSQL, through the real app over httpx; test images are made with
Pillow here, and stored files are opened with Pillow to check what was kept.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageCms, PngImagePlugin
from sqlalchemy import func, select

from app.db import transaction
from tests.support.apps import build_app
from app.models import ApiClient, FormPhoto, OpinionForm, Resident
from app.services import api_clients as api_client_service
from app.services import residents as resident_service
from tests.conftest import make_settings
from tests.factories import act, answered_form, build_world
from tests.support.logins import sign_in
from tests.support.problems import assert_problem

FORMS = "/api/v1/forms"
CONTENT = "小区门口的井盖松动，车一过就响，晚上很吵。"
FIELDS = {"content": CONTENT, "category": "urban_traffic"}
GPS_IFD = 0x8825
ORIENTATION = 0x0112
RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
def settings(db_url: str, photo_dir: Path):  # type: ignore[no-untyped-def]
    # Overrides conftest's: the app of every test here keeps its photos under this test's tmp_path.
    return make_settings(db_url, photo_dir=photo_dir)


# --- test images -------------------------------------------------------------------------------------


def two_colour(size: tuple[int, int] = (64, 32), mode: str = "RGB") -> Image.Image:
    """Red left half, blue right half: where the colours end up shows how the photo was turned."""
    width, height = size
    image = Image.new(mode, size, RED if mode == "RGB" else (*RED, 255))
    image.paste(BLUE if mode == "RGB" else (*BLUE, 255), (width // 2, 0, width, height))
    return image


def gps_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone 15"  # Model
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (31.0, 39.0, 12.5), 3: "E", 4: (120.0, 15.0, 30.0)})
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description exif:GPSLatitude="31,39.2N"/></rdf:RDF></x:xmpmeta>'


def jpeg(image: Image.Image | None = None, **save: Any) -> bytes:
    out = io.BytesIO()
    (image or two_colour()).save(out, "JPEG", quality=95, **save)
    return out.getvalue()


def png(image: Image.Image | None = None, **save: Any) -> bytes:
    out = io.BytesIO()
    (image or two_colour()).save(out, "PNG", **save)
    return out.getvalue()


def webp(image: Image.Image | None = None) -> bytes:
    out = io.BytesIO()
    (image or two_colour()).save(out, "WEBP", quality=90)
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    two_colour().convert("P").save(out, "GIF")
    return out.getvalue()


def noise_jpeg(side: int) -> bytes:
    """A photo that does not compress: about 2–3 bytes per pixel at quality 95."""
    return jpeg(Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)))


def colour_at(image: Image.Image, xy: tuple[int, int]) -> str:
    r, g, b = image.convert("RGB").getpixel(xy)[:3]
    return "red" if r > 200 and b < 60 else "blue" if b > 200 and r < 60 else f"other {(r, g, b)}"


# --- helpers -----------------------------------------------------------------------------------------


async def submit_with_photos(client: httpx.AsyncClient, photos: list[bytes], *, name: str = "file",
                             headers: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
    files = [(name, (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return await client.post(FORMS, data={**FIELDS, **fields}, files=files, headers=headers or {})


async def submit_json(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await client.post(FORMS, json=FIELDS, headers=headers or {})
    assert response.status_code == 201, response.text
    return response.json()


async def upload(client: httpx.AsyncClient, form_id: int, data: bytes, *, code: str | None = None,
                 headers: dict[str, str] | None = None, name: str = "file",
                 filename: str = "photo.jpg", content_type: str = "image/jpeg") -> httpx.Response:
    params = {"code": code} if code is not None else {}
    return await client.post(f"{FORMS}/{form_id}/photos", params=params, headers=headers or {},
                             files={name: (filename, data, content_type)}, data={"note": "ignored"})


async def counts(sessionmaker) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(forms, photos) in the database."""
    async with transaction(sessionmaker) as session:
        forms = await session.scalar(select(func.count()).select_from(OpinionForm))
        photos = await session.scalar(select(func.count()).select_from(FormPhoto))
        return int(forms or 0), int(photos or 0)


async def photo_rows(sessionmaker, form_id: int) -> list[FormPhoto]:  # type: ignore[no-untyped-def]
    async with transaction(sessionmaker) as session:
        return list(await session.scalars(select(FormPhoto).where(FormPhoto.form_id == form_id).order_by(FormPhoto.id)))


def stored_files(photo_dir: Path) -> list[Path]:
    return sorted(p for p in photo_dir.rglob("*") if p.is_file()) if photo_dir.exists() else []


async def make_resident(sessionmaker, openid: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A WeChat resident with a token: the bearer headers."""
    async with transaction(sessionmaker) as session:
        resident = Resident(openid=openid)
        session.add(resident)
        await session.flush()
        token, _ = await resident_service.issue_token(session, resident=resident, ttl_seconds=3600)
    return {"Authorization": f"Bearer {token}"}


async def make_client(sessionmaker, scopes: list[str], name: str = "第三方小程序") -> dict[str, str]:  # type: ignore[no-untyped-def]
    key = f"mk_test_{secrets.token_urlsafe(16)}"
    async with transaction(sessionmaker) as session:
        session.add(ApiClient(name=name, scopes=scopes, key_prefix=key[:12], key_hash=api_client_service.key_hash(key)))
    return {"X-API-Key": key}


# --- submitting with photos --------------------------------------------------------------------------


async def test_json_submission_is_unchanged_and_carries_no_photos(client, sessionmaker, photo_dir):
    world = await build_world(sessionmaker)
    created = await submit_json(client)
    assert created["status"] == "submitted" and created["verification_code"]
    assert not created.get("photos")
    detail = (await client.get(f"{FORMS}/{created['id']}", headers=world.auth("coordinator"))).json()
    assert detail["photos"] == []
    assert stored_files(photo_dir) == []


async def test_stored_jpeg_has_no_exif_gps_or_comment_and_is_turned_upright(client, sessionmaker, photo_dir):
    world = await build_world(sessionmaker)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = jpeg(exif=gps_exif(orientation=6).tobytes(), comment=b"secret-comment", xmp=XMP, icc_profile=icc)
    # The test image really carries what must go.
    with Image.open(io.BytesIO(original)) as source:
        assert source.getexif().get_ifd(GPS_IFD)[2] == (31.0, 39.0, 12.5)
        assert {"exif", "comment", "xmp", "icc_profile"} <= source.info.keys()
        assert source.size == (64, 32)

    response = await submit_with_photos(client, [original])
    assert response.status_code == 201, response.text
    created = response.json()
    (photo,) = created["photos"]
    assert {"id", "content_type", "size"} <= photo.keys()
    assert photo["content_type"] == "image/jpeg"
    assert (photo["width"], photo["height"]) == (32, 64)  # orientation 6: the photo is stored turned upright
    assert photo["url"] == f"/api/v1/forms/{created['id']}/photos/{photo['id']}"

    (row,) = await photo_rows(sessionmaker, created["id"])
    path = photo_dir / row.storage_key
    assert path.is_file() and path.resolve().is_relative_to(photo_dir.resolve())
    assert stored_files(photo_dir) == [path]  # no temporary file left beside it
    data = path.read_bytes()
    assert row.size == len(data) == photo["size"]
    for secret in (b"Exif", b"secret-comment", b"xmpmeta", b"GPS", b"Apple", b"iPhone"):
        assert secret not in data, secret
    with Image.open(path) as stored:
        assert stored.format == "JPEG"
        assert len(stored.getexif()) == 0
        assert not {"exif", "comment", "xmp", "icc_profile"} & stored.info.keys(), stored.info.keys()
        assert stored.size == (32, 64)
        assert colour_at(stored, (16, 8)) == "red" and colour_at(stored, (16, 56)) == "blue"

    # Staff read the same bytes back.
    image = await client.get(photo["url"], headers=world.auth("coordinator"))
    assert image.status_code == 200
    assert image.content == data
    assert image.headers["content-type"] == "image/jpeg"


async def test_png_keeps_its_transparency_and_loses_its_text_chunks(client, sessionmaker, photo_dir):
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "王小明 13812345678")
    text.add_text("GPS", "31.65N 120.25E")
    image = two_colour(mode="RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))
    response = await submit_with_photos(client, [png(image, pnginfo=text, exif=gps_exif().tobytes())])
    assert response.status_code == 201, response.text
    (photo,) = response.json()["photos"]
    assert photo["content_type"] == "image/png"
    (row,) = await photo_rows(sessionmaker, response.json()["id"])
    data = (photo_dir / row.storage_key).read_bytes()
    assert b"13812345678" not in data and b"Author" not in data and b"eXIf" not in data
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.format == "PNG" and stored.mode == "RGBA"
        assert stored.getpixel((0, 0))[3] == 0 and stored.getpixel((40, 10)) == (*BLUE, 255)
        assert len(stored.getexif()) == 0 and not stored.text


async def test_webp_is_accepted_as_webp(client, sessionmaker, photo_dir):
    response = await submit_with_photos(client, [webp()])
    assert response.status_code == 201, response.text
    (photo,) = response.json()["photos"]
    assert photo["content_type"] == "image/webp"
    (row,) = await photo_rows(sessionmaker, response.json()["id"])
    assert row.storage_key.endswith(".webp")
    with Image.open(photo_dir / row.storage_key) as stored:
        assert stored.format == "WEBP" and stored.size == (64, 32)


@pytest.mark.parametrize(
    ("original", "content_type", "mode"),
    [
        (jpeg(two_colour().convert("CMYK")), "image/jpeg", "RGB"),
        (jpeg(two_colour().convert("L")), "image/jpeg", "L"),
        (png(two_colour().convert("P")), "image/png", "RGB"),
        (png(two_colour().convert("I;16")), "image/png", "I;16"),
        (png(two_colour().convert("1")), "image/png", "L"),
    ],
    ids=["cmyk-jpeg", "grey-jpeg", "palette-png", "16-bit-png", "bilevel-png"],
)
async def test_other_pixel_modes_are_stored_as_plain_pixels(client, sessionmaker, photo_dir, original, content_type,
                                                            mode):
    response = await submit_with_photos(client, [original])
    assert response.status_code == 201, response.text
    (row,) = await photo_rows(sessionmaker, response.json()["id"])
    assert row.content_type == content_type and (row.width, row.height) == (64, 32)
    with Image.open(photo_dir / row.storage_key) as stored:
        assert stored.mode == mode and stored.size == (64, 32)
        if mode in ("RGB",):
            assert colour_at(stored, (8, 16)) == "red" and colour_at(stored, (56, 16)) == "blue"


@pytest.mark.parametrize(
    ("data", "filename", "declared"),
    [
        ("这不是照片，只是一段文字。".encode(), "photo.jpg", "image/jpeg"),  # a text file renamed .jpg
        (b"GIF89a" + b"\x00" * 64, "photo.jpg", "image/jpeg"),  # a GIF signature (and a broken one at that)
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "IMG_0001.HEIC", "image/heic"),
        (b"%PDF-1.7\n", "scan.png", "image/png"),
    ],
    ids=["text-as-jpg", "gif-signature", "heic", "pdf-as-png"],
)
async def test_anything_but_jpeg_png_webp_is_refused_by_content_and_nothing_is_created(
    client, sessionmaker, photo_dir, data, filename, declared
):
    files = [("file", (filename, data, declared))]
    response = await client.post(FORMS, data=FIELDS, files=files)
    body = assert_problem(response, 415, "unsupported_photo_type")
    assert "JPEG" in body["detail"]
    assert await counts(sessionmaker) == (0, 0)
    assert stored_files(photo_dir) == []


async def test_a_real_gif_is_refused_too(client, sessionmaker):
    response = await client.post(FORMS, data=FIELDS, files=[("file", ("a.gif", gif(), "image/gif"))])
    assert_problem(response, 415, "unsupported_photo_type")
    assert await counts(sessionmaker) == (0, 0)


async def test_a_corrupt_jpeg_is_invalid_photo_and_names_which_one(client, sessionmaker):
    broken = noise_jpeg(64)[:600]  # a real JPEG header, then the file stops
    response = await submit_with_photos(client, [jpeg(), broken])
    body = assert_problem(response, 422, "invalid_photo")
    assert body["photo_index"] == 1 and body["detail"].startswith("第 2 张照片")
    assert await counts(sessionmaker) == (0, 0)


async def test_a_decompression_bomb_is_refused_from_its_header(client, sessionmaker):
    # 7000 × 6000 = 42 million pixels of one bit: a tiny file that would decode to far more.
    bomb = png(Image.new("1", (7000, 6000)))
    assert len(bomb) < 200_000
    body = assert_problem(await submit_with_photos(client, [bomb]), 422, "photo_too_many_pixels")
    assert body["max_pixels"] == 40_000_000
    assert await counts(sessionmaker) == (0, 0)


async def test_an_empty_file_is_refused(client, sessionmaker):
    assert_problem(await submit_with_photos(client, [b""]), 422, "empty_photo")
    assert await counts(sessionmaker) == (0, 0)


@pytest.mark.parametrize("how_many", [7, 12])
async def test_more_than_six_photos_are_refused_and_nothing_is_created(client, sessionmaker, photo_dir, how_many):
    response = await submit_with_photos(client, [jpeg()] * how_many)
    body = assert_problem(response, 422, "too_many_photos")
    assert body["max_photos"] == 6
    assert await counts(sessionmaker) == (0, 0)
    assert stored_files(photo_dir) == []


async def test_six_photos_under_any_field_name_are_taken(client, sessionmaker, photo_dir):
    response = await submit_with_photos(client, [jpeg(), png(), webp(), jpeg(), jpeg(), jpeg()], name="image")
    assert response.status_code == 201, response.text
    assert [p["content_type"] for p in response.json()["photos"]] == [
        "image/jpeg", "image/png", "image/webp", "image/jpeg", "image/jpeg", "image/jpeg"]
    assert len(stored_files(photo_dir)) == 6
    assert await counts(sessionmaker) == (1, 6)


async def test_a_photo_over_the_size_cap_is_413(db_url, tmp_path):
    settings = make_settings(db_url, photo_dir=tmp_path / "photos", photo_max_bytes=20_000)
    app = build_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            big = noise_jpeg(200)
            assert len(big) > 20_000
            body = assert_problem(await submit_with_photos(http, [big]), 413, "photo_too_large")
            assert body["max_bytes"] == 20_000
            assert await counts(app.state.sessionmaker) == (0, 0)
            # The same cap on the one-photo upload.
            form = await submit_json(http)
            assert_problem(await upload(http, form["id"], big, code=form["verification_code"]), 413, "photo_too_large")
            assert (await upload(http, form["id"], jpeg(), code=form["verification_code"])).status_code == 201
    finally:
        await app.state.engine.dispose()


async def test_a_photo_that_cannot_be_stored_is_503_and_leaves_no_form_and_no_row(db_url, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the photo folder should be")
    app = build_app(make_settings(db_url, photo_dir=blocker / "photos"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            assert_problem(await submit_with_photos(http, [jpeg()]), 503, "photo_storage_unavailable")
            assert await counts(app.state.sessionmaker) == (0, 0)
    finally:
        await app.state.engine.dispose()


# --- the body limit ----------------------------------------------------------------------------------


async def test_uploads_may_exceed_the_general_body_limit_but_not_their_own(db_url, tmp_path):
    # General limit 2 KiB; uploads get 6 × 30 000 + 64 KiB.
    settings = make_settings(db_url, photo_dir=tmp_path / "photos", max_body_bytes=2048, photo_max_bytes=30_000)
    app = build_app(settings)
    photo = noise_jpeg(80)
    assert 4096 < len(photo) < 30_000
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            ok = await submit_with_photos(http, [photo])
            assert ok.status_code == 201, ok.text
            form = ok.json()
            one = await upload(http, form["id"], photo, code=form["verification_code"])
            assert one.status_code == 201, one.text
            # JSON as large as that photo: the general limit.
            assert_problem(await http.post(FORMS, json={"content": "长" * 3000}), 413, "payload_too_large")
            # Multipart anywhere else: the general limit.
            elsewhere = await http.post("/api/v1/workrooms", files={"file": ("a.jpg", photo, "image/jpeg")})
            assert_problem(elsewhere, 413, "payload_too_large")
            # Past the upload limit (refused by the middleware, before the parser).
            padding = "字" * 90_000
            assert_problem(await submit_with_photos(http, [photo], submitter_name=padding), 413, "payload_too_large")
            assert await counts(app.state.sessionmaker) == (1, 2)
    finally:
        await app.state.engine.dispose()


async def test_chunked_uploads_are_counted_as_they_arrive(db_url, tmp_path):
    settings = make_settings(db_url, photo_dir=tmp_path / "photos", max_body_bytes=2048, photo_max_bytes=20_000)
    app = build_app(settings)  # upload limit: 6 × 20 000 + 65 536 = 185 536 bytes
    boundary = "minyi-test-boundary"

    def multipart(photo_count: int, photo: bytes, padding: str = "") -> list[bytes]:
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="content"\r\n\r\n{CONTENT}\r\n'.encode(),
                 f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n{padding}\r\n'.encode()]
        for i in range(photo_count):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p{i}.jpg"\r\n'
                         f"Content-Type: image/jpeg\r\n\r\n".encode() + photo + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        return parts

    async def send(parts: list[bytes]) -> httpx.Response:
        async def chunks():  # no Content-Length: sent chunked
            for part in parts:
                for start in range(0, len(part), 4096):
                    yield part[start:start + 4096]

        return await http.post(FORMS, content=chunks(),
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"})

    photo = noise_jpeg(110)
    assert 10_000 < len(photo) < 20_000
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            ok = await send(multipart(2, photo))
            assert ok.status_code == 201, ok.text
            assert len(ok.json()["photos"]) == 2
            # Over the upload limit part way through the stream (the padding field is ignored otherwise).
            assert_problem(await send(multipart(2, photo, padding="x" * 180_000)), 413, "payload_too_large")
            assert await counts(app.state.sessionmaker) == (1, 2)
    finally:
        await app.state.engine.dispose()


# --- adding photos later: who may ----------------------------------------------------------------------


async def test_the_submitter_adds_a_photo_with_the_verification_code(client, sessionmaker, photo_dir):
    form = await submit_json(client)
    original = jpeg(exif=gps_exif().tobytes(), comment=b"secret-comment")  # upright, no colour profile
    response = await upload(client, form["id"], original, code=form["verification_code"])
    assert response.status_code == 201, response.text
    photo = response.json()
    assert {"id", "content_type", "size"} <= photo.keys() and photo["content_type"] == "image/jpeg"
    (row,) = await photo_rows(sessionmaker, form["id"])
    assert row.id == photo["id"] and row.uploaded_by == "公众"
    assert stored_files(photo_dir) == [photo_dir / row.storage_key]
    assert b"secret-comment" not in (photo_dir / row.storage_key).read_bytes()
    with Image.open(photo_dir / row.storage_key) as stored:
        assert len(stored.getexif()) == 0 and "comment" not in stored.info and "exif" not in stored.info
        assert stored.size == (64, 32) and colour_at(stored, (8, 16)) == "red"

    # With the code the submitter reads it back, and the list.
    read = await client.get(photo["url"], params={"code": form["verification_code"]})
    assert read.status_code == 200 and read.headers["content-type"] == "image/jpeg"
    listed = await client.get(f"{FORMS}/{form['id']}/photos", params={"code": form["verification_code"]})
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["items"]] == [photo["id"]] and listed.json()["next_cursor"] is None


async def test_a_wrong_code_is_the_same_404_as_an_unknown_form(client, sessionmaker):
    form = await submit_json(client)
    wrong = "000000" if form["verification_code"] != "000000" else "111111"
    refused = assert_problem(await upload(client, form["id"], jpeg(), code=wrong), 404, "form_not_found")
    unknown = assert_problem(await upload(client, form["id"] + 1000, jpeg(), code=wrong), 404, "form_not_found")
    assert refused == unknown
    for path in (f"{FORMS}/{form['id']}/photos", f"{FORMS}/{form['id']}/photos/1"):
        assert assert_problem(await client.get(path, params={"code": wrong}), 404, "form_not_found") == unknown
    assert await counts(sessionmaker) == (1, 0)


async def test_anonymous_without_code_is_401_whether_or_not_the_form_exists(client, sessionmaker):
    form = await submit_json(client)
    existing = assert_problem(await upload(client, form["id"], jpeg()), 401, "login_required")
    missing = assert_problem(await upload(client, 999_999, jpeg()), 401, "login_required")
    assert existing == missing
    assert_problem(await client.get(f"{FORMS}/{form['id']}/photos"), 401, "login_required")
    assert await counts(sessionmaker) == (1, 0)


# Guessing a form's code through its photos (the per-IP limit, the tracking number's lock shared with
# tracking): tests/test_verification_guard.py.


async def test_a_resident_adds_and_reads_photos_of_their_own_forms_only(client, sessionmaker):
    world = await build_world(sessionmaker)
    mine = await make_resident(sessionmaker, "o-mine")
    other = await make_resident(sessionmaker, "o-other")
    form = await submit_json(client, headers=mine)

    added = await upload(client, form["id"], png(), headers=mine)
    assert added.status_code == 201, added.text
    photo = added.json()
    assert (await photo_rows(sessionmaker, form["id"]))[0].uploaded_by == "微信用户"
    read = await client.get(photo["url"], headers=mine)
    assert read.status_code == 200 and read.headers["content-type"] == "image/png"

    # Another resident: the same 404 as for a form that does not exist.
    unknown = assert_problem(await upload(client, 999_999, jpeg(), headers=other), 404, "form_not_found")
    assert assert_problem(await upload(client, form["id"], jpeg(), headers=other), 404, "form_not_found") == unknown
    assert_problem(await client.get(photo["url"], headers=other), 404, "form_not_found")
    assert_problem(await client.get(f"{FORMS}/{form['id']}/photos", headers=other), 404, "form_not_found")
    # Nobody at all: 401.
    assert_problem(await client.get(photo["url"]), 401, "login_required")
    # A resident's form entered by someone else is not theirs either.
    staff_form = await submit_json(client, headers=world.auth("rep"))
    assert_problem(await upload(client, staff_form["id"], jpeg(), headers=mine), 404, "form_not_found")
    assert len(await photo_rows(sessionmaker, form["id"])) == 1


async def test_staff_who_can_see_the_form_read_and_add_photos(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit_json(client)
    await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})
    added = await upload(client, form["id"], jpeg(), headers=world.auth("handler_a"))
    assert added.status_code == 201, added.text
    assert (await photo_rows(sessionmaker, form["id"]))[0].uploaded_by == "handler_a"
    url = added.json()["url"]

    for who in ("coordinator", "admin", "handler_a"):
        image = await client.get(url, headers=world.auth(who))
        assert image.status_code == 200, who
        assert image.headers["content-type"] == "image/jpeg"
        assert image.headers["cache-control"].startswith("private")
        assert image.headers["x-content-type-options"] == "nosniff"
        assert image.headers["content-disposition"].startswith("inline")
        with Image.open(io.BytesIO(image.content)) as opened:
            assert opened.format == "JPEG"
    # A handler of another unit may not see the form, so not its photos either.
    assert_problem(await client.get(url, headers=world.auth("handler_b")), 403, "form_forbidden")
    assert_problem(await upload(client, form["id"], jpeg(), headers=world.auth("handler_b")), 403, "form_forbidden")
    # The staff form read lists them.
    detail = (await client.get(f"{FORMS}/{form['id']}", headers=world.auth("coordinator"))).json()
    assert [p["url"] for p in detail["photos"]] == [url]
    # A photo id of another form is not found under this one.
    other = await submit_json(client)
    assert_problem(await client.get(f"{FORMS}/{other['id']}/photos/{added.json()['id']}",
                                    headers=world.auth("coordinator")), 404, "photo_not_found")


async def test_api_clients_read_with_forms_read_and_add_to_forms_they_submitted(client, sessionmaker):
    reader = await make_client(sessionmaker, ["forms:read"], "看板")
    writer = await make_client(sessionmaker, ["forms:write"], "小程序后台")
    form = await submit_json(client)
    theirs = await submit_json(client, headers=writer)

    assert (await upload(client, theirs["id"], jpeg(), headers=writer)).status_code == 201
    assert_problem(await upload(client, form["id"], jpeg(), headers=writer), 403, "form_forbidden")
    assert_problem(await upload(client, theirs["id"], jpeg(), headers=reader), 403, "form_forbidden")
    listed = await client.get(f"{FORMS}/{theirs['id']}/photos", headers=reader)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1
    assert (await client.get(listed.json()["items"][0]["url"], headers=reader)).status_code == 200


# --- the rules on a form's photos ----------------------------------------------------------------------


async def test_a_form_holds_at_most_six_photos_in_all(client, sessionmaker):
    created = (await submit_with_photos(client, [jpeg()] * 5)).json()
    code = created["verification_code"]
    assert (await upload(client, created["id"], jpeg(), code=code)).status_code == 201
    body = assert_problem(await upload(client, created["id"], jpeg(), code=code), 422, "too_many_photos")
    assert body["existing"] == 6
    assert await counts(sessionmaker) == (1, 6)


async def test_two_uploads_at_once_cannot_take_a_form_past_six(client, sessionmaker, photo_dir):
    created = (await submit_with_photos(client, [jpeg()] * 5)).json()
    code = created["verification_code"]
    responses = await asyncio.gather(*(upload(client, created["id"], jpeg(), code=code) for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [201, 422, 422], [r.text for r in responses]
    assert await counts(sessionmaker) == (1, 6)


@pytest.mark.parametrize("end", ["decline", "close"])
async def test_closed_and_declined_forms_take_no_more_photos(client, sessionmaker, end):
    world = await build_world(sessionmaker)
    if end == "decline":
        form = await submit_json(client)
        assert (await act(client, world, "coordinator", form["id"], "decline", {"reason": "不属于本镇事务"})).status_code == 200
        code = form["verification_code"]
    else:
        form = await submit_json(client)
        code = form["verification_code"]
        await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})
        await act(client, world, "coordinator", form["id"], "reply", {"reply": "已修复。"})
        assert (await act(client, world, "coordinator", form["id"], "close", {"satisfaction": "satisfied"})).status_code == 200
    body = assert_problem(await upload(client, form["id"], jpeg(), code=code), 409, "form_closed")
    assert body["form_status"] == ("declined" if end == "decline" else "closed")
    assert_problem(await upload(client, form["id"], jpeg(), headers=world.auth("coordinator")), 409, "form_closed")
    # What it already holds stays readable.
    assert (await client.get(f"{FORMS}/{form['id']}/photos", params={"code": code})).status_code == 200


async def test_an_answered_form_still_takes_photos(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await answered_form(client, world)
    assert (await upload(client, form["id"], jpeg(), headers=world.auth("coordinator"))).status_code == 201


async def test_upload_needs_multipart_with_a_file(client, sessionmaker):
    form = await submit_json(client)
    code = form["verification_code"]
    url = f"{FORMS}/{form['id']}/photos"
    assert_problem(await client.post(url, params={"code": code}, content=jpeg(),
                                     headers={"content-type": "image/jpeg"}), 415, "unsupported_media_type")
    assert_problem(await client.post(url, params={"code": code}, data={"file": "not a file"},
                                     files={"other": ("a.txt", b"x", "text/plain"), "more": ("b.txt", b"y", "text/plain")}),
                   422, "photo_required")
    # One file under another name (wx.uploadFile with its own ``name``) is taken.
    assert (await upload(client, form["id"], jpeg(), code=code, name="image")).status_code == 201
    # Refused by content whatever the declared type and name say.
    assert_problem(await upload(client, form["id"], b"<svg xmlns='http://www.w3.org/2000/svg'/>", code=code,
                                filename="a.png", content_type="image/png"), 415, "unsupported_photo_type")


async def test_a_photo_whose_file_is_gone_is_404_not_500(client, sessionmaker, photo_dir):
    world = await build_world(sessionmaker)
    created = (await submit_with_photos(client, [jpeg()])).json()
    (row,) = await photo_rows(sessionmaker, created["id"])
    (photo_dir / row.storage_key).unlink()
    assert_problem(await client.get(created["photos"][0]["url"], headers=world.auth("coordinator")), 404,
                   "photo_not_found")


# --- never in public tracking; shown on the office page -------------------------------------------------


async def test_public_tracking_never_shows_photos(client, sessionmaker):
    created = (await submit_with_photos(client, [jpeg(), png()])).json()
    tracked = await client.get(f"/api/v1/track/{created['tracking_no']}", params={"code": created["verification_code"]})
    assert tracked.status_code == 200
    assert "photo" not in tracked.text and "/photos/" not in tracked.text

    page = await client.get("/track")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    result = await client.post("/track", data={"csrf_token": token, "no": created["tracking_no"],
                                               "code": created["verification_code"]})
    assert result.status_code == 200 and created["tracking_no"] in result.text
    assert "/photos/" not in result.text and "<img" not in result.text


async def test_the_office_form_page_shows_thumbnails_that_the_session_cookie_can_open(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = (await submit_with_photos(client, [jpeg(exif=gps_exif(orientation=6).tobytes()), png()])).json()
    await sign_in(client, "coordinator")

    page = await client.get(f"/office/forms/{created['id']}")
    assert page.status_code == 200
    urls = [p["url"] for p in created["photos"]]
    for photo in created["photos"]:  # a thumbnail made by the server, opening the whole photo
        assert f'href="{photo["url"]}"' in page.text and f'<img src="{photo["thumbnail_url"]}"' in page.text
    assert 'width="160" height="320"' in page.text  # the upright 32 × 64 photo, scaled to 160 wide
    image = await client.get(urls[1])  # the cookie alone, as the browser sends it
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    thumbnail = await client.get(created["photos"][1]["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    # A page without photos has no photo section.
    bare = await submit_json(client)
    assert 'class="photos"' not in (await client.get(f"/office/forms/{bare['id']}")).text
    # The cookie reads; it never writes (the API checks no CSRF token, so a POST with only the cookie is anonymous).
    assert_problem(await upload(client, created["id"], jpeg()), 401, "login_required")
