"""Webhooks end to end: managed through the API, delivered by real workers to a real receiver on
127.0.0.1 that verifies every signature with the independent ``standardwebhooks`` package.

Time is moved with ``deliver_due(now=...)``, never slept through: retries, the day-long give-up and the
rotation grace are all reached that way.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from app import migrate
from app.config import Settings
from app.db import create_engine, create_sessionmaker, transaction
from app.errors import Invalid
from tests.support.apps import build_app
from app.models import ApiClient, FormChange, Webhook, WebhookDelivery, utcnow
from app.services import webhooks as webhook_service
from app.services.worker import Worker
from tests.conftest import make_settings
from tests.factories import act, answered_form, assigned_form, build_world, submit
from tests.support.webhooks import api_client, attempts, create_hook, deliver, deliveries, hooked
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent


# --- helpers -----------------------------------------------------------------------------------------


async def change_ids(sessionmaker) -> list[str]:
    async with sessionmaker() as session:
        return [f"chg_{i}" for i in (await session.scalars(select(FormChange.id).order_by(FormChange.id))).all()]


async def eventually(check: Callable[[], Any], *, within: float = 30.0, step: float = 0.05) -> Any:
    """Wait for ``check()`` to return something truthy (a deadline against hanging, not a timing claim)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(step)


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


# --- managing webhooks -------------------------------------------------------------------------------


async def test_the_secret_is_shown_once_in_the_standard_format_and_stored_encrypted(client, sessionmaker, receiver):
    world = await build_world(sessionmaker)
    created = await create_hook(client, world.auth("admin"), receiver.url(), ["form.answered", "form.submitted"])
    assert created["secret"].startswith("whsec_")
    assert 24 <= len(base64.b64decode(created["secret"].removeprefix("whsec_"))) <= 32
    assert created["events"] == ["form.submitted", "form.answered"]  # the catalogue's order, each once
    assert created["active"] is True and created["client_id"] is None and created["created_at"].endswith("+08:00")

    listed = (await client.get("/api/v1/webhooks", headers=world.auth("admin"))).json()
    one = (await client.get(f"/api/v1/webhooks/{created['id']}", headers=world.auth("admin"))).json()
    assert [h["id"] for h in listed["items"]] == [created["id"]]
    assert "secret" not in listed["items"][0] and "secret" not in one
    assert created["secret"] not in repr(listed) + repr(one)
    async with sessionmaker() as session:
        stored = await session.scalar(select(Webhook.secret).where(Webhook.id == created["id"]))
    key = created["secret"].removeprefix("whsec_")
    assert created["secret"] not in stored and key not in stored


