"""Group commit of submissions (services/intake.py): concurrent submissions share transactions, yet each
one is answered, numbered and counted exactly as if written alone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from app.db import transaction
from app.models import FormEvent, OpinionForm, Role, User
from app.services import stats as stats_service
from app.services.auth import ANONYMOUS, Principal
from app.services.forms import Submission, check_verification_code
from tests.factories import build_world


async def _submit(client: httpx.AsyncClient, n: int, **fields: Any) -> httpx.Response:
    body = {"content": f"第{n}条：菜场门口积水。", "category": "environment", **fields}
    return await client.post("/api/v1/forms", json=body)


async def test_concurrent_submissions_share_transactions(client, app, sessionmaker, settings) -> None:
    world = await build_world(sessionmaker)
    queue = app.state.submissions
    before = queue.batches
    responses = await asyncio.gather(*[_submit(client, n, workroom_code="LS-01") for n in range(60)])
    assert [r.status_code for r in responses] == [201] * 60, responses[0].text
    created = [r.json() for r in responses]
    # Fewer transactions than submissions: they were written in batches.
    assert queue.batches - before < 60
    numbers = sorted(int(c["tracking_no"].rsplit("-", 1)[1]) for c in created)
    assert numbers == list(range(numbers[0], numbers[0] + 60)), "tracking numbers repeat or skip"
    async with transaction(sessionmaker) as session:
        for c in created:
            form = await session.get(OpinionForm, c["id"])
            assert form is not None and form.tracking_no == c["tracking_no"] and form.content == c["content"]
            assert form.workroom_id == world.workrooms["LS-01"].id
            assert check_verification_code(settings.secret_key, form, c["verification_code"])
        events = await session.scalar(select(func.count()).select_from(FormEvent).where(FormEvent.type == "submitted"))
        assert events == 60
        assert await stats_service.verify(session) == []
    summary = await client.get("/api/v1/stats/summary", headers=world.auth("coordinator"))
    assert summary.json()["collected"] == 60
    for c in created:
        track = await client.get(f"/api/v1/track/{c['tracking_no']}", params={"code": c["verification_code"]})
        assert track.status_code == 200, track.text


async def test_a_refused_submission_is_refused_alone(client, app, sessionmaker) -> None:
    await build_world(sessionmaker)
    good = [_submit(client, n) for n in range(10)]
    bad = [_submit(client, 99, category="no_such_category"), _submit(client, 98, workroom_code="LS-77")]
    responses = await asyncio.gather(*good[:5], *bad, *good[5:])
    codes = [r.status_code for r in responses]
    assert codes == [201] * 5 + [422, 422] + [201] * 5
    assert responses[5].json()["code"] == "unknown_category"
    assert responses[6].json()["code"] == "unknown_workroom"
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 10


async def test_a_failing_batch_is_retried_one_by_one(app, sessionmaker, caplog) -> None:
    """A row the database itself rejects (here: entered by a user who does not exist, a foreign-key
    violation on both engines) fails only its own submission; the rest of its batch is written."""
    await build_world(sessionmaker)
    queue = app.state.submissions
    ghost = Principal(user=User(id=987654, username="ghost", role=Role.coordinator, active=True))
    who = [ANONYMOUS] * 4 + [ghost] + [ANONYMOUS] * 4
    results = await asyncio.gather(
        *[queue.submit(p, Submission(content=f"第{i}条意见")) for i, p in enumerate(who)], return_exceptions=True
    )
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [4], results
    assert "a batch of 9 submissions failed" in caplog.text  # they did share a batch
    async with transaction(sessionmaker) as session:
        contents = set(await session.scalars(select(OpinionForm.content)))
        assert contents == {f"第{i}条意见" for i in range(9) if i != 4}
        assert await stats_service.verify(session) == []
    # The queue is still serving.
    accepted = await queue.submit(ANONYMOUS, Submission(content="之后的意见"))
    assert accepted.form.id is not None


async def test_drain_waits_for_queued_writes(app, sessionmaker) -> None:
    await build_world(sessionmaker)
    queue = app.state.submissions
    tasks = [asyncio.create_task(queue.submit(ANONYMOUS, Submission(content=f"意见{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # the requests are queued, not yet written
    await queue.drain()
    assert all(t.done() and not t.exception() for t in tasks)
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 20
