"""SMS to residents who ask for it (issue 16.3): the receipt (number and code) and the reply notice.

Chinese SMS go out only through approved templates under an approved signature (签名), so the texts live
at the provider and the settings name them (docs/sms.md). Two providers behind one interface
(``SmsProvider``), each our own small async httpx client of the provider's documented signed HTTP API:

- Alibaba Cloud Dysmsapi ``SendSms`` (version 2017-05-25, RPC style, signature V1: HMAC-SHA1 of
  ``POST&%2F&`` + the encoded sorted query, keyed with the secret + ``&``);
- Tencent Cloud SMS ``SendSms`` (version 2021-01-11, TC3-HMAC-SHA256);

and ``log``, which only writes to the log (a demo's ``make run``; chosen explicitly, never the default).

The outbox, like ``WechatNotice`` (services/notices.py, whose reasoning this follows): a message is written
(pending) in the transaction of what it announces — the receipt with the form (``forms.submit_many``), the
reply notice with the answer (``changes.record``) — so a slow or absent provider never holds up or undoes
either. ``send_due`` sends the due ones:

1. claim: in one short transaction, the due pending messages are leased (``next_attempt_at`` pushed
   ``LEASE`` ahead; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several workers share them;
2. per message, in a short transaction: settle it without sending when nothing may be sent (the form's
   notices stopped: ``stopped``; the phone's day used up: ``capped``; no provider or template: ``failed``),
   else mark it in flight (``error_message`` ``IN_FLIGHT``), which counts towards the phone's day;
3. send, outside any transaction;
4. record, in a short transaction: ``sent`` with the provider's message id; a final refusal → ``failed``
   with the provider's code; nothing sent but a later try may work (network never reached, HTTP 5xx,
   throttling) → ``pending`` again after a back-off, ``failed`` after ``MAX_ATTEMPTS``; no answer after the
   request left → ``failed``, never resent (it may have reached the phone).

A message found in flight whose lease ran out belongs to a worker that stopped between sending and
recording: it may have been sent, so it is ``failed``, never resent.

The template values are wiped once a message is settled, whatever the outcome: the receipt's carry the
verification code, which the app otherwise keeps only as a keyed hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import TZ, Settings
from app.db import transaction
from app.models import STATUS_LABELS, EventType, FormEvent, OpinionForm, SmsKind, SmsMessage, SmsStatus, utcnow
from app.schemas.forms import mainland_mobile

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # longer than one send (the client's timeout is at most 60 s)
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
IN_FLIGHT = "发送中"
MAX_ERROR = 500

NOT_CONFIGURED = "短信服务未配置（MINYI_SMS_PROVIDER 等），未发送"
NO_TEMPLATE = "未配置该类短信的模板，未发送"
NO_PHONE = "手机号码已删除，未发送"
STOPPED = "居民已停止短信通知，未发送"
CAPPED = "该号码今日短信已达上限（MINYI_SMS_DAILY_CAP），未发送"
OUTCOME_UNKNOWN = "发送中断，短信可能已发出：不再重发"
MAYBE_SENT = "短信平台未答复，短信可能已发出：不再重发"

DEFAULT_BASE_URLS = {"aliyun": "https://dysmsapi.aliyuncs.com", "tencent": "https://sms.tencentcloudapi.com"}


# --- settings ------------------------------------------------------------------------------------------


def missing(settings: Settings) -> list[str]:
    """The settings the chosen provider still needs (empty: ready, or no provider chosen)."""
    provider = settings.sms_provider
    if provider is None or provider == "log":
        return []
    needed = {
        "MINYI_SMS_ACCESS_KEY_ID": settings.sms_access_key_id,
        "MINYI_SMS_ACCESS_KEY_SECRET": settings.sms_access_key_secret,
        "MINYI_SMS_SIGN_NAME": settings.sms_sign_name,
        "MINYI_SMS_RECEIPT_TEMPLATE_ID": settings.sms_receipt_template_id,
        "MINYI_SMS_REPLY_TEMPLATE_ID": settings.sms_reply_template_id,
    }
    if provider == "tencent":
        needed["MINYI_SMS_SDK_APP_ID"] = settings.sms_sdk_app_id
    return [name for name, value in needed.items() if not value]


def offered(settings: Settings) -> bool:
    """Whether residents may ask for SMS: a provider is chosen and has what it needs. When False no SMS is
    ever queued and the pages do not show the consent box."""
    return settings.sms_provider is not None and not missing(settings)


def template_for(settings: Settings, kind: str) -> str | None:
    """The provider's template id of ``kind`` (``log`` names the kind itself when none is set)."""
    template = settings.sms_receipt_template_id if kind == SmsKind.receipt else settings.sms_reply_template_id
    if template is None and settings.sms_provider == "log":
        return kind
    return template


