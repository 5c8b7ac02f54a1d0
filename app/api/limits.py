"""A pure ASGI middleware that refuses request bodies over ``max_body_bytes`` with 413 problem+json.

A declared Content-Length over the limit is refused before reading anything. A body without one
(chunked) is read up to the limit first and then handed on, so the app never sees a cut-off body.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import http_problem
from app.errors import PROBLEM_JSON


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_body_bytes
            except ValueError:
                too_large = False
            if too_large:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        if headers.get(b"transfer-encoding", b"").lower() != b"chunked":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        problem = http_problem(413, f"请求内容超过上限（{self.max_body_bytes} 字节）。")
        payload = json.dumps(problem, ensure_ascii=False).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(payload)).encode()),
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
            problem = http_problem(400, "地址中含有不允许的字符。", code="invalid_characters")
            payload = json.dumps(problem, ensure_ascii=False).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, receive, send)
