"""Signing in, for tests: staff through the API (a bearer token) or the pages (a session cookie), residents
through the WeChat mini-program's login.

- API: ``request_token`` posts the login form to ``/api/v1/auth/token`` and returns the answer, whatever it
  is; ``token_of`` insists on 200 and returns the token; ``bearer`` makes the headers that carry one.
  (A test that only needs headers for a user of ``build_world``'s town uses ``world.auth(who)``.)
- Pages: ``login`` fetches ``/login`` (which sets the CSRF cookie) and posts the form with the page's token,
  returning the answer; ``sign_in`` insists on the 303 and returns the CSRF token for the posts that follow.
  ``csrf_of`` reads that token out of any page.
- WeChat: ``wechat_login`` logs an openid in through the fake WeChat and returns the headers of its token.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx

from tests.factories import PASSWORD

if TYPE_CHECKING:
    from tests.fake_wechat import FakeWeChat

TOKEN_URL = "/api/v1/auth/token"
LOGIN_PAGE = "/login"
WECHAT_LOGIN = "/api/v1/wechat/login"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


# --- the API: bearer tokens ---------------------------------------------------------------------------


async def request_token(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """POST ``username``/``password`` to /api/v1/auth/token: the answer, 200 or not."""
    return await client.post(TOKEN_URL, data={"username": username, "password": password})


async def token_of(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """A fresh bearer token for ``username`` (the login must succeed)."""
    response = await request_token(client, username, password)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    """The headers that carry ``token``."""
    return {"Authorization": f"Bearer {token}"}


# --- the pages: a session cookie ----------------------------------------------------------------------


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a page carries (its ``<meta name="csrf-token">``; the same as the browser's cookie)."""
    match = CSRF_META.search(page.text)
    assert match, page.text[:500]
    return match.group(1)


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD, **extra: str) -> httpx.Response:
    """Sign in through the /login form as a browser does (``extra``: more form fields, e.g. ``next``): the
    answer, 303 or not."""
    page = await client.get(LOGIN_PAGE)
    return await client.post(LOGIN_PAGE, data={"username": username, "password": password,
                                               "csrf_token": csrf_of(page), **extra})


async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD, *,
                  fresh: bool = False) -> str:
    """Sign in through /login (it must succeed: 303); returns the CSRF token for the following posts.
    ``fresh``: forget the client's cookies first, so one client can sign in as another user."""
    if fresh:
        client.cookies.clear()
    page = await client.get(LOGIN_PAGE)
    token = csrf_of(page)
    response = await client.post(LOGIN_PAGE, data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 303, response.text
    return token


# --- the WeChat mini-program: residents ---------------------------------------------------------------


async def wechat_login(client: httpx.AsyncClient, fake: FakeWeChat, openid: str,
                       unionid: str | None = None) -> dict[str, str]:
    """Log ``openid`` in through the API with a wx.login() code from ``fake``: the headers carrying its token."""
    response = await client.post(WECHAT_LOGIN, json={"code": fake.issue_code(openid, unionid)})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])
