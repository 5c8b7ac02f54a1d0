"""Fake SMS providers: Alibaba Cloud Dysmsapi and Tencent Cloud SMS, each a real HTTP server on 127.0.0.1
(uvicorn in a background thread) answering ``SendSms`` as the real one does, with its state open to tests.

Each checks what the real one checks before sending: the signature (recomputed here by an implementation of
its own, written from the providers' documents and not from app/services/sms.py), the timestamp's freshness,
the key, the sign name, the template and its values, the phone number. Then it records the message.

Faults on demand: ``down`` (HTTP 503), ``fail_next(code, n, http_status=…)`` (the next ``n`` sends answer
that error code, sending nothing; an ``http_status`` of 500 or more without a code answers a bare 5xx),
``delay`` (the message is recorded, the answer comes late), ``refused_phones`` (numbers the operator
refuses).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MOBILE = re.compile(r"^1[3-9]\d{9}$")

# --- signatures, written from the documents -----------------------------------------------------------

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def pop_encode(text: str) -> str:
    """Alibaba Cloud's percent-encoding: every UTF-8 byte outside the unreserved set as %XX (capitals)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def aliyun_expected_signature(method: str, params: dict[str, str], secret: str) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    query = "&".join(pop_encode(k) + "=" + pop_encode(v) for k, v in pairs)
    string_to_sign = method + "&" + pop_encode("/") + "&" + pop_encode(query)
    mac = hmac.new((secret + "&").encode("utf-8"), string_to_sign.encode("utf-8"), "sha1")
    return base64.b64encode(mac.digest()).decode("ascii")


def tc3_expected_signature(secret_key: str, *, method: str, uri: str, query: str, headers: dict[str, str],
                           signed_headers: list[str], payload: bytes, timestamp: int, service: str) -> str:
    canonical_headers = ""
    for name in signed_headers:
        canonical_headers += name + ":" + headers[name].strip().lower() + "\n"
    canonical_request = "\n".join([method, uri, query, canonical_headers, ";".join(signed_headers),
                                   hashlib.sha256(payload).hexdigest()])
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    scope = date + "/" + service + "/tc3_request"
    string_to_sign = "TC3-HMAC-SHA256\n" + str(timestamp) + "\n" + scope + "\n" + \
        hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    key = ("TC3" + secret_key).encode("utf-8")
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# --- the servers ---------------------------------------------------------------------------------------


class _Server:
    """A Starlette app served by uvicorn on 127.0.0.1 in a thread, with a lock around its state."""

    name = "fake-sms"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.sent: list[dict[str, Any]] = []
            self.calls = 0
            self.refused_calls: list[str] = []  # error codes answered, in order
            self.down = False
            self.delay = 0.0
            self.refused_phones: set[str] = set()
            self._faults: list[list[Any]] = []  # [code or None, remaining, http_status]

    def fail_next(self, code: str | None, n: int = 1, *, http_status: int = 200) -> None:
        with self._lock:
            self._faults.append([code, n, http_status])

    def _take_fault(self) -> tuple[str | None, int] | None:
        for fault in self._faults:
            if fault[1] > 0:
                fault[1] -= 1
                return fault[0], fault[2]
        return None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        app = Starlette(routes=[Route("/", self._endpoint, methods=["POST"])])
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                loop="asyncio", timeout_keep_alive=60, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [listener]}, name=self.name,
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        with self._lock:
            self.calls += 1
            if self.down:
                return Response("503 Service Unavailable", status_code=503)
            status, answer = self._handle(request, raw)
            delay = self.delay
        if delay:
            await asyncio.sleep(delay)
        return JSONResponse(answer, status_code=status)

    def _handle(self, request: Request, raw: bytes) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


