"""Observability (issue 8.7): request ids, JSON logs, /metrics and /readyz, through real HTTP on both engines.

Counters live as long as the process (as in production), so the metric tests compare a scrape before and a
scrape after what they do.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app import migrate
from app.db import transaction
from tests.support.apps import build_app
from app.models import DeliveryStatus, OpinionForm, WebhookDelivery
from app.services import logs
from tests.conftest import make_settings, wechat_settings
from tests.factories import act, answered_form, assigned_form, build_world, submit
from tests.fake_wechat import CODE2SESSION, FakeWeChat
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
MINYI = [sys.executable, "-c", "from app.cli import main; main()"]
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- helpers -----------------------------------------------------------------------------------------


def parse(text: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def scrape(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> Samples:
    response = await client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextmanager
def json_lines(logger_name: str) -> Iterator[list[dict[str, Any]]]:
    """Every record ``logger_name`` (or a child) emits at INFO or above, as the JSON line it becomes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


async def form_counts_in_db(sessionmaker: Any) -> dict[str, int]:
    async with transaction(sessionmaker) as session:
        rows = await session.execute(select(OpinionForm.status, func.count()).group_by(OpinionForm.status))
        return {status: count for status, count in rows}


# --- request id --------------------------------------------------------------------------------------


async def test_every_response_gets_a_new_request_id(client):
    ok = await client.get("/healthz")
    missing = await client.get("/no-such-page")
    invalid = await client.get("/api/v1/forms/not-a-number")

    assert missing.status_code == 404 and invalid.status_code == 422
    assert invalid.headers["content-type"].startswith("application/problem+json")
    ids = [response.headers["x-request-id"] for response in (ok, missing, invalid)]
    assert all(GENERATED_ID.fullmatch(rid) for rid in ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize("incoming", ["req-2026.11_27", "a" * 64, "0"])
async def test_a_sane_incoming_request_id_is_kept(client, incoming):
    response = await client.get("/api/v1/forms/1", headers={"X-Request-ID": incoming})

    assert response.status_code == 401
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize("incoming", ["a" * 65, "two words", "x;y", "<script>", "", "id,other"])
async def test_an_insane_incoming_request_id_is_replaced(client, incoming):
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})

    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


async def test_an_unhandled_error_answers_500_with_the_request_id_and_logs_under_it(app):
    async def explode() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/api/v1/test-explodes", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        with json_lines("minyi") as lines:
            response = await http.get("/api/v1/test-explodes", headers={"X-Request-ID": "err-1"})

    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert response.headers["x-request-id"] == "err-1"
    error = next(line for line in lines if line["level"] == "ERROR")
    assert error["request_id"] == "err-1" and "RuntimeError: boom" in error["exc_info"]
    access = next(line for line in lines if line["logger"] == "minyi.access")
    assert (access["status"], access["route"], access["request_id"]) == (500, "/api/v1/test-explodes", "err-1")


# --- logs --------------------------------------------------------------------------------------------


async def test_each_request_writes_one_json_access_line_without_the_query(client):
    with json_lines("minyi.access") as lines:
        response = await client.get("/api/v1/track/LS2026000001", params={"code": "918273"})

    assert response.status_code == 404
    assert len(lines) == 1
    line = lines[0]
    assert line["logger"] == "minyi.access" and line["level"] == "INFO"
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["status"] == 404 and line["method"] == "GET"
    assert line["path"] == "/api/v1/track/LS2026000001"
    assert line["route"] == "/api/v1/track/{tracking_no}"
    assert isinstance(line["duration_ms"], float) and line["client_ip"] == "127.0.0.1"
    assert line["ts"].endswith("Z")
    assert "918273" not in json.dumps(line)  # the verification code never reaches a log


def test_the_json_formatter_writes_extras_and_the_traceback():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("minyi.test.formatter")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    token = logs.request_id.set("rid-42")
    try:
        try:
            raise ValueError("坏了")
        except ValueError:
            logger.exception("导出失败 %s", "job-7", extra={"job_id": 7, "rows": [1, 2]})
    finally:
        logs.request_id.reset(token)
        logger.removeHandler(handler)

    line = json.loads(stream.getvalue())
    assert line["message"] == "导出失败 job-7" and line["level"] == "ERROR"
    assert line["logger"] == "minyi.test.formatter" and line["request_id"] == "rid-42"
    assert line["job_id"] == 7 and line["rows"] == [1, 2]
    assert "ValueError: 坏了" in line["exc_info"]


def test_the_text_formatter_names_the_request_and_the_extras():
    record = logging.LogRecord("minyi.access", logging.INFO, __file__, 1, "GET /healthz 200", (), None)
    record.request_id, record.status = "rid-9", 200

    line = logs.TextFormatter().format(record)

    assert "INFO minyi.access [rid-9]: GET /healthz 200" in line and line.endswith("status=200")


# --- /metrics ----------------------------------------------------------------------------------------


