"""Reply notices to WeChat residents (services/notices.py): written with the answer, sent by the worker
with one credit each, values fitted to WeChat's rules, and never sent twice.

Every database test runs on SQLite and on PostgreSQL, against the fake WeChat (tests/fake_wechat.py),
which checks each value against WeChat's rules and counts its own credits, as WeChat does.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.config import TZ, Settings
from app.db import transaction
from app.models import NoticeStatus, WechatNotice
from app.services import notices
from app.services.wechat import WeChatClient
from tests.conftest import wechat_settings
from tests.factories import World, act, build_world, submit
from tests.fake_wechat import SUBSCRIBE_SEND, VALUE_RULES, FakeWeChat
from tests.support.logins import wechat_login
from tests.test_wechat_residents import SUBSCRIPTIONS, TEMPLATE

LONG_REPLY = "经城建办现场核实，村口三盏路灯线路老化，已于本周更换全部线路和灯具，并新增一盏太阳能路灯。"


@pytest.fixture
def settings(db_url: str, fake_wechat: FakeWeChat) -> Settings:
    return wechat_settings(db_url, fake_wechat, wechat_reply_template_id=TEMPLATE, worker_in_process=False,
                           supervise_interval_seconds=0)


# --- helpers -----------------------------------------------------------------------------------------


async def ok(action: Any) -> dict[str, Any]:
    response = await action
    assert response.status_code == 200, response.text
    return response.json()


async def answered(
    client: httpx.AsyncClient, world: World, headers: dict[str, str], reply: str = LONG_REPLY
) -> dict[str, Any]:
    """A form the resident submitted, assigned to unit A and answered by its handler: the answered form."""
    form = await submit(client, headers)
    await ok(act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id}))
    return await ok(act(client, world, "handler_a", form["id"], "reply", {"reply": reply}))


async def subscribe(
    client: httpx.AsyncClient, fake: FakeWeChat, headers: dict[str, str], openid: str, n: int = 1
) -> None:
    """The resident taps "allow" ``n`` times: WeChat counts it, and the mini-program reports it to us."""
    fake.accept(openid, TEMPLATE, n)
    await ok(client.post(SUBSCRIPTIONS, json={"template_id": TEMPLATE, "accepted": n}, headers=headers))


async def our_credits(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    items = (await ok(client.get(SUBSCRIPTIONS, headers=headers)))["items"]
    return sum(item["credits"] for item in items if item["template_id"] == TEMPLATE)


async def notice_rows(sessionmaker: Any) -> list[WechatNotice]:
    async with transaction(sessionmaker) as session:
        return list(await session.scalars(select(WechatNotice).order_by(WechatNotice.id)))


async def only_notice(sessionmaker: Any) -> WechatNotice:
    rows = await notice_rows(sessionmaker)
    assert len(rows) == 1, rows
    return rows[0]


async def send(app: Any, settings: Settings | None = None, *, now: datetime | None = None, wechat: Any = "app") -> int:
    return await notices.send_due(app.state.sessionmaker, app.state.wechat if wechat == "app" else wechat,
                                  settings or app.state.settings, now=now)


def local_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(TZ).strftime("%Y年%m月%d日 %H:%M")


# --- sending -----------------------------------------------------------------------------------------


async def test_a_reply_sends_one_notice_with_values_fitted_to_wechats_rules(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice")
    form = await answered(client, world, alice)

    assert await send(app) == 1

    assert len(fake_wechat.sent) == 1
    message = fake_wechat.sent[0]
    assert message["touser"] == "o_alice" and message["template_id"] == TEMPLATE
    assert message["page"] == f"pages/forms/detail?id={form['id']}"
    assert message["miniprogram_state"] == "formal"
    data = {key: entry["value"] for key, entry in message["data"].items()}
    assert data["character_string1"] == form["tracking_no"]
    assert len(data["thing2"]) <= 20 and data["thing2"].endswith("…")
    assert len(data["thing4"]) <= 20 and data["thing4"].endswith("…") and LONG_REPLY.startswith(data["thing4"][:-1])
    assert data["phrase3"] == "已答复"
    assert data["time5"] == local_time(form["answered_at"])
    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.sent and notice.sent_at is not None
    assert notice.attempts == 1 and notice.template_id == TEMPLATE and notice.errmsg is None
    assert notice.data == message["data"]
    assert await our_credits(client, alice) == 0 and fake_wechat.credit("o_alice", TEMPLATE) == 0
    assert await send(app, now=datetime.now(UTC) + timedelta(days=1)) == 0
    assert len(fake_wechat.sent) == 1


async def test_without_a_credit_nothing_is_sent(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await answered(client, world, alice)

    assert await send(app) == 1

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.no_credit and notice.attempts == 0
    assert fake_wechat.count(SUBSCRIBE_SEND) == 0 and fake_wechat.sent == []


async def test_wechat_counting_no_credit_is_refused_and_our_count_is_cleared(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    # The mini-program reported two accepts WeChat never counted (or the resident turned notices off since).
    await ok(client.post(SUBSCRIPTIONS, json={"template_id": TEMPLATE, "accepted": 2}, headers=alice))
    await answered(client, world, alice)

    await send(app)

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.refused and notice.errcode == 43101
    assert fake_wechat.sent == [] and fake_wechat.count(SUBSCRIBE_SEND) == 1
    assert await our_credits(client, alice) == 0


async def test_a_value_wechat_rejects_is_failed_with_its_errcode_and_the_credit_kept(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any, settings: Settings
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice")
    await answered(client, world, alice)
    # A template key mapped to a source that cannot fit its type: an amount is not a status.
    fields = {"character_string1": "tracking_no", "amount2": "status"}
    misfit = settings.model_copy(update={"wechat_reply_fields": fields})

    await send(app, misfit)

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.failed and notice.errcode == 47003
    assert notice.errmsg is not None and "amount2" in notice.errmsg
    assert fake_wechat.sent == []
    assert await our_credits(client, alice) == 1 and fake_wechat.credit("o_alice", TEMPLATE) == 1


async def test_wechat_down_at_send_keeps_the_reply_and_the_notice_goes_later(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice")
    fake_wechat.down = True
    form = await answered(client, world, alice)  # the reply itself never waits for WeChat
    assert form["status"] == "answered"

    assert await send(app) == 1

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.pending and notice.attempts == 1
    assert notice.next_attempt_at > datetime.now(UTC) and "暂不可用" in (notice.errmsg or "")
    assert await our_credits(client, alice) == 1  # nothing left: the credit is still the resident's
    assert await send(app) == 0  # not due yet
    fake_wechat.down = False

    assert await send(app, now=notice.next_attempt_at) == 1

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.sent and notice.attempts == 2
    assert len(fake_wechat.sent) == 1
    assert await our_credits(client, alice) == 0


async def test_wechat_down_for_good_fails_the_notice_after_a_few_attempts(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice")
    await answered(client, world, alice)
    await app.state.wechat.access_token()  # so each attempt reaches the send endpoint
    fake_wechat.down = True
    now = datetime.now(UTC)

    for _ in range(notices.MAX_ATTEMPTS + 2):
        await send(app, now=now)
        now += timedelta(hours=1)

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.failed and notice.attempts == notices.MAX_ATTEMPTS
    assert fake_wechat.count(SUBSCRIBE_SEND) == notices.MAX_ATTEMPTS and fake_wechat.sent == []
    assert await our_credits(client, alice) == 1


async def test_a_send_whose_answer_never_came_is_never_sent_again(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice", n=2)
    await answered(client, world, alice)
    impatient = WeChatClient(base_url=fake_wechat.base_url, app_id=fake_wechat.app_id,
                             app_secret=fake_wechat.app_secret, sessionmaker=sessionmaker, timeout=0.5)
    try:
        await impatient.access_token()  # fetched before WeChat turns slow
        fake_wechat.delay = 2.0  # WeChat sends the message, but its answer comes too late
        await send(app, wechat=impatient)
    finally:
        await impatient.aclose()
    fake_wechat.delay = 0.0

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.failed and notice.errmsg == notices.MAYBE_SENT
    assert len(fake_wechat.sent) == 1
    assert await our_credits(client, alice) == 1  # spent, as it was at WeChat
    assert await send(app, now=datetime.now(UTC) + timedelta(days=1)) == 0
    assert fake_wechat.count(SUBSCRIBE_SEND) == 1


async def test_a_worker_that_stopped_mid_send_leaves_a_notice_nobody_resends(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice", n=2)
    await answered(client, world, alice)
    await app.state.wechat.access_token()
    fake_wechat.delay = 5.0
    worker = asyncio.create_task(send(app))
    for _ in range(500):  # until WeChat has the request (it does the work, then answers late)
        if fake_wechat.count(SUBSCRIBE_SEND):
            break
        await asyncio.sleep(0.01)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    fake_wechat.delay = 0.0
    assert (await only_notice(sessionmaker)).status == NoticeStatus.pending

    handled = await send(app, now=datetime.now(UTC) + notices.LEASE + timedelta(seconds=1))

    notice = await only_notice(sessionmaker)
    assert handled == 1
    assert notice.status == NoticeStatus.failed and notice.errmsg == notices.OUTCOME_UNKNOWN
    assert fake_wechat.count(SUBSCRIBE_SEND) == 1


async def test_a_form_answered_again_after_reopening_gets_a_second_notice(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice", n=2)
    form = await answered(client, world, alice, reply="已修好。")
    await send(app)
    await ok(act(client, world, "coordinator", form["id"], "reopen", {"reason": "居民反映仍不亮。"}))
    await ok(act(client, world, "handler_a", form["id"], "reply", {"reply": "已再次修复。"}))

    await send(app)

    assert [row.status for row in await notice_rows(sessionmaker)] == [NoticeStatus.sent, NoticeStatus.sent]
    assert [m["data"]["thing4"]["value"] for m in fake_wechat.sent] == ["已修好。", "已再次修复。"]
    assert await our_credits(client, alice) == 0


async def test_two_workers_at_once_send_each_notice_once(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    residents = {}
    for openid in ("o_a", "o_b", "o_c"):
        residents[openid] = await wechat_login(client, fake_wechat, openid)
        await subscribe(client, fake_wechat, residents[openid], openid, n=2)
        await answered(client, world, residents[openid])
    await app.state.wechat.access_token()

    handled = await asyncio.gather(send(app, now=datetime.now(UTC)), send(app, now=datetime.now(UTC)))

    assert sum(handled) == 3
    assert sorted(m["touser"] for m in fake_wechat.sent) == ["o_a", "o_b", "o_c"]
    assert {row.status for row in await notice_rows(sessionmaker)} == {NoticeStatus.sent}
    for headers in residents.values():
        assert await our_credits(client, headers) == 1


async def test_no_template_configured_fails_the_notice_without_sending(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any, settings: Settings
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice")
    await answered(client, world, alice)

    await send(app, settings.model_copy(update={"wechat_reply_template_id": None}))

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.failed and notice.errmsg == notices.NO_TEMPLATE
    assert fake_wechat.count(SUBSCRIBE_SEND) == 0
    assert await our_credits(client, alice) == 1


async def test_no_wechat_configured_fails_the_notice_without_sending(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    alice = await wechat_login(client, fake_wechat, "o_alice")
    await subscribe(client, fake_wechat, alice, "o_alice")
    await answered(client, world, alice)

    await send(app, wechat=None)

    notice = await only_notice(sessionmaker)
    assert notice.status == NoticeStatus.failed and notice.errmsg == notices.NOT_CONFIGURED
    assert await our_credits(client, alice) == 1


async def test_forms_without_a_resident_get_no_notice(
    client: httpx.AsyncClient, fake_wechat: FakeWeChat, app: Any, sessionmaker: Any
) -> None:
    world = await build_world(sessionmaker)
    form = await submit(client)
    await ok(act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id}))
    await ok(act(client, world, "handler_a", form["id"], "reply", {"reply": "已处理。"}))

    assert await send(app) == 0
    assert await notice_rows(sessionmaker) == []


# --- fitting values (no database) --------------------------------------------------------------------

NOW = datetime(2026, 11, 26, 7, 1, tzinfo=UTC)  # 15:01 in Asia/Shanghai


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("thing2", "短句", "短句"),
    ("thing2", "一二三四五六七八九十一二三四五六七八九十", "一二三四五六七八九十一二三四五六七八九十"),
    ("thing2", "一二三四五六七八九十一二三四五六七八九十一", "一二三四五六七八九十一二三四五六七八九…"),
    ("thing2", "第一行\n第二行   第三行", "第一行 第二行 第三行"),
    ("thing2", "一二三四五六七八九十一二三四五六七八😀九", "一二三四五六七八九十一二三四五六七八…"),
    ("thing4", None, "无"),
    ("phrase3", "已答复", "已答复"),
    ("phrase3", "不予受理", "不予受理"),
    ("phrase3", "已经答复完毕了", "已经答复完"),
    ("phrase3", "OK", "无"),
    ("character_string1", "LS2026-00001", "LS2026-00001"),
    ("character_string1", "编号LS2026-00001", "LS2026-00001"),
    ("character_string1", "A" * 40, "A" * 32),
    ("time5", NOW, "2026年11月26日 15:01"),
    ("time5", None, "2026年11月26日 15:01"),
    ("date6", NOW, "2026年11月26日"),
    ("thing7", NOW, "2026年11月26日 15:01"),
    ("name8", "欧阳王张李赵钱孙周吴郑王", "欧阳王张李赵钱孙周吴"),
    ("name8", "Wang  Xiaoming", "Wang Xiaoming"),
    ("number9", "第12号", "12"),
    ("letter10", "abc123", "abc"),
    ("symbol11", "%%%%%%%", "%%%%%"),
    ("phone_number12", "电话 138-1234-5678", "138-1234-5678"),
])
def test_values_are_fitted_to_their_keys_type(key: str, value: Any, expected: str) -> None:
    fitted = notices.fit(key, value, now=NOW)

    assert fitted == expected
    rule = VALUE_RULES.get(notices.key_type(key))
    assert rule is not None and rule.match(fitted), (key, fitted)