# --- signing -------------------------------------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Alibaba Cloud's signature asks: UTF-8, only ``A-Z a-z 0-9 - _ . ~`` kept
    (a space is ``%20``, ``*`` is ``%2A``, ``~`` stays)."""
    return quote(value, safe="-_.~")


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
                         if k != "Signature")
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def aliyun_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """Signature V1 of an RPC request: Base64(HMAC-SHA1(secret + "&", StringToSign))."""
    digest = hmac.new(f"{secret}&".encode(), aliyun_string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Tc3:
    """A TC3-HMAC-SHA256 signature and what it was made of."""

    signature: str
    signed_headers: str
    credential_scope: str
    canonical_request: str
    string_to_sign: str

    def authorization(self, secret_id: str) -> str:
        return (f"TC3-HMAC-SHA256 Credential={secret_id}/{self.credential_scope}, "
                f"SignedHeaders={self.signed_headers}, Signature={self.signature}")


def tc3_sign(
    secret_key: str, *, service: str, timestamp: int, headers: Mapping[str, str], payload: bytes,
    method: str = "POST", path: str = "/", query: str = "",
) -> Tc3:
    """Tencent Cloud API signature v3. ``headers``: the headers to sign (names in any case; ``host`` and
    ``content-type`` at least)."""
    signed = {name.lower(): " ".join(value.split()).lower() for name, value in headers.items()}
    names = sorted(signed)
    canonical_headers = "".join(f"{name}:{signed[name]}\n" for name in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join([method.upper(), path, query, canonical_headers, signed_headers,
                                   _sha256_hex(payload)])
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{day}/{service}/tc3_request"
    string_to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), scope, _sha256_hex(canonical_request.encode())])
    key = _hmac256(_hmac256(_hmac256(f"TC3{secret_key}".encode(), day), service), "tc3_request")
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return Tc3(signature, signed_headers, scope, canonical_request, string_to_sign)


# --- providers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """What one send came to. Success: ``message_id`` (the provider's), no ``error_code``."""

    message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry: bool = False  # nothing was sent and a later attempt may work (network, 5xx, throttling)
    may_have_sent: bool = False  # the request left and no answer came: it may have reached the phone

    @property
    def ok(self) -> bool:
        return self.error_code is None and not self.retry and not self.may_have_sent


class SmsProvider(Protocol):
    name: str

    async def send(self, phone: str, template: str, params: dict[str, str]) -> SendResult:
        """Send one templated SMS to ``phone`` (11 digits, mainland); never raises for the provider's or the
        network's faults: they are in the result."""
        ...

    async def aclose(self) -> None: ...


class _HttpProvider:
    name = ""

    def __init__(self, *, base_url: str, timeout: float, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._own = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def _post(self, *, content: bytes, headers: dict[str, str]) -> httpx.Response | SendResult:
        try:
            return await self._http.post(self.base_url + "/", content=content, headers=headers, timeout=self._timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # never left
            return SendResult(error_code="network", error_message=type(exc).__name__, retry=True)
        except httpx.TransportError as exc:  # read timeout, dropped connection: it may have arrived
            return SendResult(error_code="network", error_message=type(exc).__name__, may_have_sent=True)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


# Aliyun codes that say "nothing was sent, try later": its own faults and throttling (the per-phone
# frequency control isv.BUSINESS_LIMIT_CONTROL: 1 a minute, 5 an hour by default).
ALIYUN_RETRY = {"isp.SYSTEM_ERROR", "isv.BUSINESS_LIMIT_CONTROL", "ServiceUnavailable", "InternalError",
                "SignatureNonceUsed"}


class AliyunSms(_HttpProvider):
    """Alibaba Cloud Dysmsapi SendSms, signed the RPC way (signature V1), parameters in a form body."""

    name = "aliyun"

    def __init__(self, *, access_key_id: str, access_key_secret: str, sign_name: str, base_url: str,
                 timeout: float = 10.0, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(base_url=base_url, timeout=timeout, http=http)
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._sign_name = sign_name

    def request_params(self, phone: str, template: str, params: dict[str, str], *, now: datetime | None = None,
                       nonce: str | None = None) -> dict[str, str]:
        """The signed parameters of one SendSms."""
        values = {
            "AccessKeyId": self._key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone,
            "RegionId": "cn-hangzhou",
            "SignName": self._sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "TemplateCode": template,
            "TemplateParam": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": (now or utcnow()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }
        values["Signature"] = aliyun_signature("POST", values, self._secret)
        return values

    async def send(self, phone: str, template: str, params: dict[str, str]) -> SendResult:
        values = self.request_params(phone, template, params)
        body = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in values.items())
        answer = await self._post(content=body.encode(),
                                  headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                                           "Accept": "application/json"})
        if isinstance(answer, SendResult):
            return answer
        data = _json(answer)
        code = str(data.get("Code", "")) if data else ""
        if not code:
            return SendResult(error_code=f"HTTP {answer.status_code}", error_message="短信平台的答复无法识别",
                              retry=answer.status_code >= 500)
        if code == "OK":
            return SendResult(message_id=str(data.get("BizId") or "") or None)  # type: ignore[union-attr]
        message = str(data.get("Message", ""))  # type: ignore[union-attr]
        retry = code in ALIYUN_RETRY or code.startswith("Throttling") or answer.status_code >= 500
        return SendResult(error_code=code, error_message=message, retry=retry)


# Tencent codes that say "nothing was sent, try later": its own faults, request-rate limits and the
# per-phone frequency limits (LimitExceeded.PhoneNumberThirtySecondLimit, …OneHourLimit, …DailyLimit).
TENCENT_RETRY_PREFIXES = ("InternalError", "RequestLimitExceeded", "LimitExceeded.PhoneNumber")


class TencentSms(_HttpProvider):
    """Tencent Cloud SMS SendSms (2021-01-11), signed with TC3-HMAC-SHA256, a JSON body."""

    name = "tencent"
    service = "sms"
    version = "2021-01-11"

    def __init__(self, *, secret_id: str, secret_key: str, sign_name: str, sdk_app_id: str, region: str,
                 base_url: str, timeout: float = 10.0, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(base_url=base_url, timeout=timeout, http=http)
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._sign_name = sign_name
        self._app_id = sdk_app_id
        self._region = region
        self._host = urlsplit(self.base_url).netloc

    def request(self, phone: str, template: str, params: dict[str, str], *,
                timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and the signed headers of one SendSms. ``params`` go in their order ({1}, {2}, …)."""
        body = {
            "PhoneNumberSet": [f"+86{phone}"],
            "SmsSdkAppId": self._app_id,
            "SignName": self._sign_name,
            "TemplateId": template,
            "TemplateParamSet": [str(value) for value in params.values()],
        }
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = timestamp if timestamp is not None else int(utcnow().timestamp())
        signed = {"Content-Type": "application/json; charset=utf-8", "Host": self._host, "X-TC-Action": "SendSms"}
        tc3 = tc3_sign(self._secret_key, service=self.service, timestamp=timestamp, headers=signed, payload=payload)
        headers = {**signed, "X-TC-Version": self.version, "X-TC-Timestamp": str(timestamp),
                   "X-TC-Region": self._region, "Authorization": tc3.authorization(self._secret_id)}
        return payload, headers

    async def send(self, phone: str, template: str, params: dict[str, str]) -> SendResult:
        payload, headers = self.request(phone, template, params)
        answer = await self._post(content=payload, headers=headers)
        if isinstance(answer, SendResult):
            return answer
        data = _json(answer)
        response = data.get("Response") if data else None
        if not isinstance(response, dict):
            return SendResult(error_code=f"HTTP {answer.status_code}", error_message="短信平台的答复无法识别",
                              retry=answer.status_code >= 500)
        error = response.get("Error")
        if isinstance(error, dict):
            return self._refused(str(error.get("Code", "")), str(error.get("Message", "")), answer.status_code)
        statuses = response.get("SendStatusSet")
        status = statuses[0] if isinstance(statuses, list) and statuses and isinstance(statuses[0], dict) else None
        if status is None:
            return SendResult(error_code="NoSendStatus", error_message="短信平台未答复发送结果", may_have_sent=True)
        code = str(status.get("Code", ""))
        if code == "Ok":
            return SendResult(message_id=str(status.get("SerialNo") or "") or None)
        return self._refused(code, str(status.get("Message", "")), answer.status_code)

    @staticmethod
    def _refused(code: str, message: str, http_status: int) -> SendResult:
        retry = code.startswith(TENCENT_RETRY_PREFIXES) or http_status >= 500
        return SendResult(error_code=code or f"HTTP {http_status}", error_message=message, retry=retry)


class LogSms:
    """Writes each SMS to the log instead of sending it: for a demo (``MINYI_SMS_PROVIDER=log``), never a
    default. The values are logged as they are (a receipt's code included), the phone masked."""

    name = "log"

    async def send(self, phone: str, template: str, params: dict[str, str]) -> SendResult:
        log.info("SMS (log only) to %s, template %s: %s", phone[:3] + "****" + phone[-4:], template,
                 json.dumps(params, ensure_ascii=False))
        return SendResult(message_id="log-" + secrets.token_hex(6))

    async def aclose(self) -> None:
        return None


def provider_from_settings(settings: Settings, *, http: httpx.AsyncClient | None = None) -> SmsProvider | None:
    """The configured provider, or None when SMS is not offered (unset or incomplete settings)."""
    if not offered(settings):
        return None
    if settings.sms_provider == "log":
        return LogSms()
    assert settings.sms_access_key_id and settings.sms_access_key_secret and settings.sms_sign_name
    base_url = settings.sms_base_url or DEFAULT_BASE_URLS[settings.sms_provider or ""]
    if settings.sms_provider == "aliyun":
        return AliyunSms(access_key_id=settings.sms_access_key_id, access_key_secret=settings.sms_access_key_secret,
                         sign_name=settings.sms_sign_name, base_url=base_url, timeout=settings.sms_timeout_seconds,
                         http=http)
    assert settings.sms_sdk_app_id
    return TencentSms(secret_id=settings.sms_access_key_id, secret_key=settings.sms_access_key_secret,
                      sign_name=settings.sms_sign_name, sdk_app_id=settings.sms_sdk_app_id, region=settings.sms_region,
                      base_url=base_url, timeout=settings.sms_timeout_seconds, http=http)


# --- queueing, in the caller's transaction ------------------------------------------------------------


def receipt_params(tracking_no: str, code: str) -> dict[str, str]:
    """The receipt template's values: ``no`` the tracking number, ``code`` the verification code."""
    return {"no": tracking_no, "code": code}


def reply_params(tracking_no: str, status: str) -> dict[str, str]:
    """The reply notice's values: ``no`` the tracking number, ``status`` its status in Chinese (已答复)."""
    return {"no": tracking_no, "status": STATUS_LABELS.get(status, status)}


def wants_sms(form: Any) -> str | None:
    """The mobile number to notify for ``form`` (an ``OpinionForm`` or a ``forms.NewForm``), or None: no
    consent, no mobile number, or notices stopped."""
    if not getattr(form, "sms_consent", False) or getattr(form, "sms_stopped_at", None) is not None:
        return None
    return mainland_mobile(form.submitter_phone)


def message_row(*, form_id: int, kind: str, phone: str, params: dict[str, str], now: datetime) -> dict[str, Any]:
    """An ``sms_message`` row to insert (Core: the caller inserts many at once)."""
    return {"form_id": form_id, "kind": kind, "phone": phone, "phone_hash": crypto.phone_index(phone),
            "params": json.dumps(params, ensure_ascii=False), "status": SmsStatus.pending, "attempts": 0,
            "created_at": now, "next_attempt_at": now}


async def queue(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(SmsMessage), rows)


# --- sending -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outgoing:
    message_id: int
    attempts: int  # after this attempt: the record is written only if nobody has tried since
    phone: str
    template: str
    params: dict[str, str]


def day_start(now: datetime) -> datetime:
    """Midnight of ``now``'s day in Asia/Shanghai, as an aware UTC time: where the daily cap's day begins."""
    local = now.astimezone(TZ)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def send_due(
    sessionmaker: async_sessionmaker[AsyncSession], provider: SmsProvider | None, settings: Settings, *,
    now: datetime | None = None, limit: int = 20,
) -> int:
    """Send the SMS due at ``now`` (at most ``limit``); returns how many were handled (sent, settled
    without sending, or put back for a later attempt)."""
    now = now or utcnow()
    handled = 0
    for message_id in await _claim(sessionmaker, now=now, limit=limit):
        outgoing = await _prepare(sessionmaker, provider, settings, message_id=message_id,
                                  leased_until=now + LEASE, now=now)
        if outgoing is not None:
            assert provider is not None
            await _send(sessionmaker, provider, outgoing, now=now)
        handled += 1
    return handled


async def _claim(sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime, limit: int) -> list[int]:
    async with transaction(sessionmaker) as session:
        query = (
            select(SmsMessage)
            .where(SmsMessage.status == SmsStatus.pending, SmsMessage.next_attempt_at <= now)
            .order_by(SmsMessage.next_attempt_at, SmsMessage.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        messages = list(await session.scalars(query))
        for message in messages:
            message.next_attempt_at = now + LEASE
    return [message.id for message in messages]


def _settle(message: SmsMessage, status: SmsStatus, error: str, code: str | None = None) -> None:
    message.status = status
    message.error_code = code
    message.error_message = error
    message.params = None


async def sent_today(session: AsyncSession, *, phone_hash: str, now: datetime, besides: int) -> int:
    """SMS sent to this phone since the local midnight, and those in flight to it now (``besides`` aside)."""
    return int(await session.scalar(
        select(func.count()).select_from(SmsMessage).where(
            SmsMessage.phone_hash == phone_hash, SmsMessage.id != besides,
            or_(and_(SmsMessage.status == SmsStatus.sent, SmsMessage.sent_at >= day_start(now)),
                and_(SmsMessage.status == SmsStatus.pending, SmsMessage.error_message == IN_FLIGHT)),
        )
    ) or 0)


async def _prepare(
    sessionmaker: async_sessionmaker[AsyncSession], provider: SmsProvider | None, settings: Settings, *,
    message_id: int, leased_until: datetime, now: datetime,
) -> _Outgoing | None:
    """Settle the message if it may not be sent, else mark it in flight and return what to send."""
    async with transaction(sessionmaker) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        query = select(SmsMessage).where(SmsMessage.id == message_id, SmsMessage.status == SmsStatus.pending)
        if postgres:
            query = query.with_for_update()
        message = await session.scalar(query.execution_options(populate_existing=True))
        if message is None or message.next_attempt_at != leased_until:
            return None  # settled, or leased again, by another worker while this one sent earlier messages
        stopped_at = await session.scalar(select(OpinionForm.sms_stopped_at).where(OpinionForm.id == message.form_id))
        template = template_for(settings, message.kind)
        if message.error_message == IN_FLIGHT:
            _settle(message, SmsStatus.failed, OUTCOME_UNKNOWN)
            return None
        if stopped_at is not None:
            _settle(message, SmsStatus.stopped, STOPPED)
            return None
        if provider is None:
            _settle(message, SmsStatus.failed, NOT_CONFIGURED)
            return None
        if not template:
            _settle(message, SmsStatus.failed, NO_TEMPLATE)
            return None
        if not message.phone or not message.phone_hash or message.params is None:
            _settle(message, SmsStatus.failed, NO_PHONE)
            return None
        if postgres:
            # One phone's sends are counted one at a time across workers, so two cannot both take the last
            # of its day (SQLite: the write transaction already serialises).
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                  {"key": int(message.phone_hash[:15], 16)})
        if await sent_today(session, phone_hash=message.phone_hash, now=now, besides=message.id) >= settings.sms_daily_cap:
            _settle(message, SmsStatus.capped, CAPPED)
            return None
        message.attempts += 1
        message.provider = provider.name
        message.error_code = None
        message.error_message = IN_FLIGHT
        message.next_attempt_at = now + LEASE
        return _Outgoing(message_id=message.id, attempts=message.attempts, phone=message.phone, template=template,
                         params=json.loads(message.params))


async def _send(
    sessionmaker: async_sessionmaker[AsyncSession], provider: SmsProvider, outgoing: _Outgoing, *, now: datetime,
) -> None:
    try:
        result = await provider.send(outgoing.phone, outgoing.template, outgoing.params)
    except Exception:  # a fault of ours or the client's: the request may have left, so never resend
        log.exception("SMS %s: unexpected error while sending", outgoing.message_id)
        result = SendResult(error_code="error", may_have_sent=True)
    values: dict[str, Any]
    detail = (result.error_message or "")[:200]
    if result.ok:
        values = {"status": SmsStatus.sent, "sent_at": now, "provider_message_id": result.message_id,
                  "error_code": None, "error_message": None, "params": None}
    elif result.may_have_sent:
        values = {"status": SmsStatus.failed, "error_code": result.error_code, "error_message": MAYBE_SENT,
                  "params": None}
    elif result.retry and outgoing.attempts < MAX_ATTEMPTS:
        values = {"status": SmsStatus.pending, "next_attempt_at": now + RETRY_DELAYS[outgoing.attempts - 1],
                  "error_code": result.error_code,
                  "error_message": f"短信平台暂不可用（第 {outgoing.attempts} 次）：{detail}，稍后重试"[:MAX_ERROR]}
    elif result.retry:
        values = {"status": SmsStatus.failed, "error_code": result.error_code, "params": None,
                  "error_message": f"短信平台暂不可用，已尝试 {outgoing.attempts} 次，未发送：{detail}"[:MAX_ERROR]}
    else:
        log.warning("SMS %s refused by the provider: %s %s", outgoing.message_id, result.error_code, detail)
        values = {"status": SmsStatus.failed, "error_code": (result.error_code or "")[:100] or None,
                  "error_message": (result.error_message or "短信平台拒绝发送")[:MAX_ERROR], "params": None}
    if values.get("error_code"):
        values["error_code"] = values["error_code"][:100]
    async with transaction(sessionmaker) as session:
        # Only if nobody tried since (a lease that ran out and a second worker): its answer is the one kept.
        await session.execute(
            update(SmsMessage)
            .where(SmsMessage.id == outgoing.message_id, SmsMessage.attempts == outgoing.attempts,
                   SmsMessage.status == SmsStatus.pending)
            .values(**values)
        )


# --- stopping, from the tracking page --------------------------------------------------------------------


def can_stop(settings: Settings, form: OpinionForm) -> bool:
    """Whether the tracking page offers 不再接收短信通知 for ``form``."""
    return offered(settings) and bool(form.sms_consent) and form.sms_stopped_at is None


async def stop(session: AsyncSession, *, form: OpinionForm, now: datetime | None = None) -> int:
    """The resident stops the form's SMS notices (they proved the code): no SMS is sent for it from now on,
    waiting ones are settled ``stopped``; an internal event says so. Returns how many waiting SMS were
    stopped. Asking again changes nothing."""
    now = now or utcnow()
    if form.sms_stopped_at is not None:
        return 0
    form.sms_stopped_at = now
    result = await session.execute(
        update(SmsMessage)
        .where(SmsMessage.form_id == form.id, SmsMessage.status == SmsStatus.pending,
               or_(SmsMessage.error_message.is_(None), SmsMessage.error_message != IN_FLIGHT))
        .values(status=SmsStatus.stopped, error_code=None, error_message=STOPPED, params=None)
    )
    stopped = int(result.rowcount or 0)  # type: ignore[attr-defined]
    session.add(FormEvent(
        form_id=form.id, type=EventType.sms_stopped, at=now, actor_user_id=None, actor_label="居民（查询页）",
        actor_role=None, from_status=form.status, to_status=form.status, unit_id=None,
        note=f"居民停止短信通知，{stopped} 条待发短信不再发送。" if stopped else "居民停止短信通知。",
        internal=True, data={"stopped_messages": stopped},
    ))
    await session.flush()
    return stopped


# --- personal data ---------------------------------------------------------------------------------------


async def erase_for_erased_forms(session: AsyncSession) -> int:
    """Wipe the phone (and its hash) and the values of SMS whose form's personal data was erased; waiting
    ones are stopped. Called where forms' personal data is erased (services/personal_data.py)."""
    erased = select(OpinionForm.id).where(OpinionForm.personal_data_erased_at.is_not(None)).scalar_subquery()
    await session.execute(
        update(SmsMessage).where(SmsMessage.form_id.in_(erased), SmsMessage.status == SmsStatus.pending)
        .values(status=SmsStatus.stopped, error_message=NO_PHONE)
    )
    result = await session.execute(
        update(SmsMessage)
        .where(SmsMessage.form_id.in_(erased),
               or_(SmsMessage.phone.is_not(None), SmsMessage.phone_hash.is_not(None), SmsMessage.params.is_not(None)))
        .values(phone=None, phone_hash=None, params=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
