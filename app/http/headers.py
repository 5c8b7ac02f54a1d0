"""Security headers on every response (issue 8.2; OWASP ASVS 4 level 2, V14.4, and the OWASP Secure
Headers project).

A pure ASGI middleware, so it sees every answer: pages, the JSON API, Open311, static files, the
middlewares' own answers (413, 400, polls answered from the cache) and the 500 of an unhandled error.
A header a route already set is kept (the calendar feed's ``Referrer-Policy: no-referrer``, ``/sw.js``'s
``Service-Worker-Allowed``, Open311's CORS headers).

- Pages get a Content-Security-Policy that allows nothing inline: scripts and styles only from our own
  files (``/static/...``, htmx served from our own path), no ``eval``; no page may be framed.
- JavaScript gets the same policy: for a service worker (``/sw.js``) its own response's policy is the
  one that governs what it may fetch, and it fetches our pages and static files.
- Every other answer (JSON, XML, images, files, exports) gets ``default-src 'none'``: if a browser is
  ever tricked into rendering one as a document, nothing in it runs or loads.
- The API docs FastAPI serves (``/docs``, ``/redoc``) are the one exception, see ``_docs_policy``.
- ``Strict-Transport-Security`` only when the request came over HTTPS (the scope's scheme, which a
  trusted proxy's ``X-Forwarded-Proto`` sets, see MINYI_TRUSTED_PROXIES) and ``hsts_seconds`` > 0.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import inspect
import re
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _policy(*directives: str) -> str:
    return "; ".join(directives)


PAGE_POLICY = _policy(
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    # data: for small images written into CSS or SVG; blob: for images a script builds from a file.
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
OTHER_POLICY = _policy("default-src 'none'", "frame-ancestors 'none'")

# Nothing on our pages uses the camera or the microphone: photos reach us as files (a file input's camera
# opens the phone's own camera app, which needs no permission here). The position is asked for by our own
# pages only ("使用我的位置" on the submit pages, capture.js), never by a frame. Only features Chromium knows
# are listed: an unknown one is a console error there.
PERMISSIONS_POLICY = ", ".join([*(f"{feature}=()" for feature in (
    "accelerometer", "camera", "display-capture", "gyroscope", "magnetometer", "microphone", "payment", "usb",
)), "geolocation=(self)"])

COMMON_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    # Our pages link only to themselves: no other site needs to know which page someone came from
    # (a tracking number or a form's address is nobody else's business).
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),  # frame-ancestors for browsers without CSP level 2
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    ("X-Permitted-Cross-Domain-Policies", "none"),
)

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def _wants_page_policy(content_type: str) -> bool:
    """Documents and scripts get the page policy; so does an answer with no body type (a 304
    revalidating a cached page carries headers the browser merges into the cached page's)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("", "text/html", "text/javascript", "application/javascript")


def _docs_paths(app: object) -> frozenset[str]:
    """Where FastAPI serves its API docs, as the app was configured."""
    names = ("docs_url", "redoc_url", "swagger_ui_oauth2_redirect_url")
    return frozenset(path for path in (getattr(app, name, None) for name in names) if path)


def _docs_policy(body: bytes) -> str:
    """The policy of FastAPI's API docs pages (for developers, not residents). Swagger UI and ReDoc
    come from FastAPI's CDN (jsDelivr) and start with an inline script; ReDoc's components inject their
    own <style> elements. The inline scripts FastAPI wrote are allowed by their exact hashes, never with
    'unsafe-inline'; styles need 'unsafe-inline' (a style cannot run code)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(body) if script.strip()
    )
    cdn = "https://cdn.jsdelivr.net"
    return _policy(
        "default-src 'self'",
        f"script-src 'self' {cdn} {hashes}".rstrip(),
        f"style-src 'self' {cdn} https://fonts.googleapis.com 'unsafe-inline'",
        f"img-src 'self' data: {cdn} https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "font-src 'self' https://fonts.gstatic.com",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts_seconds: int) -> None:
        self.app = app
        self.hsts_seconds = hsts_seconds
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds > 0 else None

    def _add(self, scope: Scope, message: Message, policy: str | None = None) -> None:
        message.setdefault("headers", [])
        headers = MutableHeaders(scope=message)
        if policy is None:
            policy = PAGE_POLICY if _wants_page_policy(headers.get("content-type", "")) else OTHER_POLICY
        extra: Iterable[tuple[str, str]] = (*COMMON_HEADERS, ("Content-Security-Policy", policy))
        if self.hsts and scope.get("scheme") == "https":
            extra = (*extra, ("Strict-Transport-Security", self.hsts))
        for name, value in extra:
            headers.setdefault(name, value)  # never over a header the route chose

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        if scope["path"] in _docs_paths(app):
            await self._docs(scope, receive, send)
            return

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._add(scope, message)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # An unhandled error is answered by Starlette's outermost middleware, outside this one, so its
            # 500 would go out without these headers: the app's own 500 handler answers here instead. That
            # handler logs the error with its traceback; the error is not raised further, or Starlette's
            # middleware would call the handler (and log) a second time.
            handlers = getattr(app, "exception_handlers", {})
            handler = handlers.get(Exception) or handlers.get(500)
            if started or handler is None or getattr(app, "debug", False):
                raise
            response = handler(Request(scope), exc)
            if inspect.isawaitable(response):  # ours (app/http/problems.py) are async
                response = await response
            await response(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold the (small) docs page to hash its inline scripts, then send it with its policy."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            start.setdefault("headers", [])
            gzipped = MutableHeaders(scope=start).get("content-encoding") == "gzip"  # GZipMiddleware is inside
            text = gzip.decompress(body) if gzipped and body else body
            self._add(scope, start, _docs_policy(text))
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, hold)
