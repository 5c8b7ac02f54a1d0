"""SMS to residents (services/sms.py, issue 16.3): the receipt and the reply notice, through the outbox,
to fake Alibaba Cloud and Tencent Cloud servers on 127.0.0.1 that check every signature (tests/fake_sms.py).

Every database test runs on SQLite and on PostgreSQL; the worker's send is driven directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update

from app.config import Settings
from app.db import transaction
from app.models import OpinionForm, SmsMessage, SmsStatus
from app.schemas.forms import SMS_NO_PHONE_MESSAGE, SMS_PHONE_MESSAGE, mainland_mobile
from app.services import personal_data
from app.services import sms
from tests.conftest import make_settings
from tests.factories import act, build_world, submit
from tests.fake_sms import FakeAliyun, FakeTencent, aliyun_expected_signature, tc3_expected_signature
from tests.support.logins import csrf_of, sign_in
from tests.support.webhooks import api_client

PHONE = "13812345678"


# --- the fakes, once per session, reset per test ---------------------------------------------------------


@pytest.fixture(scope="session")
def _fake_providers() -> Iterator[tuple[FakeAliyun, FakeTencent]]:
    aliyun, tencent = FakeAliyun(), FakeTencent()
    aliyun.start()
    tencent.start()
    yield aliyun, tencent
    aliyun.stop()
    tencent.stop()


@pytest.fixture
def fakes(_fake_providers: tuple[FakeAliyun, FakeTencent]) -> Iterator[tuple[FakeAliyun, FakeTencent]]:
    for fake in _fake_providers:
        fake.reset()
    yield _fake_providers
    for fake in _fake_providers:
        fake.reset()


def sms_settings(db_url: str, provider: str, fakes: tuple[FakeAliyun, FakeTencent], **overrides: Any) -> Settings:
    aliyun, tencent = fakes
    values: dict[str, Any]
    if provider == "aliyun":
        values = dict(sms_provider="aliyun", sms_base_url=aliyun.base_url, sms_access_key_id=aliyun.access_key_id,
                      sms_access_key_secret=aliyun.access_key_secret, sms_sign_name=aliyun.sign_name,
                      sms_receipt_template_id="SMS_400000001", sms_reply_template_id="SMS_400000002")
    else:
        values = dict(sms_provider="tencent", sms_base_url=tencent.base_url, sms_access_key_id=tencent.secret_id,
                      sms_access_key_secret=tencent.secret_key, sms_sign_name=tencent.sign_name,
                      sms_sdk_app_id=tencent.sdk_app_id, sms_receipt_template_id="2000001",
                      sms_reply_template_id="2000002")
    values.update(worker_in_process=False, supervise_interval_seconds=0)
    values.update(overrides)
    return make_settings(db_url, **values)


@pytest.fixture
def provider() -> str:
    return "aliyun"


@pytest.fixture
def settings(db_url: str, provider: str, fakes: tuple[FakeAliyun, FakeTencent]) -> Settings:
    return sms_settings(db_url, provider, fakes)


@pytest.fixture
def fake(provider: str, fakes: tuple[FakeAliyun, FakeTencent]) -> FakeAliyun | FakeTencent:
    return fakes[0] if provider == "aliyun" else fakes[1]


@pytest.fixture
async def sender(settings: Settings) -> AsyncIterator[sms.SmsProvider]:
    made = sms.provider_from_settings(settings)
    assert made is not None
    yield made
    await made.aclose()


BOTH = pytest.mark.parametrize("provider", ["aliyun", "tencent"])


# --- helpers ----------------------------------------------------------------------------------------------


async def send(app: Any, sender: Any, settings: Settings | None = None, *, now: datetime | None = None) -> int:
    return await sms.send_due(app.state.sessionmaker, sender, settings or app.state.settings, now=now)


async def messages(sessionmaker: Any) -> list[SmsMessage]:
    async with transaction(sessionmaker) as session:
        return list(await session.scalars(select(SmsMessage).order_by(SmsMessage.id)))


async def only_message(sessionmaker: Any) -> SmsMessage:
    rows = await messages(sessionmaker)
    assert len(rows) == 1, rows
    return rows[0]


async def consenting(client: httpx.AsyncClient, phone: str = PHONE, **fields: Any) -> dict[str, Any]:
    return await submit(client, submitter_phone=phone, sms_consent=True, **fields)


async def answer(client: httpx.AsyncClient, world: Any, form_id: int, reply: str = "路灯已修复。") -> None:
    response = await act(client, world, "coordinator", form_id, "assign", {"unit_id": world.units["A"].id})
    assert response.status_code == 200, response.text
    response = await act(client, world, "handler_a", form_id, "reply", {"reply": reply})
    assert response.status_code == 200, response.text


def values_of(message: dict[str, Any]) -> list[str]:
    """The values a fake received, in order (Aliyun: a JSON object; Tencent: a list)."""
    params = message["params"]
    return list(params.values()) if isinstance(params, dict) else list(params)


# --- the receipt and the reply notice ---------------------------------------------------------------------


@BOTH
async def test_the_receipt_sms_carries_the_number_and_the_code(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any, provider: str
) -> None:
    form = await consenting(client, phone="+86 138-1234-5678")
    assert form["sms_consent"] is True

    assert await send(app, sender) == 1

    assert len(fake.sent) == 1
    sent = fake.sent[0]
    assert sent["phone"] == PHONE and sent["sign"] == fake.sign_name
    assert values_of(sent) == [form["tracking_no"], form["verification_code"]]
    if provider == "aliyun":
        assert sent["params"] == {"no": form["tracking_no"], "code": form["verification_code"]}
    message = await only_message(sessionmaker)
    assert message.status == SmsStatus.sent and message.kind == "receipt" and message.attempts == 1
    assert message.provider == provider and message.provider_message_id == sent["id"]
    assert message.sent_at is not None and message.error_message is None
    assert message.params is None  # the code is gone from the database once sent
    async with transaction(sessionmaker) as session:
        raw = (await session.execute(text("SELECT phone, params FROM sms_message"))).one()
    assert raw[0].startswith("pd1:") and PHONE not in raw[0] and raw[1] is None
    assert await send(app, sender, now=datetime.now(UTC) + timedelta(days=1)) == 0
    assert len(fake.sent) == 1


@BOTH
async def test_the_answer_sends_the_reply_notice(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    world = await build_world(sessionmaker)
    form = await consenting(client)
    await send(app, sender)

    await answer(client, world, form["id"])
    assert await send(app, sender) == 1

    assert len(fake.sent) == 2
    assert values_of(fake.sent[1]) == [form["tracking_no"], "已答复"]
    rows = await messages(sessionmaker)
    assert [(m.kind, m.status) for m in rows] == [("receipt", "sent"), ("reply", "sent")]


async def test_forms_without_consent_or_phone_get_no_sms(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    world = await build_world(sessionmaker)
    form = await submit(client, submitter_phone=PHONE)  # a phone, but no tick
    await answer(client, world, form["id"])

    assert await send(app, sender) == 0
    assert await messages(sessionmaker) == [] and fake.calls == 0


# --- retries and failures -----------------------------------------------------------------------------------


@BOTH
async def test_a_5xx_is_retried_after_a_back_off_then_sent(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    form = await consenting(client)
    fake.fail_next(None, http_status=502)

    assert await send(app, sender) == 1

    message = await only_message(sessionmaker)
    assert message.status == SmsStatus.pending and message.attempts == 1
    assert message.next_attempt_at > datetime.now(UTC) and "稍后重试" in (message.error_message or "")
    assert message.params is not None  # kept for the next attempt
    assert await send(app, sender) == 0  # not due yet

    assert await send(app, sender, now=message.next_attempt_at) == 1

    message = await only_message(sessionmaker)
    assert message.status == SmsStatus.sent and message.attempts == 2 and message.params is None
    assert fake.calls == 2 and values_of(fake.sent[0])[1] == form["verification_code"]


@BOTH
async def test_throttling_is_retried_and_fails_after_the_last_attempt(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any, provider: str
) -> None:
    await consenting(client)
    code = "isv.BUSINESS_LIMIT_CONTROL" if provider == "aliyun" else "LimitExceeded.PhoneNumberOneHourLimit"
    fake.fail_next(code, n=100)
    now = datetime.now(UTC)

    for _ in range(sms.MAX_ATTEMPTS + 2):
        await send(app, sender, now=now)
        now += timedelta(hours=1)

    message = await only_message(sessionmaker)
    assert message.status == SmsStatus.failed and message.attempts == sms.MAX_ATTEMPTS
    assert message.error_code == code and message.params is None
    assert fake.calls == sms.MAX_ATTEMPTS and fake.sent == []


@BOTH
async def test_a_final_refusal_fails_at_once_with_the_providers_code(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any, provider: str
) -> None:
    await consenting(client, phone="13912345678")
    fake.refused_phones.add("13912345678")

    await send(app, sender)

    message = await only_message(sessionmaker)
    expected = "isv.MOBILE_NUMBER_ILLEGAL" if provider == "aliyun" else "InvalidParameterValue.IncorrectPhoneNumber"
    assert message.status == SmsStatus.failed and message.error_code == expected and message.attempts == 1
    assert message.params is None
    assert await send(app, sender, now=datetime.now(UTC) + timedelta(days=1)) == 0
    assert fake.calls == 1


@BOTH
async def test_the_fakes_refuse_a_request_signed_with_the_wrong_secret(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, db_url: str, fakes: Any, fake: Any, provider: str
) -> None:
    wrong = sms_settings(db_url, provider, fakes, sms_access_key_secret="not-the-secret")
    impostor = sms.provider_from_settings(wrong)
    assert impostor is not None
    await consenting(client)
    try:
        await send(app, impostor, wrong)
    finally:
        await impostor.aclose()

    message = await only_message(sessionmaker)
    expected = "SignatureDoesNotMatch" if provider == "aliyun" else "AuthFailure.SignatureFailure"
    assert message.status == SmsStatus.failed and message.error_code == expected
    assert fake.sent == [] and fake.refused_calls == [expected]


async def test_a_send_whose_answer_never_came_is_failed_and_never_resent(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, db_url: str, fakes: Any, fake: Any
) -> None:
    impatient_settings = sms_settings(db_url, "aliyun", fakes, sms_timeout_seconds=0.3)
    impatient = sms.provider_from_settings(impatient_settings)
    assert impatient is not None
    await consenting(client)
    fake.delay = 1.0  # the provider sends it, but its answer comes too late
    try:
        await send(app, impatient, impatient_settings)
    finally:
        await impatient.aclose()
    fake.delay = 0.0

    message = await only_message(sessionmaker)
    assert message.status == SmsStatus.failed and message.error_message == sms.MAYBE_SENT
    assert len(fake.sent) == 1 and message.params is None
    assert await send(app, None, now=datetime.now(UTC) + timedelta(days=1)) == 0  # nothing left to try


async def test_a_message_left_in_flight_by_a_stopped_worker_is_failed_not_resent(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    await consenting(client)
    async with transaction(sessionmaker) as session:  # as a worker leaves it when it dies mid-send
        await session.execute(update(SmsMessage).values(error_message=sms.IN_FLIGHT, attempts=1))

    assert await send(app, sender) == 1

    message = await only_message(sessionmaker)
    assert message.status == SmsStatus.failed and message.error_message == sms.OUTCOME_UNKNOWN
    assert message.params is None and fake.calls == 0


# --- the daily cap ----------------------------------------------------------------------------------------------


async def test_the_daily_cap_keeps_further_sms_to_one_phone_unsent_until_the_next_day(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, db_url: str, fakes: Any, fake: Any
) -> None:
    capped_settings = sms_settings(db_url, "aliyun", fakes, sms_daily_cap=2)
    capping = sms.provider_from_settings(capped_settings)
    assert capping is not None
    # The same phone written three ways, and another phone: the cap counts the number, not the text.
    for phone in ("13812345678", "+86 13812345678", "138-1234-5678", "13987654321"):
        await consenting(client, phone=phone)
    now = datetime.now(UTC)
    try:
        assert await send(app, capping, capped_settings, now=now) == 4
        statuses = [m.status for m in await messages(sessionmaker)]
        assert statuses == ["sent", "sent", "capped", "sent"]
        assert sorted(m["phone"] for m in fake.sent) == ["13812345678", "13812345678", "13987654321"]
        capped = (await messages(sessionmaker))[2]
        assert capped.error_message == sms.CAPPED and capped.params is None

        await consenting(client, phone=PHONE)
        tomorrow = sms.day_start(now) + timedelta(days=1, hours=1)
        assert await send(app, capping, capped_settings, now=tomorrow) == 1
    finally:
        await capping.aclose()
    assert (await messages(sessionmaker))[-1].status == SmsStatus.sent


# --- what a submission must carry -------------------------------------------------------------------------------


async def test_consent_without_a_phone_or_with_a_landline_is_422_naming_the_phone(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    body = {"content": "村口路灯坏了。", "sms_consent": True}
    for phone, message in ((None, SMS_NO_PHONE_MESSAGE), ("0510-87654321", SMS_PHONE_MESSAGE),
                           ("+1 415 555 0100", SMS_PHONE_MESSAGE), ("12812345678", SMS_PHONE_MESSAGE)):
        response = await client.post("/api/v1/forms", json={**body, "submitter_phone": phone})
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]
        assert [e["loc"] for e in errors] == [["body", "submitter_phone"]], errors
        assert errors[0]["msg"] == message
    async with transaction(sessionmaker) as session:
        assert (await session.execute(text("SELECT count(*) FROM opinion_form"))).scalar_one() == 0
    # The same landline without the tick is a phone like any other.
    assert (await client.post("/api/v1/forms", json={"content": "村口路灯坏了。",
                                                     "submitter_phone": "0510-87654321"})).status_code == 201


@pytest.mark.parametrize(("given", "expected"), [
    ("13812345678", "13812345678"), ("138 1234 5678", "13812345678"), ("+86 138-1234-5678", "13812345678"),
    ("8613812345678", "13812345678"), ("008613812345678", "13812345678"), ("19912345678", "19912345678"),
    ("12812345678", None), ("1381234567", None), ("0510-87654321", None), ("+85291234567", None), ("", None),
    (None, None),
])
def test_only_mainland_mobile_numbers_take_sms(given: str | None, expected: str | None) -> None:
    assert mainland_mobile(given) == expected


# --- stopping ------------------------------------------------------------------------------------------------------


async def track_page(client: httpx.AsyncClient, no: str, code: str) -> httpx.Response:
    page = await client.get("/track")
    return await client.post("/track", data={"csrf_token": csrf_of(page), "no": no, "code": code})


async def test_a_resident_stops_sms_from_the_tracking_page(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    world = await build_world(sessionmaker)
    form = await consenting(client)
    await send(app, sender)
    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})
    assert response.status_code == 200
    await act(client, world, "handler_a", form["id"], "reply", {"reply": "已修复。"})  # a reply SMS waits

    page = await track_page(client, form["tracking_no"], form["verification_code"])
    assert page.status_code == 200 and "不再接收短信通知" in page.text
    token = csrf_of(page)
    wrong = await client.post("/track/sms-stop", data={"csrf_token": token, "no": form["tracking_no"],
                                                       "code": "000000" if form["verification_code"] != "000000"
                                                       else "111111"})
    assert wrong.status_code == 404 and "已停止短信通知" not in wrong.text
    assert [m.status for m in await messages(sessionmaker)] == ["sent", "pending"]
    no_csrf = await client.post("/track/sms-stop", data={"no": form["tracking_no"], "code": form["verification_code"]})
    assert no_csrf.status_code == 403

    stopped = await client.post("/track/sms-stop", data={"csrf_token": token, "no": form["tracking_no"],
                                                         "code": form["verification_code"]})

    assert stopped.status_code == 200 and "已停止短信通知" in stopped.text
    assert 'action="/track/sms-stop"' not in stopped.text
    assert stopped.headers["cache-control"] == "no-store"
    rows = await messages(sessionmaker)
    assert [m.status for m in rows] == ["sent", "stopped"] and rows[1].params is None
    assert await send(app, sender, now=datetime.now(UTC) + timedelta(hours=1)) == 0
    assert len(fake.sent) == 1
    # Answered again after reopening: no new SMS is written.
    await act(client, world, "coordinator", form["id"], "reopen", {"reason": "居民反映未修好。"})
    await act(client, world, "handler_a", form["id"], "reply", {"reply": "已再次修复。"})
    assert len(await messages(sessionmaker)) == 2
    # The office sees who stopped them, on the timeline (staff only) and in the SMS list.
    detail = (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("coordinator"))).json()
    assert detail["sms_stopped_at"] is not None
    assert any(e["type"] == "sms_stopped" and e["internal"] for e in detail["events"])
    again = await track_page(client, form["tracking_no"], form["verification_code"])
    assert "不再接收短信通知" not in again.text


async def test_a_resident_stops_sms_through_the_api(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    form = await consenting(client)  # its receipt still waits
    path = f"/api/v1/track/{form['tracking_no']}/sms-stop"
    wrong_code = "000000" if form["verification_code"] != "000000" else "111111"

    refused = await client.post(path, json={"code": wrong_code})
    assert refused.status_code == 404 and refused.json()["code"] == "tracking_not_found"
    assert (await only_message(sessionmaker)).status == SmsStatus.pending

    stopped = await client.post(path, json={"code": form["verification_code"]})

    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["stopped_messages"] == 1 and stopped.json()["tracking_no"] == form["tracking_no"]
    assert (await only_message(sessionmaker)).status == SmsStatus.stopped
    assert await send(app, sender) == 0 and fake.calls == 0
    again = await client.post(path, json={"code": form["verification_code"]})
    assert again.status_code == 200 and again.json()["stopped_messages"] == 0
    assert again.json()["sms_stopped_at"] == stopped.json()["sms_stopped_at"]


# --- where SMS is not configured ---------------------------------------------------------------------------------


async def test_with_sms_unset_nothing_is_queued_and_nothing_offered(db_url: str, fakes: Any) -> None:
    from tests.support.apps import build_app

    assert sms.offered(make_settings(db_url)) is False
    assert sms.provider_from_settings(make_settings(db_url)) is None
    incomplete = sms_settings(db_url, "tencent", fakes, sms_sdk_app_id=None)
    assert sms.offered(incomplete) is False and sms.missing(incomplete) == ["MINYI_SMS_SDK_APP_ID"]
    assert sms.offered(sms_settings(db_url, "tencent", fakes)) is True
    assert sms.offered(make_settings(db_url, sms_provider="log")) is True

    application = build_app(make_settings(db_url, worker_in_process=False, supervise_interval_seconds=0))
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            world = await build_world(application.state.sessionmaker)
            form = await consenting(client)
            assert form["sms_consent"] is False  # not offered: the tick is not kept
            await answer(client, world, form["id"])
            assert await messages(application.state.sessionmaker) == []
            page = await track_page(client, form["tracking_no"], form["verification_code"])
            assert page.status_code == 200 and "不再接收短信通知" not in page.text
            # The pages do not offer it, and a tick posted anyway is not kept.
            assert 'name="sms_consent"' not in (await client.get("/w/LS-01")).text
            token = csrf_of(await client.get("/w/LS-01"))
            posted = await client.post("/submit", data={"csrf_token": token, "content": "路灯坏了。", "workroom_code": "LS-01",
                                                        "submitter_phone": "0510-83100000", "sms_consent": "true"})
            assert posted.status_code == 303
            async with application.state.sessionmaker() as session:
                kept = await session.scalar(select(OpinionForm.sms_consent).order_by(OpinionForm.id.desc()).limit(1))
            assert kept is False and await messages(application.state.sessionmaker) == []
    finally:
        await application.state.engine.dispose()


# --- the pages: 短信通知 ticked on the resident's and the representative's page --------------------------


@BOTH
async def test_the_public_page_offers_sms_and_its_tick_queues_the_receipt(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    await build_world(sessionmaker)
    page = await client.get("/w/LS-01")
    assert 'name="sms_consent"' in page.text and "用短信通知我" in page.text
    token = csrf_of(page)
    fields = {"csrf_token": token, "content": "村口路灯坏了。", "workroom_code": "LS-01", "submitter_name": "王阿姨"}
    landline = await client.post("/submit", data={**fields, "submitter_phone": "0510-83100000", "sms_consent": "true"})
    assert landline.status_code == 422 and SMS_PHONE_MESSAGE in landline.text
    assert 'value="王阿姨"' in landline.text and 'name="sms_consent" value="true" aria-describedby="h-sms" checked' in landline.text
    assert await messages(sessionmaker) == []

    posted = await client.post("/submit", data={**fields, "submitter_phone": "138 1234 5678", "sms_consent": "true"})
    assert posted.status_code == 303
    assert await send(app, sender) == 1
    (sent,) = fake.sent
    async with sessionmaker() as session:
        form = (await session.scalars(select(OpinionForm))).one()
    assert sent["phone"] == PHONE and values_of(sent)[0] == form.tracking_no and form.sms_consent is True


@BOTH
async def test_the_representatives_page_takes_the_residents_sms_tick(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    await build_world(sessionmaker)
    token = await sign_in(client, "rep")
    assert "群众要短信通知" in (await client.get("/rep")).text
    headers = {"Accept": "application/json", "X-CSRF-Token": token}
    fields = {"content": "菜场排水沟堵了。", "source": "w:LS-01", "sms_consent": "true"}
    missing = await client.post("/rep/forms", data=fields, headers=headers)
    assert missing.status_code == 422 and missing.json()["errors"]["submitter_phone"] == SMS_NO_PHONE_MESSAGE
    created = await client.post("/rep/forms", data={**fields, "submitter_phone": PHONE}, headers=headers)
    assert created.status_code == 201, created.text
    assert await send(app, sender) == 1
    (sent,) = fake.sent
    assert values_of(sent) == [created.json()["tracking_no"], created.json()["verification_code"]]


async def test_the_log_provider_sends_nothing_anywhere_and_records_the_message(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.apps import build_app

    settings = make_settings(db_url, sms_provider="log", worker_in_process=False, supervise_interval_seconds=0)
    application = build_app(settings)
    logger = sms.provider_from_settings(settings)
    assert isinstance(logger, sms.LogSms)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            form = await consenting(client)
        with caplog.at_level("INFO", logger="app.services.sms"):
            assert await sms.send_due(application.state.sessionmaker, logger, settings) == 1
        assert form["tracking_no"] in caplog.text and "138****5678" in caplog.text and PHONE not in caplog.text
        assert (await only_message(application.state.sessionmaker)).status == SmsStatus.sent
    finally:
        await application.state.engine.dispose()


# --- who sees the SMS list -----------------------------------------------------------------------------------------


async def test_staff_see_the_sms_of_a_form_and_integrators_do_not(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    world = await build_world(sessionmaker)
    form = await consenting(client)
    fake.refused_phones.add(PHONE)
    await send(app, sender)

    detail = (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("coordinator"))).json()
    assert [(m["kind"], m["status"], m["error_code"]) for m in detail["sms"]] == [
        ("receipt", "failed", "isv.MOBILE_NUMBER_ILLEGAL")]
    assert PHONE not in json.dumps(detail["sms"]) and form["verification_code"] not in json.dumps(detail["sms"])
    integrator = await api_client(sessionmaker, scopes=("forms:read",))
    outside = (await client.get(f"/api/v1/forms/{form['id']}", headers=integrator)).json()
    assert outside["sms"] == []
    tracked = (await client.get(f"/api/v1/track/{form['tracking_no']}",
                                params={"code": form["verification_code"]})).json()
    assert "sms" not in tracked

    await sign_in(client, "coordinator")
    page = await client.get(f"/office/forms/{form['id']}")
    assert page.status_code == 200
    assert "短信通知" in page.text and 'data-sms="receipt"' in page.text and "发送失败" in page.text
    assert "isv.MOBILE_NUMBER_ILLEGAL" in page.text


# --- personal data --------------------------------------------------------------------------------------------------


async def test_erasing_a_residents_data_wipes_the_phone_of_their_sms(
    client: httpx.AsyncClient, app: Any, sessionmaker: Any, sender: Any, fake: Any
) -> None:
    await consenting(client)
    async with transaction(sessionmaker) as session:
        await personal_data.erase_subject(session, personal_data.Subject(phone=PHONE))

    message = await only_message(sessionmaker)
    assert message.phone is None and message.phone_hash is None and message.params is None
    assert message.status == SmsStatus.stopped
    assert await send(app, sender) == 0 and fake.calls == 0
    async with transaction(sessionmaker) as session:
        assert (await session.scalar(select(OpinionForm.submitter_phone))) is None


# --- signatures against the providers' published examples ------------------------------------------------------


ALIYUN_RPC_EXAMPLE = {  # Alibaba Cloud "RPC signature" document: DescribeRegions, secret "testsecret"
    "AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26",
}
ALIYUN_SMS_EXAMPLE = {  # Dysmsapi SendSms signature example, secret "testSecret"
    "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123", "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466", "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}', "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
# Tencent Cloud "Signature v3" document: CVM DescribeInstances at 1551113065, key Gu5t9xGARNpq86cd98joQYCN3*******
TC3_PAYLOAD = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
TC3_HEADERS = {"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com"}


def test_aliyun_signature_matches_the_published_examples() -> None:
    assert sms.aliyun_signature("GET", ALIYUN_RPC_EXAMPLE, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert sms.aliyun_string_to_sign("GET", ALIYUN_RPC_EXAMPLE) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
        "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26")
    assert sms.aliyun_signature("GET", ALIYUN_SMS_EXAMPLE, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    # The fake's own implementation agrees with the documents too, so it checks what Alibaba checks.
    assert aliyun_expected_signature("GET", ALIYUN_SMS_EXAMPLE, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert sms.percent_encode("a b*c~d/") == "a%20b%2Ac~d%2F"


def test_tc3_signature_matches_the_published_example() -> None:
    signed = sms.tc3_sign("Gu5t9xGARNpq86cd98joQYCN3*******", service="cvm", timestamp=1551113065,
                          headers=TC3_HEADERS, payload=TC3_PAYLOAD)
    assert signed.signature == "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    assert signed.string_to_sign.endswith("5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031")
    assert signed.canonical_request.endswith("35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    assert signed.authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******") == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c")
    assert tc3_expected_signature("Gu5t9xGARNpq86cd98joQYCN3*******", method="POST", uri="/", query="",
                                  headers=TC3_HEADERS, signed_headers=["content-type", "host"], payload=TC3_PAYLOAD,
                                  timestamp=1551113065, service="cvm") == signed.signature
