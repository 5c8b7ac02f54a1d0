"""A pure ASGI middleware that refuses request bodies over a limit with 413 problem+json (the Open311
error shape under /open311/).

The limit is ``max_body_bytes`` for every request, except multipart POSTs to the photo uploads
(``POST /api/v1/forms`` with its photos, ``POST /api/v1/forms/{id}/photos``, and the submit pages
``/submit`` and ``/rep/forms``), which may carry up to
``upload_max_bytes``: by default room for ``MAX_PHOTOS`` photos of ``photo_max_bytes`` each and 64 KiB of
form fields and multipart framing.

A declared Content-Length over the limit is refused before reading anything. A body without one
(chunked) is counted as the app reads it: once over the limit, the app's reading fails, whatever it then
answers is dropped, and the client gets the 413. So the app never sees a cut-off body as if it were whole,
and a large upload is never held in memory here.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.problems import http_problem
from app.errors import PROBLEM_JSON
from app.services.photos import MAX_PHOTOS

UPLOAD_OVERHEAD_BYTES = 64 * 1024
UPLOAD_PATHS = (r"/api/v1/forms", r"/api/v1/forms/\d+/photos", r"/submit", r"/rep/forms")
# A browser's page (not the API, not Open311) gets its refusal as a page a person can read.
_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>提交的内容太大</title></head>
<body><main><h1>提交的内容太大</h1><p>{detail}</p>
<p>照片太大或太多：请点浏览器的“返回”回到上一页，少选几张照片或换小一些的照片后再提交。已填写的文字在上一页还在。</p>
</main></body></html>"""


def _encode(scope: Scope, problem: dict[str, Any]) -> tuple[int, bytes, bytes]:
    """(status, content type, body) of a refusal: problem+json, or the spec's error shape under /open311/."""
    # Open311 answers in its own error shape: the app registers it (app.state.open311_problem, as for
    # http/problems.py), so this plumbing knows no router.
    app = scope.get("app")
    open311_problem = getattr(app.state, "open311_problem", None) if app is not None else None
    if open311_problem is not None and (scope.get("path", "") + "/").startswith("/open311/"):
        response = open311_problem(Request(scope), problem, None)
        return response.status_code, response.headers["content-type"].encode(), bytes(response.body)
    path = scope.get("path", "")
    accept = dict(scope.get("headers") or []).get(b"accept", b"").lower()
    if b"text/html" in accept and not path.startswith(("/api/", "/open311/")):
        page = _PAGE.format(detail=html.escape(problem.get("detail", "")))
        return problem["status"], b"text/html; charset=utf-8", page.encode()
    return problem["status"], PROBLEM_JSON.encode(), json.dumps(problem, ensure_ascii=False).encode()


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once a chunked body passes the limit."""


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        *,
        photo_max_bytes: int | None = None,
        upload_max_bytes: int | None = None,
        upload_paths: Sequence[str] = UPLOAD_PATHS,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        if upload_max_bytes is None and photo_max_bytes is not None:
            upload_max_bytes = MAX_PHOTOS * photo_max_bytes + UPLOAD_OVERHEAD_BYTES
        # Never below the general limit: a small photo setting must not make uploads stricter than JSON.
        self.upload_max_bytes = max(upload_max_bytes or 0, max_body_bytes)
        self.upload_paths = [re.compile(pattern) for pattern in upload_paths]

    def limit_for(self, scope: Scope, headers: dict[bytes, bytes]) -> int:
        if (
            scope.get("method") == "POST"
            and headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
            and any(pattern.fullmatch(scope.get("path", "")) for pattern in self.upload_paths)
        ):
            return self.upload_max_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = self.limit_for(scope, headers)
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False
            if too_large:
                await self._refuse(scope, send, limit)
                return
            await self.app(scope, receive, send)
            return
        if headers.get(b"transfer-encoding", b"").lower() != b"chunked":
            await self.app(scope, receive, send)
            return
        size = 0
        refused = False
        started = False

        async def counted() -> Message:
            nonlocal size, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    refused = True
                    raise _BodyTooLarge()
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:  # whatever the app answers to a body it never got whole: the client gets the 413
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await self._refuse(scope, send, limit)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        status, content_type, payload = _encode(scope, http_problem(413, f"请求内容超过上限（{limit} 字节）。"))
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(payload)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": payload})


class UrlGuard:
    """Refuse NUL characters in the path or query string with 400 problem+json.

    PostgreSQL cannot store or compare text holding NUL; refusing it at the door makes both engines
    answer alike and keeps such input away from every query.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").lower()
        if scope["type"] == "http" and ("\x00" in scope.get("path", "") or b"%00" in query):
            status, content_type, payload = _encode(scope, http_problem(400, "地址中含有不允许的字符。",
                                                                        code="invalid_characters"))
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", content_type),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, receive, send)
