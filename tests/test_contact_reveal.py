"""The audited reveal of a resident's name and phone (issue 15.6): staff outside the office read them masked
(services/disclosure.py); a handler or representative who must call back asks for them on one form, and the
audit log says who, when and which form. Real requests on both databases; the page through its real form.

Who may reveal, per caller, is also a row of tests/test_authorization_matrix.py (TABLE and the disclosure
table); this file proves what a reveal does and leaves behind.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from app.models import AuditEvent
from app.services import personal_data
from app.web.session import CSRF_FIELD
from tests.factories import World, assigned_form, build_world, submit
from tests.support.logins import sign_in
from tests.support.problems import assert_problem
from tests.support.webhooks import api_client

NAME, PHONE = "王秀英", "13600135000"


async def reveals(sessionmaker: Any) -> list[AuditEvent]:
    async with sessionmaker() as session:
        return list((await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "form.contact_revealed").order_by(AuditEvent.id))).all())


async def reveal(client: httpx.AsyncClient, form_id: int, headers: dict[str, str]) -> httpx.Response:
    return await client.post(f"/api/v1/forms/{form_id}/contact", headers=headers)


async def a_form(client: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    return await assigned_form(client, world, "A", workroom_code="LS-01", submitter_name=NAME,
                               submitter_phone=PHONE, **fields)


async def test_a_handler_reads_masked_then_reveals_whole_and_the_audit_log_says_who_when_which(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await a_form(client, world)
    read = (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("handler_a"))).json()
    assert (read["submitter_name"], read["submitter_phone"]) == ("王**", "136****5000")

    answer = await reveal(client, form["id"], world.auth("handler_a"))

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"form_id": form["id"], "tracking_no": form["tracking_no"],
                             "submitter_name": NAME, "submitter_phone": PHONE}
    assert answer.headers["cache-control"] == "no-store"
    (line,) = await reveals(sessionmaker)
    assert line.actor_user_id == world.user_ids["handler_a"] and line.actor_role == "handler"
    assert line.target == f"form:{form['id']}" and line.at is not None
    assert line.details == {"tracking_no": form["tracking_no"], "fields": ["submitter_name", "submitter_phone"]}
    # The admin reads it in the audit log like every other recorded action.
    log = (await client.get("/api/v1/audit", params={"action": "form.contact_revealed"},
                            headers=world.auth("admin"))).json()["items"]
    assert [(e["actor"], e["target"]) for e in log] == [("handler_a", f"form:{form['id']}")]
    # Revealing changes nothing else: the form still reads masked to the handler next time.
    again = (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("handler_a"))).json()
    assert again["submitter_name"] == "王**"


async def test_a_representative_reveals_a_form_of_his_workroom_and_each_reveal_is_its_own_line(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await a_form(client, world)
    for _ in range(2):
        answer = await reveal(client, form["id"], world.auth("rep"))
        assert answer.status_code == 200 and answer.json()["submitter_phone"] == PHONE
    assert [line.actor_user_id for line in await reveals(sessionmaker)] == [world.user_ids["rep"]] * 2


async def test_nobody_reveals_a_form_they_may_not_see_and_a_refusal_leaves_no_line(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await a_form(client, world)  # LS-01, unit A
    reader = await api_client(sessionmaker, scopes=("forms:read", "forms:write", "webhooks"))
    for who in ("handler_b", "rep2"):  # the other unit; the other workroom's representative
        assert_problem(await reveal(client, form["id"], world.auth(who)), 403, code="form_forbidden")
    # An API key reads forms masked and never reveals, whatever its scopes; nobody signed in gets 401.
    assert_problem(await reveal(client, form["id"], reader), 403)
    assert_problem(await reveal(client, form["id"], {}), 401)
    assert_problem(await reveal(client, 987654, world.auth("handler_a")), 404, code="form_not_found")
    for bad in ("0", "-1", "abc", "9" * 30):
        assert (await client.post(f"/api/v1/forms/{bad}/contact", headers=world.auth("admin"))).status_code == 422
    assert await reveals(sessionmaker) == []


async def test_a_form_without_a_name_or_phone_reveals_nothing_and_records_which_fields(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await submit(client, workroom_code="LS-01")
    answer = await reveal(client, form["id"], world.auth("rep"))
    assert answer.status_code == 200
    assert (answer.json()["submitter_name"], answer.json()["submitter_phone"]) == (None, None)
    (line,) = await reveals(sessionmaker)
    assert line.details == {"tracking_no": form["tracking_no"], "fields": []}


async def test_revealing_a_whole_list_one_by_one_is_stopped(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await a_form(client, world)
    answers = [await reveal(client, form["id"], world.auth("handler_a"))
               for _ in range(personal_data.REVEALS_PER_MINUTE + 1)]
    assert [a.status_code for a in answers[:-1]] == [200] * personal_data.REVEALS_PER_MINUTE
    assert_problem(answers[-1], 429)
    assert "retry-after" in answers[-1].headers
    assert len(await reveals(sessionmaker)) == personal_data.REVEALS_PER_MINUTE
    # Another user's reveals are counted apart.
    assert (await reveal(client, form["id"], world.auth("rep"))).status_code == 200


async def test_the_form_page_reveals_in_place_for_a_handler_and_not_for_the_office(
        client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await a_form(client, world)
    page = f"/office/forms/{form['id']}"
    csrf = await sign_in(client, "handler_a")

    masked = await client.get(page)
    assert 'data-contact="masked"' in masked.text and "王**" in masked.text and NAME not in masked.text
    assert f'action="{page}/contact"' in masked.text and "查看完整联系方式" in masked.text
    assert await reveals(sessionmaker) == []

    # htmx: only the fact is swapped.
    fragment = await client.post(f"{page}/contact", data={CSRF_FIELD: csrf},
                                 headers={"HX-Request": "true", "HX-Target": "contact"})
    assert fragment.status_code == 200, fragment.text
    assert fragment.text.lstrip().startswith('<dd id="contact" data-contact="revealed"')
    assert NAME in fragment.text and PHONE in fragment.text and "<html" not in fragment.text
    assert fragment.headers["cache-control"] == "no-store"
    # Without JavaScript: the whole page, the contact shown.
    whole = await client.post(f"{page}/contact", data={CSRF_FIELD: csrf})
    assert whole.status_code == 200 and "<html" in whole.text and 'data-contact="revealed"' in whole.text
    assert NAME in whole.text
    assert len(await reveals(sessionmaker)) == 2

    # A post without the page's token is refused and reveals nothing.
    forged = await client.post(f"{page}/contact", data={})
    assert forged.status_code == 403 and NAME not in forged.text
    assert len(await reveals(sessionmaker)) == 2

    # The office reads the person whole already: no button.
    await sign_in(client, "coordinator", fresh=True)
    office = await client.get(page)
    assert 'data-contact="whole"' in office.text and NAME in office.text and "查看完整联系方式" not in office.text


async def test_the_page_refuses_a_handler_of_another_unit(client: httpx.AsyncClient, sessionmaker: Any) -> None:
    world = await build_world(sessionmaker)
    form = await a_form(client, world)
    csrf = await sign_in(client, "handler_b")
    refused = await client.post(f"/office/forms/{form['id']}/contact", data={CSRF_FIELD: csrf})
    assert refused.status_code == 403 and NAME not in refused.text
    assert await reveals(sessionmaker) == []
