"""Cookie sessions and CSRF for the HTML pages.

A person signs in on /login: the same bearer token the API issues is kept in an ``HttpOnly``,
``SameSite=Lax`` cookie (``Secure`` when the request came over HTTPS), so signing out or deactivating a
user works exactly as for API clients, through the same login cache.

Every state-changing request of the pages carries a CSRF token: a random value kept in its own HttpOnly
cookie, written into each page (``<meta name="csrf-token">`` for htmx and scripts, a hidden
``csrf_token`` field in every form) and compared on each POST (double submit). A page from another site
can neither read the page nor the cookie, so it cannot send the value.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from app.http.deps import SESSION_COOKIE
from app.errors import AppError, PermissionDenied
from app.models import User
from app.services import auth as auth_service
from app.services.auth import ANONYMOUS, Principal

CSRF_COOKIE = "minyi_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(AppError):
    """Raised by pages that need a signed-in user: answered with a redirect to /login (see web.errors)."""

    status = 303
    title = "请先登录"
    default_code = "login_required"


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=is_https(request),
                        path="/")


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: from its cookie, or a new one (set on the response by ``CsrfCookie``)."""
    token = getattr(request.state, "csrf_token", None)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE) or ""
        if len(token) != 43:  # what token_urlsafe(32) gives; anything else is replaced
            token = secrets.token_urlsafe(32)
            request.state.new_csrf_token = token
        request.state.csrf_token = token
    return token


def remember_csrf(request: Request, response: Response) -> None:
    """Set the CSRF cookie on ``response`` if this request created the token."""
    token = getattr(request.state, "new_csrf_token", None)
    if token:
        set_cookie(response, request, CSRF_COOKIE, token, max_age=60 * 60 * 24 * 365)


async def check_csrf(request: Request) -> FormData:
    """Dependency of every page POST: the form, once its CSRF token matched the cookie's."""
    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD) or "")
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not cookie or not secrets.compare_digest(sent.encode(), cookie.encode()):
        raise PermissionDenied("页面已过期或来源不明，请刷新页面后重试。", code="csrf_failed")
    return form


CheckedForm = Annotated[FormData, Depends(check_csrf)]


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


async def page_principal(request: Request) -> Principal:
    """Who is looking at this page: the cookie's user (through the login cache), else the public."""
    token = session_token(request)
    if token is None:
        return ANONYMOUS
    state = request.app.state

    async def resolve() -> User:
        async with state.sessionmaker() as session:
            user = await auth_service.resolve_token(session, token)
            session.expunge(user)
        return user

    try:
        user = await state.auth_cache.get_or_compute(("token", token), resolve)
    except AppError:
        return ANONYMOUS  # an expired or revoked session: the page shows the signed-out view
    request.state.user = user
    return Principal(user=user)


PagePrincipal = Annotated[Principal, Depends(page_principal)]


async def signed_in(request: Request, principal: PagePrincipal) -> User:
    """Dependency of pages for staff: the user, or a redirect to /login that comes back here."""
    if principal.user is None:
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:
            # A form posted after the session ended: back to the page it was on (the action itself only
            # takes POST), when the browser says which page of ours that was.
            referer = urlsplit(request.headers.get("referer", ""))
            target = referer.path + (f"?{referer.query}" if referer.query else "") \
                if referer.netloc == request.url.netloc and referer.path.startswith("/") else ""
        location = f"/login?next={quote(target)}" if target else "/login"
        raise LoginRequired("请先登录。", headers={"Location": location})
    return principal.user


SignedIn = Annotated[User, Depends(signed_in)]


def safe_next(target: str | None, default: str = "/") -> str:
    """Only paths on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
