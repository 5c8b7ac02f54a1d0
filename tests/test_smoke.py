from __future__ import annotations

from tests.factories import build_world, submit


async def test_submit_assign_reply_close_counts(client, sessionmaker):
    world = await build_world(sessionmaker)
    form = await submit(client, workroom_code="LS-01")
    assert form["status"] == "submitted"
    r = await client.post(f"/api/v1/forms/{form['id']}/assign", json={"unit_id": world.units["A"].id}, headers=world.auth("coordinator"))
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))
    assert r.json()["assigned"] == 1
