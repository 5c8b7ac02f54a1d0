"""Rendering pages and fragments.

One template per page; the regions htmx refreshes are named ``{% block %}``s rendered alone
(jinja2-fragments) when the request comes from htmx and is not a history restore. Responses always say
``Vary: HX-Request``, so no cache hands a fragment to a full page load or the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2_fragments.fastapi import Jinja2Blocks

from app.models import STATUS_LABELS
from app.schemas.forms import PAGE_FIELDS
from app.web.session import CSRF_FIELD, csrf_token, remember_csrf

FRONTEND = Path(__file__).resolve().parent.parent.parent / "frontend"
templates = Jinja2Blocks(directory=FRONTEND / "templates")
# page_fields: the optional text fields of the one submission schema that the pages render by themselves.
templates.env.globals.update(STATUS_LABELS=STATUS_LABELS, CSRF_FIELD=CSRF_FIELD, page_fields=PAGE_FIELDS)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-history-restore-request") != "true"


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page ``name``, or only its ``block`` for an htmx request."""
    ctx: dict[str, Any] = {
        "csrf_token": csrf_token(request),
        "user": getattr(request.state, "user", None),
        "demo": request.app.state.settings.demo,
    }
    ctx.update(context or {})
    kwargs: dict[str, Any] = {"block_name": block} if block and is_htmx(request) else {}
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers, **kwargs)
    response.headers["Vary"] = "HX-Request"
    remember_csrf(request, response)
    return response


def redirect(url: str) -> RedirectResponse:
    """Redirect after POST (303: the browser follows with a GET)."""
    return RedirectResponse(url, status_code=303)
