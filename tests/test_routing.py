"""Every router of the app refuses at once a path none of its routes can match (app/http/routing.py), and
that changes nothing a request reaches: each route of the app is still the one FastAPI's order picks."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from fastapi.routing import iter_route_contexts

from app.http.routing import GuardedRouter, claims_of, literal_start, route_path

APP = Path(__file__).resolve().parent.parent / "app"
PARAMETER = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")


def sample(template: str) -> str:
    """A concrete path for a route template: ``1`` for each parameter, two segments for a ``:path`` one."""
    return PARAMETER.sub(lambda m: "a/b" if m.group(2) == "path" else "1", template)


async def reached(app: Any, method: str, path: str) -> Any:
    """The route the app's router left in the request's scope (a plain Starlette route leaves its endpoint;
    None when nothing matched), through the whole app: its middlewares, the guards and FastAPI's matching,
    as a real request arrives."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-length", b"0")],
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80), "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    await app(scope, receive, send)
    return scope.get("route") or scope.get("endpoint")


async def test_every_route_is_reached_as_before_the_guards(app: Any) -> None:
    contexts = [c for c in iter_route_contexts(app.routes)
                if isinstance(c.path_format, str) and getattr(c.original_route, "methods", None)]
    assert len(contexts) > 150
    checked = 0
    for context in contexts:
        path = sample(context.path_format)
        method = sorted(context.original_route.methods - {"HEAD"} or context.original_route.methods)[0]
        # What FastAPI's order alone picks: the first route, in the app's order, whose pattern and method fit
        # (an earlier route can shadow a sample path, e.g. /forms/export.csv before /forms/{form_id}).
        expected = next(c.original_route for c in contexts
                        if c.path_regex.match(path) and method in c.original_route.methods)
        got = await reached(app, method, path)
        assert got is expected or got is expected.endpoint, (method, path, context.path_format)
        checked += 1
    assert checked == len(contexts)


async def test_a_path_no_route_can_match_is_still_a_404_and_slashes_still_redirect(client: Any) -> None:
    for path in ("/api/v1/nothing-here", "/api/v2/forms", "/open311/v3/services.json", "/nothing"):
        answer = await client.get(path)
        assert answer.status_code == 404, path
    assert (await client.get("/api/v1/nothing-here")).headers["content-type"].startswith("application/problem+json")
    redirected = await client.get("/api/v1/stats/summary/", follow_redirects=False)
    assert redirected.status_code == 307 and redirected.headers["location"].endswith("/api/v1/stats/summary")


def test_claims_are_the_literal_beginnings_of_the_full_paths() -> None:
    assert literal_start("/api/v1/forms/{form_id}/assign") == "/api/v1/forms/"
    assert literal_start("/open311/v2/services.{fmt}") == "/open311/v2/services."
    assert literal_start("/healthz") == "/healthz"
    assert claims_of({"/api/v1/forms", "/api/v1/forms/", "/api/v1/track/"}) == ("/api/v1/forms", "/api/v1/track/")
    # A route at / or starting with a parameter could match anything: no guard at all.
    assert claims_of({"/w/", "/"}) is None and claims_of({"/office", ""}) is None and claims_of(set()) is None
    assert route_path({"path": "/minyi/api/v1/forms", "root_path": "/minyi"}) == "/api/v1/forms"
    assert route_path({"path": "/minyix/api", "root_path": "/minyi"}) == "/minyix/api"
    assert route_path({"path": "/api", "root_path": ""}) == "/api"


async def test_a_router_claims_its_own_paths_and_refuses_others(app: Any) -> None:
    from app.api.v1 import stats

    assert await reached(app, "GET", "/api/v1/stats/summary") is not None
    assert isinstance(stats.router, GuardedRouter)
    claims = stats.router._claims
    assert "/api/v1/stats/summary" in claims and all(claim.startswith("/api/v1/stats/") for claim in claims)
    match, _ = stats.router.matches({"type": "http", "path": "/api/v1/forms", "root_path": "", "method": "GET",
                                     "app": app})
    assert match.name == "NONE"


def test_every_router_in_the_app_is_guarded() -> None:
    plain = []
    for path in APP.rglob("*.py"):
        if path.name == "routing.py" and path.parent.name == "http":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "APIRouter":
                plain.append(f"{path.relative_to(APP.parent)}:{node.lineno}")
    assert plain == [], "use app.http.routing.GuardedRouter: " + ", ".join(plain)


async def test_a_head_is_the_gets_answer_without_its_body_on_every_route(app: Any, client: Any) -> None:
    """RFC 9110, 9.3.2: FastAPI routes name GET only, and a HEAD was 405 on the API, and on a page the
    redirect for a method a page lacks — for ``/`` a redirect to ``/`` itself."""
    gets = sorted({sample(c.path_format) for c in iter_route_contexts(app.routes)
                   if isinstance(c.path_format, str) and "GET" in (getattr(c.original_route, "methods", None) or ())})
    assert len(gets) > 100
    for path in gets:  # signed out: what a monitor, a crawler or a load balancer sees
        get, head = await client.get(path), await client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        for name in ("content-type", "location", "content-encoding", "allow"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
    for path in ("/healthz", "/open311/v2/services.json", "/static/vendor/htmx/htmx.min.js", "/"):
        get, head = await client.get(path), await client.head(path)
        assert head.status_code == 200 and head.headers["content-length"] == get.headers["content-length"], path
    # A page address that only takes POST still sends a HEAD to the page above it; an API one is 405.
    up = await client.head("/logout")
    assert up.status_code == 303 and up.headers["location"] == "/"
    up = await client.head("/office/forms/1/assign")
    assert up.status_code == 303 and up.headers["location"] == "/office/forms/1"
    refused = await client.head("/api/v1/auth/token")
    assert refused.status_code == 405 and "POST" in refused.headers["allow"]
