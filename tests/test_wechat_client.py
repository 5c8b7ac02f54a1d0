"""Our WeChat client (app/services/wechat.py) against the fake WeChat, a real HTTP server on 127.0.0.1.

The access token lives in the database, so these run on SQLite and PostgreSQL. Each ``connect()`` is one
app process: its own engine and its own client, sharing only the database and WeChat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, create_sessionmaker, transaction
from app.models import WechatToken, utcnow
from app.services import wechat as wechat_service
from app.services.wechat import LoginSession, SecCheck, WeChatClient, WeChatError, WeChatUnavailable
from tests.conftest import make_settings, wechat_settings
from tests.fake_wechat import CODE2SESSION, MSG_SEC_CHECK, STABLE_TOKEN, SUBSCRIBE_SEND, FakeWeChat
from tests.support.ports import free_port

OPENID = "o_resident_0001"
TEMPLATE = "tpl_reply_notice"
DATA = {"character_string1": {"value": "LS2026-000123"}, "thing2": {"value": "路灯不亮"},
        "phrase3": {"value": "已答复"}, "time5": {"value": "2026年11月26日 15:01"}}

Connect = Callable[..., WeChatClient]


# --- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(make_settings(db_url))
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def connect(db_url: str, fake_wechat: FakeWeChat) -> AsyncIterator[Connect]:
    """Make a client as one app process would: its own engine on the test's database."""
    engines, clients = [], []

    def make(**overrides: Any) -> WeChatClient:
        engine = create_engine(make_settings(db_url))
        engines.append(engine)
        options: dict[str, Any] = {
            "base_url": fake_wechat.base_url, "app_id": fake_wechat.app_id, "app_secret": fake_wechat.app_secret,
            "sessionmaker": create_sessionmaker(engine), "backoff": 0.01, "quota_wait": 0.01,
        }
        options.update(overrides)
        clients.append(WeChatClient(**options))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()
    for engine in engines:
        await engine.dispose()


async def stored(db: async_sessionmaker[AsyncSession], fake: FakeWeChat) -> WechatToken | None:
    async with transaction(db) as session:
        return await session.get(WechatToken, fake.app_id)


async def store(db: async_sessionmaker[AsyncSession], fake: FakeWeChat, token: str, expires_in: timedelta) -> None:
    async with transaction(db) as session:
        session.add(WechatToken(appid=fake.app_id, access_token=token, expires_at=utcnow() + expires_in,
                                refreshed_at=utcnow()))


