"""Dashboard polls answered before routing.

The office dashboard polls the statistics every few seconds from many screens. A poll whose answer this
process already holds (fresh in the statistics cache, for a token fresh in the login cache) needs neither
the router, nor dependency injection, nor the database: ``AnswerPolls`` sends it straight from the caches,
as a 304 when the caller's ``If-None-Match`` still matches, else the cached body. Anything else (a miss,
another path, no or unknown token) goes on to the app unchanged, which computes, caches and records the
request's exact path and query for the next poll (``PollAnswers.remember``).

The same rules hold on both paths: a token the app would accept (the login cache only holds those), any
signed-in user (the statistics routes ask for no more), the same bytes and headers.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.services.read_cache import ReadCache

SESSION_COOKIE = b"minyi_session"
JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-cache")]


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against our ETag."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    bare = etag.removeprefix("W/")
    return "*" in tags or any(t.removeprefix("W/") == bare for t in tags)


class PollAnswers:
    """Which cache entry answers which request (path and raw query), bounded."""

    MAX_ALIASES = 1000

    def __init__(self, *, stats_cache: ReadCache[Any], auth_cache: ReadCache[Any], prefix: str) -> None:
        self.stats_cache = stats_cache
        self.auth_cache = auth_cache
        self.prefix = prefix
        self._aliases: dict[tuple[str, bytes], Hashable] = {}

    def remember(self, scope: Scope, key: Hashable) -> None:
        alias = (scope["path"], scope.get("query_string", b""))
        if alias not in self._aliases:
            if len(self._aliases) >= self.MAX_ALIASES:
                self._aliases.clear()
            self._aliases[alias] = key

    def lookup(self, scope: Scope) -> tuple[str, bytes, bytes | None] | None:
        """(etag, body, If-None-Match) when the caches can answer this request, else None."""
        key = self._aliases.get((scope["path"], scope.get("query_string", b"")))
        if key is None:
            return None
        authorization = if_none_match = cookie = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"cookie":
                cookie = value
        if authorization is not None:
            if authorization[:7].lower() != b"bearer ":
                return None
            token = authorization[7:].decode("latin-1").strip()
        elif cookie is not None and SESSION_COOKIE in cookie:  # a signed-in page polling (see deps.get_principal)
            token = _cookie_value(cookie, SESSION_COOKIE)
        else:
            return None
        if not token or self.auth_cache.peek(("token", token)) is None:
            return None
        cached = self.stats_cache.peek(key)
        if cached is None:
            return None
        etag, body = cached
        return etag, body, if_none_match


def _cookie_value(header: bytes, name: bytes) -> str:
    for part in header.split(b";"):
        key, _, value = part.strip().partition(b"=")
        if key == name:
            return value.decode("latin-1")
    return ""


class AnswerPolls:
    def __init__(self, app: ASGIApp, answers: PollAnswers) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(self.answers.prefix):
            found = self.answers.lookup(scope)
            if found is not None:
                etag, body, if_none_match = found
                headers = [*JSON_HEADERS, (b"etag", etag.encode())]
                if if_none_match is not None and etag_matches(if_none_match.decode("latin-1"), etag):
                    await send({"type": "http.response.start", "status": 304, "headers": headers[1:]})
                    await send({"type": "http.response.body", "body": b""})
                    return
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