async def test_metrics_count_requests_by_route_template_never_by_raw_path(client):
    before = await scrape(client)
    for form_id in (101, 202, 303):
        await client.get(f"/api/v1/forms/{form_id}")
    await client.get("/no-such-page/42")
    after = await scrape(client)

    route = "/api/v1/forms/{form_id}"
    count = "minyi_http_requests_total"
    assert value(after, count, method="GET", route=route, status="401") - \
        value(before, count, method="GET", route=route, status="401") == 3
    assert value(after, count, method="GET", route="unmatched", status="404") - \
        value(before, count, method="GET", route="unmatched", status="404") == 1
    histogram = "minyi_http_request_duration_seconds_count"
    assert value(after, histogram, method="GET", route=route) - value(before, histogram, method="GET", route=route) == 3
    assert value(after, "minyi_http_request_duration_seconds_bucket", method="GET", route=route, le="+Inf") >= 3
    labels = {dict(key[1]).get("route") for key in after}
    assert not any(label and re.search(r"/\d+$", label) for label in labels)  # no raw paths


async def test_the_forms_gauge_equals_the_real_counts(client, sessionmaker):
    world = await build_world(sessionmaker)
    await submit(client)
    await submit(client)
    await assigned_form(client, world)
    answered = await answered_form(client, world)
    closed = await answered_form(client, world)
    assert (await act(client, world, "coordinator", closed["id"], "close", {"satisfaction": "satisfied"})).status_code == 200
    declined = await submit(client)
    assert (await act(client, world, "coordinator", declined["id"], "decline",
                      {"reason": "不属于本镇职责范围。"})).status_code == 200

    samples = await scrape(client)

    real = await form_counts_in_db(sessionmaker)
    assert real == {"submitted": 2, "assigned": 1, "answered": 1, "closed": 1, "declined": 1}
    for status in ("submitted", "assigned", "answered", "closed", "declined"):
        assert value(samples, "minyi_forms", status=status) == real.get(status, 0), status
    assert answered["status"] == "answered"
    assert value(samples, "minyi_database_up") == 1


async def test_moving_a_form_to_assigned_moves_it_in_the_gauge(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client)
    await submit(client)
    before = await scrape(client)

    response = await act(client, world, "coordinator", form["id"], "assign", {"unit_id": world.units["A"].id})
    assert response.status_code == 200
    after = await scrape(client)

    assert (value(before, "minyi_forms", status="submitted"), value(before, "minyi_forms", status="assigned")) == (2, 0)
    assert (value(after, "minyi_forms", status="submitted"), value(after, "minyi_forms", status="assigned")) == (1, 1)
    assert await form_counts_in_db(sessionmaker) == {"submitted": 1, "assigned": 1}


async def test_the_outbox_backlog_equals_the_pending_webhook_deliveries(client, sessionmaker):
    world = await build_world(sessionmaker)
    hook = await client.post("/api/v1/webhooks", headers=world.auth("admin"),
                             json={"url": "http://127.0.0.1:9/hook", "events": ["form.submitted", "form.assigned"]})
    assert hook.status_code == 201, hook.text
    await submit(client)
    await assigned_form(client, world)

    samples = await scrape(client)

    async with transaction(sessionmaker) as session:
        pending = await session.scalar(select(func.count()).select_from(WebhookDelivery)
                                       .where(WebhookDelivery.status == DeliveryStatus.pending))
    assert pending == 3  # two submitted, one assigned
    assert value(samples, "minyi_outbox_backlog", kind="webhook") == pending
    assert value(samples, "minyi_outbox_due", kind="webhook") == pending  # none waits for a retry yet
    assert value(samples, "minyi_outbox_backlog", kind="wechat_notice") == 0


async def test_wechat_errors_are_counted_by_api_and_errcode(db_url, fake_wechat: FakeWeChat):
    application = build_app(wechat_settings(db_url, fake_wechat, worker_in_process=False,
                                             supervise_interval_seconds=0))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as http:
            before = await scrape(http)
            with json_lines("app.services.wechat") as lines:
                refused = await http.post("/api/v1/wechat/login", json={"code": "not-a-code"})
            fake_wechat.down = True
            down = await http.post("/api/v1/wechat/login", json={"code": fake_wechat.issue_code("o_alice")})
            fake_wechat.down = False
            ok = await http.post("/api/v1/wechat/login", json={"code": fake_wechat.issue_code("o_bob")})
            after = await scrape(http)
    finally:
        await application.state.engine.dispose()

    assert (refused.status_code, down.status_code, ok.status_code) == (401, 503, 200)
    name = "minyi_wechat_errors_total"
    for errcode in ("40029", "transport"):
        assert value(after, name, api=CODE2SESSION, errcode=errcode) - \
            value(before, name, api=CODE2SESSION, errcode=errcode) == 1, errcode
    # The client's own log line about the refusal carries the id of the request it served.
    answered = next(line for line in lines if "40029" in line["message"])
    assert answered["request_id"] == refused.headers["x-request-id"]


async def test_metrics_ask_for_the_token_when_one_is_set(db_url):
    token = "metrics-token-0123456789"
    application = build_app(make_settings(db_url, metrics_token=token))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as http:
            anonymous = await http.get("/metrics")
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer metrics-token-9876543210"})
            samples = await scrape(http, {"Authorization": f"Bearer {token}"})
    finally:
        await application.state.engine.dispose()

    for refused in (anonymous, wrong):
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "metrics_token_required"
        assert refused.headers["www-authenticate"] == "Bearer"
    assert ("minyi_database_up", frozenset()) in samples


