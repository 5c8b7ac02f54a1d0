"""The app's routers: each answers "not mine" at once for a path none of its routes can match.

FastAPI (0.16x) keeps an included router as one entry of its parent and matches a request by walking
every route of every included router in order, twice (once to find the match, once to handle it),
recomputing the route tree's version on the way. Behind the API's ~190 routes that was a quarter of a
submission's app CPU, two thirds of ``/healthz``'s and most of a page's routing. A ``GuardedRouter`` knows
the literal beginnings of its routes' full paths (``/api/v1/forms``, ``/open311/v2/requests``, ``/w/`` ...),
read once from the app's own route table at the first request, and refuses any other path with one
``str.startswith``: a request walks only the routers that may hold its route. What it does match, and in
which order, is FastAPI's own matching, unchanged.

Every router of the app is one (``tests/test_routing.py`` checks that every route is still reached, that a
router refuses what it cannot match, and that every ``APIRouter`` in ``app/`` is a ``GuardedRouter``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

_UNKNOWN = object()


def route_path(scope: Scope) -> str:
    """The path routes match against: the request's path without the app's root path (as Starlette reads it)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root):]
    return path


def literal_start(template: str) -> str:
    """The part of a path template before its first parameter: ``/api/v1/forms/`` for
    ``/api/v1/forms/{form_id}/assign``, the whole path when it has none."""
    return template.split("{", 1)[0]


def claims_of(starts: set[str]) -> tuple[str, ...] | None:
    """The fewest beginnings that cover ``starts`` (one that begins with another adds nothing), or None when
    one of them is empty or ``/``, which every path begins with."""
    if not starts or any(start in ("", "/") for start in starts):
        return None
    kept: list[str] = []
    for start in sorted(starts):
        if not (kept and start.startswith(kept[-1])):
            kept.append(start)
    return tuple(kept)


class GuardedRouter(APIRouter):
    """An ``APIRouter`` that matches a request only when its path begins like one of its routes' full paths."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claims: Any = _UNKNOWN
        self._version: int | None = None

    def _read_claims(self, app: Any) -> tuple[str, ...] | None:
        mine = {id(context.original_route) for context in iter_route_contexts(self.routes)}
        starts: set[str] = set()
        for context in iter_route_contexts(app.routes):
            if id(context.original_route) in mine:
                template = context.path_format
                if not isinstance(template, str):
                    return None  # a route without a path (a mount of another kind): claim everything
                starts.add(literal_start(template))
        return claims_of(starts)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        claims = self._claims
        if claims is _UNKNOWN:
            app = scope.get("app")
            claims = self._claims = self._read_claims(app) if app is not None else None
        if claims is not None and not route_path(scope).startswith(claims):
            return Match.NONE, {}
        return super().matches(scope)

    def _mark_routes_changed(self) -> None:
        self._claims = _UNKNOWN
        self._version = None
        super()._mark_routes_changed()

    def _get_routes_version(self, seen: set[int] | None = None) -> int:
        # FastAPI walks the whole included tree for this number several times per request to learn whether
        # a route was added since. The app's routers are complete once their modules are imported, before
        # any request: the number is kept from the first request on. A route added to a router later resets
        # that router's own number (``_mark_routes_changed``), not its parents': include it anew instead.
        if self._version is None or seen is not None:
            version = super()._get_routes_version(seen)
            if seen is None:
                self._version = version
            return version
        return self._version