async def eventually(condition: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def send(wechat: WeChatClient, **overrides: Any) -> None:
    options: dict[str, Any] = {"openid": OPENID, "template_id": TEMPLATE, "data": DATA}
    options.update(overrides)
    await wechat.send_subscription_message(**options)


async def check(wechat: WeChatClient, content: str = "小区门口的路灯坏了") -> SecCheck:
    return await wechat.msg_sec_check(openid=OPENID, content=content)


# --- the access token ---------------------------------------------------------------------------------


async def test_the_token_is_fetched_once_and_stored(connect: Connect, db: Any, fake_wechat: FakeWeChat) -> None:
    wechat = connect()
    before = utcnow()
    token = await wechat.access_token()
    assert await wechat.access_token() == token
    assert fake_wechat.token_requests == 1
    assert fake_wechat.calls_to(STABLE_TOKEN)[0]["force_refresh"] is False
    row = await stored(db, fake_wechat)
    assert row is not None and row.access_token == token and len(token) == 512
    assert row.expires_at is not None and before + timedelta(seconds=7198) <= row.expires_at
    assert row.expires_at <= utcnow() + timedelta(seconds=7200)
    assert row.refreshed_at is not None and row.refreshed_at >= before and row.force_refreshed_at is None


async def test_a_second_process_uses_the_stored_token(connect: Connect, fake_wechat: FakeWeChat) -> None:
    one, two = connect(), connect()
    token = await one.access_token()
    assert await two.access_token() == token
    assert fake_wechat.token_requests == 1


async def test_a_fresh_stored_token_is_used_without_asking_wechat(
    connect: Connect, db: Any, fake_wechat: FakeWeChat
) -> None:
    await store(db, fake_wechat, "stored-token", timedelta(hours=1))
    assert await connect().access_token() == "stored-token"
    assert fake_wechat.count(STABLE_TOKEN) == 0


async def test_a_token_expiring_within_5_minutes_is_refreshed(
    connect: Connect, db: Any, fake_wechat: FakeWeChat
) -> None:
    await store(db, fake_wechat, "stale-token", timedelta(minutes=4))
    token = await connect().access_token()
    assert token != "stale-token" and token in fake_wechat.tokens
    assert fake_wechat.token_requests == 1
    row = await stored(db, fake_wechat)
    assert row is not None and row.access_token == token


@pytest.mark.parametrize("stored_before", ["nothing", "a stale token"])
async def test_concurrent_callers_in_two_processes_cause_one_refresh(
    connect: Connect, db: Any, fake_wechat: FakeWeChat, stored_before: str
) -> None:
    if stored_before == "a stale token":  # the row exists: only its lock keeps the processes apart
        await store(db, fake_wechat, "stale-token", timedelta(minutes=1))
    one, two = connect(), connect()
    fake_wechat.delay = 0.3  # the first refresh holds the row while every other caller arrives
    tokens = await asyncio.gather(*(client.access_token() for client in (one, two) for _ in range(10)))
    assert len(set(tokens)) == 1
    assert fake_wechat.count(STABLE_TOKEN) == 1


async def test_wrong_secret_is_final_and_nothing_is_stored(connect: Connect, db: Any, fake_wechat: FakeWeChat) -> None:
    wechat = connect(app_secret="not-the-secret")
    with pytest.raises(WeChatError) as refused:
        await wechat.access_token()
    assert refused.value.errcode == 40125
    assert fake_wechat.count(STABLE_TOKEN) == 1
    row = await stored(db, fake_wechat)
    assert row is None or row.access_token is None


# --- a refused token -----------------------------------------------------------------------------------


async def test_an_expired_token_is_refreshed_once_and_the_call_repeated(
    connect: Connect, db: Any, fake_wechat: FakeWeChat
) -> None:
    wechat = connect()
    old = await wechat.access_token()
    fake_wechat.expire_tokens()
    fake_wechat.accept(OPENID, TEMPLATE)
    await send(wechat)
    sends = fake_wechat.calls_to(SUBSCRIBE_SEND)
    assert [call["access_token"] == old for call in sends] == [True, False]
    assert len(fake_wechat.sent) == 1
    assert fake_wechat.token_requests == 2 and fake_wechat.force_refreshes == 0
    row = await stored(db, fake_wechat)
    assert row is not None and row.access_token == sends[1]["access_token"]


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_each_token_error_replaces_the_token_and_repeats_once(
    connect: Connect, fake_wechat: FakeWeChat, errcode: int
) -> None:
    wechat = connect()
    first = await wechat.access_token()
    fake_wechat.fail_next(errcode, path=MSG_SEC_CHECK)
    assert (await check(wechat)).suggest == "pass"
    checks = fake_wechat.calls_to(MSG_SEC_CHECK)
    assert len(checks) == 2 and checks[0]["access_token"] == first and checks[1]["access_token"] != first


async def test_another_process_takes_the_replaced_token_from_the_database(
    connect: Connect, fake_wechat: FakeWeChat
) -> None:
    one, two = connect(), connect()
    await one.access_token()
    await two.access_token()
    fake_wechat.expire_tokens()
    await check(one)  # refreshes
    await check(two)  # refused too, finds one's new token stored
    assert fake_wechat.token_requests == 2


async def test_a_token_replaced_elsewhere_needs_no_forced_refresh(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect()
    old = await wechat.access_token()
    # Someone else (the WeChat console, another deployment) forces a refresh: ours stops working (40001).
    async with httpx.AsyncClient(base_url=fake_wechat.base_url) as http:
        await http.post(STABLE_TOKEN, json={
            "grant_type": "client_credential", "appid": fake_wechat.app_id, "secret": fake_wechat.app_secret,
            "force_refresh": True,
        })
    await check(wechat)
    assert fake_wechat.force_refreshes == 1  # only the one made elsewhere
    assert old not in fake_wechat.tokens and fake_wechat.calls_to(MSG_SEC_CHECK)[-1]["access_token"] != old


async def test_a_token_refused_again_after_refreshing_is_not_retried_forever(
    connect: Connect, db: Any, fake_wechat: FakeWeChat
) -> None:
    wechat = connect()
    await wechat.access_token()
    fake_wechat.fail_next(42001, n=10, path=MSG_SEC_CHECK)
    with pytest.raises(WeChatUnavailable) as unavailable:
        await check(wechat)
    assert not unavailable.value.may_have_sent
    assert fake_wechat.count(MSG_SEC_CHECK) == 2
    # Normal mode handed back the token WeChat had just refused, so the refresh was forced, once.
    assert [call["force_refresh"] for call in fake_wechat.calls_to(STABLE_TOKEN)] == [False, False, True]
    row = await stored(db, fake_wechat)
    assert row is not None and row.force_refreshed_at is not None


async def test_a_refresh_is_never_forced_twice_within_30_seconds(connect: Connect, fake_wechat: FakeWeChat) -> None:
    one, two = connect(), connect()
    await one.access_token()
    fake_wechat.fail_next(40001, n=1, path=MSG_SEC_CHECK)
    await check(one)  # forced
    await two.access_token()
    fake_wechat.fail_next(40001, n=1, path=MSG_SEC_CHECK)
    with pytest.raises(WeChatUnavailable):
        await check(two)  # would need a second forced refresh: refused by us, WeChat is not asked
    assert [call["force_refresh"] for call in fake_wechat.calls_to(STABLE_TOKEN)] == [False, False, True, False]
    assert fake_wechat.force_refreshes == 1


# --- busy, quota, unreachable ---------------------------------------------------------------------------


async def test_busy_is_retried_then_succeeds(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect(busy_retries=3)
    await wechat.access_token()
    fake_wechat.busy(2)
    assert (await check(wechat)).suggest == "pass"
    assert fake_wechat.count(MSG_SEC_CHECK) == 3


async def test_busy_gives_up_after_the_retries(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect(busy_retries=3)
    await wechat.access_token()
    fake_wechat.busy(10)
    with pytest.raises(WeChatUnavailable) as unavailable:
        await check(wechat)
    assert not unavailable.value.may_have_sent
    assert fake_wechat.count(MSG_SEC_CHECK) == 4


async def test_a_busy_send_is_retried_and_sent_once(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect()
    await wechat.access_token()
    fake_wechat.accept(OPENID, TEMPLATE)
    fake_wechat.busy(1)
    await send(wechat)
    assert fake_wechat.count(SUBSCRIBE_SEND) == 2 and len(fake_wechat.sent) == 1


async def test_a_busy_token_request_is_retried(connect: Connect, fake_wechat: FakeWeChat) -> None:
    fake_wechat.busy(1)
    assert await connect().access_token() in fake_wechat.tokens
    assert fake_wechat.count(STABLE_TOKEN) == 2


async def test_a_quota_limit_is_waited_out(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect()
    await wechat.access_token()
    fake_wechat.fail_next(45011, path=MSG_SEC_CHECK)
    assert (await check(wechat)).suggest == "pass"
    assert fake_wechat.count(MSG_SEC_CHECK) == 2


async def test_a_quota_limit_that_lasts_gives_up(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect(quota_retries=2)
    await wechat.access_token()
    fake_wechat.fail_next(45009, n=10, path=MSG_SEC_CHECK)
    with pytest.raises(WeChatUnavailable):
        await check(wechat)
    assert fake_wechat.count(MSG_SEC_CHECK) == 3


async def test_wechat_down_is_unavailable_and_nothing_was_sent(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect()
    await wechat.access_token()
    fake_wechat.accept(OPENID, TEMPLATE)
    fake_wechat.down = True
    with pytest.raises(WeChatUnavailable) as unavailable:
        await send(wechat)
    assert not unavailable.value.may_have_sent
    assert fake_wechat.count(SUBSCRIBE_SEND) == 1 and fake_wechat.sent == []


async def test_unreachable_wechat_gives_up_saying_nothing_was_sent(connect: Connect) -> None:
    wechat = connect(base_url=f"http://127.0.0.1:{free_port()}", busy_retries=2)
    with pytest.raises(WeChatUnavailable) as unavailable:
        await wechat.code2session("any-code")
    assert not unavailable.value.may_have_sent


async def test_a_request_that_never_left_is_retried(connect: Connect, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    late = FakeWeChat()  # WeChat that starts listening only after the first attempt failed to connect
    code = late.issue_code(OPENID)
    wechat = connect(base_url=f"http://127.0.0.1:{port}", app_id=late.app_id, app_secret=late.app_secret,
                     backoff=0.5, busy_retries=3)
    caplog.set_level(logging.WARNING, logger=wechat_service.__name__)
    login = asyncio.create_task(wechat.code2session(code))
    try:
        await eventually(lambda: "unreachable" in caplog.text)
        await asyncio.to_thread(late.start, port)
        assert (await login).openid == OPENID
        assert late.count(CODE2SESSION) == 1
    finally:
        login.cancel()
        late.stop()


async def test_a_send_that_timed_out_may_have_been_sent_and_is_not_repeated(
    connect: Connect, fake_wechat: FakeWeChat
) -> None:
    wechat = connect(timeout=0.5)
    await wechat.access_token()
    fake_wechat.accept(OPENID, TEMPLATE)
    fake_wechat.delay = 3  # WeChat sends the message; its answer comes too late
    with pytest.raises(WeChatUnavailable) as unavailable:
        await send(wechat)
    assert unavailable.value.may_have_sent
    assert fake_wechat.count(SUBSCRIBE_SEND) == 1
    # Why it must not be repeated: WeChat did send it, and the credit is spent.
    assert len(fake_wechat.sent) == 1 and fake_wechat.credit(OPENID, TEMPLATE) == 0


# --- code2Session ---------------------------------------------------------------------------------------


async def test_code2session_says_who_the_code_belongs_to(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect()
    assert await wechat.code2session(fake_wechat.issue_code(OPENID, unionid="u_0001")) == LoginSession(
        openid=OPENID, unionid="u_0001")
    assert await wechat.code2session(fake_wechat.issue_code("o_other")) == LoginSession(openid="o_other", unionid=None)
    call = fake_wechat.calls_to(CODE2SESSION)[0]
    assert call["appid"] == fake_wechat.app_id and call["grant_type"] == "authorization_code"


async def test_a_used_code_is_final(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect()
    code = fake_wechat.issue_code(OPENID)
    await wechat.code2session(code)
    with pytest.raises(WeChatError) as refused:
        await wechat.code2session(code)
    assert refused.value.errcode == 40163
    assert fake_wechat.count(CODE2SESSION) == 2


async def test_an_unknown_code_is_final(connect: Connect, fake_wechat: FakeWeChat) -> None:
    with pytest.raises(WeChatError) as refused:
        await connect().code2session("made-up-code")
    assert refused.value.errcode == 40029
    assert fake_wechat.count(CODE2SESSION) == 1


async def test_code2session_rate_limit_is_final(connect: Connect, fake_wechat: FakeWeChat) -> None:
    fake_wechat.fail_next(45011, path=CODE2SESSION)
    with pytest.raises(WeChatError) as refused:
        await connect().code2session(fake_wechat.issue_code(OPENID))
    assert refused.value.errcode == 45011
    assert fake_wechat.count(CODE2SESSION) == 1


async def test_code2session_busy_is_retried(connect: Connect, fake_wechat: FakeWeChat) -> None:
    fake_wechat.busy(1)
    assert (await connect().code2session(fake_wechat.issue_code(OPENID))).openid == OPENID
    assert fake_wechat.count(CODE2SESSION) == 2


# --- subscription messages ------------------------------------------------------------------------------


async def test_a_send_spends_one_credit_and_carries_the_message(connect: Connect, fake_wechat: FakeWeChat) -> None:
    wechat = connect()
    fake_wechat.accept(OPENID, TEMPLATE, n=2)
    await send(wechat, page="pages/forms/detail?id=7", miniprogram_state="trial")
    await send(wechat)
    assert fake_wechat.credit(OPENID, TEMPLATE) == 0
    first, second = fake_wechat.sent
    assert first == {"touser": OPENID, "template_id": TEMPLATE, "page": "pages/forms/detail?id=7", "data": DATA,
                     "miniprogram_state": "trial", "lang": "zh_CN"}
    assert "page" not in second and "miniprogram_state" not in second


async def test_a_send_without_credit_is_final(connect: Connect, fake_wechat: FakeWeChat) -> None:
    with pytest.raises(WeChatError) as refused:
        await send(connect())
    assert refused.value.errcode == 43101
    assert fake_wechat.count(SUBSCRIBE_SEND) == 1


async def test_a_value_breaking_its_rule_is_final_and_spends_nothing(
    connect: Connect, fake_wechat: FakeWeChat
) -> None:
    wechat = connect()
    fake_wechat.accept(OPENID, TEMPLATE)
    with pytest.raises(WeChatError) as refused:
        await send(wechat, data={**DATA, "thing2": {"value": "路灯" * 11}})
    assert (refused.value.errcode, refused.value.errmsg) == (47003, "data.thing2.value invalid")
    assert fake_wechat.count(SUBSCRIBE_SEND) == 1 and fake_wechat.credit(OPENID, TEMPLATE) == 1


@pytest.mark.parametrize("errcode", [40003, 40037, 41030, 43101, 47003])
async def test_final_send_errors_are_not_retried(connect: Connect, fake_wechat: FakeWeChat, errcode: int) -> None:
    wechat = connect()
    fake_wechat.accept(OPENID, TEMPLATE)
    fake_wechat.fail_next(errcode, path=SUBSCRIBE_SEND)
    with pytest.raises(WeChatError) as refused:
        await send(wechat)
    assert refused.value.errcode == errcode
    assert fake_wechat.count(SUBSCRIBE_SEND) == 1 and fake_wechat.sent == []


# --- msgSecCheck v2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "suggest", "label"), [
    ("小区门口的路灯坏了", "pass", 100),
    ("这段话有待复核词", "review", 21000),
    ("这段话有违禁词", "risky", 20001),
])
async def test_msg_sec_check_verdicts(
    connect: Connect, fake_wechat: FakeWeChat, content: str, suggest: str, label: int
) -> None:
    fake_wechat.review_words.add("待复核词")
    fake_wechat.risky_words.add("违禁词")
    verdict = await check(connect(), content)
    assert (verdict.suggest, verdict.label) == (suggest, label) and verdict.trace_id
    call = fake_wechat.calls_to(MSG_SEC_CHECK)[0]
    assert (call["version"], call["openid"], call["scene"], call["content"]) == (2, OPENID, 2, content)


async def test_msg_sec_check_of_a_user_not_seen_lately_is_61010(connect: Connect, fake_wechat: FakeWeChat) -> None:
    fake_wechat.stale_users.add(OPENID)
    with pytest.raises(WeChatError) as refused:
        await check(connect())
    assert refused.value.errcode == 61010
    assert fake_wechat.count(MSG_SEC_CHECK) == 1


async def test_msg_sec_check_sends_at_most_2500_characters(connect: Connect, fake_wechat: FakeWeChat) -> None:
    fake_wechat.risky_words.add("违禁词")
    verdict = await check(connect(), "长" * 2500 + "违禁词")
    assert verdict.suggest == "pass"  # WeChat never saw the part past 2500 characters
    assert fake_wechat.calls_to(MSG_SEC_CHECK)[0]["content"] == "长" * 2500


# --- secrets, settings ------------------------------------------------------------------------------------


async def test_secrets_never_reach_the_logs(
    connect: Connect, fake_wechat: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wechat = connect()
    code = fake_wechat.issue_code(OPENID)
    await wechat.code2session(code)
    with pytest.raises(WeChatError):
        await wechat.code2session(code)
    fake_wechat.accept(OPENID, TEMPLATE, n=2)
    fake_wechat.busy(1)
    await send(wechat)
    fake_wechat.expire_tokens()
    await send(wechat)
    tokens = {call["access_token"] for call in fake_wechat.calls_to(SUBSCRIBE_SEND)}
    assert len(tokens) == 2
    # The database driver's own DEBUG trace prints every statement's parameters (the stored token among
    # them, as it prints residents' opinions); like SQLAlchemy's echo it is a debugging switch, not a log.
    logged = "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith("aiosqlite"))
    assert "HTTP Request" in logged and "secret=***" in logged  # httpx did log every request
    for secret in (fake_wechat.app_secret, code, fake_wechat.session_keys[OPENID], *tokens):
        assert secret not in logged
    assert fake_wechat.app_secret not in repr(wechat)


async def test_no_client_without_app_id_and_secret(db_url: str, fake_wechat: FakeWeChat) -> None:
    engine = create_engine(make_settings(db_url))
    try:
        sessionmaker = create_sessionmaker(engine)
        assert wechat_service.client_from_settings(make_settings(db_url), sessionmaker) is None
        partial = wechat_settings(db_url, fake_wechat, wechat_app_secret=None)
        assert wechat_service.client_from_settings(partial, sessionmaker) is None
        wechat = wechat_service.client_from_settings(wechat_settings(db_url, fake_wechat), sessionmaker)
        assert wechat is not None
        try:
            assert (await wechat.code2session(fake_wechat.issue_code(OPENID))).openid == OPENID
        finally:
            await wechat.aclose()
    finally:
        await engine.dispose()


# --- the fake itself follows WeChat's value rules ---------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "valid"), [
    ("thing1", "二十个字以内的一件事情", True), ("thing1", "字" * 21, False), ("thing1", "", False),
    ("phrase3", "已答复", True), ("phrase3", "done", False), ("phrase3", "已经答复完毕了", False),
    ("character_string1", "LS2026-000123", True), ("character_string1", "编号", False),
    ("character_string1", "A" * 33, False), ("number2", "12.5", True), ("number2", "十二", False),
    ("letter1", "abc", True), ("letter1", "a1", False), ("symbol1", "%", True), ("symbol1", "¥" * 6, False),
    ("phone_number1", "0510-88888888", True), ("phone_number1", "1" * 18, False),
    ("name1", "张三", True), ("name1", "张" * 11, False), ("name1", "Zhang San", True),
    ("time5", "2026年11月26日 15:01", True), ("time5", "15:01", True), ("time5", "2026-11-26 15:01", False),
    ("date2", "2026年11月26日", True), ("date2", "明天", False),
])
async def test_the_fake_checks_values_like_wechat(fake_wechat: FakeWeChat, key: str, value: str, valid: bool) -> None:
    fake_wechat.accept(OPENID, TEMPLATE)
    async with httpx.AsyncClient(base_url=fake_wechat.base_url) as http:
        token = (await http.post(STABLE_TOKEN, json={
            "grant_type": "client_credential", "appid": fake_wechat.app_id, "secret": fake_wechat.app_secret,
        })).json()["access_token"]
        answer = (await http.post(SUBSCRIBE_SEND, params={"access_token": token}, json={
            "touser": OPENID, "template_id": TEMPLATE, "data": {key: {"value": value}},
        })).json()
    expected = {"errcode": 0, "errmsg": "ok"} if valid else {"errcode": 47003, "errmsg": f"data.{key}.value invalid"}
    assert answer == expected

