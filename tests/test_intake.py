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
    outcome = await queue.submit(ANONYMOUS, Submission(content="之后的意见"))
    assert outcome.status_code == 201 and outcome.accepted is not None and outcome.accepted.form.id is not None


async def test_drain_waits_for_queued_writes(app, sessionmaker) -> None:
    await build_world(sessionmaker)
    queue = app.state.submissions
    tasks = [asyncio.create_task(queue.submit(ANONYMOUS, Submission(content=f"意见{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # the requests are queued, not yet written
    await queue.drain()
    assert all(t.done() and not t.exception() for t in tasks)
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(OpinionForm)) == 20


# --- submissions with an Idempotency-Key take the same line ------------------------------------------


async def _keyed(client: httpx.AsyncClient, auth: dict[str, str], key: str, n: int, **fields: Any) -> httpx.Response:
    body = {"content": f"第{n}条：菜场门口积水。", "category": "environment", **fields}
    return await client.post("/api/v1/forms", json=body, headers={**auth, "Idempotency-Key": key})


async def _forms(sessionmaker) -> int:  # type: ignore[no-untyped-def]
    async with transaction(sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)


async def test_keyed_submissions_share_transactions_and_replay(client, app, sessionmaker) -> None:
    """The offline outbox's submissions (each with its key) are written in batches like the rest, and
    their retries, sent together, replay the first answers and write nothing."""
    world = await build_world(sessionmaker)
    auth = world.auth("rep")
    queue = app.state.submissions
    before = queue.batches
    first = await asyncio.gather(*[_keyed(client, auth, f"outbox-{n}", n) for n in range(40)])
    assert [r.status_code for r in first] == [201] * 40, first[0].text
    assert queue.batches - before < 40  # batched, keys and all
    assert all("idempotent-replayed" not in r.headers for r in first)
    again = await asyncio.gather(*[_keyed(client, auth, f"outbox-{n}", n) for n in range(40)])
    assert [r.status_code for r in again] == [201] * 40
    assert all(r.headers.get("idempotent-replayed") == "true" for r in again)
    assert [r.json() for r in again] == [r.json() for r in first]  # the same number and code each
    assert await _forms(sessionmaker) == 40
    async with transaction(sessionmaker) as session:
        assert await stats_service.verify(session) == []


async def test_the_same_key_twice_in_one_batch_is_written_once(client, app, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    auth = world.auth("rep")
    # Sent together, they share a batch (with others around them).
    responses = await asyncio.gather(
        *[_keyed(client, auth, f"other-{n}", n) for n in range(5)],
        _keyed(client, auth, "twice", 99), _keyed(client, auth, "twice", 99),
        _keyed(client, auth, "reused", 98), _keyed(client, auth, "reused", 97),  # same key, other content
    )
    twice, again, reused, other = responses[5:]
    assert twice.status_code == again.status_code == 201
    assert twice.json() == again.json()
    assert {twice.headers.get("idempotent-replayed"), again.headers.get("idempotent-replayed")} == {None, "true"}
    assert reused.status_code == 201 and other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert await _forms(sessionmaker) == 5 + 1 + 1


async def test_a_refused_keyed_submission_keeps_nothing_of_its_key(client, app, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    auth = world.auth("rep")
    responses = await asyncio.gather(
        *[_keyed(client, auth, f"fine-{n}", n) for n in range(4)], _keyed(client, auth, "fix-me", 9, workroom_code="LS-77"),
    )
    assert [r.status_code for r in responses] == [201] * 4 + [422]
    corrected = await _keyed(client, auth, "fix-me", 9, workroom_code="LS-01")
    assert corrected.status_code == 201 and "idempotent-replayed" not in corrected.headers
    assert await _forms(sessionmaker) == 5


async def test_two_processes_sending_the_same_key_at_once_write_one_form(db_url, sessionmaker) -> None:
    """Two app processes on one database (each its own engine and queue): the second's claim waits for
    the first's transaction, then replays its answer."""
    from tests.conftest import make_settings
    from tests.support.apps import build_app

    world = await build_world(sessionmaker)
    apps = [build_app(make_settings(db_url)) for _ in range(2)]
    try:
        clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://testserver") for a in apps]
        for round_ in range(5):
            responses = await asyncio.gather(*[
                _keyed(http, world.auth("rep"), f"both-{round_}", round_) for http in clients for _ in range(2)
            ])
            assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
            assert len({r.json()["tracking_no"] for r in responses}) == 1
        for http in clients:
            await http.aclose()
    finally:
        for a in apps:
            await a.state.engine.dispose()
    assert await _forms(sessionmaker) == 5


async def test_expired_keys_are_pruned_apart_and_an_expired_key_is_free_again(client, app, sessionmaker) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from app.models import IdempotencyRecord, utcnow
    from app.services import idempotency as idempotency_service

    world = await build_world(sessionmaker)
    auth = world.auth("rep")
    assert (await _keyed(client, auth, "old", 1)).status_code == 201
    assert (await _keyed(client, auth, "older", 2)).status_code == 201
    async with transaction(sessionmaker) as session:
        await session.execute(update(IdempotencyRecord).values(created_at=utcnow() - timedelta(days=3)))
    # An expired key is a new request (its old answer is not replayed), even before any prune.
    fresh = await _keyed(client, auth, "old", 1)
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    assert await _forms(sessionmaker) == 3
    async with transaction(sessionmaker) as session:
        assert await idempotency_service.prune(session, ttl_seconds=app.state.settings.idempotency_ttl_seconds) == 1
        keys = set(await session.scalars(select(IdempotencyRecord.key)))
    assert keys == {"old"}


async def test_repeats_of_a_key_inside_one_batch_get_the_first_answer(app, sessionmaker) -> None:
    """Straight at the queue, so that the four share one batch for certain."""
    from app.services.idempotency import Claim

    await build_world(sessionmaker)
    queue = app.state.submissions
    same = Claim(scope="test:1", key="k", request_hash="a")
    other = Claim(scope="test:1", key="k", request_hash="b")
    before = queue.batches
    outcomes = await asyncio.gather(
        queue.submit(ANONYMOUS, Submission(content="第一次"), answer=lambda accepted, _: accepted.form.tracking_no,
                     claim=same),
        queue.submit(ANONYMOUS, Submission(content="第一次"), answer=lambda accepted, _: "never", claim=same),
        queue.submit(ANONYMOUS, Submission(content="另一份"), answer=lambda accepted, _: "never", claim=other),
        queue.submit(ANONYMOUS, Submission(content="无键"), answer=lambda accepted, _: accepted.form.tracking_no),
        return_exceptions=True,
    )
    assert queue.batches - before == 1
    first, repeat, reused, unkeyed = outcomes
    assert not first.replayed and repeat.replayed and repeat.body == first.body  # type: ignore[union-attr]
    assert getattr(reused, "code", None) == "idempotency_key_reused"
    assert unkeyed.status_code == 201 and unkeyed.body != first.body  # type: ignore[union-attr]
    assert await _forms(sessionmaker) == 2


async def test_a_key_taken_while_its_batch_worked_rolls_the_batch_back_and_claims_first(
    client, app, sessionmaker, monkeypatch
) -> None:
    """Keys are looked up, not claimed, before a batch's work, and inserted with their answers after it. If
    another request committed one of them in between (another process, the same instant), the batch is
    rolled back — its forms too — and done again claiming first: the same key and body replay the answer
    that won, another body is refused (422), and the other submissions of the batch are written once."""
    from app.services import idempotency as idempotency_service

    world = await build_world(sessionmaker)
    auth = world.auth("rep")
    queue = app.state.submissions
    won = await _keyed(client, auth, "winner", 1)  # what the other process answered for "winner"
    other_body = await _keyed(client, auth, "other-body", 2)
    assert won.status_code == other_body.status_code == 201
    async with transaction(sessionmaker) as session:
        stored = {(r.key): r for r in await session.execute(select(
            idempotency_service._TABLE).where(idempotency_service._TABLE.c.key.in_(["winner", "other-body"])))}
        # As if those answers had not been committed yet when the next batch looked its keys up.
        await session.execute(idempotency_service._TABLE.delete().where(
            idempotency_service._TABLE.c.key.in_(["winner", "other-body"])))
    rows = [dict(r._mapping) for r in stored.values()]
    keep_many, claim_many = idempotency_service.keep_many, idempotency_service.claim_many
    calls = {"keep": 0, "claim": 0}
    postgres = sessionmaker.kw["bind"].dialect.name == "postgresql"

    async def meanwhile(session, answers, **kwargs):  # type: ignore[no-untyped-def]
        calls["keep"] += 1
        if calls["keep"] == 1:
            if postgres:  # the other process commits its answers between this batch's look-up and insert
                async with transaction(sessionmaker) as other:
                    await other.execute(idempotency_service._TABLE.insert(), rows)
            else:  # SQLite's one writer makes that impossible; the rows appear in this transaction instead
                await session.execute(idempotency_service._TABLE.insert(), rows)
        return await keep_many(session, answers, **kwargs)

    async def then(session, claims, **kwargs):  # type: ignore[no-untyped-def]
        calls["claim"] += 1
        if calls["claim"] == 1 and not postgres:  # rolled back with the batch above: there again, as committed
            await session.execute(idempotency_service._TABLE.insert(), rows)
        return await claim_many(session, claims, **kwargs)

    monkeypatch.setattr(idempotency_service, "keep_many", meanwhile)
    monkeypatch.setattr(idempotency_service, "claim_many", then)
    forms_before, raced_before = await _forms(sessionmaker), queue.raced
    responses = await asyncio.gather(
        _keyed(client, auth, "winner", 1), _keyed(client, auth, "other-body", 99), _keyed(client, auth, "fresh", 3),
    )
    assert queue.raced == raced_before + 1
    assert [r.status_code for r in responses] == [201, 422, 201]
    assert responses[0].json() == won.json() and responses[0].headers["idempotent-replayed"] == "true"
    assert responses[1].json()["code"] == "idempotency_key_reused"
    assert "idempotent-replayed" not in responses[2].headers
    assert await _forms(sessionmaker) == forms_before + 1  # only "fresh": the rolled-back batch left nothing
    again = await _keyed(client, auth, "fresh", 3)
    assert again.json() == responses[2].json() and again.headers["idempotent-replayed"] == "true"
