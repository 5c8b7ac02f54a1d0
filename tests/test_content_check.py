"""WeChat's msgSecCheck on what residents send through the mini-program (services/content_check.py):
risky text is refused, text WeChat wants reviewed is flagged for the office, and a form is never lost
because WeChat could not be asked.

Every test runs on SQLite and on PostgreSQL, against the fake WeChat (tests/fake_wechat.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db import transaction
from tests.support.apps import build_app
from app.models import OpinionForm
from tests.conftest import wechat_settings
from tests.factories import build_world
from tests.fake_wechat import MSG_SEC_CHECK, FakeWeChat
from tests.support.logins import wechat_login
from tests.support.problems import assert_problem
from tests.test_wechat_residents import TEMPLATE

FORMS = "/api/v1/forms"
BODY = {"content": "村口路灯坏了三盏，晚上走路看不清，请尽快修复。", "category": "urban_traffic"}


@pytest.fixture
def settings(db_url: str, fake_wechat: FakeWeChat) -> Settings:
    return wechat_settings(db_url, fake_wechat, wechat_reply_template_id=TEMPLATE, wechat_content_check=True,
                           worker_in_process=False, supervise_interval_seconds=0)


async def form_count(sessionmaker: Any) -> int:
    async with transaction(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


async def stored_check(sessionmaker: Any, form_id: int) -> tuple[str | None, dict[str, Any] | None]:
    async with transaction(sessionmaker) as session:
        form = await session.get(OpinionForm, form_id)
        assert form is not None
        return form.review_flag, form.content_check


async def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


async def test_risky_text_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    fake_wechat.risky_words.add("违禁词")

    body = assert_problem(await client.post(FORMS, json={**BODY, "content": "这里有违禁词。"}, headers=alice),
                          422, "content_risky")

    assert "微信内容安全" in body["detail"] and body["label"] == 20001
    assert await form_count(sessionmaker) == 0


async def test_the_location_and_name_are_checked_too(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    fake_wechat.risky_words.add("违禁词")

    for extra in ({"location": "违禁词路"}, {"submitter_name": "违禁词"}):
        assert_problem(await client.post(FORMS, json={**BODY, **extra}, headers=alice), 422, "content_risky")

    assert await form_count(sessionmaker) == 0


async def test_passing_text_is_accepted_unflagged_with_wechats_verdict_kept(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")

    form = await created(await client.post(FORMS, json={**BODY, "location": "村口", "submitter_name": "王阿姨"},
                                           headers=alice))

    assert form["review_flag"] is None
    flag, check = await stored_check(sessionmaker, form["id"])
    assert flag is None and check is not None
    assert check["suggest"] == "pass" and check["label"] == 100 and check["trace_id"]
    (call,) = fake_wechat.calls_to(MSG_SEC_CHECK)
    assert call["openid"] == "o_alice" and call["scene"] == 2 and call["version"] == 2
    assert BODY["content"] in call["content"] and "村口" in call["content"] and "王阿姨" in call["content"]


async def test_text_for_review_is_accepted_and_flagged_for_the_office(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    fake_wechat.review_words.add("敏感")
    plain = await created(await client.post(FORMS, json=BODY, headers=alice))

    form = await created(await client.post(FORMS, json={**BODY, "content": "有点敏感的意见。"}, headers=alice))

    assert form["review_flag"] == "content_review"
    flag, check = await stored_check(sessionmaker, form["id"])
    assert flag == "content_review" and check is not None and check["suggest"] == "review" and check["label"] == 21000
    flagged = await client.get(FORMS, params={"review": "true"}, headers=world.auth("coordinator"))
    assert flagged.status_code == 200, flagged.text
    assert [(item["id"], item["review_flag"]) for item in flagged.json()["items"]] == [(form["id"], "content_review")]
    unflagged = await client.get(FORMS, params={"review": "false"}, headers=world.auth("coordinator"))
    assert [item["id"] for item in unflagged.json()["items"]] == [plain["id"]]


async def test_review_with_an_idempotency_key_is_flagged_and_replayed_alike(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    fake_wechat.review_words.add("敏感")
    headers = {**alice, "Idempotency-Key": "wx-form-1"}
    body = {**BODY, "content": "有点敏感的意见。"}

    first = await created(await client.post(FORMS, json=body, headers=headers))
    again = await created(await client.post(FORMS, json=body, headers=headers))

    assert first["review_flag"] == "content_review" and again["id"] == first["id"]
    assert await form_count(sessionmaker) == 1


async def test_wechat_down_accepts_the_form_flagged_check_unavailable(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    fake_wechat.down = True

    form = await created(await client.post(FORMS, json=BODY, headers=alice))

    assert form["review_flag"] == "check_unavailable" and form["channel"] == "wechat"
    assert await stored_check(sessionmaker, form["id"]) == ("check_unavailable", {"error": "unavailable"})


async def test_a_resident_wechat_will_not_check_is_accepted_flagged_with_the_errcode(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    alice = await wechat_login(client, fake_wechat, "o_alice")
    fake_wechat.stale_users.add("o_alice")  # 61010: not in the mini-program within the last two hours

    form = await created(await client.post(FORMS, json=BODY, headers=alice))

    flag, check = await stored_check(sessionmaker, form["id"])
    assert flag == "check_unavailable" and check is not None and check["error"] == 61010
    assert form["review_flag"] == "check_unavailable"


async def test_only_what_residents_send_through_wechat_is_checked(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    fake_wechat.risky_words.add("违禁词")
    body = {**BODY, "content": "这里有违禁词。"}

    anonymous = await created(await client.post(FORMS, json=body))
    entered = await created(await client.post(FORMS, json=body, headers=world.auth("rep")))

    assert anonymous["review_flag"] is None and entered["review_flag"] is None
    assert fake_wechat.count(MSG_SEC_CHECK) == 0


async def test_with_the_check_off_residents_text_is_not_sent_to_wechat(
    db_url: str, fake_wechat: FakeWeChat
) -> None:
    app = build_app(wechat_settings(db_url, fake_wechat, wechat_content_check=False))
    fake_wechat.risky_words.add("违禁词")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            alice = await wechat_login(http, fake_wechat, "o_alice")
            form = await created(await http.post(FORMS, json={**BODY, "content": "这里有违禁词。"}, headers=alice))
    finally:
        await app.state.wechat.aclose()
        await app.state.engine.dispose()

    assert form["review_flag"] is None and form["channel"] == "wechat"
    assert fake_wechat.count(MSG_SEC_CHECK) == 0
