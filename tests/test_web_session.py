"""The pages' cookie sessions, CSRF and error rendering (app/web/session.py, auth.py, errors.py)."""

from __future__ import annotations


import httpx

from tests.factories import PASSWORD, build_world
from tests.support.logins import csrf_of, login


async def test_login_sets_a_protected_session_cookie_and_goes_home_by_role(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    response = await login(client, "coordinator")
    assert response.status_code == 303 and response.headers["location"] == "/office"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("minyi_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; set behind HTTPS (see test below)
    client.cookies.clear()
    assert (await login(client, "rep")).headers["location"] == "/rep"
    client.cookies.clear()
    assert (await login(client, "handler_a")).headers["location"] == "/office/unit"


async def test_cookies_are_secure_over_https(app, sessionmaker) -> None:
    await build_world(sessionmaker)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as https:
        response = await login(https, "coordinator")
    cookies = response.headers.get_list("set-cookie")
    assert cookies and all("Secure" in c for c in cookies)


async def test_login_goes_back_to_the_page_asked_for_but_never_off_site(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    assert (await login(client, "coordinator", next="/office/forms?status=submitted")).headers["location"] == (
        "/office/forms?status=submitted")
    client.cookies.clear()
    assert (await login(client, "coordinator", next="//evil.example/")).headers["location"] == "/office"


async def test_a_wrong_password_rerenders_the_form_with_a_message_and_the_name_kept(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    response = await login(client, "coordinator", password="wrong-password")
    assert response.status_code == 422
    assert "用户名或密码错误" in response.text and 'value="coordinator"' in response.text
    assert "minyi_session" not in response.cookies


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await client.get("/login")  # the CSRF cookie is set, but the form below does not carry the token
    response = await client.post("/login", data={"username": "coordinator", "password": PASSWORD})
    assert response.status_code == 403 and "页面已过期" in response.text
    assert "text/html" in response.headers["content-type"]
    assert "minyi_session" not in response.cookies
    forged = await client.post("/login", data={"username": "coordinator", "password": PASSWORD, "csrf_token": "x" * 43})
    assert forged.status_code == 403


async def test_logout_revokes_the_session_everywhere(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    await login(client, "coordinator")
    token = client.cookies["minyi_session"]
    assert (await client.get("/api/v1/stats/summary")).status_code == 200  # the cookie reads the API (GET)
    page = await client.get("/login?next=/x")
    assert page.status_code == 303  # already signed in
    logout = await client.post("/logout", data={"csrf_token": client.cookies["minyi_csrf"]})
    assert logout.status_code == 303
    client.cookies.set("minyi_session", token)  # even if a copy of the cookie is replayed
    assert (await client.get("/api/v1/stats/summary")).status_code == 401


async def test_the_session_cookie_never_authorises_an_api_write(client, sessionmaker) -> None:
    """Only reads: a cross-site form could make the browser send the cookie with a POST."""
    world = await build_world(sessionmaker)
    await login(client, "coordinator")
    form = (await client.post("/api/v1/forms", json={"content": "路灯坏了"})).json()
    assert form["submitter_phone"] is None
    response = await client.post(f"/api/v1/forms/{form['id']}/assign", json={"unit_id": world.units["A"].id})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_page_errors_are_pages_or_toasts_and_api_errors_stay_problem_json(client) -> None:
    page = await client.get("/no-such-page")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "请求的资源不存在" in page.text and "HX-Request" in page.headers["vary"]
    toast = await client.get("/no-such-page", headers={"HX-Request": "true"})
    assert toast.status_code == 404 and toast.headers["hx-retarget"] == "#toasts"
    assert toast.text.strip().startswith('<div class="toast error"')
    api = await client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")


async def test_htmx_is_served_from_our_own_path_compressed(client) -> None:
    page = await client.get("/login")
    assert '<script src="/static/vendor/htmx/htmx.min.js"' in page.text
    htmx = await client.get("/static/vendor/htmx/htmx.min.js", headers={"Accept-Encoding": "gzip"})
    assert htmx.status_code == 200 and htmx.headers["content-encoding"] == "gzip"
    assert "htmx" in htmx.text and int(htmx.headers["content-length"]) < 20_000


async def test_answers_are_compressed_only_for_a_client_that_takes_gzip(client) -> None:
    """By the header's weights (RFC 9110): ``gzip;q=0`` is a refusal (Starlette's own check took it as yes)."""
    for accept, gzipped in [
        ("gzip", True), ("GZIP", True), ("br, gzip;q=0.5", True), ("x-gzip", True), ("*", True), ("gzip; q=1.0", True),
        ("gzip;q=0", False), ("gzip;q=0.000, identity", False), ("*;q=0", False), ("gzip;q=0, *", False),
        ("identity", False), ("", False), ("deflate, br", False), ("gzip;q=nonsense", False), ("gzipx", False),
    ]:
        htmx = await client.get("/static/vendor/htmx/htmx.min.js", headers={"Accept-Encoding": accept})
        assert htmx.status_code == 200 and ("content-encoding" in htmx.headers) is gzipped, accept
        assert "htmx" in htmx.text and "Accept-Encoding" in htmx.headers["vary"]


async def test_every_page_knows_who_is_signed_in(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    assert "工作人员登录" in (await client.get("/")).text
    await login(client, "coordinator")
    home = await client.get("/")
    assert "退出（coordinator）" in home.text and "工作人员登录" not in home.text


async def test_a_form_posted_after_the_session_ended_comes_back_to_its_page_after_login(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    form = (await client.post("/api/v1/forms", json={"content": "路灯不亮。"})).json()
    token = csrf_of(await client.get("/login"))
    page = f"http://testserver/office/forms/{form['id']}"
    # Signed out (or the session expired) while the page was open: the action takes POST only, so the way
    # back is the page it was posted from, never the action's own path.
    response = await client.post(f"/office/forms/{form['id']}/note", data={"note": "x", "csrf_token": token},
                                 headers={"Referer": page})
    assert response.status_code == 303 and response.headers["location"] == f"/login?next=/office/forms/{form['id']}"
    foreign = await client.post(f"/office/forms/{form['id']}/note", data={"note": "x", "csrf_token": token},
                                headers={"Referer": "https://evil.example/office/forms/1"})
    assert foreign.headers["location"] == "/login"
    back = await login(client, "coordinator", next=f"/office/forms/{form['id']}")
    assert back.status_code == 303 and back.headers["location"] == f"/office/forms/{form['id']}"
    assert world.user_ids["coordinator"]
