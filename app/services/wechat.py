"""Our WeChat client: code2Session, the stable access token, subscription messages and msgSecCheck v2.

A small async httpx client with a configurable base URL (facts: docs/wechat.md). Every WeChat answer is
HTTP 200 JSON with ``errcode``/``errmsg``; success omits errcode or sets 0. What callers get:

- the answer, or ``WeChatError(errcode, errmsg)`` for a final errcode (retrying the same request cannot help);
- ``WeChatUnavailable`` when no usable answer came: network error, timeout, HTTP error, a non-JSON body,
  WeChat busy (``-1``) after ``busy_retries`` retries, quota waits (45009/45011) used up, or a token WeChat
  keeps refusing. ``may_have_sent`` is True when the request may have reached WeChat and done its work
  (a timeout after sending): a subscription message must then not be sent again, it may have spent the
  resident's credit.

Retries: a request that never left (connection refused, connect timeout) and a ``-1`` answer are retried
with backoff; 40001/40014/42001 (the token was refused) refresh the token once and repeat the call once;
nothing that left and got no answer is repeated.

The access token lives in the ``wechat_token`` row every process reads; one refreshes it at a time, inside
a transaction that holds the row (``SELECT … FOR UPDATE`` on PostgreSQL, the write lock on SQLite, where
every transaction begins IMMEDIATE), and calls WeChat only if the stored token is still stale or still
the very token WeChat refused. Each client keeps a copy in memory, guarded by an ``asyncio.Lock``, so
ordinary calls never touch the database.

Never logged: the app secret, session keys, login codes and access tokens. httpx logs each request's URL,
which carries them in its query, so its records are redacted (``_Redact``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.models import WechatToken, utcnow
from app.services import logs as log_service

log = logging.getLogger(__name__)

BUSY = -1
TOKEN_REFUSED = frozenset({40001, 40014, 42001})  # invalid, invalid or expired access token
QUOTA = frozenset({45009, 45011})  # daily quota reached, too frequent
# A stored token expiring within this is stale: WeChat's normal mode hands out a new one from then on.
STALE_WITHIN = timedelta(minutes=5)
# WeChat allows a forced refresh 20 times a day, 30 s apart; we never force more often than this.
FORCE_REFRESH_EVERY = timedelta(seconds=30)
SEC_CHECK_MAX_CHARS = 2500

CODE2SESSION = "/sns/jscode2session"
STABLE_TOKEN = "/cgi-bin/stable_token"
SUBSCRIBE_SEND = "/cgi-bin/message/subscribe/send"
MSG_SEC_CHECK = "/wxa/msg_sec_check"


class WeChatError(Exception):
    """WeChat answered with a final errcode: the same request would get the same answer."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatUnavailable(Exception):
    """No usable answer from WeChat. ``may_have_sent``: the request may have reached WeChat (and, for a
    subscription message, spent the credit), so it must not simply be sent again."""

    def __init__(self, message: str = "WeChat unavailable", *, may_have_sent: bool = False) -> None:
        super().__init__(message)
        self.may_have_sent = may_have_sent


class _NeverLeft(WeChatUnavailable):
    """The request never reached WeChat (no connection): always safe to repeat."""


@dataclass(frozen=True)
class LoginSession:
    """Who a ``wx.login()`` code belongs to. WeChat's session_key never leaves the client."""

    openid: str
    unionid: str | None


@dataclass(frozen=True)
class SecCheck:
    """msgSecCheck v2's verdict: ``suggest`` is pass, review or risky; ``label`` 100 is normal."""

    suggest: str
    label: int
    trace_id: str | None


class _Redact(logging.Filter):
    """Masks credentials in the query strings httpx logs (``HTTP Request: GET https://…?secret=…``)."""

    _PATTERN = re.compile(r"\b(secret|access_token|js_code)=[^&\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._PATTERN.sub(r"\1=***", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_REDACT = _Redact()
for _name in ("httpx", "httpcore"):
    if _REDACT not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_REDACT)


