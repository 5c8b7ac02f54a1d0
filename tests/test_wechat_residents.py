"""Residents through the WeChat mini-program: login by wx.login() code, "my forms", notice credits
(CONTRACT "WeChat and integrators").

Every test runs on SQLite and on PostgreSQL, against the fake WeChat (tests/fake_wechat.py), a real HTTP
server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from app.config import Settings
from app.db import transaction
from tests.support.apps import build_app
from app.models import Resident, ResidentToken
from tests.conftest import make_settings, wechat_settings
from tests.factories import act, build_world, submit
from tests.fake_wechat import CODE2SESSION, FakeWeChat
from tests.support.logins import wechat_login
from tests.support.problems import assert_problem

LOGIN = "/api/v1/wechat/login"
MY_FORMS = "/api/v1/me/forms"
SUBSCRIPTIONS = "/api/v1/me/subscriptions"
TEMPLATE = "TPL"


@pytest.fixture
def settings(db_url: str, fake_wechat: FakeWeChat, tmp_path: Path) -> Settings:
    return wechat_settings(db_url, fake_wechat, wechat_reply_template_id=TEMPLATE, worker_in_process=False,
                           supervise_interval_seconds=0, photo_dir=tmp_path / "photos")


# --- helpers -----------------------------------------------------------------------------------------


async def resident_count(sessionmaker: Any) -> int:
    async with transaction(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(Resident)) or 0)


async def resident_of(sessionmaker: Any, openid: str) -> Resident:
    async with transaction(sessionmaker) as session:
        resident = await session.scalar(select(Resident).where(Resident.openid == openid))
        assert resident is not None
        return resident


# --- login -------------------------------------------------------------------------------------------


async def test_login_creates_the_resident_and_returns_a_working_token(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any, settings: Settings
) -> None:
    response = await client.post(LOGIN, json={"code": fake_wechat.issue_code("o_alice", "u_alice")})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.resident_token_ttl_seconds
    assert body["access_token"].startswith("wx_")
    assert "session_key" not in response.text and fake_wechat.session_keys["o_alice"] not in response.text
    resident = await resident_of(sessionmaker, "o_alice")
    assert resident.unionid == "u_alice" and resident.active and resident.last_login_at is not None
    mine = await client.get(MY_FORMS, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert mine.status_code == 200, mine.text
    assert mine.json() == {"items": [], "next_cursor": None}


async def test_a_returning_resident_is_the_same_resident_with_a_new_token(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    first = await wechat_login(client, fake_wechat, "o_alice", "u_alice")
    before = await resident_of(sessionmaker, "o_alice")
    second = await wechat_login(client, fake_wechat, "o_alice")  # no unionid this time: the known one is kept

    assert first != second
    assert await resident_count(sessionmaker) == 1
    after = await resident_of(sessionmaker, "o_alice")
    assert after.id == before.id and after.unionid == "u_alice"
    assert after.last_login_at is not None and before.last_login_at is not None
    assert after.last_login_at >= before.last_login_at
    async with transaction(sessionmaker) as session:
        tokens = await session.scalar(select(func.count()).select_from(ResidentToken)
                                      .where(ResidentToken.resident_id == after.id))
    assert tokens == 2
    for headers in (first, second):
        assert (await client.get(MY_FORMS, headers=headers)).status_code == 200


async def test_two_first_logins_of_one_openid_at_once_make_one_resident(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    codes = [fake_wechat.issue_code("o_new") for _ in range(4)]

    responses = await asyncio.gather(*(client.post(LOGIN, json={"code": code}) for code in codes))

    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert await resident_count(sessionmaker) == 1


async def test_a_used_code_is_401_with_wechats_errcode(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    code = fake_wechat.issue_code("o_alice")
    assert (await client.post(LOGIN, json={"code": code})).status_code == 200

    body = assert_problem(await client.post(LOGIN, json={"code": code}), 401, "wechat_login_failed")

    assert "40163" in body["detail"] and body["errcode"] == 40163
    assert await resident_count(sessionmaker) == 1


async def test_an_unknown_code_is_401_40029_and_creates_nobody(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    body = assert_problem(await client.post(LOGIN, json={"code": "not-a-code"}), 401, "wechat_login_failed")

    assert "40029" in body["detail"] and body["errcode"] == 40029
    assert await resident_count(sessionmaker) == 0


async def test_a_blocked_user_is_401_40226(client: httpx.AsyncClient, fake_wechat: FakeWeChat) -> None:
    fake_wechat.blocked_users.add("o_risky")

    body = assert_problem(await client.post(LOGIN, json={"code": fake_wechat.issue_code("o_risky")}), 401,
                          "wechat_login_failed")

    assert body["errcode"] == 40226


async def test_wechat_down_is_503_and_creates_nobody(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    code = fake_wechat.issue_code("o_alice")
    fake_wechat.down = True

    assert_problem(await client.post(LOGIN, json={"code": code}), 503, "wechat_unavailable")

    assert await resident_count(sessionmaker) == 0
    assert fake_wechat.count(CODE2SESSION) == 1


async def test_a_wrong_app_secret_is_502_not_the_residents_fault(db_url: str, fake_wechat: FakeWeChat) -> None:
    app = build_app(wechat_settings(db_url, fake_wechat, wechat_app_secret="wrong-secret"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            response = await http.post(LOGIN, json={"code": fake_wechat.issue_code("o_alice")})
    finally:
        await app.state.wechat.aclose()
        await app.state.engine.dispose()

    body = assert_problem(response, 502, "wechat_misconfigured")
    assert body["errcode"] == 40125 and "wrong-secret" not in response.text


async def test_wechat_not_configured_is_503(db_url: str, fake_wechat: FakeWeChat) -> None:
    app = build_app(make_settings(db_url))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            response = await http.post(LOGIN, json={"code": fake_wechat.issue_code("o_alice")})
    finally:
        await app.state.engine.dispose()

    assert_problem(response, 503, "wechat_not_configured")
    assert fake_wechat.calls == []


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 129}, {"code": 12}, {"code": "a\x00b"}, []])
async def test_a_bad_login_body_is_422_and_wechat_is_not_asked(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, body: Any
) -> None:
    response = await client.post(LOGIN, json=body)

    assert_problem(response, 422, "validation_error")
    assert fake_wechat.calls == []


async def test_a_login_body_that_is_not_json_is_422(client: httpx.AsyncClient, fake_wechat: FakeWeChat) -> None:
    response = await client.post(LOGIN, content=b"code=abc", headers={"Content-Type": "application/json"})

    assert_problem(response, 422, "validation_error")


# --- my forms ----------------------------------------------------------------------------------------


async def test_forms_posted_with_a_residents_token_are_theirs_only(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    bob = await wechat_login(client, fake_wechat, "o_bob")
    mine = await submit(client, alice, location="村口", submitter_name="王阿姨")
    await submit(client)  # an anonymous form: nobody's
    resident = await resident_of(sessionmaker, "o_alice")

    assert mine["channel"] == "wechat" and mine["resident_id"] == resident.id
    listed = (await client.get(MY_FORMS, headers=alice)).json()
    assert [item["id"] for item in listed["items"]] == [mine["id"]]
    item = listed["items"][0]
    assert item["tracking_no"] == mine["tracking_no"]
    assert item["status"] == "submitted" and item["status_label"] == "已收集"
    assert item["content"] == mine["content"] and item["category"] == "urban_traffic"
    assert item["channel"] == "wechat" and item["location"] == "村口" and item["reply"] is None
    assert item["photo_ids"] == []
    assert [step["type"] for step in item["timeline"]] == ["submitted"]
    assert "submitter_phone" not in item and "verification_code" not in item
    assert (await client.get(MY_FORMS, headers=bob)).json() == {"items": [], "next_cursor": None}
    one = await client.get(f"{MY_FORMS}/{mine['id']}", headers=alice)
    assert one.status_code == 200 and one.json() == item


async def test_my_forms_carry_the_ids_of_their_photos(client: httpx.AsyncClient, fake_wechat: FakeWeChat) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    form = await submit(client, alice)
    image = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image, format="PNG")
    uploaded = await client.post(f"/api/v1/forms/{form['id']}/photos", headers=alice,
                                 files={"file": ("lamp.png", image.getvalue(), "image/png")})
    assert uploaded.status_code == 201, uploaded.text

    item = (await client.get(f"{MY_FORMS}/{form['id']}", headers=alice)).json()

    assert item["photo_ids"] == [uploaded.json()["id"]]


async def test_another_residents_form_is_the_same_404_as_an_unknown_one(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    bob = await wechat_login(client, fake_wechat, "o_bob")
    form = await submit(client, alice)

    theirs = assert_problem(await client.get(f"{MY_FORMS}/{form['id']}", headers=bob), 404, "form_not_found")
    unknown = assert_problem(await client.get(f"{MY_FORMS}/{form['id'] + 1000}", headers=bob), 404, "form_not_found")

    assert theirs.keys() == unknown.keys()
    assert theirs["title"] == unknown["title"]
    assert_problem(await client.get(f"{MY_FORMS}/0", headers=bob), 422, "validation_error")


async def test_my_forms_refuse_staff_api_clients_and_anonymous(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)

    for path in (MY_FORMS, f"{MY_FORMS}/1", SUBSCRIPTIONS):
        assert_problem(await client.get(path, headers=world.auth("coordinator")), 403, "residents_only")
        assert_problem(await client.get(path), 401, "login_required")
        assert_problem(await client.get(path, headers={"Authorization": "Bearer wx_forged"}), 401, "invalid_token")
    assert_problem(await client.post(SUBSCRIPTIONS, json={"template_id": TEMPLATE, "accepted": 1},
                                     headers=world.auth("admin")), 403, "residents_only")


async def test_the_timeline_shows_the_case_and_never_the_offices_notes(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    form = await submit(client, alice)
    await expect_ok(act(client, world, "coordinator", form["id"], "assign",
                        {"unit_id": world.units["A"].id, "instructions": "批办意见：请城建办核实"}))
    await expect_ok(act(client, world, "coordinator", form["id"], "notes", {"note": "内部备注：此人多次反映"}))
    await expect_ok(act(client, world, "handler_a", form["id"], "reply",
                        {"reply": "已更换路灯。", "internal_note": "内部：费用走村账"}))

    response = await client.get(f"{MY_FORMS}/{form['id']}", headers=alice)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "answered" and body["reply"] == "已更换路灯。" and body["answered_at"]
    assert [step["type"] for step in body["timeline"]] == ["submitted", "assigned", "answered"]
    assert body["timeline"][-1]["note"] == "已更换路灯。"
    for secret in ("批办意见", "内部备注", "内部：费用"):
        assert secret not in response.text


async def expect_ok(action: Any) -> dict[str, Any]:
    response = await action
    assert response.status_code == 200, response.text
    return response.json()


async def test_my_forms_page_newest_first_with_a_cursor(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    ids = [(await submit(client, alice, content=f"第{n}条意见"))["id"] for n in range(3)]

    first = (await client.get(MY_FORMS, params={"limit": 2}, headers=alice)).json()
    second = (await client.get(MY_FORMS, params={"limit": 2, "cursor": first["next_cursor"]}, headers=alice)).json()

    assert [item["id"] for item in first["items"]] == [ids[2], ids[1]]
    assert first["next_cursor"]
    assert [item["id"] for item in second["items"]] == [ids[0]] and second["next_cursor"] is None
    assert_problem(await client.get(MY_FORMS, params={"cursor": "garbage"}, headers=alice), 422, "invalid_cursor")
    assert_problem(await client.get(MY_FORMS, params={"limit": 201}, headers=alice), 422, "validation_error")


# --- notice credits ----------------------------------------------------------------------------------


async def test_reported_accepts_add_up_per_template(client: httpx.AsyncClient, fake_wechat: FakeWeChat) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    bob = await wechat_login(client, fake_wechat, "o_bob")

    assert (await client.get(SUBSCRIPTIONS, headers=alice)).json() == {"items": []}
    await expect_ok(client.post(SUBSCRIPTIONS, json={"template_id": TEMPLATE, "accepted": 2}, headers=alice))
    await expect_ok(client.post(SUBSCRIPTIONS, json={"template_id": "OTHER_tpl-1", "accepted": 1}, headers=alice))
    last = await expect_ok(client.post(SUBSCRIPTIONS, json={"template_id": TEMPLATE, "accepted": 3}, headers=alice))
    await expect_ok(client.post(SUBSCRIPTIONS, json={"template_id": TEMPLATE, "accepted": 1}, headers=bob))

    expected = {"items": [{"template_id": "OTHER_tpl-1", "credits": 1}, {"template_id": TEMPLATE, "credits": 5}]}
    assert last == expected
    assert (await client.get(SUBSCRIPTIONS, headers=alice)).json() == expected
    assert (await client.get(SUBSCRIPTIONS, headers=bob)).json() == {"items": [{"template_id": TEMPLATE, "credits": 1}]}
    zero = await expect_ok(client.post(SUBSCRIPTIONS, json={"template_id": TEMPLATE, "accepted": 0}, headers=alice))
    assert zero == expected


async def test_concurrent_reports_all_count(client: httpx.AsyncClient, fake_wechat: FakeWeChat) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")

    responses = await asyncio.gather(*(
        client.post(SUBSCRIPTIONS, json={"template_id": TEMPLATE, "accepted": 1}, headers=alice) for _ in range(6)
    ))

    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    expected = {"items": [{"template_id": TEMPLATE, "credits": 6}]}
    assert (await client.get(SUBSCRIPTIONS, headers=alice)).json() == expected


@pytest.mark.parametrize("body", [
    {"template_id": TEMPLATE, "accepted": -1},
    {"template_id": TEMPLATE, "accepted": 51},
    {"template_id": TEMPLATE},
    {"template_id": "", "accepted": 1},
    {"template_id": "has space", "accepted": 1},
    {"template_id": "x" * 129, "accepted": 1},
    {"accepted": 1},
    {"template_id": TEMPLATE, "accepted": "many"},
])
async def test_a_bad_report_is_422_and_changes_nothing(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, body: dict[str, Any]
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")

    assert_problem(await client.post(SUBSCRIPTIONS, json=body, headers=alice), 422, "validation_error")

    assert (await client.get(SUBSCRIPTIONS, headers=alice)).json() == {"items": []}


async def test_a_disabled_resident_cannot_log_in_and_its_tokens_stop_working(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    async with transaction(sessionmaker) as session:
        resident = await session.scalar(select(Resident).where(Resident.openid == "o_alice"))
        assert resident is not None
        resident.active = False

    assert_problem(await client.post(LOGIN, json={"code": fake_wechat.issue_code("o_alice")}), 403, "resident_disabled")
    assert_problem(await client.get(MY_FORMS, headers=alice), 401, "invalid_token")