@pytest.mark.parametrize(("body", "code"), [
    ({"url": "https://example.cn/hook", "events": ["form.submitted", "form.exploded"]}, "unknown_event"),
    ({"url": "ftp://example.cn/hook", "events": ["form.submitted"]}, "invalid_webhook_url"),
    ({"url": "example.cn/hook", "events": ["form.submitted"]}, "invalid_webhook_url"),
    ({"url": "https://example.cn:99999/hook", "events": ["form.submitted"]}, "invalid_webhook_url"),
    ({"url": "https://user:pw@example.cn/hook", "events": ["form.submitted"]}, "invalid_webhook_url"),
    ({"url": "http://example.cn/hook", "events": ["form.submitted"]}, "insecure_webhook_url"),
    ({"url": "https://example.cn/hook", "events": []}, "validation_error"),
    ({"url": "https://example.cn/hook"}, "validation_error"),
    ({"url": "https://example.cn/hook", "events": "form.submitted"}, "validation_error"),
])
async def test_a_bad_webhook_is_refused_with_a_clear_422(client, sessionmaker, body, code):
    world = await build_world(sessionmaker)
    response = await client.post("/api/v1/webhooks", json=body, headers=world.auth("admin"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert (await client.get("/api/v1/webhooks", headers=world.auth("admin"))).json()["items"] == []


@pytest.mark.parametrize(("environment", "url", "verdict"), [
    ("test", "http://127.0.0.1:8080/hook", None),
    ("development", "http://localhost/hook", None),
    ("development", "https://example.cn/hook", None),
    ("development", "http://192.168.1.5/hook", "insecure_webhook_url"),
    ("production", "https://example.cn/minyi", None),
    ("production", "http://127.0.0.1:8080/hook", "insecure_webhook_url"),
    ("production", "https://127.0.0.1/hook", "private_webhook_url"),
    ("production", "https://localhost/hook", "private_webhook_url"),
    ("production", "https://10.1.2.3/hook", "private_webhook_url"),
    ("production", "https://[::1]/hook", "private_webhook_url"),
])
def test_receiver_addresses_are_https_and_http_only_to_this_machine_outside_production(environment, url, verdict):
    settings = Settings(_env_file=None, environment=environment, secret_key="a-real-secret")  # type: ignore[call-arg]
    if verdict is None:
        assert webhook_service.check_url(url, settings=settings) == url
    else:
        with pytest.raises(Invalid) as refused:
            webhook_service.check_url(url, settings=settings)
        assert refused.value.code == verdict


async def test_managing_webhooks_needs_the_webhooks_scope_or_the_admin(client, sessionmaker, receiver):
    world = await build_world(sessionmaker)
    reader = await api_client(sessionmaker, scopes=("forms:read",))
    body = {"url": receiver.url(), "events": ["form.submitted"]}

    anonymous = await client.post("/api/v1/webhooks", json=body)
    assert anonymous.status_code == 401
    for headers, code in ((reader, "missing_scope"), (world.auth("coordinator"), "forbidden")):
        for response in (await client.post("/api/v1/webhooks", json=body, headers=headers),
                         await client.get("/api/v1/webhooks", headers=headers)):
            assert response.status_code == 403, response.text
            assert response.json()["code"] == code
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Webhook)) == 0