class FakeAliyun(_Server):
    """Dysmsapi: ``POST /`` with the RPC parameters in a form body, signed (signature V1)."""

    name = "fake-aliyun"
    access_key_id = "LTAI5tFakeKeyId0001"
    access_key_secret = "fake-aliyun-secret-5c2e"
    sign_name = "洛社镇党代表工作室"
    templates = {"SMS_400000001": ("no", "code"), "SMS_400000002": ("no", "status")}

    def reset(self) -> None:
        super().reset()
        self._nonces: set[str] = set()

    def _error(self, code: str, message: str, status: int = 200) -> tuple[int, dict[str, Any]]:
        self.refused_calls.append(code)
        return status, {"Code": code, "Message": message, "RequestId": secrets.token_hex(8).upper()}

    def _handle(self, request: Request, raw: bytes) -> tuple[int, dict[str, Any]]:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._error("MissingParameter", "form body expected", 400)
        params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        for name in ("AccessKeyId", "Action", "Format", "PhoneNumbers", "SignName", "SignatureMethod",
                     "SignatureNonce", "SignatureVersion", "TemplateCode", "Timestamp", "Version", "Signature"):
            if not params.get(name):
                return self._error(f"MissingParameter.{name}", f"{name} is mandatory", 400)
        if params["Action"] != "SendSms" or params["Version"] != "2017-05-25":
            return self._error("InvalidAction.NotFound", "unknown action or version", 404)
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return self._error("InvalidSignatureMethod", "HMAC-SHA1 1.0 only", 400)
        if params["AccessKeyId"] != self.access_key_id:
            return self._error("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        try:
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return self._error("InvalidTimeStamp.Format", "Specified time stamp is not valid.", 400)
        if abs(time.time() - stamp.timestamp()) > 15 * 60:
            return self._error("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400)
        if params["SignatureNonce"] in self._nonces:
            return self._error("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        expected = aliyun_expected_signature("POST", params, self.access_key_secret)
        if not hmac.compare_digest(expected, params["Signature"]):
            return self._error("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.",
                               400)
        self._nonces.add(params["SignatureNonce"])
        fault = self._take_fault()
        if fault is not None:
            code, status = fault
            if code is None:
                return status, {"Message": "internal error"}
            return self._error(code, "fault", status)
        if params["SignName"] != self.sign_name:
            return self._error("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        variables = self.templates.get(params["TemplateCode"])
        if variables is None:
            return self._error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            values = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return self._error("isv.INVALID_JSON_PARAM", "JSON参数不合法")
        if not isinstance(values, dict) or any(not isinstance(values.get(v), str) or not values[v] for v in variables):
            return self._error("isv.TEMPLATE_MISSING_PARAMETERS", "模版缺少变量")
        phone = params["PhoneNumbers"]
        if not MOBILE.match(phone):
            return self._error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if phone in self.refused_phones:
            return self._error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        biz_id = f"{secrets.randbelow(10**12):012d}^0"
        self.sent.append({"phone": phone, "sign": params["SignName"], "template": params["TemplateCode"],
                          "params": values, "id": biz_id})
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": secrets.token_hex(8).upper()}


class FakeTencent(_Server):
    """Tencent Cloud SMS 2021-01-11: ``POST /`` with a JSON body, TC3-HMAC-SHA256 in ``Authorization``."""

    name = "fake-tencent"
    secret_id = "AKIDfakeSecretId0000000000001"
    secret_key = "fake-tencent-secret-key-9b7d"
    sdk_app_id = "1400000001"
    sign_name = "洛社镇党代表工作室"
    templates = {"2000001": 2, "2000002": 2}  # template id -> how many values it takes
    AUTH = re.compile(r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, "
                      r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")

    def _error(self, code: str, message: str) -> tuple[int, dict[str, Any]]:
        self.refused_calls.append(code)
        return 200, {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": secrets.token_hex(16)}}

    def _status(self, phone: str, code: str, message: str, serial: str = "") -> tuple[int, dict[str, Any]]:
        if code != "Ok":
            self.refused_calls.append(code)
        return 200, {"Response": {"SendStatusSet": [{
            "SerialNo": serial, "PhoneNumber": phone, "Fee": 1 if code == "Ok" else 0, "SessionContext": "",
            "Code": code, "Message": message, "IsoCode": "CN"}], "RequestId": secrets.token_hex(16)}}

    def _handle(self, request: Request, raw: bytes) -> tuple[int, dict[str, Any]]:
        headers = {name.lower(): value for name, value in request.headers.items()}
        if headers.get("x-tc-action") != "SendSms":
            return self._error("InvalidAction", "unknown action")
        if headers.get("x-tc-version") != "2021-01-11":
            return self._error("NoSuchVersion", "unknown version")
        if not headers.get("x-tc-region"):
            return self._error("MissingParameter", "X-TC-Region is mandatory")
        try:
            timestamp = int(headers.get("x-tc-timestamp", ""))
        except ValueError:
            return self._error("InvalidParameter", "X-TC-Timestamp is not a number")
        if abs(time.time() - timestamp) > 300:
            return self._error("AuthFailure.SignatureExpire", "签名过期")
        match = self.AUTH.match(headers.get("authorization", ""))
        if match is None:
            return self._error("AuthFailure.InvalidAuthorization", "Authorization 格式不正确")
        secret_id, date, service, signed, signature = match.groups()
        if secret_id != self.secret_id:
            return self._error("AuthFailure.SecretIdNotFound", "密钥不存在")
        names = signed.split(";")
        if service != "sms" or date != time.strftime("%Y-%m-%d", time.gmtime(timestamp)) \
                or not {"content-type", "host"} <= set(names) or names != sorted(names) \
                or any(name not in headers for name in names):
            return self._error("AuthFailure.SignatureFailure", "签名错误")
        expected = tc3_expected_signature(self.secret_key, method="POST", uri="/", query="", headers=headers,
                                          signed_headers=names, payload=raw, timestamp=timestamp, service="sms")
        if not hmac.compare_digest(expected, signature):
            return self._error("AuthFailure.SignatureFailure", "签名错误")
        fault = self._take_fault()
        if fault is not None:
            code, status = fault
            if code is None:
                return status, {"message": "internal error"}
            return self._error(code, "fault")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error("InvalidParameter", "body is not JSON")
        phones = body.get("PhoneNumberSet")
        if not isinstance(phones, list) or len(phones) != 1 or not isinstance(phones[0], str):
            return self._error("InvalidParameterValue.IncorrectPhoneNumber", "手机号格式错误")
        if body.get("SmsSdkAppId") != self.sdk_app_id:
            return self._error("FailedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId 校验失败")
        if body.get("SignName") != self.sign_name:
            return self._error("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误")
        count = self.templates.get(str(body.get("TemplateId")))
        if count is None:
            return self._error("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配")
        values = body.get("TemplateParamSet")
        if not isinstance(values, list) or len(values) != count or not all(isinstance(v, str) and v for v in values):
            return self._error("InvalidParameterValue.TemplateParameterFormatError", "验证码模板参数格式错误")
        phone = phones[0]
        if not phone.startswith("+86") or not MOBILE.match(phone[3:]):
            return self._status(phone, "InvalidParameterValue.IncorrectPhoneNumber", "手机号格式错误")
        if phone[3:] in self.refused_phones:
            return self._status(phone, "InvalidParameterValue.IncorrectPhoneNumber", "手机号格式错误")
        serial = f"2645:{secrets.randbelow(10**18):018d}"
        self.sent.append({"phone": phone[3:], "sign": body["SignName"], "template": str(body["TemplateId"]),
                          "params": values, "id": serial})
        return self._status(phone, "Ok", "send success", serial)