class WeChatClient:
    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        app_secret: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        busy_retries: int = 3,
        backoff: float = 0.2,
        quota_retries: int = 2,
        quota_wait: float = 1.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._app_id = app_id
        self._app_secret = app_secret
        self._sessionmaker = sessionmaker
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self._busy_retries = busy_retries
        self._backoff = backoff
        self._quota_retries = quota_retries
        self._quota_wait = quota_wait
        # This process's copy of the stored token.
        self._token: str | None = None
        self._token_expires_at: datetime | None = None
        self._token_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"WeChatClient(base_url={self._base_url!r}, app_id={self._app_id!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- the four calls ----------------------------------------------------------------------------------

    async def code2session(self, code: str) -> LoginSession:
        """Who a ``wx.login()`` code belongs to. A code works once: only ``-1`` (and a request that never
        left) is retried; 40029, 40163, 45011, 40226 and the rest are final."""
        answer = await self._call(
            "GET", CODE2SESSION,
            params={"appid": self._app_id, "secret": self._app_secret, "js_code": code,
                    "grant_type": "authorization_code"},
            with_token=False, wait_on_quota=False,
        )
        openid = answer.get("openid")
        if not isinstance(openid, str) or not openid:
            raise WeChatUnavailable("WeChat code2Session answered without an openid")
        unionid = answer.get("unionid")
        return LoginSession(openid=openid, unionid=unionid if isinstance(unionid, str) and unionid else None)

    async def send_subscription_message(
        self,
        *,
        openid: str,
        template_id: str,
        data: dict[str, dict[str, str]],
        page: str | None = None,
        miniprogram_state: str | None = None,
        lang: str = "zh_CN",
    ) -> None:
        """Send one subscription message (spends one of the resident's accepts at WeChat). A timeout after
        sending raises ``WeChatUnavailable(may_have_sent=True)`` and is never repeated."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id}
        if page is not None:
            body["page"] = page
        body["data"] = data
        if miniprogram_state is not None:
            body["miniprogram_state"] = miniprogram_state
        body["lang"] = lang
        await self._call("POST", SUBSCRIBE_SEND, body=body)

    async def msg_sec_check(self, *, openid: str, content: str, scene: int = 2) -> SecCheck:
        """msgSecCheck v2 on ``content`` (cut to WeChat's 2500 characters). 61010 (the user has not opened
        the mini-program in the last 2 hours) is a ``WeChatError``."""
        answer = await self._call(
            "POST", MSG_SEC_CHECK,
            body={"version": 2, "openid": openid, "scene": scene, "content": content[:SEC_CHECK_MAX_CHARS]},
        )
        result = answer.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("suggest"), str):
            raise WeChatUnavailable("WeChat msgSecCheck answered without a result")
        try:
            label = int(result.get("label", 0))
        except (TypeError, ValueError):
            raise WeChatUnavailable("WeChat msgSecCheck answered with a bad label") from None
        trace_id = answer.get("trace_id")
        return SecCheck(suggest=result["suggest"], label=label, trace_id=str(trace_id) if trace_id else None)

    # --- the access token --------------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The stored stable token, refreshed (by one process at a time) when it is missing or stale."""
        token = self._fresh_copy()
        if token is not None:
            return token
        async with self._token_lock:
            token = self._fresh_copy()
            if token is not None:
                return token
            async with transaction(self._sessionmaker) as session:
                row = await session.get(WechatToken, self._app_id)
                if row is not None and row.access_token and row.expires_at and _is_fresh(
                    row.access_token, row.expires_at, utcnow()
                ):
                    self._keep(row.access_token, row.expires_at)
                    return row.access_token
            return await self._refresh(refused=None)

    def _fresh_copy(self) -> str | None:
        if _is_fresh(self._token, self._token_expires_at, utcnow()):
            return self._token
        return None

    def _keep(self, token: str, expires_at: datetime) -> None:
        self._token, self._token_expires_at = token, expires_at

    async def _replace_refused(self, refused: str) -> None:
        """WeChat refused ``refused``: make sure the token used next is another one."""
        async with self._token_lock:
            if self._token != refused and self._fresh_copy() is not None:
                return  # another caller of this client has replaced it meanwhile
            await self._refresh(refused=refused)

    async def _refresh(self, *, refused: str | None) -> str:
        """Refresh the stored token under its row lock; the caller holds ``_token_lock``.

        Under the lock the row is read again: when another process has stored a fresh token (other than
        the refused one) meanwhile, that one is taken and WeChat is not asked. WeChat's normal mode is asked
        first; only when it hands back the very token it refused is a refresh forced, at most once every
        ``FORCE_REFRESH_EVERY`` across all processes (``force_refreshed_at``).
        """
        async with self._sessionmaker() as session:
            try:
                row = await self._locked_row(session)
                now = utcnow()
                if (row.access_token and row.expires_at and row.access_token != refused
                        and _is_fresh(row.access_token, row.expires_at, now)):
                    await session.commit()
                    self._keep(row.access_token, row.expires_at)
                    return row.access_token
                token, expires_in = await self._fetch_token(force=False)
                if refused is not None and token == refused:
                    if row.force_refreshed_at is not None and now - row.force_refreshed_at < FORCE_REFRESH_EVERY:
                        raise WeChatUnavailable("WeChat refuses its current access token and a forced refresh "
                                                "was made less than 30 s ago")
                    log.warning("WeChat refuses the token its normal mode hands out: forcing a refresh")
                    row.force_refreshed_at = now
                    try:
                        token, expires_in = await self._fetch_token(force=True)
                    except Exception:
                        await session.commit()  # WeChat may have counted the forced refresh: remember it
                        raise
                now = utcnow()
                expires_at = now + timedelta(seconds=expires_in)
                row.access_token, row.expires_at, row.refreshed_at = token, expires_at, now
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        self._keep(token, expires_at)
        log.info("WeChat access token refreshed (expires in %s s)", expires_in)
        return token

    async def _locked_row(self, session: AsyncSession) -> WechatToken:
        """The token row, created if missing, locked until the transaction ends."""
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        await session.execute(
            insert(WechatToken).values(appid=self._app_id).on_conflict_do_nothing(index_elements=["appid"])
        )
        return (await session.execute(
            select(WechatToken).where(WechatToken.appid == self._app_id).with_for_update()
        )).scalar_one()

    async def _fetch_token(self, *, force: bool) -> tuple[str, int]:
        answer = await self._call(
            "POST", STABLE_TOKEN,
            body={"grant_type": "client_credential", "appid": self._app_id, "secret": self._app_secret,
                  "force_refresh": force},
            with_token=False,
        )
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            raise WeChatUnavailable("WeChat stable_token answered without a token")
        return token, expires_in

    # --- one call, with WeChat's retry rules --------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        with_token: bool = True,
        wait_on_quota: bool = True,
    ) -> dict[str, Any]:
        retries = 0  # for -1 answers and requests that never left
        quota_waits = 0
        token_replaced = False
        while True:
            query = dict(params or {})
            token: str | None = None
            if with_token:
                token = await self.access_token()
                query["access_token"] = token
            try:
                answer = await log_service.count_wechat_errors(path, self._exchange(method, path, params=query, body=body))
            except _NeverLeft:
                if retries >= self._busy_retries:
                    raise
                retries += 1
                log.warning("WeChat %s unreachable, retry %d of %d", path, retries, self._busy_retries)
                await self._pause(retries)
                continue
            errcode, errmsg = _errcode(answer, path), str(answer.get("errmsg", ""))
            if errcode == 0:
                return answer
            if errcode in TOKEN_REFUSED and token is not None:
                if token_replaced:
                    raise WeChatUnavailable(f"WeChat {path} refused a freshly refreshed access token ({errcode})")
                token_replaced = True
                log.warning("WeChat %s refused the access token (%d): refreshing it", path, errcode)
                await self._replace_refused(token)
                continue
            if errcode == BUSY:
                if retries >= self._busy_retries:
                    raise WeChatUnavailable(f"WeChat {path} busy (-1) after {retries} retries")
                retries += 1
                log.warning("WeChat %s busy (-1), retry %d of %d", path, retries, self._busy_retries)
                await self._pause(retries)
                continue
            if errcode in QUOTA and wait_on_quota:
                if quota_waits >= self._quota_retries:
                    raise WeChatUnavailable(f"WeChat {path} over quota ({errcode})")
                quota_waits += 1
                log.warning("WeChat %s over quota (%d), waiting", path, errcode)
                await asyncio.sleep(self._quota_wait * quota_waits)
                continue
            log.info("WeChat %s answered errcode %d: %s", path, errcode, errmsg)
            raise WeChatError(errcode, errmsg)

    async def _exchange(
        self, method: str, path: str, *, params: dict[str, str], body: dict[str, Any] | None
    ) -> dict[str, Any]:
        """One HTTP request; its JSON answer, whatever the errcode."""
        try:
            response = await self._http.request(
                method, self._base_url + path, params=params, json=body, timeout=self._timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _NeverLeft(f"WeChat {path}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:  # read/write timeouts, dropped connections: it may have arrived
            raise WeChatUnavailable(f"WeChat {path}: {type(exc).__name__}", may_have_sent=True) from exc
        if response.status_code != 200:
            # 503 and 429 say the request was turned away; any other status may come after the work was done.
            turned_away = response.status_code in (429, 503)
            raise WeChatUnavailable(f"WeChat {path}: HTTP {response.status_code}", may_have_sent=not turned_away)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise WeChatUnavailable(f"WeChat {path}: the answer is not a JSON object", may_have_sent=True)
        return answer

    async def _pause(self, retry: int) -> None:
        await asyncio.sleep(self._backoff * 2 ** (retry - 1) * random.uniform(1.0, 1.25))


def _is_fresh(token: str | None, expires_at: datetime | None, now: datetime) -> bool:
    return bool(token) and expires_at is not None and expires_at - now > STALE_WITHIN


def _errcode(answer: dict[str, Any], path: str) -> int:
    value = answer.get("errcode", 0)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise WeChatUnavailable(f"WeChat {path}: errcode {value!r} is not a number", may_have_sent=True) from None


def client_from_settings(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> WeChatClient | None:
    """The app's client, or None when no AppID or secret is configured."""
    if not settings.wechat_app_id or not settings.wechat_app_secret:
        return None
    return WeChatClient(
        base_url=settings.wechat_base_url, app_id=settings.wechat_app_id, app_secret=settings.wechat_app_secret,
        sessionmaker=sessionmaker,
    )