async def test_metrics_are_not_in_the_openapi_document(client):
    spec = (await client.get("/openapi.json")).json()
    assert "/metrics" not in spec["paths"] and "/readyz" in spec["paths"]


# --- /readyz -----------------------------------------------------------------------------------------


async def test_readyz_names_the_schema_revision(client):
    response = await client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    calendar = body.pop("calendar")  # the holiday notice's state: tests/test_calendar_admin.py
    assert body == {"status": "ok", "database": "ok", "schema": migrate.head_revision()}
    assert calendar["status"] in ("ok", "notice_missing")


async def test_readyz_is_503_schema_outdated_behind_the_latest_migration(db_url):
    await migrate.downgrade(db_url, "0005")
    application = build_app(make_settings(db_url))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as http:
            response = await http.get("/readyz")
    finally:
        await application.state.engine.dispose()

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "schema_outdated"
    assert (body["current"], body["head"]) == ("0005", migrate.head_revision())
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


async def test_readyz_is_503_database_unavailable_and_metrics_still_answer(db_engine, tmp_path):
    # Nothing listens on the port; a folder is no SQLite database.
    url = (f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none" if db_engine == "postgresql"
           else f"sqlite+aiosqlite:///{tmp_path}")
    application = build_app(make_settings(url))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as http:
            response = await http.get("/readyz")
            samples = await scrape(http)
    finally:
        await application.state.engine.dispose()

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "database_unavailable"
    assert value(samples, "minyi_database_up") == 0
    assert not any(name == "minyi_forms" for name, _ in samples)


# --- `minyi serve`: JSON lines from every worker, counters shared through PROMETHEUS_MULTIPROC_DIR ----


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`minyi serve --workers 2` in multiprocess metrics mode: its base URL, its stderr, the metrics folder."""
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env.update({"MINYI_DATABASE_URL": db_url, "MINYI_SECRET_KEY": "e2e-secret", "MINYI_ENVIRONMENT": "test",
                "MINYI_SUPERVISE_INTERVAL_SECONDS": "0", "MINYI_WORKER_IN_PROCESS": "false",
                "MINYI_EXPORT_DIR": str(tmp_path / "exports"), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as out:
        process = subprocess.Popen([*MINYI, "serve", "--port", str(port), "--workers", "2"], env=env, cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {stderr.read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base, stderr, metrics_dir
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_writes_json_lines_and_shares_counters_across_workers(served):
    base, stderr, metrics_dir = served
    requests = 12
    for i in range(requests):  # a new connection each time: either worker may answer
        assert httpx.get(f"{base}/healthz", headers={"X-Request-ID": f"mp-{i}"}).status_code == 200
    totals = []
    for _ in range(4):
        samples = parse(httpx.get(f"{base}/metrics").text)
        totals.append(value(samples, "minyi_http_requests_total", method="GET", route="/healthz", status="200"))

    # Each scrape, whichever worker answers it, adds up both workers' counters.
    assert totals == [requests] * 4
    assert list(metrics_dir.glob("counter_*.db"))  # the workers count in the shared folder
    deadline = time.monotonic() + 15
    while True:  # a worker writes its access line after it answered: until all of them reached the file
        lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
        access = [line for line in lines if line["logger"] == "minyi.access" and line["path"] == "/healthz"]
        if len(access) >= requests or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted(line["request_id"] for line in access) == sorted(f"mp-{i}" for i in range(requests))
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's own lines, as JSON too
    assert not any(line["logger"] == "uvicorn.access" for line in lines)


async def test_a_process_freezes_again_what_its_first_requests_kept(db_url: str) -> None:
    """The lifespan freezes the app as built; what the first requests build and keep is frozen after
    MINYI_GC_REFREEZE_SECONDS (and ten times that), out of the sight of every later full collection."""
    application = build_app(make_settings(db_url, gc_refreeze_seconds=0.2))
    async with application.router.lifespan_context(application):
        frozen_at_start = gc.get_freeze_count()
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/healthz")).status_code == 200
        kept = [[n] for n in range(5_000)]  # what a first request leaves alive: caches, compiled things
        application.state.kept_by_first_requests = kept
        assert any(o is kept[-1] for o in gc.get_objects())
        for _ in range(100):
            await asyncio.sleep(0.02)
            if gc.get_freeze_count() >= frozen_at_start + len(kept):
                break
        assert gc.get_freeze_count() >= frozen_at_start + len(kept)
        assert not any(o is kept[-1] for o in gc.get_objects())  # frozen: no full collection walks it


async def test_no_refreeze_when_turned_off(db_url: str) -> None:
    application = build_app(make_settings(db_url, gc_refreeze_seconds=0))
    async with application.router.lifespan_context(application):
        kept = application.state.kept_by_first_requests = [[n] for n in range(1_000)]
        await asyncio.sleep(0.3)
        assert any(o is kept[-1] for o in gc.get_objects())  # still in the collector's sight