async def test_another_client_can_neither_see_nor_touch_my_webhook(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    mine, theirs = await api_client(sessionmaker, name="甲"), await api_client(sessionmaker, name="乙")
    hook = await create_hook(client, mine, receiver.url("mine"), ["form.submitted"])
    receiver.expect("mine", hook["secret"])
    office = await create_hook(client, world.auth("admin"), receiver.url("office"), ["form.submitted"])
    await submit(client)
    await deliver(sessionmaker, settings)
    (delivery,) = [d for d in await deliveries(sessionmaker) if d.webhook_id == hook["id"]]

    base = f"/api/v1/webhooks/{hook['id']}"
    for method, path, body in (
        ("GET", base, None), ("PATCH", base, {"active": False}), ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", None), ("POST", f"{base}/test", None),
        ("GET", f"{base}/deliveries", None), ("GET", f"{base}/deliveries/{delivery.id}", None),
        ("POST", f"{base}/deliveries/{delivery.id}/redeliver", None),
    ):
        response = await client.request(method, path, json=body, headers=theirs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "webhook_not_found"
    assert (await client.get("/api/v1/webhooks", headers=theirs)).json()["items"] == []
    # The owner sees its own only; the admin sees every webhook, the client's with its client_id.
    assert [h["id"] for h in (await client.get("/api/v1/webhooks", headers=mine)).json()["items"]] == [hook["id"]]
    assert (await client.get(f"/api/v1/webhooks/{office['id']}", headers=mine)).status_code == 404
    everything = (await client.get("/api/v1/webhooks", headers=world.auth("admin"))).json()["items"]
    assert {h["id"]: h["client_id"] for h in everything} == {hook["id"]: hook["client_id"], office["id"]: None}
    assert hook["client_id"] is not None
    unchanged = (await client.get(base, headers=mine)).json()
    assert unchanged["active"] is True


async def test_a_revoked_clients_webhooks_get_nothing_more(client, sessionmaker, settings, receiver):
    mine = await api_client(sessionmaker)
    hook = await create_hook(client, mine, receiver.url(), ["form.submitted"])
    receiver.expect("hook", hook["secret"])
    await submit(client)
    async with transaction(sessionmaker) as session:
        (await session.get(ApiClient, hook["client_id"])).revoked_at = utcnow()
    assert await deliver(sessionmaker, settings) == 0
    assert receiver.arrivals() == []
    assert (await client.get("/api/v1/webhooks", headers=mine)).status_code == 401
    assert [d.status for d in await deliveries(sessionmaker)] == ["pending"]


async def test_revoking_a_client_switches_its_webhooks_off_and_settles_what_was_waiting(
    client, sessionmaker, settings, receiver
):
    world = await build_world(sessionmaker)
    mine = await api_client(sessionmaker)
    hook = await create_hook(client, mine, receiver.url(), ["form.submitted"])
    await submit(client)
    revoked = await client.delete(f"/api/v1/api-clients/{hook['client_id']}", headers=world.auth("admin"))
    assert revoked.status_code == 204
    await submit(client)  # after the revocation: no delivery at all

    assert await deliver(sessionmaker, settings) == 0
    assert receiver.arrivals() == []
    waiting = await deliveries(sessionmaker)
    assert [(d.status, d.last_error) for d in waiting] == [("failed", "接口客户端已吊销，不再投递。")]
    admin_view = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=world.auth("admin"))
    assert admin_view.json()["active"] is False


async def test_patch_changes_what_is_delivered_and_delete_removes_everything(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver, events=["form.submitted"])
    url = f"/api/v1/webhooks/{hook['id']}"
    patched = await client.patch(url, json={"events": ["form.assigned"]}, headers=world.auth("admin"))
    assert patched.status_code == 200 and patched.json()["events"] == ["form.assigned"]
    await assigned_form(client, world)
    await deliver(sessionmaker, settings)
    assert [e["type"] for e in receiver.events()] == ["form.assigned"]

    # Paused: no new deliveries fan out to it, and one already pending waits until it is active again.
    later, declined = await submit(client), await submit(client)  # submissions: not subscribed
    await client.patch(url, json={"events": ["form.assigned", "form.declined"]}, headers=world.auth("admin"))
    await act(client, world, "coordinator", declined["id"], "decline", {"reason": "不属于本镇职责范围。"})
    assert (await client.patch(url, json={"active": False}, headers=world.auth("admin"))).json()["active"] is False
    await act(client, world, "coordinator", later["id"], "assign", {"unit_id": world.units["A"].id})
    assert await deliver(sessionmaker, settings) == 0
    await client.patch(url, json={"active": True}, headers=world.auth("admin"))
    assert await deliver(sessionmaker, settings) == 1
    assert [e["type"] for e in receiver.events()] == ["form.assigned", "form.declined"]

    bad = await client.patch(url, json={"url": None}, headers=world.auth("admin"))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_webhook"
    assert (await client.patch(url, json={"events": ["nope"]}, headers=world.auth("admin"))).json()["code"] == "unknown_event"

    deleted = await client.delete(url, headers=world.auth("admin"))
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(url, headers=world.auth("admin"))).status_code == 404
    assert await deliveries(sessionmaker) == [] and await attempts(sessionmaker) == []


# --- delivery ------------------------------------------------------------------------------------------


