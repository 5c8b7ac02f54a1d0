"""Post, redirect, get (issue 17.4; app/http/prg.py): a browser's form POST that fails is answered with a
redirect to the page the form was on, which shows the messages and every typed value and reloads cleanly;
an action's address opened with GET goes to the page above it, never "Method Not Allowed"."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, text, update

from app.db import transaction
from app.models import OpinionForm, PageState, utcnow
from tests.factories import build_world, submit
from tests.support.logins import sign_in
from tests.test_web_public import CONTENT, csrf_token

NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "same-origin"}


async def forms(sessionmaker) -> int:  # type: ignore[no-untyped-def]
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


async def test_a_failed_submission_redirects_to_its_page_which_keeps_what_was_typed(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    token = await csrf_token(client, "/w/LS-01")
    posted = await client.post(
        "/submit", data={"csrf_token": token, "content": CONTENT, "workroom_code": "LS-01",
                         "submitter_name": "王阿姨", "submitter_phone": "12ab"},
        headers={**NAVIGATE, "Referer": "http://testserver/w/LS-01"},
    )
    assert posted.status_code == 303
    location = posted.headers["location"]
    assert location.startswith("/w/LS-01?shown=") and posted.headers["cache-control"] == "no-store"
    for _ in range(2):  # and again: a reload shows the same page, it never posts
        shown = await client.get(location)
        assert shown.status_code == 422 and shown.headers["cache-control"] == "no-store"
        assert "请填写正确的电话号码" in shown.text and CONTENT in shown.text and 'value="王阿姨"' in shown.text
        assert 'aria-invalid="true" aria-describedby="e-submitter_phone"' in shown.text
        assert "镇区党代表工作室" in shown.text  # the workroom it was sent from
    assert await forms(sessionmaker) == 0

    # Another browser (another CSRF cookie) with the same address sees the page as it is, nothing typed.
    client.cookies.clear()
    await csrf_token(client, "/")
    other = await client.get(location)
    assert other.status_code == 200 and CONTENT not in other.text and "王阿姨" not in other.text

    # The page is kept for minutes, encrypted: the database holds no typed text.
    async with sessionmaker() as session:
        raw = (await session.execute(text("SELECT body FROM page_state"))).scalar_one()
    assert "王阿姨" not in raw and raw.startswith("pd1:")


async def test_a_kept_page_expires_and_the_address_shows_the_page_itself(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    token = await csrf_token(client, "/w/LS-01")
    posted = await client.post("/submit", data={"csrf_token": token, "content": "", "workroom_code": "LS-01"},
                               headers={**NAVIGATE, "Referer": "http://testserver/w/LS-01?x=1"})
    assert posted.status_code == 303 and posted.headers["location"].startswith("/w/LS-01?x=1&shown=")
    async with transaction(sessionmaker) as session:
        await session.execute(update(PageState).values(expires_at=utcnow() - timedelta(seconds=1)))
    page = await client.get(posted.headers["location"])
    assert page.status_code == 200 and "请填写您的意见或建议" not in page.text


async def test_scripts_and_clients_still_read_the_failure_from_the_answer(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    token = await csrf_token(client, "/w/LS-01")
    plain = await client.post("/submit", data={"csrf_token": token, "content": "", "workroom_code": "LS-01"})
    assert plain.status_code == 422  # no browser navigation: the page is the answer, as before
    fetched = await client.post("/submit", data={"csrf_token": token, "content": "", "workroom_code": "LS-01"},
                                headers={"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "HX-Request": "true"})
    assert fetched.status_code == 422
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PageState)) == 0


async def test_a_successful_post_redirects_as_before_and_keeps_nothing(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    token = await csrf_token(client, "/w/LS-01")
    posted = await client.post("/submit", data={"csrf_token": token, "content": CONTENT, "workroom_code": "LS-01"},
                               headers={**NAVIGATE, "Referer": "http://testserver/w/LS-01"})
    assert posted.status_code == 303 and posted.headers["location"] == "/receipt"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PageState)) == 0


async def test_an_htmx_boosted_post_that_fails_is_redirected_too(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    token = await csrf_token(client, "/w/LS-01")
    posted = await client.post(
        "/submit", data={"content": "", "workroom_code": "LS-01"},
        headers={"HX-Request": "true", "HX-Boosted": "true", "X-CSRF-Token": token,
                 "Referer": "http://testserver/w/LS-01"},
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith("/w/LS-01?shown=")


async def test_an_actions_address_opened_with_get_goes_to_the_page_above(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    form = await submit(client)
    await sign_in(client, "coordinator")
    for path, above in ((f"/office/forms/{form['id']}/assign", f"/office/forms/{form['id']}"),
                        ("/rep/forms", "/rep"), ("/track/sms-stop", "/track"), ("/logout", "/")):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"] == above, (path, response.text[:200])
    assert world


async def test_a_referer_from_elsewhere_is_not_followed(client, sessionmaker) -> None:
    await build_world(sessionmaker)
    token = await csrf_token(client, "/w/LS-01")
    posted = await client.post("/submit", data={"csrf_token": token, "content": "", "workroom_code": "LS-01"},
                               headers={**NAVIGATE, "Referer": "https://evil.example/w/LS-01"})
    assert posted.status_code == 303 and posted.headers["location"].startswith("/submit?shown=")


async def test_a_page_answering_a_post_is_shown_at_an_address_that_reloads_without_posting(client, sessionmaker):
    """Tracking's result and a revealed phone number answer their POST with a page: a browser gets it at a GET
    address, so a reload neither asks to post again nor reveals (and audits) the number a second time."""
    from app.models import AuditEvent

    await build_world(sessionmaker)
    form = await submit(client, submitter_phone="13912345678", submitter_name="李四")
    token = await csrf_token(client, "/track")
    tracked = await client.post("/track", data={"csrf_token": token, "no": form["tracking_no"],
                                                "code": form["verification_code"]},
                                headers={**NAVIGATE, "Referer": "http://testserver/track"})
    assert tracked.status_code == 303 and tracked.headers["location"].startswith("/track?shown=")
    for _ in range(2):
        shown = await client.get(tracked.headers["location"])
        assert shown.status_code == 200 and form["tracking_no"] in shown.text and "track-result" in shown.text

    token = await sign_in(client, "coordinator")
    revealed = await client.post(f"/office/forms/{form['id']}/contact", data={"csrf_token": token},
                                 headers={**NAVIGATE, "Referer": f"http://testserver/office/forms/{form['id']}"})
    assert revealed.status_code == 303
    for _ in range(2):
        page = await client.get(revealed.headers["location"])
        assert "13912345678" in page.text and page.headers["cache-control"] == "no-store"
    async with sessionmaker() as session:
        audits = await session.scalar(select(func.count()).select_from(AuditEvent)
                                      .where(AuditEvent.action == "form.contact_revealed"))
    assert audits == 1
