"""Security headers on every response (issue 8.2). Placeholder: filled in by the headers work."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts_seconds: int) -> None:
        self.app = app
        self.hsts_seconds = hsts_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
