"""HEAD is GET without the body (RFC 9110, 9.3.2), on every route.

FastAPI's routes take only the methods they name, so a HEAD from an uptime monitor or a load balancer was
405 on the API and the probes, and on a page the redirect a page gives for a method it lacks
(app/http/prg.py): for ``/`` that redirect pointed at ``/`` itself, so ``curl -IL`` went round forever. The
request goes in as a GET; its answer comes out with the GET's status and headers (Content-Length, ETag,
Content-Encoding …) and no body. Logs and limits outside this middleware still see HEAD.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] in ("http.response.body", "http.response.pathsend"):
                if ended or message.get("more_body", False):
                    return
                ended = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
