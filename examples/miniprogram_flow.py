"""A walk through everything a WeChat mini-program and its backend do with Minyi, against a real local
server and the fake WeChat the tests use (WeChat itself cannot be reached from a development machine).

    .venv/bin/python examples/miniprogram_flow.py            # SQLite in a temporary folder
    .venv/bin/python examples/miniprogram_flow.py --database-url postgresql+asyncpg://postgres@127.0.0.1/minyi_demo

What it starts: the fake WeChat (tests/fake_wechat.py) on 127.0.0.1, a Minyi server (uvicorn, in its own
process) configured to use it, and a webhook receiver standing in for the integrator's backend. Then, step by
step, the calls the mini-program makes (what ``wx.request`` / ``wx.uploadFile`` would send, here with httpx):

  1. wx.login() → code → POST /api/v1/wechat/login                → our bearer token
  2. wx.uploadFile: POST /api/v1/forms (multipart, photo + fields)  → tracking number, code
  3. wx.uploadFile: POST /api/v1/forms/{id}/photos                  → a second photo
  4. wx.requestSubscribeMessage → POST /api/v1/me/subscriptions     → notice credits
  5. the backend: an API client (X-API-Key) and a webhook subscription
  6. the office assigns and replies (staff API)
  7. the resident gets the WeChat notice; GET /api/v1/me/forms shows the reply
  8. the backend receives signed webhooks and syncs from GET /api/v1/changes

Each step prints what was sent and what came back. The exit status is 0 only if the whole flow worked.
See docs/integration.md for the same flow in the mini-program's own code.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_wechat import FakeWeChat  # noqa: E402  (needs ROOT on the path)
from tests.support.ports import free_port  # noqa: E402  (outside the ephemeral range: no race with connections)

TEMPLATE_ID = "REPLY_NOTICE_TEMPLATE"
OPENID = "o_example_resident_0001"
ADMIN, ADMIN_PASSWORD = "example-admin", "example-admin-password"


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def show(label: str, response: httpx.Response) -> Any:
    body = response.json() if response.headers.get("content-type", "").endswith("json") else response.text
    print(f"   {label}: {response.status_code} {json.dumps(body, ensure_ascii=False)[:300]}", flush=True)
    if response.is_error:
        raise SystemExit(f"unexpected answer to {label}")
    return body


class Receiver(ThreadingHTTPServer):
    """The integrator's backend: verifies each webhook the Standard Webhooks way and keeps it once per id."""

    secret = b""
    events: dict[str, dict[str, Any]] = {}

    def verify(self, headers: Any, body: bytes) -> bool:
        msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
        if abs(time.time() - int(stamp)) > 300:  # older than 5 minutes: a replay
            return False
        expected = base64.b64encode(hmac.new(self.secret, f"{msg_id}.{stamp}.".encode() + body,
                                             hashlib.sha256).digest()).decode()
        given = [part.split(",", 1)[1] for part in headers.get("webhook-signature", "").split() if "," in part]
        return any(hmac.compare_digest(expected, signature) for signature in given)


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        ok = self.server.verify(self.headers, body)
        if ok:
            event = json.loads(body)
            self.server.events.setdefault(event["id"], event)  # at-least-once: dedupe by id
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


