"""补发查询码 (issue 16, point 2): a resident who lost their verification code gets a new one from the office
or from the representative who entered the form; the old code stops working at once, the number's tracking
lock is lifted, and an internal event records who did it. Real requests on both databases.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.config import Settings
from app.models import FormEvent
from app.web.session import CSRF_FIELD
from tests.conftest import make_settings
from tests.factories import World, build_world, submit
from tests.support.logins import sign_in
from tests.support.problems import assert_problem
from tests.support.webhooks import api_client

LOCK_AFTER = 2


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url, track_failures_before_lock=LOCK_AFTER)


async def track(client: httpx.AsyncClient, tracking_no: str, code: str) -> httpx.Response:
    return await client.get(f"/api/v1/track/{tracking_no}", params={"code": code})


async def reissue(client: httpx.AsyncClient, form_id: int, headers: dict[str, str]) -> httpx.Response:
    return await client.post(f"/api/v1/forms/{form_id}/verification-code", headers=headers)


async def entered_by_rep(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    return await submit(client, world.auth("rep"), workroom_code="LS-01")


async def test_the_office_reissues_the_old_code_stops_and_an_internal_event_says_who(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await submit(client, workroom_code="LS-01")
    old = form["verification_code"]

    answer = await reissue(client, form["id"], world.auth("coordinator"))

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    new = answer.json()["verification_code"]
    assert answer.json() == {"form_id": form["id"], "tracking_no": form["tracking_no"], "verification_code": new}
    assert len(new) == 6 and new.isdigit()
    assert (await track(client, form["tracking_no"], new)).status_code == 200
    if new != old:  # one chance in a million that the new code is the old one
        assert_problem(await track(client, form["tracking_no"], old), 404)
    async with sessionmaker() as session:
        (event,) = (await session.scalars(select(FormEvent).where(FormEvent.form_id == form["id"],
                                                                   FormEvent.type == "code_reissued"))).all()
    assert event.internal and event.actor_user_id == world.user_ids["coordinator"] and event.at is not None
    # The resident's timeline and integrators do not hear of it; staff read it in the form's timeline.
    public = (await track(client, form["tracking_no"], new)).json()
    assert [step["type"] for step in public["timeline"]] == ["submitted"]
    detail = (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("coordinator"))).json()
    assert [(e["type"], e["type_label"], e["actor"]) for e in detail["events"]][-1] == (
        "code_reissued", "补发查询码", "coordinator")
    changes = (await client.get("/api/v1/changes", headers=world.auth("coordinator"))).json()["items"]
    assert all(c["type"] != "form.code_reissued" for c in changes)


async def test_the_representative_who_entered_it_reissues_and_nobody_else_outside_the_office(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await entered_by_rep(client, world)
    assert (await reissue(client, form["id"], world.auth("rep"))).status_code == 200
    assert (await reissue(client, form["id"], world.auth("admin"))).status_code == 200
    assigned = await client.post(f"/api/v1/forms/{form['id']}/assign", json={"unit_id": world.units["A"].id},
                                 headers=world.auth("coordinator"))
    assert assigned.status_code == 200
    # The unit holding it sees it but may not; another workroom's representative may not even see it.
    assert_problem(await reissue(client, form["id"], world.auth("handler_a")), 403, code="forbidden")
    assert_problem(await reissue(client, form["id"], world.auth("rep2")), 403, code="form_forbidden")
    key = await api_client(sessionmaker, scopes=("forms:read", "forms:write"))
    assert_problem(await reissue(client, form["id"], key), 403)
    assert_problem(await reissue(client, form["id"], {}), 401)
    assert_problem(await reissue(client, 987654, world.auth("admin")), 404, code="form_not_found")
    async with sessionmaker() as session:
        events = (await session.scalars(select(FormEvent.actor_label).where(
            FormEvent.form_id == form["id"], FormEvent.type == "code_reissued").order_by(FormEvent.id))).all()
    assert list(events) == ["rep", "admin"]  # the refusals left nothing


async def test_a_reissue_lifts_the_lock_that_guessers_put_on_the_number(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await submit(client, workroom_code="LS-01")
    wrong = "000000" if form["verification_code"] != "000000" else "111111"
    for _ in range(LOCK_AFTER):
        assert_problem(await track(client, form["tracking_no"], wrong), 404)
    assert_problem(await track(client, form["tracking_no"], form["verification_code"]), 429, code="tracking_locked")
    new = (await reissue(client, form["id"], world.auth("coordinator"))).json()["verification_code"]
    assert (await track(client, form["tracking_no"], new)).status_code == 200


async def test_the_representatives_page_reissues_into_the_receipt(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await entered_by_rep(client, world)
    csrf = await sign_in(client, "rep")
    page = await client.get("/rep")
    assert f'data-reissue="{form["tracking_no"]}"' in page.text
    done = await client.post(f"/rep/forms/{form['id']}/verification-code", data={CSRF_FIELD: csrf})
    assert done.status_code == 303 and done.headers["location"] == "/rep"
    receipt = await client.get("/rep")
    new = receipt.text.split("查询码 <b>")[1].split("<")[0]
    assert form["tracking_no"] in receipt.text and len(new) == 6 and "已补发查询码" in receipt.text
    assert (await track(client, form["tracking_no"], new)).status_code == 200
    assert "查询码 <b>" not in (await client.get("/rep")).text  # shown once
    # A form he did not enter: refused, no code anywhere.
    other = await submit(client, workroom_code="LS-01")
    refused = await client.post(f"/rep/forms/{other['id']}/verification-code", data={CSRF_FIELD: csrf})
    assert refused.status_code == 403
    assert (await client.post(f"/rep/forms/{form['id']}/verification-code", data={})).status_code == 403  # CSRF


async def test_the_office_page_shows_the_new_code_once_and_units_have_no_button(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await submit(client, workroom_code="LS-01")
    await client.post(f"/api/v1/forms/{form['id']}/assign", json={"unit_id": world.units["A"].id},
                      headers=world.auth("coordinator"))
    csrf = await sign_in(client, "coordinator")
    page = f"/office/forms/{form['id']}"
    assert 'id="reissue"' in (await client.get(page)).text
    posted = await client.post(f"{page}/verification-code", data={CSRF_FIELD: csrf})
    assert posted.status_code == 303 and posted.headers["location"] == page  # a reload never reissues
    shown = await client.get(page)
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    new = shown.text.split("data-new-code>")[1].split("<")[0]
    assert (await track(client, form["tracking_no"], new)).status_code == 200
    assert "data-new-code" not in (await client.get(page)).text
    csrf = await sign_in(client, "handler_a", fresh=True)
    assert 'id="reissue"' not in (await client.get(page)).text
    assert (await client.post(f"{page}/verification-code", data={CSRF_FIELD: csrf})).status_code == 403
