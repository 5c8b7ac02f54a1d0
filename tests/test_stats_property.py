"""Property: whatever the office does, in whatever order, the counters equal a recount.

Random sequences of submissions (on random days over about three months, to random workrooms and
categories, some refused) and workflow actions on random forms by random people (many of them illegal, as
in real life: those fail with an AppError and roll back alone). The test keeps its own belief of each
form's state and predicts which actions are legal and how each count moves. After each sequence
``stats.verify`` finds nothing, the counts moved exactly as the legal actions say, and the stats endpoints
(also filtered by random workrooms, categories and date windows) equal a brute-force count of the forms
table. The database accumulates across examples: the invariant is cumulative, so each example starts
from whatever the previous ones left.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_sessionmaker, transaction
from app.errors import AppError
from tests.support import DEEP
from tests.support.apps import build_app
from app.models import FormStatus, HandlingUnit, OpinionForm, User, Workroom, utcnow
from app.services import auth as auth_service
from app.services import forms as form_service
from app.services import stats as stats_service
from app.services import workflow
from app.services.auth import ANONYMOUS, Principal
from app.services.forms import Submission
from tests.factories import build_world
from tests.test_stats import count, form_rows, local, numbers, params, select_rows

START = date(2026, 1, 1)
WORKROOMS = ("LS-01", "LS-02", "LS-09", None)  # LS-09 has closed: submissions to it are refused
CATEGORIES = ("urban_traffic", "environment", "public_security", None, "no_such_category")
WHO = ("coordinator",) * 5 + ("admin", "handler_a", "handler_b", "rep")
OFFICE = {"coordinator", "admin"}
HANDLER_UNIT = {"handler_a": "A", "handler_b": "B"}
COUNTED = ("collected", "assigned", "answered", "closed", "declined")
BLIND = (
    "assign", "reassign", "return", "extend", "decide", "reply", "on_spot", "close", "decline", "reopen", "expire",
)
# "next" takes a step the chosen form's status allows (the actor may still be refused), so forms get far
# along; the blind kinds are often illegal.
NEXT_STEPS = {
    FormStatus.submitted: ("assign", "assign", "assign", "decline", "on_spot", "on_spot"),
    FormStatus.assigned: ("reply", "reply", "reply", "reassign", "return", "extend", "extend", "expire"),
    FormStatus.answered: ("close", "close", "reopen", "reopen"),
    FormStatus.closed: ("reopen",),
    FormStatus.declined: ("assign",),
}
PENDING_STEPS = ("decide", "decide", "reply", "extend")  # an assigned form with an extension request pending
KINDS = ("submit",) * 4 + BLIND + ("next",) * 10

# Days after START: any, or one either side of a month end (where a wrong day or month shows).
MONTH_EDGES = (30, 31, 58, 59, 89, 90)
day_numbers = st.one_of(st.integers(0, 95), st.sampled_from(MONTH_EDGES))
steps = st.tuples(
    st.sampled_from(KINDS),
    day_numbers,  # submission: day after START
    # submission: local minute of the day, often before 08:00 (still the previous day in UTC)
    st.one_of(st.integers(0, 24 * 60 - 1), st.integers(0, 8 * 60 - 1)),
    st.sampled_from(WORKROOMS),
    st.sampled_from(CATEGORIES),
    st.sampled_from((None, "rep", "coordinator")),  # submitted by
    st.integers(0, 10_000),  # which form (see Town.pick), and small choices within an action
    st.sampled_from(WHO),  # who acts
    st.sampled_from(("A", "B")),  # a unit
    st.sampled_from((None, "satisfied", "basically_satisfied", "unsatisfied")),
)
days = st.one_of(st.integers(-5, 100), st.sampled_from(MONTH_EDGES)).map(lambda n: START + timedelta(days=n))
windows = st.tuples(
    st.sampled_from(("LS-01", "LS-02", "LS-09", None)),
    st.sampled_from((None, "urban_traffic", "environment")),
    st.one_of(st.none(), days),
    st.one_of(st.none(), days),
)


@dataclass
class Known:
    """What the test believes about one form, to predict which actions are legal and what they count."""

    status: str
    unit: str | None
    by_rep: bool  # entered by the representative "rep"
    ever_assigned: bool
    ever_answered: bool
    extension_pending: bool = False


class Town:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker, self.settings = sessionmaker, settings
        self.user_ids: dict[str, int] = {}
        self.unit_ids: dict[str, int] = {}
        self.forms: dict[int, Known] = {}

    async def load(self) -> None:
        async with self.sessionmaker() as session:
            built = await session.scalar(select(User.id).where(User.username == "coordinator")) is not None
        if not built:  # the first example builds the town; later ones find it
            await build_world(self.sessionmaker)
            async with transaction(self.sessionmaker) as session:
                session.add(Workroom(code="LS-09", name="已撤并工作室", address="洛社镇", area="旧网格", active=False))
        async with self.sessionmaker() as session:
            self.user_ids = dict((await session.execute(select(User.username, User.id))).all())
            rep = await session.get(User, self.user_ids["rep"])
            names = dict((await session.execute(select(HandlingUnit.name, HandlingUnit.id))).all())
            self.unit_ids = {"A": names["镇城建办"], "B": names["镇生态环境办"]}
            unit_of = {v: k for k, v in self.unit_ids.items()}
            for form in await session.scalars(select(OpinionForm)):
                self.forms[form.id] = Known(
                    status=form.status, unit=unit_of.get(form.unit_id),
                    by_rep=(form.entered_by_user_id == rep.id
                            or form.entered_by_representative_id == rep.representative_id),
                    ever_assigned=form.first_assigned_at is not None, ever_answered=form.first_answered_at is not None,
                    extension_pending=form.extension_due_at is not None,
                )

    async def principal(self, session: AsyncSession, who: str | None) -> Principal:
        return ANONYMOUS if who is None else Principal(user=await session.get(User, self.user_ids[who]))

    def pick(self, choice: int) -> int:
        """Mostly one of the latest few forms (so forms get far along), sometimes any, rarely none."""
        ids = sorted(self.forms)
        if not ids or choice % 10 == 0:
            return max(ids, default=0) + 1000
        if choice % 10 < 4:
            return ids[(choice // 10) % len(ids)]
        return ids[-1 - (choice // 10) % min(3, len(ids))]

    async def submit(
        self, day: int, minute: int, workroom: str | None, category: str | None, who: str | None
    ) -> dict[str, int]:
        legal = workroom != "LS-09" and category != "no_such_category"
        # In UTC, as the app's clock gives it: the counters must still file it under the local day.
        when = local(START + timedelta(days=day), minute // 60, minute % 60).astimezone(UTC)
        try:
            async with transaction(self.sessionmaker) as session:
                form, _ = await form_service.submit(
                    session, principal=await self.principal(session, who),
                    data=Submission(content="反映情况。", category=category, workroom_code=workroom),
                    settings=self.settings, now=when,
                )
        except AppError as exc:
            assert not legal, ("submit refused", workroom, category, exc.code)
            return {}
        assert legal, ("submit accepted", workroom, category)
        self.forms[form.id] = Known(FormStatus.submitted, None, who == "rep", False, False)
        return {"collected": 1}

    @staticmethod
    def plausible_actor(action: str, known: Known, choice: int) -> str:
        handler = {"A": "handler_a", "B": "handler_b"}.get(known.unit or "", "handler_a")
        if action in ("return", "extend") or (action == "reply" and choice % 2):
            return handler
        if action == "on_spot" and known.by_rep:
            return "rep"
        return "coordinator"

    def legal(self, action: str, who: str, known: Known | None, unit: str, reopen_unit: str | None) -> bool:
        if known is None:
            return False
        office = who in OFFICE
        own_unit = known.unit is not None and HANDLER_UNIT.get(who) == known.unit
        status = known.status
        return {
            "assign": office and status == FormStatus.submitted,
            "reassign": office and status == FormStatus.assigned and unit != known.unit,
            "return": own_unit and status == FormStatus.assigned,
            "extend": own_unit and status == FormStatus.assigned and not known.extension_pending,
            "decide": office and status == FormStatus.assigned and known.extension_pending,
            "reply": status == FormStatus.assigned and (office or own_unit),
            "on_spot": status == FormStatus.submitted and (office or (who == "rep" and known.by_rep)),
            "close": office and status == FormStatus.answered,
            "decline": office and status == FormStatus.submitted,
            "reopen": office and status == FormStatus.answered and (reopen_unit or known.unit) is not None,
        }[action]

    async def act(self, action: str, choice: int, who: str, unit: str, satisfaction: str | None) -> dict[str, int]:
        form_id = self.pick(choice)
        known = self.forms.get(form_id)
        if action == "next":
            if known is None:
                options: tuple[str, ...] = ("assign",)
            else:
                options = PENDING_STEPS if known.extension_pending else NEXT_STEPS[known.status]
            action = options[(choice // 7) % len(options)]
            if known is not None and choice % 3:  # usually by someone who may take that step
                who = self.plausible_actor(action, known, choice)
        if action == "expire":  # time passes: the form's deadline is now behind us
            async with transaction(self.sessionmaker) as session:
                await session.execute(
                    update(OpinionForm).where(OpinionForm.id == form_id, OpinionForm.due_at.is_not(None))
                    .values(due_at=utcnow() - timedelta(days=1 + choice % 12))
                )
            return {}
        reopen_unit = unit if choice % 2 == 0 else None
        legal = self.legal(action, who, known, unit, reopen_unit)
        function, arguments = {
            "assign": ("assign", {"unit_id": self.unit_ids[unit], "instructions": None, "due_at": None,
                                  "settings": self.settings}),
            "reassign": ("reassign", {"unit_id": self.unit_ids[unit], "instructions": None}),
            "return": ("return_to_office", {"reason": "不属于本单位职责。"}),
            # Always later than the current deadline, which is never more than a few weeks away.
            "extend": ("request_extension", {"due_at": utcnow() + timedelta(days=60), "reason": "需协调多部门。"}),
            "decide": ("decide_extension", {"approve": choice % 2 == 0, "note": None}),
            "reply": ("reply", {"reply_text": "已处理。", "internal_note": None}),
            "on_spot": ("answer_on_spot", {"reply_text": "已当场解答。"}),
            "close": ("close", {"satisfaction": satisfaction, "note": None}),
            "decline": ("decline", {"reason": "不属于受理范围。"}),
            "reopen": ("reopen", {"reason": "群众不满意。", "settings": self.settings,
                                  "unit_id": self.unit_ids[reopen_unit] if reopen_unit else None}),
        }[action]
        try:
            async with transaction(self.sessionmaker) as session:
                principal = await self.principal(session, who)
                await getattr(workflow, function)(session, principal=principal, form_id=form_id, **arguments)
        except AppError as exc:
            assert not legal, (action, who, form_id, known, exc.code)
            event(f"{action} refused")
            return {}
        assert legal, (action, who, form_id, known, "accepted")
        assert known is not None
        event(f"{action} done")
        return self.believe(known, action, unit, reopen_unit)

    @staticmethod
    def believe(known: Known, action: str, unit: str, reopen_unit: str | None) -> dict[str, int]:
        """Update the belief after a legal action; the counts it moves."""
        deltas: dict[str, int] = {}
        if action in ("assign", "reopen"):
            known.status = FormStatus.assigned
            known.unit = unit if action == "assign" else (reopen_unit or known.unit)
            if not known.ever_assigned:
                known.ever_assigned, deltas["assigned"] = True, 1
        elif action == "reassign":
            known.unit, known.extension_pending = unit, False
        elif action == "return":
            known.status, known.unit, known.extension_pending = FormStatus.submitted, None, False
        elif action == "extend":
            known.extension_pending = True
        elif action == "decide":
            known.extension_pending = False
        elif action in ("reply", "on_spot"):
            known.status, known.extension_pending = FormStatus.answered, False
            if not known.ever_answered:
                known.ever_answered, deltas["answered"] = True, 1
        elif action == "close":
            known.status, deltas["closed"] = FormStatus.closed, 1
        elif action == "decline":
            known.status, deltas["declined"] = FormStatus.declined, 1
        return deltas


async def play(settings: Settings, actions: list[tuple[Any, ...]], filters: list[tuple[Any, ...]]) -> None:
    engine = create_engine(settings)
    app = build_app(settings)
    try:
        sessionmaker = create_sessionmaker(engine)
        town = Town(sessionmaker, settings)
        await town.load()
        before = count(await form_rows(sessionmaker))

        expected = {m: before[m] for m in COUNTED}
        for kind, day, minute, workroom, category, submitter, choice, who, unit, satisfaction in actions:
            if kind == "submit":
                deltas = await town.submit(day, minute, workroom, category, submitter)
            else:
                deltas = await town.act(kind, choice, who, unit, satisfaction)
            for metric, delta in deltas.items():
                expected[metric] += delta

        async with sessionmaker() as session:
            assert await stats_service.verify(session) == []
        rows = await form_rows(sessionmaker)
        truth = count(rows)
        assert {m: truth[m] for m in COUNTED} == expected

        async with transaction(sessionmaker) as session:
            coordinator = await session.get(User, town.user_ids["coordinator"])
            token, _ = await auth_service.issue_token(session, user=coordinator, ttl_seconds=600)
        headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for workroom, category, first, last in [(None, None, None, None), *filters]:
                if first and last and first > last:
                    first, last = last, first
                query = params(workroom, category, first, last)
                chosen = select_rows(rows, workroom=workroom, category=category, date_from=first, date_to=last)
                want = count(chosen)
                response = await client.get("/api/v1/stats/summary", params=query, headers=headers)
                assert response.status_code == 200, response.text
                assert numbers(response.json()) == want, query
                for endpoint, key, of_row in (
                    ("by-workroom", "workroom", lambda r: r.workroom),
                    ("by-category", "category", lambda r: r.category),
                    ("monthly", "month", lambda r: r.day.strftime("%Y-%m")),
                ):
                    response = await client.get(f"/api/v1/stats/{endpoint}", params=query, headers=headers)
                    assert response.status_code == 200, response.text
                    items = response.json()["items"]
                    for item in items:  # each row is the recount of its own forms
                        mine = [r for r in chosen if of_row(r) == item[key]]
                        assert numbers(item) == count(mine), (endpoint, query, item[key])
                    assert {of_row(r) for r in chosen} <= {item[key] for item in items}, (endpoint, query)
    finally:
        await app.state.engine.dispose()
        await engine.dispose()


# Sequences per run: 15 in the everyday run, 60 in the deep one (`MINYI_TEST_DEEP=1`, docs/testing.md).
EXAMPLES = 60 if DEEP else 15


# No shrinking: the database accumulates across examples, so a replayed shorter sequence meets another
# history; the failing sequence is reported as generated (at most 30 steps) with the assertion's details.
@hypothesis_settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
@given(actions=st.lists(steps, min_size=8, max_size=30), filters=st.lists(windows, min_size=1, max_size=4))
def test_counters_equal_a_recount_after_any_sequence_of_actions(db_url, settings, actions, filters):
    asyncio.run(play(settings, actions, filters))
