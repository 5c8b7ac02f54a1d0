"""End to end through the real command line and real HTTP: what `make run` does, on both engines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.support.ports import free_port

MINYI = [sys.executable, "-c", "from app.cli import main; main()"]
ROOT = Path(__file__).resolve().parent.parent


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env.update({"MINYI_DATABASE_URL": db_url, "MINYI_SECRET_KEY": "e2e-secret", **extra})
    return env


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MINYI, *args], env=_env(db_url), cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture
def served_demo(empty_db_url):
    """`minyi serve --demo` on an empty database (no schema at all), as `make run` starts it."""
    port = free_port()
    log = ROOT / "data" / f"e2e-{port}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen([*MINYI, "serve", "--demo", "--port", str(port)], env=_env(empty_db_url),
                                   cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited: {log.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"server did not start: {log.read_text()}")
        yield base, log, empty_db_url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.unlink(missing_ok=True)


def test_serve_demo_migrates_loads_the_town_and_answers_107_collected_92_answered_and_the_commands_agree(served_demo):
    base, log, db_url = served_demo
    output = log.read_text()
    assert "演示账号" in output and "office" in output and "minyi-office" in output
    token = httpx.post(f"{base}/api/v1/auth/token", data={"username": "office", "password": "minyi-office"}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    summary = httpx.get(f"{base}/api/v1/stats/summary", headers=headers).json()
    assert (summary["collected"], summary["answered"]) == (107, 92)
    assert httpx.get(f"{base}/readyz").json()["status"] == "ok"
    # A resident submits and tracks over real HTTP.
    created = httpx.post(f"{base}/api/v1/forms", json={"content": "菜场门口积水严重", "category": "environment"})
    assert created.status_code == 201
    body = created.json()
    track = httpx.get(f"{base}/api/v1/track/{body['tracking_no']}", params={"code": body["verification_code"]})
    assert track.json()["status"] == "submitted"
    assert httpx.get(f"{base}/api/v1/stats/summary", headers=headers).json()["collected"] == 108
    # The other commands, on the same database (a second migrate and demo load would only repeat this one's):
    # migrate finds nothing to do, demo finds the town and leaves it, stats verify finds the counters honest.
    migrated = run(db_url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    again = run(db_url, "demo")
    assert again.returncode == 0 and "not loaded" in again.stdout, again.stdout + again.stderr
    verified = run(db_url, "stats", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "match" in verified.stdout
