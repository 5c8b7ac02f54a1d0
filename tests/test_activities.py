"""The register of activities (issue 20.2): recording them through the API and the office's pages, who may
do what, the public list, photos, the counts the statistics and exports give (equal to ``activity_counts``),
and Excel import and export that read each other back."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from PIL import Image
from sqlalchemy import func, select, update

from app.config import TZ
from app.db import transaction
from app.models import Activity, ActivityPhoto, Representative, utcnow
from app.services import activities as activity_service
from tests.conftest import make_settings, screenshot
from tests.factories import PASSWORD, World, build_world, submit
from tests.support.logins import sign_in

TODAY = utcnow().astimezone(TZ).date()
DAY = (TODAY - timedelta(days=10)).isoformat()


@pytest.fixture
def settings(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_settings(db_url, photo_dir=tmp_path / "photos")


@pytest.fixture
async def world(sessionmaker) -> World:  # type: ignore[no-untyped-def]
    return await build_world(sessionmaker)


def jpeg(size: tuple[int, int] = (80, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def body(world: World, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "workroom_code": "LS-01", "kind": "market", "title": "洛社菜场党代表集市服务", "held_on": DAY,
        "place": "洛社菜场东门", "attendance": 60, "account": "现场收集意见，当场答复五件。",
        "representative_ids": [world.representatives["rep"].id],
    }
    data.update(fields)
    return data


async def create(client: httpx.AsyncClient, world: World, who: str = "coordinator", **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/activities", json=body(world, **fields), headers=world.auth(who))
    assert response.status_code == 201, response.text
    return response.json()


async def point(client: httpx.AsyncClient, world: World, workroom: str = "LS-01", title: str = "洛社菜场流动服务点") -> int:
    start = f"{DAY}T08:00:00+08:00"
    response = await client.post("/api/v1/service-points", headers=world.auth("coordinator"), json={
        "workroom_code": workroom, "title": title, "place_type": "market", "location": "菜场东门",
        "starts_at": start, "ends_at": f"{DAY}T11:00:00+08:00"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def refused(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    if field is not None:
        assert any(e["loc"][-1] == field for e in problem.get("errors") or []), problem
    return problem


# --- the register through the API ------------------------------------------------------------------------


async def test_an_activity_is_recorded_read_changed_and_deleted_with_the_forms_of_its_session(client, world):
    point_id = await point(client, world)
    await submit(client, service_point_id=point_id)
    await submit(client, service_point_id=point_id)
    rep, rep2 = world.representatives["rep"], world.representatives["rep2"]
    created = await create(client, world, service_point_id=point_id, representative_ids=[rep.id, rep2.id, rep.id],
                           title="  洛社菜场党代表集市服务  ")
    assert created["title"] == "洛社菜场党代表集市服务" and created["kind_label"] == "集市服务"
    assert [r["id"] for r in created["representatives"]] == [rep.id, rep2.id]
    assert created["forms_count"] == 2 and len(created["forms"]) == 2
    assert created["service_point_title"] == "洛社菜场流动服务点" and created["held_on"] == DAY
    assert "phone" not in str(created["representatives"])

    changed = await client.patch(f"/api/v1/activities/{created['id']}", headers=world.auth("coordinator"),
                                 json={"attendance": 75, "service_point_id": None, "public": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["attendance"] == 75 and changed.json()["forms_count"] == 0
    assert changed.json()["title"] == created["title"]  # untouched fields stay

    listed = await client.get("/api/v1/activities", params={"workroom": "LS-01", "kind": "market",
                                                            "from": DAY, "to": DAY, "representative": rep2.id},
                              headers=world.auth("handler_a"))
    assert [a["id"] for a in listed.json()["items"]] == [created["id"]]
    assert (await client.get("/api/v1/activities", params={"kind": "visit"},
                             headers=world.auth("handler_a"))).json()["items"] == []

    deleted = await client.delete(f"/api/v1/activities/{created['id']}", headers=world.auth("coordinator"))
    assert deleted.status_code == 204
    refused(await client.get(f"/api/v1/activities/{created['id']}", headers=world.auth("coordinator")), 404)


async def test_every_field_is_bounded_and_every_reference_checked(client, world, sessionmaker):
    async def post(**fields: Any) -> httpx.Response:
        return await client.post("/api/v1/activities", json=body(world, **fields), headers=world.auth("coordinator"))

    refused(await post(title=""), 422, "title")
    refused(await post(title="   "), 422, "title")
    refused(await post(title="活" * 101), 422, "title")
    assert (await post(title="活" * 100)).status_code == 201
    refused(await post(place="地" * 201), 422, "place")
    refused(await post(account="述" * 2001), 422, "account")
    refused(await post(attendance=-1), 422, "attendance")
    refused(await post(attendance=100_001), 422, "attendance")
    assert (await post(attendance=100_000, title="十万人")).status_code == 201
    for bad in ("0001-01-01", "9999-12-31", "明天", "2026-02-30"):
        problem = refused(await post(held_on=bad), 422, "held_on")
        assert "held_on" in problem["detail"]
    refused(await post(kind="party"), 422, "kind")
    refused(await post(workroom_code="XX-99"), 422, "workroom_code")
    refused(await post(representative_ids=[2_147_483_647]), 422, "representative_ids")
    refused(await post(representative_ids=[99_999_999_999_999_999_999]), 422)
    other = await point(client, world, "LS-02", "石塘湾村服务点")
    problem = refused(await post(service_point_id=other), 422, "service_point_id")
    assert problem["code"] == "service_point_mismatch"
    refused(await post(service_point_id=2_147_483_647), 422, "service_point_id")

    async with transaction(sessionmaker) as session:  # 李代表 retires
        await session.execute(update(Representative).where(Representative.id == world.representatives["rep2"].id)
                              .values(active=False))
    assert refused(await post(representative_ids=[world.representatives["rep2"].id]), 422,
                   "representative_ids")["code"] == "unknown_representative"

    created = await create(client, world, title="改名测试")
    path = f"/api/v1/activities/{created['id']}"
    refused(await client.patch(path, json={"title": None}, headers=world.auth("coordinator")), 422, "title")
    refused(await client.patch(path, json={"held_on": "9999-12-31"}, headers=world.auth("coordinator")), 422, "held_on")
    refused(await client.patch(path, json={"workroom_code": "LS-02", "service_point_id": await point(client, world)},
                               headers=world.auth("coordinator")), 422, "service_point_id")
    refused(await client.get("/api/v1/activities/99999999999999999999", headers=world.auth("coordinator")), 422)
    refused(await client.get("/api/v1/activities/2147483647", headers=world.auth("coordinator")), 404)
    refused(await client.get("/api/v1/activities", params={"from": "2026-05-02", "to": "2026-05-01"}), 422)
    async with transaction(sessionmaker) as session:  # a refused change left nothing behind
        title = await session.scalar(select(Activity.title).where(Activity.id == created["id"]))
    assert title == "改名测试"


async def test_the_office_records_for_any_workroom_a_representative_for_their_own(client, world):
    mine = await create(client, world, who="rep", title="张代表的走访", kind="visit")
    assert mine["workroom_code"] == "LS-01"
    theirs = await create(client, world, who="coordinator", workroom_code="LS-02", title="李代表的学习", kind="study")
    assert (await client.post("/api/v1/activities", json=body(world, workroom_code="LS-02"),
                              headers=world.auth("rep"))).json()["code"] == "activity_forbidden"
    for method, path, json in (("PATCH", f"/api/v1/activities/{theirs['id']}", {"attendance": 1}),
                               ("DELETE", f"/api/v1/activities/{theirs['id']}", None),
                               ("PATCH", f"/api/v1/activities/{mine['id']}", {"workroom_code": "LS-02"}),
                               ("POST", f"/api/v1/activities/{theirs['id']}/photos", None)):
        response = await client.request(method, path, json=json, headers=world.auth("rep"),
                                        files={"file": ("a.jpg", jpeg(), "image/jpeg")} if json is None and method == "POST" else None)
        refused(response, 403)
    # 李代表 may not touch 张代表's workroom either; a handler and the public record nothing.
    refused(await client.patch(f"/api/v1/activities/{mine['id']}", json={"attendance": 1}, headers=world.auth("rep2")), 403)
    refused(await client.post("/api/v1/activities", json=body(world), headers=world.auth("handler_a")), 403)
    refused(await client.post("/api/v1/activities", json=body(world)), 401)
    # Every member of staff reads every activity.
    listed = await client.get("/api/v1/activities", headers=world.auth("rep2"))
    assert {a["id"] for a in listed.json()["items"]} == {mine["id"], theirs["id"]}


async def test_the_public_reads_only_public_activities_and_clients_with_a_read_scope_all(client, world):
    shown = await create(client, world, title="公开的党群服务日", kind="party_service")
    hidden = await create(client, world, title="内部学习会", kind="study", public=False)
    keys = {}
    for scope in ("forms:read", "webhooks"):
        made = await client.post("/api/v1/api-clients", headers=world.auth("admin"), json={"name": scope, "scopes": [scope]})
        keys[scope] = {"X-API-Key": made.json()["key"]}

    async def ids(headers: dict[str, str]) -> set[int]:
        response = await client.get("/api/v1/activities", headers=headers)
        assert response.status_code == 200, response.text
        return {a["id"] for a in response.json()["items"]}

    assert await ids({}) == await ids(keys["webhooks"]) == {shown["id"]}
    assert await ids(keys["forms:read"]) == await ids(world.auth("handler_a")) == {shown["id"], hidden["id"]}
    refused(await client.get(f"/api/v1/activities/{hidden['id']}"), 404)
    refused(await client.get(f"/api/v1/activities/{hidden['id']}/photos"), 404)
    assert (await client.get(f"/api/v1/activities/{hidden['id']}", headers=keys["forms:read"])).status_code == 200
    public = await client.get(f"/api/v1/activities/{shown['id']}")
    assert public.json()["forms"] is None  # no form list for the public, only the count
    assert await ids({}) == {shown["id"]}

    page = await client.get("/w/LS-01/activities")
    assert page.status_code == 200 and "公开的党群服务日" in page.text and "内部学习会" not in page.text
    assert "参与群众 <b>60</b> 人次" in page.text
    assert (await client.get("/w/NOPE/activities")).status_code == 404


async def test_photos_are_cleaned_stored_served_and_deleted(client, world, settings):
    activity = await create(client, world)
    path = f"/api/v1/activities/{activity['id']}/photos"
    uploaded = await client.post(path, headers=world.auth("rep"), files={"file": ("现场.jpg", jpeg(), "image/jpeg")})
    assert uploaded.status_code == 201, uploaded.text
    photo = uploaded.json()
    assert photo["content_type"] == "image/jpeg" and photo["width"] == 80
    refused(await client.post(path, headers=world.auth("rep"), files={"file": ("x.jpg", b"GIF89a....", "image/jpeg")}), 415)
    refused(await client.post(path, headers=world.auth("rep2"), files={"file": ("x.jpg", jpeg(), "image/jpeg")}), 403)

    listed = (await client.get(path)).json()["items"]
    assert [p["id"] for p in listed] == [photo["id"]]
    image = await client.get(photo["url"])  # the public reads a public activity's photo
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    thumb = await client.get(photo["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.content.startswith(b"\xff\xd8")
    assert f'/api/v1/activities/{activity["id"]}/photos/{photo["id"]}/thumbnail' in (await client.get("/w/LS-01/activities")).text

    files = [p for p in Path(settings.photo_dir).rglob("*") if p.is_file()]
    assert len(files) == 2 and all("activities" in p.parts for p in files)  # the photo and its thumbnail
    refused(await client.delete(f"{path}/{photo['id']}", headers=world.auth("rep2")), 403)
    assert (await client.delete(f"{path}/{photo['id']}", headers=world.auth("rep"))).status_code == 204
    assert [p for p in Path(settings.photo_dir).rglob("*") if p.is_file()] == []
    refused(await client.get(photo["url"]), 404)


# --- counts, exports and imports ------------------------------------------------------------------------


async def test_the_statistics_equal_activity_counts_and_what_was_created(client, world, sessionmaker):
    await create(client, world, title="一", kind="market", attendance=10, held_on="2026-03-01")
    await create(client, world, title="二", kind="visit", attendance=5, held_on="2026-03-15")
    await create(client, world, title="三", kind="market", attendance=7, held_on="2026-03-31", workroom_code="LS-02",
                 public=False)
    await create(client, world, title="四", kind="study", attendance=100, held_on="2026-04-01")  # after the period
    await create(client, world, title="零", kind="study", attendance=100, held_on="2026-02-28")  # before it
    params = {"from": "2026-03-01", "to": "2026-03-31"}
    response = await client.get("/api/v1/stats/activities", params=params, headers=world.auth("coordinator"))
    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["activities"], stats["attendance"]) == (3, 22)
    assert {k["kind"]: k["activities"] for k in stats["by_kind"]} == {
        "party_service": 0, "market": 2, "visit": 1, "study": 0, "other": 0}
    assert [(w["workroom"], w["activities"], w["attendance"]) for w in stats["by_workroom"]] == [
        ("LS-01", 2, 15), ("LS-02", 1, 7)]
    assert sum(w["activities"] for w in stats["by_workroom"]) == stats["activities"]
    async with transaction(sessionmaker) as session:
        counts = await activity_service.activity_counts(session, date_from=date(2026, 3, 1), date_to=date(2026, 3, 31))
        ls02 = await activity_service.activity_counts(session, date_from=date(2026, 3, 1), date_to=date(2026, 3, 31),
                                                      workroom_id=world.workrooms["LS-02"].id)
    assert counts["activities"] == stats["activities"] and counts["attendance"] == stats["attendance"]
    assert counts["by_kind"] == {k["kind"]: k["activities"] for k in stats["by_kind"]}
    assert (ls02["activities"], ls02["attendance"]) == (1, 7)

    again = await client.get("/api/v1/stats/activities", params=params,
                             headers={**world.auth("coordinator"), "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    await create(client, world, title="五", kind="other", attendance=1, held_on="2026-03-20")
    fresh = await client.get("/api/v1/stats/activities", params=params,
                             headers={**world.auth("coordinator"), "If-None-Match": response.headers["ETag"]})
    assert fresh.status_code == 200 and (fresh.json()["activities"], fresh.json()["attendance"]) == (4, 23)
    one = await client.get("/api/v1/stats/activities", params={**params, "workroom": "LS-02"},
                           headers=world.auth("coordinator"))
    assert (one.json()["activities"], one.json()["attendance"]) == (1, 7) and one.headers["ETag"] != response.headers["ETag"]
    refused(await client.get("/api/v1/stats/activities", params={"workroom": "XX"}, headers=world.auth("coordinator")), 422)
    refused(await client.get("/api/v1/stats/activities", params={"from": "2026-04-01", "to": "2026-03-01"},
                             headers=world.auth("coordinator")), 422)
    refused(await client.get("/api/v1/stats/activities"), 401)

    # The statistics export's sheet: one row per workroom, then 合计 = the same counts.
    sheet = await client.get("/api/v1/stats/activities/export.csv", params=params, headers=world.auth("coordinator"))
    assert sheet.status_code == 200, sheet.text
    rows = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["工作室编码", "工作室", "活动场次", "参与人次"] and "集市服务" in rows[0]
    assert rows[-1][:4] == ["合计", "", "4", "23"]
    assert [r[0] for r in rows[1:-1]] == ["LS-01", "LS-02"]


def sheet_rows(content: bytes) -> list[list[Any]]:
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


async def upload(client: httpx.AsyncClient, world: World, name: str, content: bytes) -> dict[str, Any]:
    response = await client.post("/api/v1/imports", data={"kind": "activities"}, headers=world.auth("coordinator"),
                                 files={"file": (name, content, "application/octet-stream")})
    assert response.status_code == 201, response.text
    return response.json()


async def test_an_export_imports_back_as_it_was(client, world, sessionmaker):
    point_id = await point(client, world)
    rep, rep2 = world.representatives["rep"], world.representatives["rep2"]
    await create(client, world, title="集市服务", service_point_id=point_id, representative_ids=[rep.id, rep2.id])
    await create(client, world, title="内部学习", kind="study", public=False, attendance=0, place="",
                 account="- 学习任期制规定\n- 交流经验", representative_ids=[], workroom_code="LS-02")
    before = (await client.get("/api/v1/activities", headers=world.auth("coordinator"))).json()["items"]
    exported = await client.get("/api/v1/activities/export.xlsx", headers=world.auth("coordinator"))
    assert exported.status_code == 200, exported.text
    rows = sheet_rows(exported.content)
    assert rows[0] == ["日期", "类型", "名称", "地点", "工作室", "参加代表", "参与人数", "活动简述", "流动服务点", "公开"]
    assert rows[1][5] == "张代表、李代表" and rows[1][8] == f"#{point_id} 洛社菜场流动服务点" and rows[2][9] == "否"

    # The same file again: every row is already registered, nothing is written twice.
    twice = await upload(client, world, "活动.xlsx", exported.content)
    assert twice["status"] == "failed" and {e["column"] for e in twice["errors"]} == {"名称"}

    for item in before:
        assert (await client.delete(f"/api/v1/activities/{item['id']}", headers=world.auth("coordinator"))).status_code == 204
    job = await upload(client, world, "活动.xlsx", exported.content)
    assert (job["status"], job["imported"]) == ("done", 2), job
    after = (await client.get("/api/v1/activities", headers=world.auth("coordinator"))).json()["items"]
    fields = ("kind", "title", "held_on", "place", "workroom_code", "attendance", "account", "public",
              "service_point_id", "forms_count")
    assert [{f: a[f] for f in fields} | {"reps": [r["id"] for r in a["representatives"]]} for a in after] == \
        [{f: a[f] for f in fields} | {"reps": [r["id"] for r in a["representatives"]]} for a in before]

    # And as CSV, through the other reader (the account starting with "-" comes back without the guard).
    csv_file = await client.get("/api/v1/activities/export.csv", headers=world.auth("coordinator"))
    for item in after:
        await client.delete(f"/api/v1/activities/{item['id']}", headers=world.auth("coordinator"))
    assert (await upload(client, world, "活动.csv", csv_file.content))["imported"] == 2
    accounts = {a["account"] for a in (await client.get("/api/v1/activities", headers=world.auth("coordinator"))).json()["items"]}
    assert "- 学习任期制规定\n- 交流经验" in accounts

    template = await client.get("/api/v1/imports/template/activities.xlsx")
    assert template.status_code == 200 and sheet_rows(template.content)[0] == rows[0]


async def test_an_import_names_each_bad_row_and_writes_nothing(client, world, sessionmaker):
    header = "日期,类型,名称,地点,工作室,参加代表,参与人数,活动简述,流动服务点"
    lines = [
        header,
        f"{DAY},集市服务,好的一行,菜场,LS-01,张代表,30,,",
        "0001-01-01,走访,远古,村里,LS-01,,1,,",
        "9999-12-31,走访,未来,村里,LS-01,,1,,",
        "下周二,走访,乱写,村里,LS-01,,1,,",
        f"{DAY},跳舞,类型不对,村里,不存在的工作室,王五,很多,,",
        f"{DAY},学习,{'长' * 101},{'地' * 201},石塘湾村党代表工作室,李代表,-3,,#999999",
    ]
    job = await upload(client, world, "活动.csv", ("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    assert job["status"] == "failed" and job["imported"] == 0
    errors = {(e["row"], e["column"]): e["reason"] for e in job["errors"]}
    assert (3, "日期") in errors and "1900-01-01" in errors[(3, "日期")]
    assert (4, "日期") in errors and "9999" in errors[(4, "日期")]
    assert (5, "日期") in errors and "不是有效日期" in errors[(5, "日期")]
    assert "无法识别" in errors[(6, "类型")] and "不存在" in errors[(6, "工作室")]
    assert "王五" in errors[(6, "参加代表")] and "整数" in errors[(6, "参与人数")]
    assert "100" in errors[(7, "名称")] and "200" in errors[(7, "地点")] and "整数" in errors[(7, "参与人数")]
    assert "#999999" in errors[(7, "流动服务点")]
    assert not any(row == 2 for row, _ in errors)  # the good row has nothing said about it
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Activity)) == 0

    refused(await client.post("/api/v1/imports", data={"kind": "activities"}, headers=world.auth("coordinator"),
                              files={"file": ("活动.csv", "名称,地点\n一,二\n".encode(), "text/csv")}), 422)


# --- the pages ------------------------------------------------------------------------------------------


async def test_the_office_records_an_activity_on_its_pages_without_scripts(client, world, sessionmaker):
    token = await sign_in(client, "coordinator")
    new = await client.get("/office/activities/new", params={"workroom": "LS-02"})
    assert new.status_code == 200 and 'name="representative_ids" value="%d"' % world.representatives["rep2"].id in new.text
    assert 'value="%d"' % world.representatives["rep"].id not in new.text  # only that workroom's representatives

    form = {"csrf_token": token, "workroom_code": "LS-02", "kind": "visit", "title": "", "held_on": "9999-12-31",
            "attendance": "12", "public": "true", "representative_ids": str(world.representatives["rep2"].id)}
    bad = await client.post("/office/activities", data=form)
    assert bad.status_code == 422 and "请填写活动名称" in bad.text and 'value="12"' in bad.text
    form |= {"title": "石塘湾村走访", "held_on": DAY}
    made = await client.post("/office/activities", data=form)
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    async with transaction(sessionmaker) as session:
        activity = await session.scalar(select(Activity).where(Activity.title == "石塘湾村走访"))
    assert location == f"/office/activities/{activity.id}?saved=1" and activity.attendance == 12

    edit = await client.get(location)
    assert edit.status_code == 200 and "已保存" in edit.text and "石塘湾村走访" in edit.text
    changed = await client.post(f"/office/activities/{activity.id}", data=form | {"attendance": "100001"})
    assert changed.status_code == 422 and "100000" in changed.text
    photo = await client.post(f"/office/activities/{activity.id}/photos", data={"csrf_token": token},
                              files={"photos": ("p.jpg", jpeg(), "image/jpeg")})
    assert photo.status_code == 303
    listing = await client.get("/office/activities", params={"workroom": "LS-02", "from": "0001-01-01"})
    assert listing.status_code == 422 and "石塘湾村走访" in listing.text and "照片 1 张" in listing.text

    dashboard = await client.get("/office")
    assert 'id="activities-card"' in dashboard.text
    held_this_year = date.fromisoformat(DAY).year == TODAY.year
    assert f"开展活动 <b data-activity-count>{1 if held_this_year else 0}</b> 场" in dashboard.text

    confirm = await client.get(f"/office/activities/{activity.id}/delete")
    assert confirm.status_code == 200 and "确认删除" in confirm.text
    gone = await client.post(f"/office/activities/{activity.id}/delete", data={"csrf_token": token})
    assert gone.status_code == 303 and gone.headers["location"] == "/office/activities?deleted=1"
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(ActivityPhoto)) == 0


async def test_a_representative_sees_and_records_only_their_workrooms_on_the_pages(client, world):
    theirs = await create(client, world, workroom_code="LS-02", title="李代表的活动")
    token = await sign_in(client, "rep")
    listing = await client.get("/office/activities")
    assert listing.status_code == 200 and "李代表的活动" not in listing.text
    new = await client.get("/office/activities/new", params={"workroom": "LS-02"})
    assert new.status_code == 200 and 'data-workroom="LS-01"' in new.text  # not theirs to choose
    assert (await client.get(f"/office/activities/{theirs['id']}")).status_code == 403
    refused_post = await client.post("/office/activities", data={
        "csrf_token": token, "workroom_code": "LS-02", "kind": "visit", "title": "越权", "held_on": DAY})
    assert refused_post.status_code == 403
    await sign_in(client, "handler_a", fresh=True)
    assert (await client.get("/office/activities")).status_code == 403


async def test_the_public_list_and_the_form_fit_a_phone(live_server, sessionmaker, phone):  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    async with httpx.AsyncClient(base_url=live_server) as http:
        made = await http.post("/api/v1/activities", headers=world.auth("coordinator"), json=body(
            world, title="洛社菜场党代表集市服务暨“敬老月”政策宣传活动", account="现场收集意见十二份，" * 12,
            place="洛社镇人民路与新洛路交叉口菜市场东门停车场旁空地"))
        assert made.status_code == 201, made.text
        photo = await http.post(f"/api/v1/activities/{made.json()['id']}/photos", headers=world.auth("coordinator"),
                                files={"file": ("现场.jpg", jpeg((1600, 1200)), "image/jpeg")})
        assert photo.status_code == 201, photo.text
    page = await phone.new_page()
    await page.goto(f"{live_server}/w/LS-01/activities")
    thumb = page.locator("li.activity img").first
    await thumb.wait_for()
    # Loaded and decoded, served under the page's policy (waited for: the page may show before the image).
    await thumb.evaluate("img => img.decode()")
    assert await thumb.evaluate("img => img.complete && img.naturalWidth > 0")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, "activities-public")

    await page.goto(f"{live_server}/login?next=/office/activities/new")
    await page.fill("#username", "rep")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]:has-text('登录')")
    await page.wait_for_url("**/office/activities/new")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.fill("#f-title", "石塘湾村入户走访")
    await page.check(f"input[name=representative_ids][value='{world.representatives['rep'].id}']", force=True)
    await page.click("button[type=submit]:has-text('登记')")
    await page.wait_for_url("**/office/activities/*?saved=1")
    assert await page.locator("[data-saved]").is_visible()
    await screenshot(page, "activities-form")
