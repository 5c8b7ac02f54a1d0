"""Signing in and out of the pages."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from app.http import abuse
from app.http.deps import SessionDep
from app.errors import AppError, TooManyRequests
from app.http.routing import GuardedRouter
from app.services import auth as auth_service
from app.web.render import redirect, render
from app.web.session import SESSION_COOKIE, CheckedForm, PagePrincipal, safe_next, session_token, set_cookie

router = GuardedRouter()


def home_of(role: str) -> str:
    return {"representative": "/rep", "handler": "/office/unit"}.get(role, "/office")


@router.get("/login")
async def login_page(request: Request, principal: PagePrincipal, next: str | None = None) -> Response:
    if principal.user is not None:
        return redirect(safe_next(next, home_of(principal.user.role)))
    return render(request, "login.html", {"next": safe_next(next, ""), "errors": {}, "values": {}})


@router.post("/login")
async def login(request: Request, form: CheckedForm, session: SessionDep) -> Response:
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    target = str(form.get("next") or "")
    state = request.app.state
    try:
        await abuse.before_login(request, username)
    except TooManyRequests as limited:
        return render(request, "login.html", {"next": safe_next(target, ""), "values": {"username": username},
                                              "errors": {"form": limited.detail}}, status_code=429,
                      headers=limited.headers)
    try:
        user = await auth_service.authenticate(session, username=username, password=password)
        token, ttl = await auth_service.issue_token(session, user=user, ttl_seconds=state.settings.token_ttl_seconds)
        role = user.role
    except AppError as exc:
        await session.rollback()  # nothing of a refused sign-in is kept
        if exc.code == "invalid_credentials":
            await abuse.after_login(request, username, ok=False)
        return render(request, "login.html", {"next": safe_next(target, ""), "values": {"username": username},
                                              "errors": {"form": exc.detail}}, status_code=422)
    await abuse.after_login(request, username, ok=True)
    response = redirect(safe_next(target, home_of(role)))
    set_cookie(response, request, SESSION_COOKIE, token, max_age=ttl)
    return response


@router.post("/logout")
async def logout(request: Request, form: CheckedForm, session: SessionDep) -> Response:
    token = session_token(request)
    if token:
        await auth_service.revoke_token(session, token)
    response = redirect("/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    # The browser's HTTP cache of this site goes too (pages seen while signed in); the service worker's page
    # caches and the offline queue are cleared by app.js before this request, as the queue is per user.
    response.headers["Clear-Site-Data"] = '"cache"'
    return response
