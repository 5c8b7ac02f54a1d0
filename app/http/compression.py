"""Compression of answers: Starlette's GZipMiddleware, choosing by the client's weights.

Starlette compresses whenever the Accept-Encoding header contains "gzip", so ``gzip;q=0`` (RFC 9110: not
acceptable) still got gzip. ``Compression`` decides by ``accepts_gzip``; everything else (minimum size,
excluded types, answers that already carry a Content-Encoding, like Open311's pre-compressed lists) is
Starlette's.
"""

from __future__ import annotations

from functools import lru_cache

from starlette.middleware.gzip import GZipMiddleware, GZipResponder, IdentityResponder
from starlette.types import Receive, Scope, Send

MINIMUM_BYTES = 1000  # smaller answers (polls, 304s, problems) are sent as they are
# zlib's own default rather than Starlette's 9: Open311's default list (667 KB) is 22 KB at 6 in 3.7 ms, 20 KB at 9
# in 6.8 ms; an office page is smaller, the ratio the same.
LEVEL = 6


@lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header (RFC 9110, 12.5.3) takes gzip: named (or as x-gzip), else ``*``,
    at a weight above 0. Every request asks, and clients send a handful of distinct headers: kept."""
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights.setdefault(coding.strip(), weight)
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


class Compression(GZipMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accept = next((v for k, v in scope["headers"] if k == b"accept-encoding"), b"").decode("latin-1")
        if accepts_gzip(accept):
            responder: IdentityResponder = GZipResponder(
                self.app, self.minimum_size, compresslevel=self.compresslevel,
                thread_minimum_size=self.thread_minimum_size, exclude_content_types=self.exclude_content_types,
            )
        else:
            responder = IdentityResponder(self.app, self.minimum_size, exclude_content_types=self.exclude_content_types)
        await responder(scope, receive, send)
