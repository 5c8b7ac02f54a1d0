"""Photos and a place through the pages (issue 16, point 4): the resident's /submit and the representative's
/rep/forms take up to 6 photos as a plain file input and a place (the phone's position, or one from the
list), through the same front door and photo checks as the API; bad photos get a Chinese message on the
page with what was typed kept; the office sees server-made thumbnails."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.db import transaction
from app.models import FormPhoto, OpinionForm, Workroom
from tests.conftest import make_settings
from tests.factories import build_world
from tests.support.logins import bearer, sign_in, token_of
from tests.test_photos import gps_exif, jpeg, noise_jpeg, two_colour
from tests.test_web_public import CONTENT, csrf_token

GPS_MARKERS = (b"Exif", b"Apple", b"iPhone")
GPS_IFD = 0x8825


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
def settings(db_url: str, photo_dir: Path):  # type: ignore[no-untyped-def]
    # Small photos allowed, so "too large" costs a few hundred KB, not megabytes.
    return make_settings(db_url, photo_dir=photo_dir, photo_max_bytes=200 * 1024)


def camera_photo() -> bytes:
    return jpeg(two_colour((400, 300)), exif=gps_exif(orientation=1).tobytes())


async def forms(sessionmaker) -> list[OpinionForm]:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        return list(await session.scalars(select(OpinionForm).order_by(OpinionForm.id)))


async def photos_of(sessionmaker, form_id: int) -> list[FormPhoto]:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        return list(await session.scalars(select(FormPhoto).where(FormPhoto.form_id == form_id).order_by(FormPhoto.id)))


async def photo_count(sessionmaker) -> int:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(FormPhoto)) or 0)


async def place_workroom(sessionmaker, code: str = "LS-01") -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessionmaker) as session:
        workroom = await session.scalar(select(Workroom).where(Workroom.code == code))
        workroom.latitude, workroom.longitude, workroom.address = 31.6512, 120.2531, "洛社镇人民路 8 号"


async def post_public(client, files, **fields):  # type: ignore[no-untyped-def]
    token = await csrf_token(client, "/w/LS-01")
    data = {"csrf_token": token, "content": CONTENT, "category": "urban_traffic", "workroom_code": "LS-01", **fields}
    return await client.post("/submit", data=data, files=files)


# --- the resident's page -----------------------------------------------------------------------------


async def test_the_public_page_offers_photos_and_places_and_posts_multipart(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await place_workroom(sessionmaker)
    page = await client.get("/w/LS-01")
    assert 'enctype="multipart/form-data"' in page.text
    assert 'name="photos" type="file"' in page.text and "multiple" in page.text
    assert '<option value="w:LS-01"' in page.text and "洛社镇人民路 8 号" in page.text
    assert 'name="latitude"' in page.text and "data-locate" in page.text and "/static/js/capture.js" in page.text


async def test_photos_and_a_listed_place_arrive_with_the_form_without_their_exif(client, sessionmaker, photo_dir):
    await build_world(sessionmaker)
    await place_workroom(sessionmaker)
    original = camera_photo()
    assert all(marker in original for marker in GPS_MARKERS)
    with Image.open(io.BytesIO(original)) as source:
        assert source.getexif().get_ifd(GPS_IFD)  # the camera said where it was
    response = await post_public(client, [("photos", ("a.jpg", original, "image/jpeg")),
                                          ("photos", ("b.jpg", jpeg(two_colour((80, 60))), "image/jpeg"))],
                                 place="w:LS-01")
    assert response.status_code == 303 and response.headers["location"] == "/receipt", response.text[:500]
    (form,) = await forms(sessionmaker)
    assert form.location == "镇区党代表工作室（洛社镇人民路 8 号）"
    assert (form.latitude, form.longitude) == (31.6512, 120.2531)
    stored = await photos_of(sessionmaker, form.id)
    assert [p.width for p in stored] == [400, 80]
    data = (photo_dir / stored[0].storage_key).read_bytes()
    assert not any(marker in data for marker in GPS_MARKERS)
    with Image.open(io.BytesIO(data)) as kept:
        assert len(kept.getexif()) == 0 and not kept.getexif().get_ifd(GPS_IFD)


async def test_the_phones_own_position_wins_over_the_listed_place_and_typed_text_over_its_name(client, sessionmaker):
    await build_world(sessionmaker)
    await place_workroom(sessionmaker)
    response = await post_public(client, [], place="w:LS-01", latitude="31.5", longitude="120.1",
                                 location="菜场东门")
    assert response.status_code == 303, response.text[:500]
    (form,) = await forms(sessionmaker)
    assert (form.location, form.latitude, form.longitude) == ("菜场东门", 31.5, 120.1)


async def test_an_empty_file_input_is_no_photo_and_an_unknown_place_is_no_place(client, sessionmaker):
    await build_world(sessionmaker)
    # What a browser without JavaScript sends for a file input left empty: a part with no name, no bytes.
    response = await post_public(client, [("photos", ("", b"", "application/octet-stream"))], place="w:NOPE")
    assert response.status_code == 303, response.text[:500]
    (form,) = await forms(sessionmaker)
    assert form.location is None and form.latitude is None
    assert await photo_count(sessionmaker) == 0


@pytest.mark.parametrize(("files", "message"), [
    ([("photos", ("notes.pdf", b"%PDF-1.4 not a photo", "application/pdf"))], "只能上传 JPEG、PNG 或 WebP 格式的照片"),
    ([("photos", ("huge.jpg", noise_jpeg(600), "image/jpeg"))], "照片不能超过"),
    ([("photos", (f"{i}.jpg", jpeg(two_colour()), "image/jpeg")) for i in range(7)], "最多附 6 张照片"),
    ([("photos", ("broken.jpg", b"\xff\xd8\xff\xe0 broken", "image/jpeg"))], "照片文件已损坏"),
])
async def test_a_bad_photo_is_a_message_on_the_page_and_what_was_typed_stays(client, sessionmaker, files, message):
    await build_world(sessionmaker)
    response = await post_public(client, files, submitter_name="王阿姨", location="菜场东门", latitude="31.5",
                                 longitude="120.1")
    assert response.status_code == 422
    assert message in response.text and "请重新选择照片" in response.text
    assert 'id="e-photos"' in response.text
    for typed in (CONTENT, 'value="王阿姨"', 'value="菜场东门"', 'name="latitude" value="31.5"'):
        assert typed in response.text
    assert await forms(sessionmaker) == [] and await photo_count(sessionmaker) == 0


async def test_a_position_out_of_range_is_a_message_not_a_form(client, sessionmaker):
    await build_world(sessionmaker)
    response = await post_public(client, [], latitude="200", longitude="120.1")
    assert response.status_code == 422 and "位置信息有误" in response.text
    assert await forms(sessionmaker) == []


async def test_a_body_past_the_upload_limit_is_a_page_in_chinese(client, sessionmaker, app):
    await build_world(sessionmaker)
    token = await csrf_token(client, "/w/LS-01")
    limit = app.state.settings.photo_max_bytes * 6 + 64 * 1024
    response = await client.post("/submit", data={"csrf_token": token, "content": CONTENT},
                                 files=[("photos", ("big.jpg", b"\xff" * (limit + 1), "image/jpeg"))],
                                 headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html") and "提交的内容太大" in response.text
    assert await forms(sessionmaker) == []


# --- the representative's page -----------------------------------------------------------------------


async def test_the_representatives_queue_sends_a_form_with_its_photos_once(client, sessionmaker):
    await build_world(sessionmaker)
    await place_workroom(sessionmaker)
    token = await sign_in(client, "rep")
    page = await client.get("/rep")
    assert 'name="photos" type="file"' in page.text and '<option value="w:LS-01"' in page.text
    headers = {"Accept": "application/json", "X-CSRF-Token": token, "Idempotency-Key": "3f1c0e2a-photos-once"}
    files = [("photos", (f"p{i}.jpg", jpeg(two_colour((60 + i, 40))), "image/jpeg")) for i in range(2)]
    data = {"content": CONTENT, "category": "urban_traffic", "source": "w:LS-01", "place": "w:LS-01"}
    first = await client.post("/rep/forms", data=data, files=files, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["photos"] == 2
    again = await client.post("/rep/forms", data=data, files=files, headers=headers)  # the answer was lost
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.json()["tracking_no"] == first.json()["tracking_no"]
    (form,) = await forms(sessionmaker)
    assert len(await photos_of(sessionmaker, form.id)) == 2
    assert form.latitude == 31.6512 and form.location.startswith("镇区党代表工作室")
    # Other photos under the same key are another request: refused, nothing added.
    other = [("photos", ("x.jpg", jpeg(two_colour((99, 40))), "image/jpeg"))]
    refused = await client.post("/rep/forms", data=data, files=other, headers=headers)
    assert refused.status_code == 422 and "form" in refused.json()["errors"]
    assert await photo_count(sessionmaker) == 2


async def test_a_bad_photo_from_the_queue_is_refused_with_its_field(client, sessionmaker):
    await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    response = await client.post(
        "/rep/forms", data={"content": CONTENT, "category": "urban_traffic", "source": "w:LS-01"},
        files=[("photos", ("a.gif", b"GIF89a....", "image/gif"))],
        headers={"Accept": "application/json", "X-CSRF-Token": token},
    )
    assert response.status_code == 422
    assert "只能上传" in response.json()["errors"]["photos"]
    assert await forms(sessionmaker) == []


async def test_a_plain_post_with_a_bad_photo_shows_the_page_again_with_the_text(client, sessionmaker):
    await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    response = await client.post(
        "/rep/forms", data={"csrf_token": token, "content": CONTENT, "category": "urban_traffic",
                            "source": "w:LS-01", "submitter_name": "李师傅"},
        files=[("photos", ("a.txt", b"hello", "text/plain"))],
    )
    assert response.status_code == 422 and "请重新选择照片" in response.text
    assert CONTENT in response.text and 'value="李师傅"' in response.text


# --- thumbnails for the office -----------------------------------------------------------------------


async def test_the_office_sees_thumbnails_made_by_the_server(client, sessionmaker, photo_dir):
    world = await build_world(sessionmaker)
    response = await post_public(client, [("photos", ("a.jpg", jpeg(two_colour((1200, 800))), "image/jpeg")),
                                          ("photos", ("b.jpg", camera_photo(), "image/jpeg"))])
    assert response.status_code == 303, response.text[:300]
    (form,) = await forms(sessionmaker)
    first, second = await photos_of(sessionmaker, form.id)
    thumb_url = f"/api/v1/forms/{form.id}/photos/{first.id}/thumbnail"

    assert (await client.get(thumb_url)).status_code == 401  # nobody: as for the photo itself
    headers = bearer(await token_of(client, "coordinator"))
    thumb = await client.get(thumb_url, headers=headers)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.size == (320, 213) and len(image.getexif()) == 0
    assert len(thumb.content) < first.size
    assert (photo_dir / "thumbs" / f"{first.storage_key}.jpg").is_file()  # made once, kept
    listed = (await client.get(f"/api/v1/forms/{form.id}/photos", headers=headers)).json()["items"]
    assert [p["thumbnail_url"] for p in listed] == [thumb_url, f"/api/v1/forms/{form.id}/photos/{second.id}/thumbnail"]

    await sign_in(client, "coordinator")
    office_list = await client.get("/office/forms")
    assert f'src="{thumb_url}"' in office_list.text and "照片（共 2 张）" in office_list.text
    office_form = await client.get(f"/office/forms/{form.id}")
    assert f'src="{thumb_url}"' in office_form.text
    assert f'href="/api/v1/forms/{form.id}/photos/{first.id}"' in office_form.text  # the whole photo, one click away
    assert world  # the town the forms belong to


async def test_a_lost_thumbnail_is_made_again_and_a_lost_photo_is_404(client, sessionmaker, photo_dir):
    await build_world(sessionmaker)
    await post_public(client, [("photos", ("a.jpg", jpeg(two_colour((200, 100))), "image/jpeg"))])
    (form,) = await forms(sessionmaker)
    (photo,) = await photos_of(sessionmaker, form.id)
    headers = bearer(await token_of(client, "coordinator"))
    url = f"/api/v1/forms/{form.id}/photos/{photo.id}/thumbnail"
    assert (await client.get(url, headers=headers)).status_code == 200
    (photo_dir / "thumbs" / f"{photo.storage_key}.jpg").unlink()
    assert (await client.get(url, headers=headers)).status_code == 200  # made again
    (photo_dir / photo.storage_key).unlink()
    (photo_dir / "thumbs" / f"{photo.storage_key}.jpg").unlink()
    missing = await client.get(url, headers=headers)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
