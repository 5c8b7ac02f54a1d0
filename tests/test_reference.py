"""Reference data: workrooms, representatives, handling units, categories (CONTRACT "Reference data").

Admins write; authenticated users read; categories are public.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.db import transaction
from app.models import Category, HandlingUnit, Representative, Workroom
from tests.factories import World, build_world
from tests.support.problems import PROBLEM_JSON, assert_problem

SEEDED_CATEGORIES = {
    "urban_traffic": ("城建交通", 15),
    "environment": ("环境卫生", 10),
    "public_security": ("社会治安", 5),
    "livelihood": ("民生保障", 10),
    "education_health": ("教育卫生", 10),
    "agriculture": ("农业农村", 15),
    "economy": ("经济发展", 15),
    "other": ("其他", 15),
}
WORKROOM = {"code": "LS-03", "name": "东街社区党代表工作室", "address": "洛社镇东街 8 号", "area": "第三网格"}


async def count(sessionmaker, model: type) -> int:
    async with transaction(sessionmaker) as session:
        return await session.scalar(select(func.count()).select_from(model))


async def create_workroom(client: httpx.AsyncClient, world: World, **fields: Any) -> httpx.Response:
    return await client.post("/api/v1/workrooms", json=WORKROOM | fields, headers=world.auth("admin"))


# --- workrooms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "coordinator", "handler_a", "rep"])
async def test_every_staff_role_lists_workrooms(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    response = await client.get("/api/v1/workrooms", headers=world.auth(who))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [w["code"] for w in body["items"]] == ["LS-01", "LS-02"]
    first = body["items"][0]
    assert first | {"latitude": None, "longitude": None} == {
        "code": "LS-01", "name": "镇区党代表工作室", "address": "洛社镇", "area": "第一网格", "active": True,
        "latitude": None, "longitude": None,
    }


async def test_anonymous_cannot_list_or_read_workrooms(client, sessionmaker):
    await build_world(sessionmaker)
    for path in ("/api/v1/workrooms", "/api/v1/workrooms/LS-01"):
        response = await client.get(path)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_admin_creates_a_workroom(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await create_workroom(client, world)
    assert response.status_code == 201, response.text
    assert response.json() | {"latitude": None, "longitude": None} == WORKROOM | {
        "active": True, "latitude": None, "longitude": None,
    }
    read = await client.get("/api/v1/workrooms/LS-03", headers=world.auth("rep"))
    assert read.status_code == 200
    assert read.json() == response.json()
    listed = (await client.get("/api/v1/workrooms", headers=world.auth("handler_a"))).json()["items"]
    assert [w["code"] for w in listed] == ["LS-01", "LS-02", "LS-03"]


async def test_workroom_defaults_address_area_and_active(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/workrooms", json={"code": "ab", "name": "小工作室"},
                                 headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["address"], body["area"], body["active"]) == ("", "", True)


@pytest.mark.parametrize("who", ["coordinator", "handler_a", "rep"])
async def test_only_admin_creates_workrooms(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/workrooms", json=WORKROOM, headers=world.auth(who))
    assert_problem(response, 403, "forbidden")
    assert await count(sessionmaker, Workroom) == 2


async def test_anonymous_cannot_create_workrooms(client, sessionmaker):
    await build_world(sessionmaker)
    assert_problem(await client.post("/api/v1/workrooms", json=WORKROOM), 401)
    assert await count(sessionmaker, Workroom) == 2


@pytest.mark.parametrize("code", ["ab", "LS-01a", "Z9", "a" * 32, "--", "0-0-0"])
async def test_valid_workroom_codes_are_accepted(client, sessionmaker, code):
    world = await build_world(sessionmaker)
    response = await create_workroom(client, world, code=code)
    assert response.status_code == 201, response.text
    assert response.json()["code"] == code
    assert (await client.get(f"/api/v1/workrooms/{code}", headers=world.auth("admin"))).status_code == 200


@pytest.mark.parametrize(
    "code",
    ["a", "", "LS_01", "a" * 33, "LS 01", "LS.01", "工作室", "LS-01\n", "LS/01", "ＬＳ01", None, 12],
    ids=["one-char", "empty", "underscore", "33-chars", "space", "dot", "chinese", "trailing-newline",
         "slash", "fullwidth", "null", "number"],
)
async def test_invalid_workroom_codes_are_422(client, sessionmaker, code):
    world = await build_world(sessionmaker)
    response = await create_workroom(client, world, code=code)
    problem = assert_problem(response, 422, "validation_error")
    assert any("code" in e["loc"] for e in problem["errors"]), problem
    assert await count(sessionmaker, Workroom) == 2


async def test_workroom_without_name_is_422(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/workrooms", json={"code": "LS-09"}, headers=world.auth("admin"))
    assert_problem(response, 422, "validation_error")
    response = await create_workroom(client, world, name="")
    assert_problem(response, 422, "validation_error")
    assert await count(sessionmaker, Workroom) == 2


async def test_duplicate_workroom_code_is_409(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await create_workroom(client, world, code="LS-01", name="另一个")
    assert_problem(response, 409, "workroom_exists")
    assert await count(sessionmaker, Workroom) == 2
    kept = (await client.get("/api/v1/workrooms/LS-01", headers=world.auth("admin"))).json()
    assert kept["name"] == "镇区党代表工作室"


async def test_unknown_workroom_is_404_problem(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.get("/api/v1/workrooms/LS-99", headers=world.auth("admin"))
    assert_problem(response, 404, "workroom_not_found")


async def test_workroom_codes_are_case_sensitive(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert_problem(await client.get("/api/v1/workrooms/ls-01", headers=world.auth("admin")), 404)


async def test_admin_patches_name_and_active_and_leaves_the_rest(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.patch("/api/v1/workrooms/LS-02", json={"name": "石塘湾工作室"},
                                  headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["code"], body["name"], body["address"], body["area"], body["active"]) == (
        "LS-02", "石塘湾工作室", "洛社镇", "第一网格", True)
    response = await client.patch("/api/v1/workrooms/LS-02", json={"active": False}, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["active"]) == ("石塘湾工作室", False)
    read = (await client.get("/api/v1/workrooms/LS-02", headers=world.auth("coordinator"))).json()
    assert (read["name"], read["active"], read["address"]) == ("石塘湾工作室", False, "洛社镇")


async def test_patch_with_empty_body_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    before = (await client.get("/api/v1/workrooms/LS-01", headers=world.auth("admin"))).json()
    response = await client.patch("/api/v1/workrooms/LS-01", json={}, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert response.json() == before


@pytest.mark.parametrize("who", ["coordinator", "handler_a", "rep"])
async def test_only_admin_patches_workrooms(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    response = await client.patch("/api/v1/workrooms/LS-01", json={"name": "改名", "active": False},
                                  headers=world.auth(who))
    assert_problem(response, 403, "forbidden")
    kept = (await client.get("/api/v1/workrooms/LS-01", headers=world.auth("admin"))).json()
    assert (kept["name"], kept["active"]) == ("镇区党代表工作室", True)


async def test_anonymous_cannot_patch_workrooms(client, sessionmaker):
    await build_world(sessionmaker)
    assert_problem(await client.patch("/api/v1/workrooms/LS-01", json={"name": "改名"}), 401)


async def test_patching_unknown_workroom_is_404(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.patch("/api/v1/workrooms/LS-99", json={"name": "新"}, headers=world.auth("admin"))
    assert_problem(response, 404, "workroom_not_found")
    assert await count(sessionmaker, Workroom) == 2


@pytest.mark.parametrize(
    "body", [{"name": None}, {"active": None}, {"address": None}, {"area": None}, {"name": ""}, {"active": "maybe"}],
    ids=["null-name", "null-active", "null-address", "null-area", "empty-name", "bad-active"],
)
async def test_patch_refuses_values_a_workroom_cannot_hold(client, sessionmaker, body):
    world = await build_world(sessionmaker)
    response = await client.patch("/api/v1/workrooms/LS-01", json=body, headers=world.auth("admin"))
    assert_problem(response, 422)
    kept = (await client.get("/api/v1/workrooms/LS-01", headers=world.auth("admin"))).json()
    assert (kept["name"], kept["active"], kept["address"], kept["area"]) == ("镇区党代表工作室", True, "洛社镇", "第一网格")


async def test_patch_cannot_change_the_code(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.patch("/api/v1/workrooms/LS-01", json={"code": "LS-77", "name": "新名"},
                                  headers=world.auth("admin"))
    assert response.status_code in (200, 422), response.text
    assert (await client.get("/api/v1/workrooms/LS-01", headers=world.auth("admin"))).status_code == 200
    assert_problem(await client.get("/api/v1/workrooms/LS-77", headers=world.auth("admin")), 404)


# --- representatives ---------------------------------------------------------------------------------


async def create_representative(client: httpx.AsyncClient, world: World, **fields: Any) -> httpx.Response:
    body = {"name": "王代表", "level": "city", "phone": "13600001111", "workroom_codes": ["LS-01", "LS-02"]} | fields
    return await client.post("/api/v1/representatives", json=body, headers=world.auth("admin"))


async def test_admin_creates_representative_with_workrooms(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await create_representative(client, world)
    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["id"], int)
    assert (body["name"], body["level"], body["phone"]) == ("王代表", "city", "13600001111")
    assert sorted(body["workroom_codes"]) == ["LS-01", "LS-02"]
    read = (await client.get(f"/api/v1/representatives/{body['id']}", headers=world.auth("coordinator"))).json()
    assert read == body
    on_ls02 = (await client.get("/api/v1/representatives?workroom=LS-02", headers=world.auth("admin"))).json()
    assert sorted(r["name"] for r in on_ls02["items"]) == ["李代表", "王代表"]


async def test_representative_level_defaults_to_town(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/representatives", json={"name": "赵代表"}, headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    assert (response.json()["level"], response.json()["workroom_codes"]) == ("town", [])


async def test_repeated_workroom_code_links_the_workroom_once(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await create_representative(client, world, workroom_codes=["LS-01", "LS-01"])
    assert response.status_code == 201, response.text
    assert response.json()["workroom_codes"] == ["LS-01"]


async def test_unknown_workroom_code_is_422_and_creates_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await create_representative(client, world, workroom_codes=["LS-01", "LS-99"])
    problem = assert_problem(response, 422, "unknown_workroom")
    assert "LS-99" in problem["detail"]
    assert await count(sessionmaker, Representative) == 2


@pytest.mark.parametrize("level", ["town", "district", "city", "province", "national"])
async def test_every_level_in_the_enum_is_accepted(client, sessionmaker, level):
    world = await build_world(sessionmaker)
    response = await create_representative(client, world, level=level)
    assert response.status_code == 201, response.text
    assert response.json()["level"] == level


@pytest.mark.parametrize("level", ["village", "Town", "", None, 3])
async def test_level_outside_the_enum_is_422(client, sessionmaker, level):
    world = await build_world(sessionmaker)
    problem = assert_problem(await create_representative(client, world, level=level), 422, "validation_error")
    assert any("level" in e["loc"] for e in problem["errors"]), problem
    assert await count(sessionmaker, Representative) == 2


@pytest.mark.parametrize(
    "change", [{"name": ""}, {"name": None}, {"phone": "call me"}, {"workroom_codes": "LS-01"}],
    ids=["empty-name", "null-name", "bad-phone", "codes-not-a-list"],
)
async def test_invalid_representative_bodies_are_422(client, sessionmaker, change):
    world = await build_world(sessionmaker)
    assert_problem(await create_representative(client, world, **change), 422, "validation_error")
    assert await count(sessionmaker, Representative) == 2


@pytest.mark.parametrize("who", ["coordinator", "handler_a", "rep"])
async def test_only_admin_creates_representatives(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/representatives", json={"name": "王代表"}, headers=world.auth(who))
    assert_problem(response, 403, "forbidden")
    assert await count(sessionmaker, Representative) == 2


async def test_anonymous_cannot_read_or_write_representatives(client, sessionmaker):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    assert_problem(await client.get("/api/v1/representatives"), 401)
    assert_problem(await client.get(f"/api/v1/representatives/{rep_id}"), 401)
    assert_problem(await client.post("/api/v1/representatives", json={"name": "王代表"}), 401)
    assert_problem(await client.patch(f"/api/v1/representatives/{rep_id}", json={"name": "改"}), 401)
    assert await count(sessionmaker, Representative) == 2


async def test_list_representatives_in_id_order_with_their_workrooms(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = (await client.get("/api/v1/representatives", headers=world.auth("admin"))).json()
    assert body["next_cursor"] is None
    assert [(r["id"], r["name"], r["level"], r["workroom_codes"]) for r in body["items"]] == [
        (world.representatives["rep"].id, "张代表", "town", ["LS-01"]),
        (world.representatives["rep2"].id, "李代表", "district", ["LS-02"]),
    ]


async def test_filter_representatives_by_workroom(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = (await client.get("/api/v1/representatives?workroom=LS-01", headers=world.auth("rep"))).json()
    assert [r["name"] for r in body["items"]] == ["张代表"]
    body = (await client.get("/api/v1/representatives?workroom=LS-99", headers=world.auth("rep"))).json()
    assert body["items"] == []


async def test_unknown_representative_is_404(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert_problem(await client.get("/api/v1/representatives/99999", headers=world.auth("admin")), 404,
                   "representative_not_found")
    assert_problem(await client.patch("/api/v1/representatives/99999", json={"name": "x"},
                                      headers=world.auth("admin")), 404, "representative_not_found")


@pytest.mark.parametrize("rep_id", ["abc", str(2**40)], ids=["not-a-number", "beyond-int32"])
async def test_representative_id_that_cannot_exist_is_a_client_error(client, sessionmaker, rep_id):
    world = await build_world(sessionmaker)
    response = await client.get(f"/api/v1/representatives/{rep_id}", headers=world.auth("admin"))
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_patch_replaces_the_workrooms_of_a_representative(client, sessionmaker):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    response = await client.patch(f"/api/v1/representatives/{rep_id}", json={"workroom_codes": ["LS-02"]},
                                  headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["workroom_codes"] == ["LS-02"]
    assert (body["name"], body["level"], body["phone"]) == ("张代表", "town", "13812345678")
    on_ls01 = (await client.get("/api/v1/representatives?workroom=LS-01", headers=world.auth("admin"))).json()
    assert on_ls01["items"] == []
    read = (await client.get(f"/api/v1/representatives/{rep_id}", headers=world.auth("admin"))).json()
    assert read["workroom_codes"] == ["LS-02"]


async def test_patch_without_workroom_codes_keeps_them(client, sessionmaker):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    response = await client.patch(f"/api/v1/representatives/{rep_id}", json={"level": "city", "name": "张三代表"},
                                  headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["level"], body["workroom_codes"]) == ("张三代表", "city", ["LS-01"])


async def test_patch_with_unknown_workroom_code_is_422_and_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    response = await client.patch(f"/api/v1/representatives/{rep_id}",
                                  json={"name": "改名", "workroom_codes": ["LS-02", "NOPE"]},
                                  headers=world.auth("admin"))
    assert_problem(response, 422, "unknown_workroom")
    read = (await client.get(f"/api/v1/representatives/{rep_id}", headers=world.auth("admin"))).json()
    assert (read["name"], read["workroom_codes"]) == ("张代表", ["LS-01"])


@pytest.mark.parametrize(
    "body", [{"name": None}, {"level": None}, {"level": "village"}, {"active": None}],
    ids=["null-name", "null-level", "bad-level", "null-active"],
)
async def test_patch_refuses_values_a_representative_cannot_hold(client, sessionmaker, body):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    response = await client.patch(f"/api/v1/representatives/{rep_id}", json=body, headers=world.auth("admin"))
    assert_problem(response, 422)
    read = (await client.get(f"/api/v1/representatives/{rep_id}", headers=world.auth("admin"))).json()
    assert (read["name"], read["level"], read["active"]) == ("张代表", "town", True)


@pytest.mark.parametrize("who", ["coordinator", "handler_a", "rep"])
async def test_only_admin_patches_representatives(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    response = await client.patch(f"/api/v1/representatives/{rep_id}", json={"workroom_codes": []},
                                  headers=world.auth(who))
    assert_problem(response, 403, "forbidden")
    read = (await client.get(f"/api/v1/representatives/{rep_id}", headers=world.auth("admin"))).json()
    assert read["workroom_codes"] == ["LS-01"]


@pytest.mark.parametrize("who", ["handler_a", "rep", "rep2"])
async def test_phone_is_masked_for_handlers_and_representatives(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    listed = (await client.get("/api/v1/representatives", headers=world.auth(who))).json()["items"]
    assert [r["phone"] for r in listed] == ["138****5678", "139****4321"]
    one = (await client.get(f"/api/v1/representatives/{rep_id}", headers=world.auth(who))).json()
    assert one["phone"] == "138****5678"
    assert "13812345678" not in (await client.get("/api/v1/representatives", headers=world.auth(who))).text


@pytest.mark.parametrize("who", ["admin", "coordinator"])
async def test_phone_is_whole_for_admin_and_coordinator(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    listed = (await client.get("/api/v1/representatives", headers=world.auth(who))).json()["items"]
    assert [r["phone"] for r in listed] == ["13812345678", "13987654321"]
    one = (await client.get(f"/api/v1/representatives/{rep_id}", headers=world.auth(who))).json()
    assert one["phone"] == "13812345678"


async def test_representative_without_phone_reads_as_null_for_everyone(client, sessionmaker):
    world = await build_world(sessionmaker)
    created = (await client.post("/api/v1/representatives", json={"name": "无电话代表"},
                                 headers=world.auth("admin"))).json()
    for who in ("admin", "handler_a"):
        one = (await client.get(f"/api/v1/representatives/{created['id']}", headers=world.auth(who))).json()
        assert one["phone"] is None


# --- handling units ----------------------------------------------------------------------------------


async def test_staff_list_units_in_id_order(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.get("/api/v1/units", headers=world.auth("handler_b"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [(u["id"], u["name"]) for u in body["items"]] == [
        (world.units["A"].id, "镇城建办"), (world.units["B"].id, "镇生态环境办"),
    ]


async def test_anonymous_cannot_list_or_create_units(client, sessionmaker):
    await build_world(sessionmaker)
    assert_problem(await client.get("/api/v1/units"), 401)
    assert_problem(await client.post("/api/v1/units", json={"name": "镇农业农村局"}), 401)
    assert await count(sessionmaker, HandlingUnit) == 2


async def test_admin_creates_a_unit_that_handlers_can_then_be_bound_to(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/units", json={"name": "镇农业农村局"}, headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    unit = response.json()
    assert unit["name"] == "镇农业农村局"
    listed = (await client.get("/api/v1/units", headers=world.auth("admin"))).json()["items"]
    assert unit["id"] in [u["id"] for u in listed]
    user = await client.post("/api/v1/users", headers=world.auth("admin"), json={
        "username": "farm_clerk", "password": "a-long-password", "role": "handler", "unit_id": unit["id"]})
    assert user.status_code == 201, user.text


@pytest.mark.parametrize("who", ["coordinator", "handler_a", "rep"])
async def test_only_admin_creates_units(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/units", json={"name": "镇农业农村局"}, headers=world.auth(who))
    assert_problem(response, 403, "forbidden")
    assert await count(sessionmaker, HandlingUnit) == 2


async def test_duplicate_unit_name_is_409(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/units", json={"name": "镇城建办"}, headers=world.auth("admin"))
    assert_problem(response, 409, "unit_exists")
    assert await count(sessionmaker, HandlingUnit) == 2


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": None}, {"name": "办" * 101}],
                         ids=["missing", "empty", "null", "too-long"])
async def test_invalid_unit_bodies_are_422(client, sessionmaker, body):
    world = await build_world(sessionmaker)
    assert_problem(await client.post("/api/v1/units", json=body, headers=world.auth("admin")), 422, "validation_error")
    assert await count(sessionmaker, HandlingUnit) == 2


# --- categories --------------------------------------------------------------------------------------


async def test_categories_are_public_and_list_the_seeded_chinese_categories(client):
    response = await client.get("/api/v1/categories")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert {c["code"]: (c["name"], c["due_days"]) for c in items} == SEEDED_CATEGORIES
    assert [c["code"] for c in items] == list(SEEDED_CATEGORIES)
    first = items[0]
    assert (first["code"], first["name"], first["due_days"], first["active"]) == ("urban_traffic", "城建交通", 15, True)
    # Every seeded category carries a description and keywords (Open311 shows them to clients).
    assert all(c["description"] and c["keywords"] for c in items)
    assert "路灯" in first["keywords"].split(",")


async def test_categories_read_the_same_with_a_token(client, sessionmaker):
    world = await build_world(sessionmaker)
    anonymous = (await client.get("/api/v1/categories")).json()
    assert (await client.get("/api/v1/categories", headers=world.auth("rep"))).json() == anonymous


async def test_admin_creates_a_category_listed_after_the_seeded_ones(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = {"code": "water_supply", "name": "供水排水", "due_days": 7}
    response = await client.post("/api/v1/categories", json=body, headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    expected = {**body, "description": "", "keywords": "", "active": True}
    assert response.json() == expected
    items = (await client.get("/api/v1/categories")).json()["items"]
    assert items[-1] == expected
    assert len(items) == len(SEEDED_CATEGORIES) + 1


async def test_admin_changes_a_category_description_keywords_and_deactivates_it(client, sessionmaker):
    world = await build_world(sessionmaker)
    change = {"description": "自来水、污水管网方面的意见。", "keywords": "自来水,水压,污水"}
    response = await client.patch("/api/v1/categories/environment", json=change, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["description"] == change["description"]
    assert response.json()["name"] == "环境卫生"  # untouched
    listed = {c["code"]: c for c in (await client.get("/api/v1/categories")).json()["items"]}
    assert listed["environment"]["keywords"] == "自来水,水压,污水"
    response = await client.patch("/api/v1/categories/environment", json={"active": False}, headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert "environment" not in {c["code"] for c in (await client.get("/api/v1/categories")).json()["items"]}


async def test_only_admins_change_categories_and_only_existing_ones(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.patch("/api/v1/categories/environment", json={"name": "x"}, headers=world.auth("coordinator"))
    assert response.status_code == 403, response.text
    response = await client.patch("/api/v1/categories/nope", json={"name": "x"}, headers=world.auth("admin"))
    assert response.status_code == 404 and response.json()["code"] == "category_not_found"
    response = await client.patch("/api/v1/categories/environment", json={"name": None}, headers=world.auth("admin"))
    assert response.status_code == 422, response.text
    listed = {c["code"]: c for c in (await client.get("/api/v1/categories")).json()["items"]}
    assert listed["environment"]["name"] == "环境卫生"


async def test_category_due_days_default_to_15(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/categories", json={"code": "culture", "name": "文化体育"},
                                 headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    assert response.json()["due_days"] == 15


async def test_anonymous_cannot_create_categories(client, sessionmaker):
    await build_world(sessionmaker)
    response = await client.post("/api/v1/categories", json={"code": "culture", "name": "文化体育"})
    assert_problem(response, 401)
    assert await count(sessionmaker, Category) == len(SEEDED_CATEGORIES)


@pytest.mark.parametrize("who", ["coordinator", "handler_a", "rep"])
async def test_only_admin_creates_categories(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/categories", json={"code": "culture", "name": "文化体育"},
                                 headers=world.auth(who))
    assert_problem(response, 403, "forbidden")
    assert await count(sessionmaker, Category) == len(SEEDED_CATEGORIES)


async def test_duplicate_category_code_is_409(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/categories", json={"code": "urban_traffic", "name": "重复", "due_days": 3},
                                 headers=world.auth("admin"))
    assert_problem(response, 409, "category_exists")
    items = (await client.get("/api/v1/categories")).json()["items"]
    assert {(c["code"], c["name"], c["due_days"]) for c in items} >= {("urban_traffic", "城建交通", 15)}
    assert await count(sessionmaker, Category) == len(SEEDED_CATEGORIES)


@pytest.mark.parametrize(
    "change",
    [{"code": "Culture"}, {"code": "c"}, {"code": "cul-ture"}, {"name": ""}, {"due_days": 0},
     {"due_days": 366}, {"due_days": "soon"}],
    ids=["uppercase-code", "short-code", "dash-code", "empty-name", "zero-days", "too-many-days", "text-days"],
)
async def test_invalid_category_bodies_are_422(client, sessionmaker, change):
    world = await build_world(sessionmaker)
    body = {"code": "culture", "name": "文化体育", "due_days": 10} | change
    response = await client.post("/api/v1/categories", json=body, headers=world.auth("admin"))
    assert_problem(response, 422, "validation_error")
    assert await count(sessionmaker, Category) == len(SEEDED_CATEGORIES)


async def test_nul_character_in_workroom_name_is_422_on_every_engine(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert_problem(await create_workroom(client, world, name="工作\x00室"), 422)
    response = await client.patch("/api/v1/workrooms/LS-01", json={"name": "工作\x00室"}, headers=world.auth("admin"))
    assert_problem(response, 422)
    assert await count(sessionmaker, Workroom) == 2


# --- pages, added with the limit/cursor support on reference lists ----------------------------------


async def test_reference_lists_page_with_limit_and_cursor(client, sessionmaker):
    world = await build_world(sessionmaker)
    for n in range(3, 8):
        response = await client.post("/api/v1/workrooms", json={"code": f"LS-{n:02d}", "name": f"工作室{n}"},
                                     headers=world.auth("admin"))
        assert response.status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/workrooms", params=params, headers=world.auth("admin"))).json()
        assert len(page["items"]) <= 3
        seen += [w["code"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 7


async def test_reference_list_limit_over_200_and_bad_cursor_are_422(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert (await client.get("/api/v1/units?limit=201", headers=world.auth("admin"))).status_code == 422
    bad = await client.get("/api/v1/categories?cursor=not-a-cursor")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"


async def test_patch_representative_with_null_workroom_codes_is_422_and_changes_nothing(client, sessionmaker):
    world = await build_world(sessionmaker)
    rep_id = world.representatives["rep"].id
    response = await client.patch(f"/api/v1/representatives/{rep_id}", json={"workroom_codes": None},
                                  headers=world.auth("admin"))
    assert response.status_code == 422
    after = (await client.get(f"/api/v1/representatives/{rep_id}", headers=world.auth("admin"))).json()
    assert after["workroom_codes"] == ["LS-01"]
