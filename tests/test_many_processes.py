"""Many processes on one PostgreSQL (issue 8.9), as README's deployment section lays them out: two app
processes (no in-process worker) and two `minyi worker` processes, with Redis for the shared limits.
Under concurrent load through both app processes: tracking numbers unique and gap-free, counts exact
(and equal to a recount), every webhook delivered once, an API client's rate limit shared."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.db import create_engine, create_sessionmaker
from app.models import OpinionForm, WebhookDelivery
from tests.conftest import REDIS_URL, make_settings
from tests.factories import PASSWORD, build_world
from tests.webhook_receiver import Receiver
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = 240
IN_FLIGHT = 24


def _env(db_url: str, prefix: str) -> dict[str, str]:
    return {
        **os.environ, "MINYI_DATABASE_URL": db_url, "MINYI_SECRET_KEY": "test-secret-key",
        "MINYI_ENVIRONMENT": "test", "MINYI_SUPERVISE_INTERVAL_SECONDS": "0", "MINYI_WORKER_IN_PROCESS": "false",
        "MINYI_WORKER_POLL_SECONDS": "0.2", "MINYI_REDIS_URL": REDIS_URL, "MINYI_REDIS_PREFIX": prefix,
        "MINYI_STATS_CACHE_SECONDS": "0", "MINYI_LOG_FORMAT": "text",
        "MINYI_LOGIN_FAILURES_BEFORE_LOCK": "5",  # the real default (conftest lifts it for other tests)
    }


@pytest.fixture
def layout(db_url: str, tmp_path: Path, redis: object) -> Iterator[list[str]]:
    """Two app processes and two workers on ``db_url``; yields the apps' base URLs."""
    prefix = f"test-many-{secrets.token_hex(4)}:"
    env = _env(db_url, prefix)
    processes: list[subprocess.Popen[bytes]] = []
    bases = []
    log = (tmp_path / "processes.log").open("ab")
    try:
        for _ in range(2):
            port = free_port()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning"], env=env, cwd=ROOT, stdout=log, stderr=log))
            bases.append(f"http://127.0.0.1:{port}")
        for name in ("w1", "w2"):
            processes.append(subprocess.Popen([sys.executable, "-m", "app", "worker", "--id", name], env=env,
                                              cwd=ROOT, stdout=log, stderr=log))
        deadline = time.monotonic() + 60
        for base in bases:
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    raise RuntimeError((tmp_path / "processes.log").read_text())
                time.sleep(0.1)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


async def _eventually(condition, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.2)


@pytest.mark.postgres_only
@pytest.mark.parametrize("db_engine", ["postgresql"])
async def test_two_apps_and_two_workers_under_load_stay_exact(db_url, layout, tmp_path):
    engine = create_engine(make_settings(db_url))
    sessionmaker = create_sessionmaker(engine)
    try:
        world = await build_world(sessionmaker)
        one, two = layout
        with Receiver() as receiver:
            async with httpx.AsyncClient(timeout=60) as http:
                admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
                hook = (await http.post(f"{one}/api/v1/webhooks", headers=admin,
                                        json={"url": receiver.url(), "events": ["form.submitted"]})).json()
                receiver.expect("hook", hook["secret"])

                # The load: submissions through both processes at once.
                gate = asyncio.Semaphore(IN_FLIGHT)

                async def submit(i: int) -> httpx.Response:
                    async with gate:
                        return await http.post(f"{layout[i % 2]}/api/v1/forms",
                                               json={"content": f"并发提交第 {i} 条", "category": "environment"})

                answers = await asyncio.gather(*(submit(i) for i in range(SUBMISSIONS)))
                assert [a.status_code for a in answers] == [201] * SUBMISSIONS, [a.text for a in answers if a.status_code != 201][:3]

                # Tracking numbers: unique, gap-free, exactly the forms that exist.
                numbers = sorted(int(re.fullmatch(r"[A-Z]*\d{4}-(\d+)", a.json()["tracking_no"])[1]) for a in answers)  # type: ignore[index]
                assert numbers == list(range(1, SUBMISSIONS + 1))
                async with sessionmaker() as session:
                    stored = set(await session.scalars(select(OpinionForm.tracking_no)))
                assert stored == {a.json()["tracking_no"] for a in answers}

                # Counts exact, read through either process, and equal to a recount.
                for base in layout:
                    summary = (await http.get(f"{base}/api/v1/stats/summary", headers=admin)).json()
                    assert summary["collected"] == SUBMISSIONS
                verify = subprocess.run([sys.executable, "-m", "app", "stats", "verify"], env=_env(db_url, "x:"),
                                        cwd=ROOT, capture_output=True, text=True, timeout=120)
                assert verify.returncode == 0, verify.stdout + verify.stderr

                # Every webhook delivered, none twice, by the two workers between them.
                async def all_arrived() -> bool:
                    return len(receiver.arrivals()) >= SUBMISSIONS
                await _eventually(all_arrived)
                await asyncio.sleep(1.0)  # a late duplicate would show up here
                arrivals = receiver.arrivals()
                assert len(arrivals) == SUBMISSIONS and len(set(arrivals)) == SUBMISSIONS
                assert receiver.duplicates() == [] and receiver.rejected == []
                async with sessionmaker() as session:
                    statuses = set(await session.scalars(select(WebhookDelivery.status)))
                assert statuses == {"delivered"}

                # One API client's limit, counted across both processes through Redis.
                created = (await http.post(f"{one}/api/v1/api-clients", headers=admin,
                                           json={"name": "限流", "scopes": ["forms:read"], "rate_limit_per_minute": 10})).json()
                key = {"X-API-Key": created["key"]}
                started = time.monotonic()
                codes = [(await http.get(f"{layout[i % 2]}/api/v1/forms", headers=key, params={"limit": 1})).status_code
                         for i in range(16)]
                refills = int((time.monotonic() - started) // 6)  # 10 a minute: one more every 6 s
                # Counted apart, each process would let its 8 through (16 in all); shared, 10 (+ refills).
                assert set(codes) == {200, 429} and codes.count(200) <= 10 + refills, codes
                assert codes[:10] == [200] * 10, codes

                # And a lockout seen by both: failed logins through one process lock the account in the other.
                for _ in range(5):
                    await http.post(f"{one}/api/v1/auth/token", data={"username": "rep", "password": "wrong"})
                locked = await http.post(f"{two}/api/v1/auth/token", data={"username": "rep", "password": PASSWORD})
                assert locked.status_code == 429 and locked.json()["code"] == "account_locked", locked.text
    finally:
        await engine.dispose()
