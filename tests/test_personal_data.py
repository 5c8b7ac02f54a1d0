"""Personal data: encrypted at rest, found by a keyed hash, rotated to a new key, erased by retention and
on a resident's request (admins only, recorded)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from app import crypto
from app.config import Settings
from app.db import transaction
from tests.support.apps import build_app
from app.models import AuditEvent, OpinionForm, Representative, Resident, ResidentToken, utcnow
from app.services import personal_data as personal_data_service
from tests.conftest import make_settings
from tests.factories import act, build_world, submit

ROOT = Path(__file__).resolve().parent.parent
NAME, PHONE = "王阿姨", "13912340101"


async def _raw(sessionmaker, sql: str, **params) -> list[tuple]:
    async with sessionmaker() as session:
        return list((await session.execute(text(sql), params)).all())


async def test_names_and_phones_are_stored_encrypted_and_read_back_in_clear(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, submitter_name=NAME, submitter_phone=PHONE)
    [(name, phone, phone_hash)] = await _raw(
        sessionmaker, "SELECT submitter_name, submitter_phone, submitter_phone_hash FROM opinion_form WHERE id = :id",
        id=form["id"])
    assert name.startswith(crypto.PREFIX) and phone.startswith(crypto.PREFIX)
    assert NAME not in name and PHONE not in phone and PHONE not in phone_hash and len(phone_hash) == 64
    read = (await client.get(f"/api/v1/forms/{form['id']}", headers=world.auth("coordinator"))).json()
    assert (read["submitter_name"], read["submitter_phone"]) == (NAME, PHONE)
    # Representatives' phone numbers too.
    [(rep_phone,)] = await _raw(sessionmaker, "SELECT phone FROM representative WHERE name = '张代表'")
    assert rep_phone.startswith(crypto.PREFIX) and "13812345678" not in rep_phone
    async with sessionmaker() as session:
        rep = await session.scalar(select(Representative).where(Representative.name == "张代表"))
        assert rep.phone == "13812345678"


async def test_the_same_value_encrypts_differently_each_time(client, sessionmaker):
    one, two = await submit(client, submitter_phone=PHONE), await submit(client, submitter_phone=PHONE)
    rows = await _raw(sessionmaker, "SELECT submitter_phone, submitter_phone_hash FROM opinion_form WHERE id IN (:a, :b)",
                      a=one["id"], b=two["id"])
    assert rows[0][0] != rows[1][0]  # no equal ciphertexts to correlate …
    assert rows[0][1] == rows[1][1]  # … the keyed hash is what finds them


async def test_staff_who_see_personal_data_find_forms_by_phone_whatever_its_spelling(client, sessionmaker):
    world = await build_world(sessionmaker)
    mine = await submit(client, submitter_phone=PHONE)
    await submit(client, submitter_phone="13900000000")
    for spelling in (PHONE, "139-1234-0101", "+86 139 1234 0101"):
        found = await client.get("/api/v1/forms", params={"phone": spelling}, headers=world.auth("coordinator"))
        assert found.status_code == 200, found.text
        assert [f["id"] for f in found.json()["items"]] == [mine["id"]]
    refused = await client.get("/api/v1/forms", params={"phone": PHONE}, headers=world.auth("rep"))
    assert refused.status_code == 403 and refused.json()["code"] == "personal_data_forbidden"


async def test_rotation_re_encrypts_everything_under_the_new_key_and_encrypts_old_plain_text(db_url):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    first = build_app(make_settings(db_url, personal_data_keys=old_key))
    try:
        async with __import__("httpx").AsyncClient(transport=__import__("httpx").ASGITransport(app=first),
                                                   base_url="http://testserver") as client:
            encrypted = await submit(client, submitter_name=NAME, submitter_phone=PHONE)
            legacy = await submit(client, submitter_name="旧数据", submitter_phone="13700001111")
        # A row from before encryption: plain text, no hash.
        async with transaction(first.state.sessionmaker) as session:
            await session.execute(text("UPDATE opinion_form SET submitter_name = '旧数据', submitter_phone = '13700001111', "
                                       "submitter_phone_hash = NULL WHERE id = :id"), {"id": legacy["id"]})
    finally:
        await first.state.engine.dispose()

    second = build_app(make_settings(db_url, personal_data_keys=f"{new_key},{old_key}"))
    try:
        counts = await personal_data_service.rotate_keys(second.state.sessionmaker)
        assert counts["opinion_form.submitter_name"] == 2 and counts["opinion_form.submitter_phone"] == 2
        assert counts["representative.phone"] == 0  # none in this database
        again = await personal_data_service.rotate_keys(second.state.sessionmaker)
        assert set(again.values()) == {0}  # nothing left to rewrite
        rows = await _raw(second.state.sessionmaker,
                          "SELECT id, submitter_name, submitter_phone, submitter_phone_hash FROM opinion_form ORDER BY id")
    finally:
        await second.state.engine.dispose()
    only_new = crypto.KeyRing()
    only_new.configure(Settings(_env_file=None, secret_key="test-secret-key", personal_data_keys=new_key))  # type: ignore[call-arg]
    clear = {row_id: (only_new.decrypt(name), only_new.decrypt(phone), phone_hash) for row_id, name, phone, phone_hash in rows}
    assert clear[encrypted["id"]][:2] == (NAME, PHONE)
    assert clear[legacy["id"]][:2] == ("旧数据", "13700001111")
    assert clear[legacy["id"]][2] == only_new.blind_index("phone", "13700001111")
    with pytest.raises(RuntimeError, match="not configured"):
        only_old = crypto.KeyRing()
        only_old.configure(Settings(_env_file=None, secret_key="other", personal_data_keys=old_key))  # type: ignore[call-arg]
        only_old._all = [Fernet(old_key)]
        only_old.decrypt(rows[0][1])


def _cli(db_url: str, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env.update({"MINYI_DATABASE_URL": db_url, "MINYI_SECRET_KEY": "test-secret-key", **env_extra})
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


async def test_rotate_keys_on_the_command_line(client, sessionmaker, db_url):
    await submit(client, submitter_name=NAME, submitter_phone=PHONE)
    new_key = Fernet.generate_key().decode()
    done = _cli(db_url, "rotate-keys", MINYI_PERSONAL_DATA_KEYS=f"{new_key},{crypto.derived_key('test-secret-key')}")
    assert done.returncode == 0, done.stderr
    assert "opinion_form.submitter_name 1" in done.stdout
    [(name,)] = await _raw(sessionmaker, "SELECT submitter_name FROM opinion_form")
    assert Fernet(new_key).decrypt(name[len(crypto.PREFIX):].encode()).decode() == NAME
    [(action,)] = await _raw(sessionmaker, "SELECT action FROM audit_event")
    assert action == "personal_data.rotate_keys"


async def _close(client, world, form_id: int) -> None:
    for action, body in (("assign", {"unit_id": world.units["A"].id}), ("reply", {"reply": "已处理。"}),
                         ("close", {})):
        response = await act(client, world, "coordinator", form_id, action, body)
        assert response.status_code == 200, (action, response.text)


async def test_retention_erases_names_and_phones_of_long_closed_forms_only(client, sessionmaker, db_url):
    world = await build_world(sessionmaker)
    old, recent, still_open = [await submit(client, submitter_name=NAME, submitter_phone=PHONE) for _ in range(3)]
    for form in (old, recent):
        await _close(client, world, form["id"])
    async with transaction(sessionmaker) as session:
        aged = await session.get(OpinionForm, old["id"])
        aged.closed_at = utcnow() - timedelta(days=800)
    summary_before = (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).json()

    done = _cli(db_url, "retention", "--dry-run")
    assert done.returncode == 0 and "would erase the personal data of 1 form" in done.stdout, done.stderr
    done = _cli(db_url, "retention")
    assert done.returncode == 0 and "erased the personal data of 1 form" in done.stdout, done.stderr

    async with sessionmaker() as session:
        forms = {f.id: f for f in await session.scalars(select(OpinionForm))}
        events = list(await session.scalars(select(AuditEvent)))
    assert (forms[old["id"]].submitter_name, forms[old["id"]].submitter_phone) == (None, None)
    assert forms[old["id"]].submitter_phone_hash is None and forms[old["id"]].personal_data_erased_at is not None
    assert forms[old["id"]].content == old["content"] and forms[old["id"]].reply == "已处理。"
    for kept in (recent, still_open):
        assert (forms[kept["id"]].submitter_name, forms[kept["id"]].submitter_phone) == (NAME, PHONE)
    assert [(e.action, e.details["erased_forms"]) for e in events] == [("personal_data.retention", 1)]
    summary_after = (await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))).json()
    summary_after.pop("as_of"), summary_before.pop("as_of")
    assert summary_after == summary_before  # counts stay


async def test_retention_zero_keeps_everything(sessionmaker):
    async with transaction(sessionmaker) as session:
        assert await personal_data_service.retention(session, days=0) == 0


async def test_an_admin_exports_and_erases_one_persons_data_by_phone(client, sessionmaker):
    world = await build_world(sessionmaker)
    mine = [await submit(client, submitter_name=NAME, submitter_phone=PHONE) for _ in range(2)]
    other = await submit(client, submitter_name="李先生", submitter_phone="13900000000")
    assert (await client.get("/api/v1/personal-data", params={"phone": PHONE}, headers=world.auth("coordinator"))).status_code == 403
    exported = await client.get("/api/v1/personal-data", params={"phone": "+86 139 1234 0101"}, headers=world.auth("admin"))
    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert [f["tracking_no"] for f in body["forms"]] == [m["tracking_no"] for m in mine]
    assert {(f["submitter_name"], f["submitter_phone"]) for f in body["forms"]} == {(NAME, PHONE)}
    assert body["resident"] is None

    erased = await client.post("/api/v1/personal-data/erase", json={"phone": PHONE}, headers=world.auth("admin"))
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased_forms"] == 2
    async with sessionmaker() as session:
        forms = {f.id: f for f in await session.scalars(select(OpinionForm))}
        audit = [(e.action, e.target) for e in await session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    for m in mine:
        assert forms[m["id"]].submitter_name is None and forms[m["id"]].content == m["content"]
    assert forms[other["id"]].submitter_name == "李先生"
    assert audit == [("personal_data.export", "phone:139****0101"), ("personal_data.erase", "phone:139****0101")]
    # Nothing left to find by that number.
    again = (await client.get("/api/v1/personal-data", params={"phone": PHONE}, headers=world.auth("admin"))).json()
    assert again["forms"] == []


async def test_erasing_a_wechat_resident_unlinks_their_account(client, sessionmaker):
    world = await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        resident = Resident(openid="o-wx-123", unionid="u-1")
        session.add(resident)
        await session.flush()
        session.add(ResidentToken(token_hash="x" * 64, resident_id=resident.id, created_at=utcnow(),
                                  expires_at=utcnow() + timedelta(days=1)))
        resident_id = resident.id
    form = await submit(client, submitter_name=NAME, submitter_phone=PHONE)
    async with transaction(sessionmaker) as session:
        (await session.get(OpinionForm, form["id"])).resident_id = resident_id
    exported = (await client.get("/api/v1/personal-data", params={"resident_id": resident_id},
                                 headers=world.auth("admin"))).json()
    assert exported["resident"]["openid"] == "o-wx-123" and len(exported["forms"]) == 1
    erased = await client.post("/api/v1/personal-data/erase", json={"resident_id": resident_id}, headers=world.auth("admin"))
    assert erased.json()["resident_erased"] is True and erased.json()["erased_forms"] == 1
    async with sessionmaker() as session:
        resident = await session.get(Resident, resident_id)
        tokens = list(await session.scalars(select(ResidentToken)))
    assert (resident.openid, resident.unionid, resident.active, tokens) == (f"erased:{resident_id}", None, False, [])


async def test_a_request_names_exactly_one_person(client, sessionmaker):
    world = await build_world(sessionmaker)
    for params in ({}, {"phone": PHONE, "resident_id": 1}):
        response = await client.get("/api/v1/personal-data", params=params, headers=world.auth("admin"))
        assert response.status_code == 422 and response.json()["code"] == "subject_required"
    missing = await client.get("/api/v1/personal-data", params={"resident_id": 999}, headers=world.auth("admin"))
    assert missing.status_code == 404
