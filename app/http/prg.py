"""Post, redirect, get for every page form a browser submits, failures included.

A page POST that succeeds mostly redirects (app/web). One that fails renders the page again with its
messages and every typed value (422, or 403, 404, 429), and a few answer with a page of their own (tracking's
result, a revealed phone number): shown as the POST's own answer, a reload would post again (the browser
asks to; a reveal would be audited twice), or (htmx's boost puts the form's action in the address bar) open
another page without what was typed. So for a browser's form submission (``Sec-Fetch-Mode: navigate`` with
``Sec-Fetch-Dest: document``, or htmx's boost, ``HX-Boosted: true``), this middleware keeps that
page (services/page_state.py: encrypted, for this browser only, ten minutes) and answers 303 to the page
the form was on (the ``Referer``'s path, same origin; else the POST's own path) with ``?shown=<token>``;
the GET of that URL shows the kept page, as often as it is reloaded while it lasts, then the page itself.

Requests from scripts (htmx, fetch, tests' HTTP clients) and the JSON API are untouched: they read the
failure from the answer itself.

And a GET of a page address that only takes POST (an action's URL, reloaded or typed) is not "Method Not
Allowed" but a redirect to the nearest page above it (``/office/forms/12/assign`` → ``/office/forms/12``).
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import transaction
from app.services import page_state

log = logging.getLogger(__name__)

SHOWN = "shown"
CSRF_COOKIE = b"minyi_csrf="  # app/web/session.py: the browser's own random token names its pages
NOT_PAGES = ("/api/", "/open311/", "/static/")


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers") or []}


def _owner(headers: dict[bytes, bytes]) -> str | None:
    for part in headers.get(b"cookie", b"").split(b";"):
        part = part.strip()
        if part.startswith(CSRF_COOKIE) and len(part) > len(CSRF_COOKIE):
            return hashlib.sha256(b"page-state:" + part[len(CSRF_COOKIE):]).hexdigest()
    return None


def _target(scope: Scope, headers: dict[bytes, bytes], token: str) -> str:
    """Where the form was (same origin), with ``shown`` set: that page's URL reloads cleanly."""
    path, query = scope.get("path", "/"), ""
    referer = headers.get(b"referer", b"").decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1")
    if referer:
        parts = urlsplit(referer)
        if parts.netloc == host and parts.path.startswith("/") and not parts.path.startswith(NOT_PAGES):
            path, query = parts.path, parts.query
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != SHOWN]
    return f"{path}?{urlencode([*pairs, (SHOWN, token)])}"


def _page_above(scope: Scope) -> str:
    """The nearest address above ``scope``'s path that a GET reaches (the app's own routes say), else "/"."""
    app = scope.get("app")
    segments = scope.get("path", "/").rstrip("/").split("/")
    while len(segments) > 1:
        segments.pop()
        candidate = "/".join(segments) or "/"
        probe = {**scope, "path": candidate, "method": "GET"}
        for route in getattr(getattr(app, "router", None), "routes", []):
            match, _ = route.matches(probe)
            if match == Match.FULL:
                return candidate
    return "/"


class PostRedirectGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(NOT_PAGES):
            await self.app(scope, receive, send)
            return
        method = scope.get("method")
        headers = _headers(scope)
        if method in ("GET", "HEAD"):
            if SHOWN.encode() + b"=" in scope.get("query_string", b"") and await self._show(scope, headers, send):
                return
            await self._get(scope, receive, send)
            return
        if method == "POST" and (
            (headers.get(b"sec-fetch-mode") == b"navigate" and headers.get(b"sec-fetch-dest", b"document") == b"document")
            or headers.get(b"hx-boosted") == b"true"  # htmx's boost follows the 303 and puts its URL in history
        ):
            owner = _owner(headers)
            if owner is not None:
                await self._post(scope, receive, send, headers, owner)
                return
        await self.app(scope, receive, send)

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = False

        async def redirect_405(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                refused = True
                location = _page_above(scope).encode("latin-1")
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", location), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            if not refused:
                await send(message)

        await self.app(scope, receive, redirect_405)

    async def _show(self, scope: Scope, headers: dict[bytes, bytes], send: Send) -> bool:
        owner = _owner(headers)
        token = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get(SHOWN, "")
        if owner is None or not token:
            return False
        try:
            async with transaction(scope["app"].state.sessionmaker) as session:
                page = await page_state.read(session, token=token, owner=owner)
                found = (page.status_code, page.body) if page is not None else None
        except Exception:  # noqa: BLE001 - the database away: the page itself, as if nothing was kept
            log.exception("could not read a kept page")
            return False
        if found is None:
            return False  # expired, or another browser's: the page as it is now
        status, body = found
        payload = body.encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"), (b"vary", b"HX-Request"),
        ]})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else payload})
        return True

    async def _post(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes], owner: str) -> None:
        start: Message | None = None
        chunks: list[bytes] = []
        passing = False

        async def capture(message: Message) -> None:
            nonlocal start, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                if 300 <= message["status"] < 400 or not content_type.startswith(b"text/html"):
                    passing = True  # a redirect after success, or not a page: as it is
                    await send(message)
                    return
                start = message
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if passing or start is None:
            return
        body = b"".join(chunks)
        try:
            async with transaction(scope["app"].state.sessionmaker) as session:
                token = await page_state.keep(session, owner=owner, status_code=start["status"],
                                              body=body.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - cannot keep it: the failed page as the POST's answer, as before
            log.exception("could not keep a page for post-redirect-get")
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        kept_headers = [(name, value) for name, value in start.get("headers") or [] if name.lower() == b"set-cookie"]
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", _target(scope, headers, token).encode("latin-1")), (b"content-length", b"0"),
            (b"cache-control", b"no-store"), *kept_headers,
        ]})
        await send({"type": "http.response.body", "body": b""})
