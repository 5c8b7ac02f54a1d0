"""A fake WeChat: a real HTTP server on 127.0.0.1 (uvicorn in a background thread) answering like WeChat's
API does, per docs/wechat.md, with its state open to tests.

Endpoints: ``GET /sns/jscode2session``, ``POST /cgi-bin/stable_token``,
``POST /cgi-bin/message/subscribe/send?access_token=``, ``POST /wxa/msg_sec_check?access_token=``.
Answers are HTTP 200 JSON with ``errcode``/``errmsg`` (0/"ok" on success), except when ``down``.

Every request is recorded in ``calls`` first, then, in this order: ``down`` (HTTP 503), injected faults
(``busy``/``fail_next``), the endpoint's own checks and work, and last ``delay``: the work is done, only
the answer is late, as when WeChat sent a message but the answer did not come back in time.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CODE2SESSION = "/sns/jscode2session"
STABLE_TOKEN = "/cgi-bin/stable_token"
SUBSCRIBE_SEND = "/cgi-bin/message/subscribe/send"
MSG_SEC_CHECK = "/wxa/msg_sec_check"

ERRMSG = {
    -1: "system error", 40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type", 40003: "invalid openid", 40013: "invalid appid", 40029: "invalid code",
    40037: "invalid template_id", 40097: "invalid args", 40125: "invalid appsecret",
    40163: "code been used", 40226: "invalid login: high risk user", 41001: "access_token missing",
    41030: "invalid page", 42001: "access_token expired", 43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit", 45011: "api minute-quota reach limit, mustslower retry next minute",
    47001: "data format error", 61010: "user is inactive in the mini program for a long time",
}

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_DATE = r"\d{4}年\d{1,2}月\d{1,2}日"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?"
_TIME_POINT = rf"(?:{_DATE} )?{_TIME}"
_DATE_POINT = rf"{_DATE}(?: {_TIME})?"
# WeChat's value rules for subscription-message data, by the key's name without its number.
VALUE_RULES: dict[str, re.Pattern[str]] = {
    "thing": re.compile(r"^.{1,20}$", re.S),
    "phrase": re.compile(rf"^[{_HAN}]{{1,5}}$"),
    "number": re.compile(r"^(?=.{1,32}$)[+-]?\d+(?:\.\d+)?$"),
    "letter": re.compile(r"^[A-Za-z]{1,32}$"),
    "character_string": re.compile(r"^[\x20-\x7e]{1,32}$"),
    "symbol": re.compile(r"^.{1,5}$", re.S),
    "phone_number": re.compile(r"^[0-9+\-() ]{1,17}$"),
    "car_number": re.compile(r"^.{1,8}$"),
    "name": re.compile(rf"^(?:[{_HAN}]{{1,10}}|[^{_HAN}]{{1,20}})$"),
    "amount": re.compile(r"^[¥$€£]?\d{1,10}(?:\.\d{1,2})?元?$"),
    "time": re.compile(rf"^{_TIME_POINT}(?: ?~ ?{_TIME_POINT})?$"),
    "date": re.compile(rf"^{_DATE_POINT}(?: ?~ ?{_DATE_POINT})?$"),
}
_OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
STATES = ("developer", "trial", "formal")
LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")


class Call(NamedTuple):
    """One request as received: its path and its data (query parameters, then the JSON body's keys)."""

    path: str
    data: dict[str, Any]


@dataclass
class _Code:
    openid: str
    unionid: str | None
    issued_at: float
    used: bool = False


class FakeWeChat:
    def __init__(self, *, app_id: str = "wx_fake_app_0001", app_secret: str = "fake-app-secret-7d1c0a9e") -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self._lock = threading.RLock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.reset()

    # --- state ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything a test did: tokens, codes, credits, messages, calls, faults, settings."""
        with self._lock:
            self.token_ttl = 7200
            self.code_ttl = 300.0
            self.force_refresh_interval = 30.0
            self.force_refresh_daily_limit = 20
            self.token_requests = 0  # stable_token requests answered with a token
            self.force_refreshes = 0  # of which forced
            self._tokens: dict[str, float] = {}  # token -> expiry (time.time()); invalidated ones removed
            self._expired: set[str] = set()
            self._current: str | None = None
            self._last_force: float | None = None
            self._codes: dict[str, _Code] = {}
            self.session_keys: dict[str, str] = {}  # openid -> the last session_key handed out
            self.credits: dict[tuple[str, str], int] = {}
            self.sent: list[dict[str, Any]] = []
            self.risky_words: set[str] = set()
            self.review_words: set[str] = set()
            self.stale_users: set[str] = set()
            self.blocked_users: set[str] = set()
            self.bad_templates: set[str] = set()
            self.pages: set[str] | None = None
            self.down = False
            self.delay = 0.0
            self.calls: list[Call] = []
            self._faults: list[list[Any]] = []  # [errcode, remaining, path or None]

    def issue_code(self, openid: str, unionid: str | None = None) -> str:
        """A ``wx.login()`` code for ``openid``: single use, valid ``code_ttl`` seconds."""
        code = "code_" + secrets.token_urlsafe(18)
        with self._lock:
            self._codes[code] = _Code(openid=openid, unionid=unionid, issued_at=time.time())
        return code

    def accept(self, openid: str, template_id: str, n: int = 1) -> None:
        """The user tapped "allow" ``n`` times for this template: ``n`` more messages may be sent."""
        with self._lock:
            key = (openid, template_id)
            self.credits[key] = self.credits.get(key, 0) + n

    def credit(self, openid: str, template_id: str) -> int:
        with self._lock:
            return self.credits.get((openid, template_id), 0)

    def expire_tokens(self) -> None:
        """Every token issued so far expires now: using one answers 42001, and the next stable_token
        request issues a new one."""
        with self._lock:
            self._expired.update(self._tokens)
            self._tokens.clear()
            self._current = None

    @property
    def tokens(self) -> list[str]:
        """The tokens that work right now."""
        with self._lock:
            now = time.time()
            return [token for token, expires in self._tokens.items() if expires > now]

    def busy(self, n: int = 1) -> None:
        """The next ``n`` requests (to any endpoint) answer errcode -1."""
        self.fail_next(-1, n)

    def fail_next(self, errcode: int, n: int = 1, *, path: str | None = None) -> None:
        """The next ``n`` requests (to ``path``, or to any endpoint) answer ``errcode``, doing nothing."""
        with self._lock:
            self._faults.append([errcode, n, path])

    def calls_to(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [call.data for call in self.calls if call.path == path]

    def count(self, path: str) -> int:
        return len(self.calls_to(path))

    # --- the server -------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        self.base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        app = Starlette(routes=[
            Route(CODE2SESSION, self._endpoint(self._code2session), methods=["GET"]),
            Route(STABLE_TOKEN, self._endpoint(self._stable_token), methods=["POST"]),
            Route(SUBSCRIBE_SEND, self._endpoint(self._send), methods=["POST"]),
            Route(MSG_SEC_CHECK, self._endpoint(self._sec_check), methods=["POST"]),
        ])
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                loop="asyncio", timeout_keep_alive=60, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [listener]},
                                        name="fake-wechat", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake WeChat did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def _endpoint(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            data: dict[str, Any] = dict(request.query_params)
            raw = await request.body()
            body: dict[str, Any] | None = None
            if request.method == "POST":
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict):
                    body = parsed
                    data.update(parsed)
            path = request.url.path
            with self._lock:
                self.calls.append(Call(path, data))
                if self.down:
                    return Response("503 Service Unavailable", status_code=503)
                fault = self._take_fault(path)
                if fault is not None:
                    answer = _error(fault)
                elif request.method == "POST" and body is None:
                    answer = _error(47001)
                else:
                    answer = handler(dict(request.query_params), body or {})
                delay = self.delay
            if delay:
                await asyncio.sleep(delay)
            return JSONResponse(answer)

        return endpoint

    def _take_fault(self, path: str) -> int | None:
        for fault in self._faults:
            errcode, remaining, only = fault
            if remaining > 0 and (only is None or only == path):
                fault[1] -= 1
                return int(errcode)
        return None

    # --- the endpoints (called under the lock) -----------------------------------------------------------

    def _code2session(self, query: dict[str, str], _body: dict[str, Any]) -> dict[str, Any]:
        if query.get("grant_type") != "authorization_code":
            return _error(40002)
        if query.get("appid") != self.app_id:
            return _error(40013)
        if query.get("secret") != self.app_secret:
            return _error(40125)
        code = self._codes.get(query.get("js_code", ""))
        if code is None or time.time() - code.issued_at > self.code_ttl:
            return _error(40029)
        if code.used:
            return _error(40163)
        code.used = True
        if code.openid in self.blocked_users:
            return _error(40226)
        session_key = secrets.token_urlsafe(18)
        self.session_keys[code.openid] = session_key
        answer: dict[str, Any] = {"openid": code.openid, "session_key": session_key}
        if code.unionid:
            answer["unionid"] = code.unionid
        return answer

    def _stable_token(self, _query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if body.get("grant_type") != "client_credential":
            return _error(40002)
        if body.get("appid") != self.app_id:
            return _error(40013)
        if body.get("secret") != self.app_secret:
            return _error(40125)
        now = time.time()
        if body.get("force_refresh") is True:
            if self._last_force is not None and now - self._last_force < self.force_refresh_interval:
                return _error(45009)
            if self.force_refreshes >= self.force_refresh_daily_limit:
                return _error(45009)
            self._last_force = now
            self.force_refreshes += 1
            # A forced refresh ends every earlier token at once.
            self._tokens.clear()
            self._current = None
        current = self._current
        if current is None or self._tokens.get(current, 0) - now <= 300:
            # Normal mode hands out a new token only in the last 5 minutes; the old one lasts till its end.
            current = secrets.token_urlsafe(384)  # 512 characters, as WeChat asks to keep room for
            self._tokens[current] = now + self.token_ttl
            self._current = current
        self.token_requests += 1
        return {"access_token": current, "expires_in": max(int(self._tokens[current] - now), 0)}

    def _token_error(self, query: dict[str, str]) -> dict[str, Any] | None:
        token = query.get("access_token")
        if not token:
            return _error(41001)
        if token in self._expired or (token in self._tokens and self._tokens[token] <= time.time()):
            return _error(42001)
        if token not in self._tokens:
            return _error(40001)
        return None

    def _send(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if (refused := self._token_error(query)) is not None:
            return refused
        touser, template_id, page = body.get("touser"), body.get("template_id"), body.get("page")
        if not isinstance(touser, str) or not _OPENID.match(touser):
            return _error(40003)
        if not isinstance(template_id, str) or not _TEMPLATE_ID.match(template_id) or template_id in self.bad_templates:
            return _error(40037)
        if page is not None and (not isinstance(page, str) or not page or page.startswith("/")
                                 or (self.pages is not None and page.split("?")[0] not in self.pages)):
            return _error(41030)
        if body.get("miniprogram_state", "formal") not in STATES or body.get("lang", "zh_CN") not in LANGS:
            return _error(40097)
        data = body.get("data")
        if not isinstance(data, dict) or not data:
            return _error(47001)
        for key, entry in data.items():
            if not _valid_value(key, entry):
                return {"errcode": 47003, "errmsg": f"data.{key}.value invalid"}
        if self.credits.get((touser, template_id), 0) <= 0:
            return _error(43101)
        self.credits[(touser, template_id)] -= 1
        self.sent.append({key: value for key, value in body.items()})
        return _error(0)

    def _sec_check(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if (refused := self._token_error(query)) is not None:
            return refused
        openid, content, scene = body.get("openid"), body.get("content"), body.get("scene")
        if body.get("version") != 2 or scene not in (1, 2, 3, 4):
            return _error(40097)
        if not isinstance(openid, str) or not _OPENID.match(openid):
            return _error(40003)
        if openid in self.stale_users:
            return _error(61010)
        if not isinstance(content, str) or not content or len(content) > 2500:
            return _error(40097)
        if any(word in content for word in self.risky_words):
            suggest, label = "risky", 20001
        elif any(word in content for word in self.review_words):
            suggest, label = "review", 21000
        else:
            suggest, label = "pass", 100
        return {
            "errcode": 0, "errmsg": "ok",
            "result": {"suggest": suggest, "label": label},
            "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label, "prob": 90}],
            "trace_id": "trace_" + secrets.token_hex(8),
        }


def _error(errcode: int) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": "ok" if errcode == 0 else ERRMSG.get(errcode, "error")}


def _valid_value(key: str, entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
        return False
    rule = VALUE_RULES.get(re.sub(r"\d+$", "", key))
    return rule is None or rule.match(entry["value"]) is not None
