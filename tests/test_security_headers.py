"""Security headers on every answer (issue 8.2; OWASP ASVS V14.4): a Content-Security-Policy with nothing
inline on every page, nosniff, Referrer-Policy, no framing, HSTS over HTTPS only; and the pages really
run under that policy in Chromium."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from fastapi.routing import iter_route_contexts

from app.db import transaction
from app.models import ExportJob
from app.models.similar import TopicMember
from app.services import similar_forms
from tests.support.apps import build_app
from tests.conftest import make_settings, screenshot
from tests.factories import PASSWORD, build_world, submit
from tests.support.logins import csrf_of, login
from tests.test_imports import REP_HEADER, csv_bytes
from tests.test_web_public import add_point, post_submit

# Every GET route outside /api/, /open311/ and /static/: who opens it, the address, and what it answers
# (page: our HTML; script; other: JSON, SVG…; docs: FastAPI's API docs). A new route without a row here
# fails test_every_page_route_has_a_row.
PAGES: dict[str, tuple[str | None, str, str]] = {
    "/": (None, "/", "page"),
    "/login": (None, "/login", "page"),
    "/w/{code}": (None, "/w/LS-01", "page"),
    "/p/{point_id}": (None, "/p/{point}", "page"),
    "/submit": (None, "/submit", "page"),
    "/service-points": (None, "/service-points", "page"),
    "/receipt": (None, "/receipt", "page"),
    "/track": (None, "/track", "page"),
    "/w/{code}/poster": (None, "/w/LS-01/poster", "page"),
    "/p/{point_id}/poster": (None, "/p/{point}/poster", "page"),
    "/w/{code}/duty": (None, "/w/LS-01/duty", "page"),
    "/duty/today": (None, "/duty/today", "page"),
    "/rep": ("rep", "/rep", "page"),
    "/rep/duty": ("rep", "/rep/duty", "page"),
    "/rep/record": ("rep", "/rep/record", "page"),
    "/office/records": ("coordinator", "/office/records?workroom=LS-01", "page"),
    "/office/records/{representative_id}": ("coordinator", "/office/records/{rep}", "page"),
    "/office": ("coordinator", "/office", "page"),
    "/office/forms": ("coordinator", "/office/forms", "page"),
    "/office/forms/{form_id}": ("coordinator", "/office/forms/{form}", "page"),
    "/office/unit": ("handler_a", "/office/unit", "page"),
    "/office/topics/{topic_id}": ("coordinator", "/office/topics/{topic}", "page"),
    "/similar-hint": (None, "/similar-hint?content=%E8%B7%AF%E7%81%AF%E5%9D%8F%E4%BA%86", "page"),  # an htmx fragment
    "/office/rosters": ("coordinator", "/office/rosters", "page"),
    "/office/rosters/calendar": ("coordinator", "/office/rosters/calendar?workroom=LS-01", "page"),
    "/office/rota": ("coordinator", "/office/rota", "page"),
    "/office/swaps": ("coordinator", "/office/swaps", "page"),
    "/office/attendance": ("coordinator", "/office/attendance", "page"),
    "/office/service-points": ("coordinator", "/office/service-points", "page"),
    "/office/funnel": ("coordinator", "/office/funnel", "page"),
    "/office/calendar": ("coordinator", "/office/calendar", "page"),
    "/office/imports": ("coordinator", "/office/imports", "page"),
    "/office/imports/{job_id}": ("coordinator", "/office/imports/{job}", "page"),
    "/office/imports/{job_id}/errors.csv": ("coordinator", "/office/imports/{job}/errors.csv", "other"),
    "/office/exports/forms": ("coordinator", "/office/exports/forms?status=submitted", "page"),
    "/w/{code}/activities": (None, "/w/LS-01/activities", "page"),
    "/office/activities": ("coordinator", "/office/activities", "page"),
    "/office/activities/new": ("coordinator", "/office/activities/new", "page"),
    "/office/activities/{activity_id}": ("coordinator", "/office/activities/{activity}", "page"),
    "/office/activities/{activity_id}/delete": ("coordinator", "/office/activities/{activity}/delete", "page"),
    "/office/paper": ("coordinator", "/office/paper", "page"),
    "/office/paper/entry": ("rep", "/office/paper/entry?batch={paper_batch}", "page"),
    "/office/paper/{batch_id}": ("coordinator", "/office/paper/{paper_batch}", "page"),
    "/office/reports": ("coordinator", "/office/reports", "page"),
    "/office/reports/{period}": ("coordinator", "/office/reports/2026-11", "page"),
    "/office/reports/{period}/jobs/{job_id}": ("coordinator", "/office/reports/1999/jobs/{report_job}", "page"),
    "/sw.js": (None, "/sw.js", "script"),
    "/w/{code}/qr.svg": (None, "/w/LS-01/qr.svg", "other"),
    "/p/{point_id}/qr.svg": (None, "/p/{point}/qr.svg", "other"),
    "/favicon.ico": (None, "/favicon.ico", "other"),
    "/healthz": (None, "/healthz", "other"),
    "/readyz": (None, "/readyz", "other"),
    "/metrics": (None, "/metrics", "other"),
    "/openapi.json": (None, "/openapi.json", "other"),
    "/docs": (None, "/docs", "docs"),
    "/docs/oauth2-redirect": (None, "/docs/oauth2-redirect", "docs"),
    "/redoc": (None, "/redoc", "docs"),
}

INLINE = {  # what a page of ours must not carry: the policy would block it (or it defeats the policy)
    "style attribute": re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE),
    "style element": re.compile(r"<style\b", re.IGNORECASE),
    "inline script": re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "event handler attribute": re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE),
    "hx-on": re.compile(r"\shx-on", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def csp(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def assert_common(response: httpx.Response, where: str) -> dict[str, list[str]]:
    """nosniff, a referrer policy, no framing (CSP and the old header) and a CSP; returns the CSP."""
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") in ("same-origin", "strict-origin-when-cross-origin", "no-referrer"), where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("cross-origin-opener-policy") == "same-origin", where
    assert "camera=()" in headers.get("permissions-policy", ""), where
    policy = csp(response)
    assert policy.get("frame-ancestors") == ["'none'"], (where, policy)
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts and "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (where, policy)
    return policy


def assert_page_policy(policy: dict[str, list[str]], where: str) -> None:
    """Our pages: everything from our own origin, nothing inline, no plugins, no foreign forms or <base>."""
    assert policy["default-src"] == ["'self'"], where
    assert policy["script-src"] == ["'self'"], where
    assert policy["style-src"] == ["'self'"], where
    assert policy["object-src"] == ["'none'"], where
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"], where
    assert policy["connect-src"] == ["'self'"], where


def sha256_source(script: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


@asynccontextmanager
async def app_client(
    app: FastAPI, base_url: str = "http://testserver", **transport: object
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the in-process app; ``transport`` options such as ``client`` (the peer address)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, **transport),  # type: ignore[arg-type]
                                 base_url=base_url) as http:
        yield http


async def test_every_page_route_has_a_row(app: FastAPI) -> None:
    routes = {route.path for route in iter_route_contexts(app.routes)
              if route.methods and "GET" in route.methods
              and not route.path.startswith(("/api/", "/open311/", "/static/"))}
    assert routes - set(PAGES) == set(), "a GET route without a row in PAGES: add it, with who opens it"
    assert set(PAGES) - routes == set(), "a row in PAGES for a route that is gone"


async def test_every_page_and_answer_outside_the_api_carries_the_headers(app: FastAPI, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    point = await add_point(sessionmaker, world)
    async with app_client(app) as anonymous, app_client(app) as coordinator, app_client(app) as rep, \
            app_client(app) as handler:
        form = await submit(anonymous, workroom_code="LS-01")
        assert (await post_submit(anonymous)).status_code == 303  # the receipt page shows this one
        async with transaction(sessionmaker) as session:  # the forms' topics (the worker's job)
            await similar_forms.index_pending(session, settings=app.state.settings)
            topic = await session.scalar(select(TopicMember.topic_id).where(TopicMember.form_id == form["id"]))
        for client, who in ((coordinator, "coordinator"), (rep, "rep"), (handler, "handler_a")):
            assert (await login(client, who)).status_code == 303
        token = csrf_of(await coordinator.get("/office/imports"))
        upload = await coordinator.post(
            "/office/imports", data={"kind": "representatives", "csrf_token": token},
            files={"file": ("名册.csv", csv_bytes([REP_HEADER, ["王芳", "镇", "13800000001", "LS-01"]]), "text/csv")})
        assert upload.status_code == 303
        job = int(upload.headers["location"].rsplit("/", 1)[1])
        async with transaction(sessionmaker) as session:  # a brief's job, as its page shows one (no file written)
            report = ExportJob(user_id=world.user_ids["coordinator"], kind="report", format="docx",
                               filters={"period": "1999"}, status="running", progress=1, total=5)
            session.add(report)
            await session.flush()
            report_job = report.id
        paper_batch = (await anonymous.post("/api/v1/paper-batches", json={"workroom_code": "LS-01", "count": 2},
                                            headers=world.auth("coordinator"))).json()["id"]
        activity = (await anonymous.post("/api/v1/activities", headers=world.auth("coordinator"), json={
            "workroom_code": "LS-01", "title": "安全头测试活动", "held_on": "2026-05-06"})).json()["id"]  # issue 20.2
        clients = {None: anonymous, "coordinator": coordinator, "rep": rep, "handler_a": handler}

        for route, (who, url, kind) in PAGES.items():
            url = url.format(point=point, form=form["id"], job=job, topic=topic, report_job=report_job, paper_batch=paper_batch,
                             rep=world.representatives["rep"].id, activity=activity)
            response = await clients[who].get(url)
            where = f"{route} ({url})"
            assert response.status_code == 200, (where, response.status_code, response.text[:300])
            policy = assert_common(response, where)
            if kind == "page":
                assert response.headers["content-type"].startswith("text/html"), where
                assert_page_policy(policy, where)
                for what, pattern in INLINE.items():
                    found = pattern.search(response.text)
                    assert found is None, f"{where}: {what}: {found.group(0) if found else ''}"
            elif kind == "script":  # a service worker lives under its own response's policy: the pages'
                assert_page_policy(policy, where)
            elif kind == "other":
                assert policy == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}, where
            else:  # FastAPI's API docs: the inline scripts it wrote allowed by their hashes, nothing else inline
                scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
                assert scripts or route == "/redoc", where  # ReDoc starts from its bundle alone
                for script in scripts:
                    assert sha256_source(script) in policy["script-src"], where


async def test_api_answers_and_errors_carry_nosniff_and_no_framing(app: FastAPI, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    async with app_client(app) as client:
        staff = world.auth("coordinator")
        answers = {
            "JSON": await client.get("/api/v1/workrooms", headers=staff),
            "404 problem": await client.get("/api/v1/workrooms/NOPE-99", headers=staff),
            "422 problem": await client.get("/api/v1/workrooms", params={"limit": "many"}, headers=staff),
            "401 problem": await client.get("/api/v1/forms"),
            "405 problem": await client.delete("/healthz"),
            "400 from the URL guard": await client.get("/api/v1/workrooms", params={"q": "\x00"}),
            "Open311 JSON": await client.get("/open311/v2/services.json"),
            "Open311 XML": await client.get("/open311/v2/services.xml"),
            "static CSS": await client.get("/static/css/app.css"),
            "htmx": await client.get("/static/vendor/htmx/htmx.min.js"),
        }
        expected = {"JSON": 200, "404 problem": 404, "422 problem": 422, "401 problem": 401,
                    "405 problem": 405, "400 from the URL guard": 400, "Open311 JSON": 200, "Open311 XML": 200,
                    "static CSS": 200, "htmx": 200}
        for name, response in answers.items():
            assert response.status_code == expected[name], (name, response.status_code, response.text[:200])
            policy = assert_common(response, name)
            if not response.headers["content-type"].startswith(("text/javascript", "application/javascript")):
                assert policy["default-src"] == ["'none'"], name
        # A page that is not there is an HTML page like the others.
        missing = await client.get("/no-such-page")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        assert_page_policy(assert_common(missing, "404 page"), "404 page")

        # Headers a route chose are kept: Open311's CORS, the service worker's scope, the calendar feed's
        # stricter referrer policy.
        assert answers["Open311 JSON"].headers["access-control-allow-origin"] == "*"
        assert (await client.get("/sw.js")).headers["service-worker-allowed"] == "/"
        await login(client, "coordinator")
        page = await client.get("/office/rosters/calendar", params={"workroom": "LS-01"})
        found = re.search(r'id="calendar-url" readonly value="([^"]+)"', page.text)
        assert found, page.text[:300]
        url = html.unescape(found.group(1))
        feed = await client.get(url)
        assert feed.status_code == 200, feed.text[:200]
        assert feed.headers["referrer-policy"] == "no-referrer"
        assert_common(feed, "calendar feed")


async def test_an_unhandled_error_answers_500_with_the_headers_and_is_logged_once(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug")

    # A route of this test only: the real app, its real handlers and middlewares, and a real bug.
    app.add_api_route("/api/v1/test-boom", boom)
    app.add_api_route("/test-boom", boom)
    async with app_client(app, raise_app_exceptions=False) as client:
        api = await client.get("/api/v1/test-boom")
        assert api.status_code == 500 and api.headers["content-type"].startswith("application/problem+json")
        assert api.json()["code"] == "internal_error"
        assert csp(api)["default-src"] == ["'none'"]
        assert_common(api, "API 500")
        page = await client.get("/test-boom")
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert_page_policy(assert_common(page, "page 500"), "page 500")
    logged = [record for record in caplog.records if record.getMessage().startswith("unhandled error on")]
    assert [record.getMessage() for record in logged] == ["unhandled error on GET /api/v1/test-boom",
                                                          "unhandled error on GET /test-boom"]
    assert all(record.exc_info for record in logged)


HSTS = "max-age=31536000; includeSubDomains"


async def test_hsts_is_sent_over_https_only(app: FastAPI, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    async with app_client(app, base_url="https://test") as secure, app_client(app) as plain:
        for path in ("/", "/healthz", "/api/v1/workrooms", "/static/css/app.css", "/no-such-page"):
            assert (await secure.get(path)).headers.get("strict-transport-security") == HSTS, path
            assert "strict-transport-security" not in (await plain.get(path)).headers, path


async def test_hsts_is_never_sent_when_set_to_zero(db_url: str) -> None:
    app = build_app(make_settings(db_url, hsts_seconds=0))
    try:
        async with app_client(app, base_url="https://test") as secure:
            response = await secure.get("/healthz")
            assert response.status_code == 200 and "strict-transport-security" not in response.headers
            assert response.headers["x-content-type-options"] == "nosniff"
    finally:
        await app.state.engine.dispose()


async def test_hsts_follows_the_scheme_a_trusted_proxy_reports(db_url: str) -> None:
    app = build_app(make_settings(db_url, trusted_proxies="10.0.0.0/8", hsts_seconds=600))
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    try:
        async with app_client(app, client=("10.0.0.2", 4000)) as via_proxy, \
                app_client(app, client=("203.0.113.9", 4000)) as direct:
            assert (await via_proxy.get("/healthz", headers=forwarded)).headers.get(
                "strict-transport-security") == "max-age=600; includeSubDomains"
            assert "strict-transport-security" not in (await via_proxy.get("/healthz")).headers
            # Anyone else's X-Forwarded-Proto is ignored.
            assert "strict-transport-security" not in (await direct.get("/healthz", headers=forwarded)).headers
    finally:
        await app.state.engine.dispose()


# --- in real Chromium ----------------------------------------------------------------------------------

WATCH = """document.addEventListener('securitypolicyviolation', (e) =>
  window.minyiReportViolation(`${location.pathname}: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`
                              + ` (${e.sourceFile}:${e.lineNumber})`), true);"""


async def _watched_context(browser, problems: list[str]):  # type: ignore[no-untyped-def]
    """A phone-sized context that reports every CSP violation, console error or warning and page error."""
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                        locale="zh-CN", timezone_id="Asia/Shanghai")
    await context.expose_function("minyiReportViolation", lambda violation: problems.append(violation))
    await context.add_init_script(WATCH)

    def console(message) -> None:  # type: ignore[no-untyped-def]
        where = message.location.get("url", "")
        if message.type in ("error", "warning") and not where.endswith("/favicon.ico"):  # we have none: a 404
            problems.append(f"console {message.type}: {message.text} {where}")

    context.on("console", console)
    context.on("weberror", lambda error: problems.append(f"page error: {error.error}"))
    return context


async def _sign_in(page, base: str, who: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{base}/login")
    await page.fill("#username", who)
    await page.fill("#password", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")


async def test_pages_run_in_chromium_with_no_policy_violation(live_server: str, browser, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    await build_world(sessionmaker)
    async with httpx.AsyncClient(base_url=live_server) as http:
        created = [(await http.post("/api/v1/forms", json={"content": text, "workroom_code": code})).json()
                   for text, code in (("菜场门口积水。", "LS-01"), ("路灯不亮。", "LS-01"), ("桥头护栏松了。", "LS-02"))]
    problems: list[str] = []

    resident = await _watched_context(browser, problems)
    try:
        page = await resident.new_page()
        response = await page.goto(live_server + "/")
        assert response is not None and "script-src 'self'" in (await response.all_headers())["content-security-policy"]
        # htmx runs: a boosted link swaps the page in place (the same window, so the marker stays).
        await page.evaluate("window.minyiSameDocument = true")
        await page.click("header a[href='/track']")
        await page.wait_for_url(f"{live_server}/track")
        await page.locator("#f-no").wait_for()
        assert await page.evaluate("window.minyiSameDocument === true"), "the link was not boosted by htmx"
        assert await page.evaluate("document.querySelectorAll('style').length") == 0  # htmx added no <style>
        for path in ("/w/LS-01", "/submit"):
            await page.goto(live_server + path)
            await page.locator("textarea").first.wait_for()
        await page.goto(live_server + "/w/LS-01/poster")  # its A4 layout now comes from app.css
        assert await page.evaluate("getComputedStyle(document.querySelector('.org')).color") == "rgb(183, 28, 28)"

        # The representative's entry page: its scripts run and the service worker caches the shell
        # (under the policy sent with /sw.js, which governs what the worker may fetch).
        await _sign_in(page, live_server, "rep")
        await page.wait_for_url(f"{live_server}/rep")
        await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        cached = await page.evaluate("""async () => { for (const key of await caches.keys()) {
            if (await (await caches.open(key)).match('/static/js/offline.js')) return true; } return false; }""")
        assert cached, "the service worker could not fetch its shell"
        await screenshot(page, "csp-rep")
    finally:
        await resident.close()

    office = await _watched_context(browser, problems)
    try:
        page = await office.new_page()
        await _sign_in(page, live_server, "coordinator")
        await page.wait_for_url(f"{live_server}/office")
        # dashboard.js polls the counts (connect-src 'self') and the bars have their widths without inline styles.
        await page.wait_for_function("() => Number(document.getElementById('dashboard').dataset.polls || 0) >= 1",
                                     timeout=15000)
        widths = await page.evaluate(
            "[...document.querySelectorAll('.chart-bar .fill:not(.inner)')].map((bar) => bar.getBoundingClientRect().width)")
        track = await page.evaluate("document.querySelector('.chart-bar .track').getBoundingClientRect().width")
        assert widths and max(widths) == pytest.approx(track, abs=1) and min(widths) < max(widths), (widths, track)
        await screenshot(page, "csp-office-dashboard")
        await page.evaluate("window.minyiSameDocument = true")
        await page.click("a:has-text('去批办')")
        await page.wait_for_url("**/office/forms?status=submitted")
        await page.locator(f"li[data-tracking-no='{created[0]['tracking_no']}']").wait_for()
        assert await page.evaluate("window.minyiSameDocument === true"), "the link was not boosted by htmx"
        await page.goto(f"{live_server}/office/forms/{created[0]['id']}")
        await page.locator("form[data-action]").first.wait_for()
    finally:
        await office.close()

    assert problems == []