async def test_a_webhook_gets_exactly_its_events_signed_and_in_order(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    await hooked(client, world, receiver, events=["form.submitted", "form.answered"])
    form = await answered_form(client, world)
    await act(client, world, "coordinator", form["id"], "close", {"satisfaction": "satisfied"})

    assert await deliver(sessionmaker, settings) == 2
    assert receiver.rejected == []
    events = receiver.events()
    assert [e["type"] for e in events] == ["form.submitted", "form.answered"]
    async with sessionmaker() as session:
        changes = {f"chg_{c.id}": c for c in (await session.scalars(select(FormChange))).all()}
    for event, request in zip(events, receiver.requests, strict=True):
        change = changes[event["id"]]
        assert set(event) == {"id", "type", "at", "data"}
        assert request.msg_id == event["id"] and event["type"] == change.type
        assert event["data"] == change.data and event["data"]["id"] == form["id"]
        assert event["at"].endswith("+08:00")
        assert request.headers["user-agent"] == "Minyi-Webhooks/1"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-signature"].startswith("v1,")
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 300
    assert events[1]["data"]["status"] == "answered" and events[1]["data"]["reply"] == "已安排维修，三日内完成。"
    rows = await deliveries(sessionmaker)
    assert [(d.status, d.attempts, d.last_status_code) for d in rows] == [("delivered", 1, 200)] * 2
    assert all(d.delivered_at is not None and d.claimed_until is None for d in rows)
    assert [(a.status_code, a.worker) for a in await attempts(sessionmaker)] == [(200, "test-worker")] * 2
    assert await deliver(sessionmaker, settings) == 0  # nothing is sent twice


async def test_a_signature_made_with_another_secret_is_refused_by_the_receiver(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    await hooked(client, world, receiver)
    receiver.expect("hook", webhook_service.new_secret())  # the receiver holds a secret we never used
    await submit(client)
    await deliver(sessionmaker, settings)
    assert receiver.events() == [] and receiver.rejected == [("hook", "No matching signature found")]
    (delivery,) = await deliveries(sessionmaker)
    assert delivery.status == "pending" and delivery.last_status_code == 400


async def test_the_receiver_refuses_a_stale_timestamp(receiver):
    # The receiver is part of the evidence: check that it really refuses a replayed (old) request.
    secret = webhook_service.new_secret()
    receiver.expect("hook", secret)
    body = '{"id":"chg_1","type":"form.submitted","at":"2026-01-01T00:00:00+08:00","data":{}}'
    old = int(time.time()) - 600
    headers = webhook_service.signed_headers([secret], msg_id="chg_1", body=body, timestamp=old)
    async with httpx.AsyncClient() as http:
        stale = await http.post(receiver.url(), content=body, headers=headers)
        fresh = await http.post(receiver.url(), content=body,
                                headers=webhook_service.signed_headers([secret], msg_id="chg_1", body=body))
    assert stale.status_code == 400 and fresh.status_code == 200
    assert receiver.rejected == [("hook", "Message timestamp too old")] and receiver.ids() == ["chg_1"]


async def test_a_failed_delivery_is_retried_with_backoff_and_every_attempt_recorded(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    await hooked(client, world, receiver, events=["form.submitted"])
    await submit(client)
    receiver.fail_next(2, status=500)
    start = utcnow()

    assert await deliver(sessionmaker, settings, now=start) == 1
    (first,) = await deliveries(sessionmaker)
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
    assert "HTTP 500" in first.last_error and "try again later" in first.last_error
    assert timedelta(seconds=26) < first.next_attempt_at - start < timedelta(seconds=34)
    assert await deliver(sessionmaker, settings, now=start + timedelta(seconds=20)) == 0  # not due yet

    assert await deliver(sessionmaker, settings, now=first.next_attempt_at) == 1
    (second,) = await deliveries(sessionmaker)
    assert second.attempts == 2
    assert timedelta(seconds=105) < second.next_attempt_at - first.next_attempt_at < timedelta(seconds=135)

    assert await deliver(sessionmaker, settings, now=second.next_attempt_at) == 1
    (done,) = await deliveries(sessionmaker)
    assert (done.status, done.attempts, done.last_status_code, done.last_error) == ("delivered", 3, 200, None)
    assert [a.status_code for a in await attempts(sessionmaker, done.id)] == [500, 500, 200]
    assert len(receiver.arrivals()) == 3 and len(receiver.ids()) == 1


async def test_a_delivery_that_keeps_failing_gives_up_after_about_a_day(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    await hooked(client, world, receiver, events=["form.submitted"])
    await submit(client)
    receiver.fail_next(100, status=503)
    now = utcnow()
    for _ in range(20):
        await deliver(sessionmaker, settings, now=now)
        (delivery,) = await deliveries(sessionmaker)
        if delivery.status != "pending":
            break
        now = delivery.next_attempt_at
    assert (delivery.status, delivery.attempts) == ("failed", webhook_service.MAX_ATTEMPTS)
    assert "HTTP 503" in delivery.last_error
    tried = await attempts(sessionmaker, delivery.id)
    assert len(tried) == webhook_service.MAX_ATTEMPTS == 10
    gaps = [b.at - a.at for a, b in zip(tried, tried[1:], strict=False)]
    for gap, base in zip(gaps, webhook_service.RETRY_DELAYS, strict=True):
        assert base * 0.89 < gap < base * 1.11 + timedelta(seconds=5)
    assert timedelta(hours=20) < tried[-1].at - tried[0].at < timedelta(hours=27)
    assert await deliver(sessionmaker, settings, now=now + timedelta(days=3)) == 0
    assert len(receiver.arrivals()) == 10


async def test_timeouts_and_unreachable_receivers_are_failed_attempts_with_one_neutral_text(
    client, sessionmaker, settings, receiver, caplog
):
    """A closed port and a receiver that never answers read the same to the owner (so the delivery log
    and the ping cannot be used to map ports); the log tells the operator which it was."""
    world = await build_world(sessionmaker)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    await create_hook(client, world.auth("admin"), f"http://127.0.0.1:{closed_port}/nobody", ["form.submitted"])
    await hooked(client, world, receiver, path="slow", events=["form.submitted"])
    receiver.hang_next(1, seconds=30, path="slow")
    await submit(client)

    quick = settings.model_copy(update={"webhook_timeout_seconds": 0.5})
    with caplog.at_level(logging.INFO, logger="app.services.webhooks"):
        assert await deliver(sessionmaker, quick) == 2
    receiver.release()
    unreachable, slow = await deliveries(sessionmaker)
    assert (unreachable.status, unreachable.last_status_code, unreachable.last_error) == (
        "pending", None, webhook_service.UNREACHABLE)
    assert (slow.status, slow.last_status_code, slow.last_error) == ("pending", None, webhook_service.UNREACHABLE)
    assert [a.error for a in await attempts(sessionmaker)] == [webhook_service.UNREACHABLE] * 2
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "ConnectError" in logged and "no answer within 0.5 s" in logged


async def test_410_gone_fails_the_delivery_and_disables_the_webhook(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver, events=["form.submitted"])
    await submit(client)
    receiver.fail_next(1, status=410)
    await deliver(sessionmaker, settings)
    (delivery,) = await deliveries(sessionmaker)
    assert (delivery.status, delivery.last_status_code) == ("failed", 410)
    assert (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=world.auth("admin"))).json()["active"] is False
    await submit(client)
    assert len(await deliveries(sessionmaker)) == 1  # no new deliveries for a disabled webhook


async def test_redeliver_sends_the_same_webhook_id_again_for_delivered_and_failed_ones(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver, events=["form.submitted"])
    await submit(client)
    await submit(client)
    receiver.fail_next(1, status=400)  # the first delivery fails once …
    await deliver(sessionmaker, settings)
    first, second = await deliveries(sessionmaker)
    async with transaction(sessionmaker) as session:  # … and, a day of failures later, for good
        (await session.get(WebhookDelivery, first.id)).status = "failed"

    base = f"/api/v1/webhooks/{hook['id']}/deliveries"
    for delivery in (first, second):
        response = await client.post(f"{base}/{delivery.id}/redeliver", headers=world.auth("admin"))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "pending" and response.json()["attempts"] == 0
    assert await deliver(sessionmaker, settings) == 2
    # The first was refused once (400), then came again; the second came twice, delivered both times.
    assert sorted(receiver.arrivals()) == sorted([f"chg_{first.change_id}", f"chg_{second.change_id}"] * 2)
    assert receiver.ids() == [f"chg_{second.change_id}", f"chg_{first.change_id}"]
    assert receiver.duplicates() == [f"chg_{second.change_id}"]  # same id: the receiver could dedupe
    detail = (await client.get(f"{base}/{second.id}", headers=world.auth("admin"))).json()
    assert detail["status"] == "delivered" and detail["attempts"] == 1
    assert [a["status_code"] for a in detail["attempt_log"]] == [200, 200]  # the history is kept
    assert detail["payload"]["id"] == detail["message_id"] == f"chg_{second.change_id}"


async def test_deliveries_are_listed_newest_first_with_filters_and_pages(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver, events=["form.submitted"])
    for _ in range(5):
        await submit(client)
    receiver.fail_next(2)
    await deliver(sessionmaker, settings)
    base = f"/api/v1/webhooks/{hook['id']}/deliveries"
    seen, cursor = [], None
    while True:
        page = (await client.get(base, params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                                 headers=world.auth("admin"))).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d["id"] for d in seen] == sorted((d["id"] for d in seen), reverse=True) and len(seen) == 5
    item = seen[-1]
    assert set(item) == {"id", "webhook_id", "change_id", "message_id", "type", "status", "attempts",
                         "next_attempt_at", "last_status_code", "last_error", "created_at", "delivered_at"}
    assert item["message_id"] == f"chg_{item['change_id']}" and item["type"] == "form.submitted"
    pending = (await client.get(base, params={"status": "pending"}, headers=world.auth("admin"))).json()["items"]
    assert [(d["status"], d["last_status_code"]) for d in pending] == [("pending", 500)] * 2
    assert all(d["next_attempt_at"] is not None for d in pending)
    bad = await client.get(base, params={"cursor": "not-a-cursor"}, headers=world.auth("admin"))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"
    wrong = await client.get(base, params={"status": "lost"}, headers=world.auth("admin"))
    assert wrong.status_code == 422
    missing = await client.get(f"{base}/999999", headers=world.auth("admin"))
    assert missing.status_code == 404 and missing.json()["code"] == "delivery_not_found"


async def test_after_a_rotation_both_secrets_sign_for_a_day_then_only_the_new_one(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver, events=["form.submitted"])
    rotated = await client.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=world.auth("admin"))
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != hook["secret"]
    receiver.expect("hook", new)

    await submit(client)
    await deliver(sessionmaker, settings)
    (during,) = receiver.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], new):
        Verifier(secret).verify(during.body, during.headers)

    await submit(client)
    await deliver(sessionmaker, settings, now=utcnow() + timedelta(hours=25))
    after = receiver.requests[-1]
    Verifier(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(hook["secret"]).verify(after.body, after.headers)
    assert receiver.rejected == [] and len(receiver.ids()) == 2


async def test_the_ping_reports_what_the_receiver_answered(client, sessionmaker, receiver):
    world = await build_world(sessionmaker)
    hook = await hooked(client, world, receiver)
    answer = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=world.auth("admin"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["delivered"] is True and body["status_code"] == 200 and body["error"] is None
    (ping,) = receiver.events()
    assert ping["type"] == "webhook.ping" and ping["id"] == body["message_id"]
    assert ping["data"] == {"webhook_id": hook["id"]}
    receiver.fail_next(1, status=500)
    failed = (await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=world.auth("admin"))).json()
    assert failed["delivered"] is False and failed["status_code"] == 500 and "HTTP 500" in failed["error"]
    assert await deliveries(sessionmaker) == []  # a ping is not stored


# --- claiming, leases and workers ----------------------------------------------------------------------


async def test_a_slow_receiver_holds_up_neither_other_webhooks_nor_its_own_order(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    await hooked(client, world, receiver, path="slow", events=["form.submitted"])
    await hooked(client, world, receiver, path="fast", events=["form.submitted"])
    await submit(client)
    settings = settings.model_copy(update={"webhook_timeout_seconds": 30})  # the hang ends by release()
    receiver.hang_next(1, seconds=30, path="slow")
    first_round = asyncio.create_task(deliver(sessionmaker, settings))
    await eventually(lambda: receiver.hanging.is_set())
    # The other webhook got its delivery while the slow one is still waiting on its receiver (received, and
    # recorded by the first round: until then its lease keeps the fast webhook out of any round, by design) …
    await eventually(lambda: receiver.ids("fast"))

    async def fast_recorded() -> bool:
        return any(d.status == "delivered" for d in await deliveries(sessionmaker))

    await eventually(fast_recorded)
    assert not first_round.done()
    # … and a second round meanwhile leaves the slow webhook alone: its next change waits its turn.
    await submit(client)
    assert await deliver(sessionmaker, settings) == 1
    assert len(receiver.ids("fast")) == 2 and len(receiver.arrivals("slow")) == 1
    receiver.release()
    assert await first_round == 2
    assert await deliver(sessionmaker, settings) == 1
    slow = receiver.ids("slow")
    assert slow == sorted(slow, key=lambda i: int(i.removeprefix("chg_"))) and len(slow) == 2


async def test_a_claim_taken_over_after_its_lease_is_not_overwritten_by_the_late_worker(
    client, sessionmaker, settings, receiver
):
    world = await build_world(sessionmaker)
    await hooked(client, world, receiver, events=["form.submitted"])
    await submit(client)
    receiver.hang_next(1, seconds=30)
    late = asyncio.create_task(deliver(sessionmaker, settings, worker_id="late"))
    await eventually(lambda: receiver.hanging.is_set())
    # The lease has run out (as far as the second worker's clock says): it takes the delivery over.
    after_lease = utcnow() + timedelta(seconds=webhook_service._lease(settings) + 1)
    assert await deliver(sessionmaker, settings, now=after_lease, worker_id="takeover") == 1
    receiver.release()
    await late
    (delivery,) = await deliveries(sessionmaker)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert sorted(a.worker for a in await attempts(sessionmaker, delivery.id)) == ["late", "takeover"]
    assert len(receiver.arrivals()) == 2 and len(receiver.ids()) == 1 and len(receiver.duplicates()) == 1


async def test_two_workers_at_once_never_send_the_same_delivery_twice(client, sessionmaker, settings, receiver):
    world = await build_world(sessionmaker)
    paths = ("a", "b", "c")
    for path in paths:
        await hooked(client, world, receiver, path=path, events=["form.submitted"])
    for _ in range(12):
        await submit(client)

    async def work(worker_id: str) -> int:
        total = 0
        while sent := await deliver(sessionmaker, settings, worker_id=worker_id, limit=7):
            total += sent
        return total

    counts = await asyncio.gather(work("one"), work("two"), work("three"))
    assert sum(counts) == 36
    for path in paths:
        arrivals = receiver.arrivals(path)
        assert len(arrivals) == len(set(arrivals)) == 12, path
    assert {d.status for d in await deliveries(sessionmaker)} == {"delivered"}
    assert len(await attempts(sessionmaker)) == 36


async def test_the_in_process_worker_runs_with_the_app_and_stops_with_it(db_url, receiver):
    settings = make_settings(db_url, worker_poll_seconds=0.05, supervise_interval_seconds=0)
    application = build_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            world = await build_world(application.state.sessionmaker)
            await hooked(client, world, receiver, events=["form.submitted"])
            form = await submit(client)
            (event,) = await eventually(lambda: receiver.events())
    assert event["data"]["id"] == form["id"]


async def test_the_worker_survives_database_errors_and_carries_on(empty_db_url, receiver, caplog):
    settings = make_settings(empty_db_url, worker_poll_seconds=0.05)
    engine = create_engine(settings)
    worker = Worker(create_sessionmaker(engine), settings, worker_id="survivor")
    worker.start()
    try:
        # No schema yet: every round fails, is logged, and the loop goes on.
        with caplog.at_level(logging.ERROR, logger="app.services.worker"):
            await eventually(lambda: sum("webhook delivery round failed" in r.message for r in caplog.records) >= 2)
        await migrate.upgrade(empty_db_url)
        application = build_app(make_settings(empty_db_url))
        try:
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                world = await build_world(application.state.sessionmaker)
                await hooked(client, world, receiver, events=["form.submitted"])
                await submit(client)
                await eventually(lambda: receiver.events())
        finally:
            await application.state.engine.dispose()
    finally:
        await worker.aclose()
        await engine.dispose()
    assert receiver.rejected == []


# --- `minyi worker` as a process of its own ---------------------------------------------------------


def worker_process(db_url: str, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ, "MINYI_DATABASE_URL": db_url, "MINYI_SECRET_KEY": "test-secret-key",
        "MINYI_ENVIRONMENT": "test", "MINYI_WORKER_POLL_SECONDS": "0.1", **env,
    }
    return subprocess.Popen([sys.executable, "-m", "app", "worker", *args], env=environment, cwd=ROOT,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def test_minyi_worker_once_delivers_what_is_due_and_exits(client, sessionmaker, db_url, tmp_path, receiver):
    world = await build_world(sessionmaker)
    await hooked(client, world, receiver, events=["form.submitted"])
    await submit(client)
    await submit(client)
    log = tmp_path / "worker.log"
    process = worker_process(db_url, log, "--once", "--id", "cron")
    assert await asyncio.to_thread(process.wait, 60) == 0, log.read_text()
    assert "2 delivery/notice item(s) handled" in log.read_text()
    assert receiver.ids() == await change_ids(sessionmaker)
    assert {a.worker for a in await attempts(sessionmaker)} == {"cron"}


async def test_a_worker_killed_mid_delivery_is_taken_over_and_every_event_arrives_once(
    client, sessionmaker, db_url, tmp_path, receiver
):
    """The issue's test: a real receiver on 127.0.0.1 that verifies signatures sees every event,
    deduplicated by id, even when a worker is killed mid-delivery and another takes over."""
    world = await build_world(sessionmaker)
    await hooked(client, world, receiver)
    form = await assigned_form(client, world)
    await act(client, world, "handler_a", form["id"], "reply", {"reply": "已修复。"})
    for _ in range(3):
        await submit(client)
    expected = await change_ids(sessionmaker)
    assert len(expected) == 6
    receiver.hang_next(1, seconds=120)
    # A short lease, so the takeover comes soon: the worker's timeout is 3 s, its lease 3 + 5 s.
    timing = {"MINYI_WEBHOOK_TIMEOUT_SECONDS": "3", "MINYI_WEBHOOK_LEASE_SECONDS": "1"}
    log = tmp_path / "workers.log"

    first = worker_process(db_url, log, "--id", "first", **timing)
    try:
        assert await asyncio.to_thread(receiver.hanging.wait, 60), log.read_text()
        first.send_signal(signal.SIGKILL)  # mid-delivery: the receiver has the request, no answer came back
        assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    hung = receiver.arrivals()[0]

    second = worker_process(db_url, log, "--id", "second", **timing)
    try:
        async def all_delivered() -> bool:
            return {d.status for d in await deliveries(sessionmaker)} == {"delivered"}

        await eventually(all_delivered, within=60, step=0.2)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 30) == 0, log.read_text()  # a clean stop
    finally:
        if second.poll() is None:
            second.kill()

    assert receiver.rejected == []  # every request verified
    assert receiver.ids() == expected  # every event exactly once after dedupe, in change order
    assert receiver.duplicates() == [hung] and receiver.arrivals().count(hung) == 2  # the hung one came again
    assert len(receiver.arrivals()) == len(expected) + 1
    tried = await attempts(sessionmaker)
    assert {a.worker for a in tried} == {"second"} and len(tried) == len(expected)  # the killed one recorded nothing


async def test_a_delivery_log_shows_the_form_only_to_a_key_that_may_read_forms(client, sessionmaker, receiver):
    """The log shows what the key's scopes may read (issue 15.5): with only ``webhooks``, which form and which
    step; with ``forms:read`` as well, the body as sent; an admin reads every body."""
    world = await build_world(sessionmaker)
    secret = "小区东门路灯坏了，晚上看不清。"
    hooks_only = await api_client(sessionmaker, name="只管回调")
    reader = await api_client(sessionmaker, scopes=("webhooks", "forms:read"), name="也读意见")
    seen: dict[str, Any] = {}
    for name, headers in (("hooks_only", hooks_only), ("reader", reader)):
        hook = await create_hook(client, headers, receiver.url(name), ["form.submitted"])
        receiver.expect(name, hook["secret"])
        seen[name] = (hook, headers)
    form = await submit(client, content=secret)
    for name, (hook, headers) in seen.items():
        listed = await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=headers)
        assert listed.status_code == 200, listed.text
        [delivery] = listed.json()["items"]
        path = f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}"
        body = (await client.get(path, headers=headers)).json()["payload"]
        office = (await client.get(path, headers=world.auth("admin"))).json()["payload"]
        assert office["data"]["content"] == secret and body["type"] == "form.submitted"
        if name == "hooks_only":
            assert body["data"] == {"id": form["id"]} and secret not in str(body)
        else:
            assert body == office