def wait_for(what: str, check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an empty database (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="minyi-example-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'minyi.db'}"

    wechat = FakeWeChat()
    wechat.start()
    receiver = Receiver(("127.0.0.1", 0), ReceiverHandler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    receiver_url = f"http://127.0.0.1:{receiver.server_address[1]}/minyi-webhooks"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ, "MINYI_DATABASE_URL": database_url, "MINYI_ENVIRONMENT": "development",
        "MINYI_SECRET_KEY": "example-secret-key", "MINYI_PHOTO_DIR": str(workdir / "photos"),
        "MINYI_EXPORT_DIR": str(workdir / "exports"), "MINYI_SUPERVISE_INTERVAL_SECONDS": "0",
        "MINYI_WECHAT_BASE_URL": wechat.base_url, "MINYI_WECHAT_APP_ID": wechat.app_id,
        "MINYI_WECHAT_APP_SECRET": wechat.app_secret, "MINYI_WECHAT_REPLY_TEMPLATE_ID": TEMPLATE_ID,
        "MINYI_WECHAT_CONTENT_CHECK": "true", "MINYI_WORKER_POLL_SECONDS": "0.2",
    }
    minyi = [sys.executable, "-m", "app"]
    subprocess.run([*minyi, "migrate"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*minyi, "create-user", ADMIN, "--role", "admin", "--password", ADMIN_PASSWORD],
                   env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=env, cwd=ROOT,
    )
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            wait_for("the server", lambda: _healthy(http))
            run_flow(http, wechat, receiver, receiver_url)
    finally:
        server.terminate()
        server.wait(timeout=20)
        receiver.shutdown()
        wechat.stop()
    print("\nOK: the whole flow worked.")
    return 0


def _healthy(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def run_flow(http: httpx.Client, wechat: FakeWeChat, receiver: Receiver, receiver_url: str) -> None:
    step("0. the office sets up: an admin token and a handling unit")
    admin = show("POST /api/v1/auth/token", http.post("/api/v1/auth/token",
                                                      data={"username": ADMIN, "password": ADMIN_PASSWORD}))
    staff = {"Authorization": f"Bearer {admin['access_token']}"}
    unit = show("POST /api/v1/units", http.post("/api/v1/units", json={"name": "镇城建办"}, headers=staff))

    step("5. the integrator's backend: an API client and a webhook subscription")
    client = show("POST /api/v1/api-clients", http.post("/api/v1/api-clients", headers=staff, json={
        "name": "小程序后台", "scopes": ["forms:read", "webhooks"]}))
    api = {"X-API-Key": client["key"]}
    hook = show("POST /api/v1/webhooks", http.post("/api/v1/webhooks", headers=api, json={
        "url": receiver_url, "events": ["form.submitted", "form.assigned", "form.answered"]}))
    receiver.secret = base64.b64decode(hook["secret"].removeprefix("whsec_"))

    step("1. wx.login() gives a code; the mini-program sends it to us")
    code = wechat.issue_code(OPENID)  # what wx.login() would hand the mini-program
    login = show("POST /api/v1/wechat/login", http.post("/api/v1/wechat/login", json={"code": code}))
    resident = {"Authorization": f"Bearer {login['access_token']}"}

    step("2. wx.uploadFile: the opinion with its first photo (field name 'file', the rest as formData)")
    form = show("POST /api/v1/forms (multipart)", http.post(
        "/api/v1/forms", headers={**resident, "Idempotency-Key": "example-submission-1"},
        data={"content": "小区东门路灯坏了三盏，晚上回家看不清路。", "category": "urban_traffic",
              "location": "洛社镇振兴路 12 号", "public": "true"},
        files={"file": ("lamp.jpg", jpeg(), "image/jpeg")},
    ))
    assert form["channel"] == "wechat" and len(form["photos"]) == 1

    step("3. wx.uploadFile: a second photo, added to the same form")
    show(f"POST /api/v1/forms/{form['id']}/photos", http.post(
        f"/api/v1/forms/{form['id']}/photos", headers=resident, files={"file": ("lamp2.jpg", jpeg(), "image/jpeg")}))

    step("4. wx.requestSubscribeMessage: the resident taps 允许; the mini-program reports it")
    wechat.accept(OPENID, TEMPLATE_ID)  # WeChat's side of the same tap
    show("POST /api/v1/me/subscriptions", http.post("/api/v1/me/subscriptions", headers=resident,
                                                    json={"template_id": TEMPLATE_ID, "accepted": 1}))
    mine = show("GET /api/v1/me/forms", http.get("/api/v1/me/forms", headers=resident))
    assert mine["items"][0]["tracking_no"] == form["tracking_no"]

    step("6. the office assigns the form and the unit's reply is written")
    show("assign", http.post(f"/api/v1/forms/{form['id']}/assign", headers=staff,
                             json={"unit_id": unit["id"], "instructions": "请三日内修复"}))
    show("reply", http.post(f"/api/v1/forms/{form['id']}/reply", headers=staff,
                            json={"reply": "已安排电工更换三盏路灯，今晚起恢复照明。感谢您的反映！"}))

    step("7. the resident's WeChat notice, and the reply in 我的意见")
    notice = wait_for("the WeChat notice", lambda: wechat.sent)[0]
    print(f"   WeChat received: {json.dumps(notice, ensure_ascii=False)}")
    assert notice["touser"] == OPENID and notice["template_id"] == TEMPLATE_ID
    mine = show("GET /api/v1/me/forms", http.get("/api/v1/me/forms", headers=resident))
    assert mine["items"][0]["status"] == "answered" and mine["items"][0]["reply"]

    step("8. the backend's signed webhooks, and the changes feed to sync from")
    events = wait_for("three webhooks", lambda: len(receiver.events) >= 3 and receiver.events)
    for event in events.values():
        print(f"   webhook {event['id']} {event['type']} → form {event['data']['tracking_no']} {event['data']['status']}")
    assert sorted(e["type"] for e in events.values()) == ["form.answered", "form.assigned", "form.submitted"]
    # On PostgreSQL the feed holds back changes while any older transaction on the server is still running
    # (docs/integration.md §10.6), so an integrator polls with its cursor, as this does, until all three came.
    synced: list[dict[str, Any]] = []
    cursor: str | None = None

    def pull() -> bool:
        nonlocal cursor
        page = show("GET /api/v1/changes", http.get("/api/v1/changes", headers=api,
                                                    params={"cursor": cursor} if cursor else {}))
        synced.extend(page["items"])
        cursor = page["next_cursor"]
        return len(synced) >= 3

    wait_for("three changes in the feed", pull)
    assert [item["type"] for item in synced] == ["form.submitted", "form.assigned", "form.answered"]
    again = show("GET /api/v1/changes?cursor=…", http.get("/api/v1/changes", headers=api,
                                                          params={"cursor": cursor}))
    assert again["items"] == []


if __name__ == "__main__":
    sys.exit(main())
