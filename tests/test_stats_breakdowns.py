"""The office's finer counts: satisfaction (满意率), on-time answers (按时答复率), average working days to the
first answer, returns and reopenings; and the breakdowns by handling unit and by representative.

One scripted month around the 2026 Spring Festival (15–23 Feb off; Saturdays 14 and 28 Feb worked) with
outcomes worked out by hand below, so every number is checked against a known value, never against the
counters themselves. Events are placed in time by calling the services with ``now=``.

    form  entered by  where   category       submitted   what happened                                  1st answer
    F1    rep         LS-01   urban_traffic  Wed 11 Feb  A, due 24 Feb; reply 25 Feb (late); satisfied      5 wd
    F2    rep         LS-01   environment    Fri 13 Feb  A, due 27 Feb; reply 24 Feb; basically satisfied   2 wd
    F3    rep2        LS-02   urban_traffic  Thu 26 Feb  B, due 6 Mar; reply Mon 2 Mar; unsatisfied         3 wd
    F4    public      LS-02   environment    Fri 13 Feb  answered on the spot that day; closed, not rated   0 wd
    F5    rep         LS-01   urban_traffic  Thu 12 Feb  A; returned by A; B, due 27 Feb; reply 3 Mar       9 wd
                                                         (late); reopened; answered again 5 Mar
    F6    rep2        LS-02   environment    Mon 2 Mar   A, due 6 Mar; still open: overdue
    F7    public      online  (none)         Tue 3 Mar   declined
    F8    rep         LS-01   environment    Wed 25 Feb  A; reassigned to B; still open: overdue

(wd: working days from the day of submission, exclusive, to the day of the first answer, inclusive.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import TZ
from app.db import transaction
from app.models import User
from app.services import forms as form_service
from app.services import stats as stats_service
from app.services import workflow
from app.services.auth import ANONYMOUS, Principal
from app.services.forms import Submission
from tests.factories import World, build_world
from tests.support.problems import assert_problem

D = date
FIELDS = (
    "collected", "assigned", "answered", "closed", "declined", "overdue", "answer_rate",
    "satisfied", "basically_satisfied", "unsatisfied", "satisfaction_rate", "on_time", "on_time_rate",
    "avg_answer_working_days", "returned", "reopened",
)
ZERO = {field: 0 for field in FIELDS}


def at(day: date, hour: int = 10, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=TZ)


def end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=TZ)


def counts(**values: Any) -> dict[str, Any]:
    return {**ZERO, **values}


def numbers(item: dict[str, Any]) -> dict[str, Any]:
    return {field: item[field] for field in FIELDS}


# --- acting through the services ----------------------------------------------------------------------


async def principal_of(session: AsyncSession, world: World, who: str | None) -> Principal:
    return ANONYMOUS if who is None else Principal(user=await session.get(User, world.user_ids[who]))


class Office:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Any, world: World) -> None:
        self.sessionmaker, self.settings, self.world = sessionmaker, settings, world

    async def submit(self, when: datetime, *, who: str | None, workroom: str | None, category: str | None) -> int:
        async with transaction(self.sessionmaker) as session:
            form, _ = await form_service.submit(
                session, principal=await principal_of(session, self.world, who),
                data=Submission(content="村道路灯不亮。", category=category, workroom_code=workroom),
                settings=self.settings, now=when,
            )
            return form.id

    async def do(self, action: str, form_id: int, when: datetime, who: str = "coordinator", **kwargs: Any) -> None:
        async with transaction(self.sessionmaker) as session:
            principal = await principal_of(session, self.world, who)
            await getattr(workflow, action)(session, principal=principal, form_id=form_id, now=when, **kwargs)

    async def assign(self, form_id: int, when: datetime, unit: str, due_at: datetime | None = None) -> None:
        await self.do("assign", form_id, when, unit_id=self.world.units[unit].id, instructions=None, due_at=due_at)

    async def reply(self, form_id: int, when: datetime, who: str) -> None:
        await self.do("reply", form_id, when, who=who, reply_text="已处理完毕。", internal_note=None)

    async def close(self, form_id: int, when: datetime, satisfaction: str | None) -> None:
        await self.do("close", form_id, when, satisfaction=satisfaction, note=None)


@dataclass
class Script:
    world: World
    office: Office
    forms: dict[str, int]


async def run_script(sessionmaker: async_sessionmaker[AsyncSession], settings: Any) -> Script:
    """The month in the module docstring."""
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    f: dict[str, int] = {}

    f["F1"] = await office.submit(at(D(2026, 2, 11)), who="rep", workroom="LS-01", category="urban_traffic")
    await office.assign(f["F1"], at(D(2026, 2, 11), 14), "A", due_at=end_of(D(2026, 2, 24)))
    await office.reply(f["F1"], at(D(2026, 2, 25)), "handler_a")  # a day late
    await office.close(f["F1"], at(D(2026, 2, 26)), "satisfied")

    f["F2"] = await office.submit(at(D(2026, 2, 13)), who="rep", workroom="LS-01", category="environment")
    await office.assign(f["F2"], at(D(2026, 2, 13), 11), "A", due_at=end_of(D(2026, 2, 27)))
    await office.reply(f["F2"], at(D(2026, 2, 24)), "handler_a")
    await office.close(f["F2"], at(D(2026, 2, 25)), "basically_satisfied")

    f["F3"] = await office.submit(at(D(2026, 2, 26)), who="rep2", workroom="LS-02", category="urban_traffic")
    await office.assign(f["F3"], at(D(2026, 2, 26), 11), "B", due_at=end_of(D(2026, 3, 6)))
    await office.reply(f["F3"], at(D(2026, 3, 2)), "handler_b")
    await office.close(f["F3"], at(D(2026, 3, 3)), "unsatisfied")

    f["F4"] = await office.submit(at(D(2026, 2, 13), 9), who=None, workroom="LS-02", category="environment")
    await office.do("answer_on_spot", f["F4"], at(D(2026, 2, 13), 9, 30), reply_text="已当场解答。")
    await office.close(f["F4"], at(D(2026, 2, 24)), None)

    f["F5"] = await office.submit(at(D(2026, 2, 12)), who="rep", workroom="LS-01", category="urban_traffic")
    await office.assign(f["F5"], at(D(2026, 2, 12), 11), "A", due_at=end_of(D(2026, 2, 26)))
    await office.do("return_to_office", f["F5"], at(D(2026, 2, 24)), who="handler_a", reason="不属于城建办职责。")
    await office.assign(f["F5"], at(D(2026, 2, 24), 15), "B", due_at=end_of(D(2026, 2, 27)))
    await office.reply(f["F5"], at(D(2026, 3, 3)), "handler_b")  # late
    await office.do("reopen", f["F5"], at(D(2026, 3, 4)), reason="群众反映仍未解决。")
    await office.reply(f["F5"], at(D(2026, 3, 5)), "handler_b")

    f["F6"] = await office.submit(at(D(2026, 3, 2)), who="rep2", workroom="LS-02", category="environment")
    await office.assign(f["F6"], at(D(2026, 3, 2), 11), "A", due_at=end_of(D(2026, 3, 6)))

    f["F7"] = await office.submit(at(D(2026, 3, 3)), who=None, workroom=None, category=None)
    await office.do("decline", f["F7"], at(D(2026, 3, 3), 11), reason="重复反映。")

    f["F8"] = await office.submit(at(D(2026, 2, 25)), who="rep", workroom="LS-01", category="environment")
    await office.assign(f["F8"], at(D(2026, 2, 25), 11), "A")
    await office.do("reassign", f["F8"], at(D(2026, 2, 26)), unit_id=world.units["B"].id, instructions=None)

    return Script(world, office, f)


# What the script must produce. F6 and F8 are open and long past their deadlines: overdue and escalated.
SUMMARY = counts(
    collected=8, assigned=6, answered=5, closed=4, declined=1, overdue=2, answer_rate=0.625,
    satisfied=1, basically_satisfied=1, unsatisfied=1, satisfaction_rate=0.6667,
    on_time=3, on_time_rate=0.6, avg_answer_working_days=3.8, returned=1, reopened=1,
)
# By the unit now responsible: A has F1, F2, F6 (F5 and F8 moved to B); A's return of F5 counts for A.
UNIT_A = counts(
    collected=3, assigned=3, answered=2, closed=2, overdue=1, answer_rate=0.6667,
    satisfied=1, basically_satisfied=1, satisfaction_rate=1.0, on_time=1, on_time_rate=0.5,
    avg_answer_working_days=3.5, returned=1,
)
UNIT_B = counts(
    collected=3, assigned=3, answered=2, closed=1, overdue=1, answer_rate=0.6667,
    unsatisfied=1, satisfaction_rate=0.0, on_time=1, on_time_rate=0.5, avg_answer_working_days=6.0, reopened=1,
)
# By the representative who entered them: 张代表 F1, F2, F5, F8; 李代表 F3, F6.
REP = counts(
    collected=4, assigned=4, answered=3, closed=2, overdue=1, answer_rate=0.75,
    satisfied=1, basically_satisfied=1, satisfaction_rate=1.0, on_time=1, on_time_rate=0.3333,
    avg_answer_working_days=5.33, returned=1, reopened=1,
)
REP2 = counts(
    collected=2, assigned=2, answered=1, closed=1, overdue=1, answer_rate=0.5,
    unsatisfied=1, satisfaction_rate=0.0, on_time=1, on_time_rate=1.0, avg_answer_working_days=3.0,
)


async def get(client: httpx.AsyncClient, world: World, endpoint: str, headers: dict[str, str] | None = None,
              **query: Any) -> httpx.Response:
    params = {k.rstrip("_"): v for k, v in query.items() if v is not None}
    return await client.get(f"/api/v1/stats/{endpoint}", params=params,
                            headers={**world.auth("coordinator"), **(headers or {})})


async def items(client: httpx.AsyncClient, world: World, endpoint: str, key: str, **query: Any) -> dict[Any, dict]:
    response = await get(client, world, endpoint, **query)
    assert response.status_code == 200, response.text
    return {item[key]: numbers(item) for item in response.json()["items"]}


# --- the summary ---------------------------------------------------------------------------------------


async def test_summary_reports_satisfaction_timeliness_working_days_returns_and_reopenings(
    client, sessionmaker, settings
):
    script = await run_script(sessionmaker, settings)

    response = await get(client, script.world, "summary")

    assert response.status_code == 200, response.text
    body = response.json()
    assert numbers(body) == SUMMARY
    assert (body["warning"], body["escalated"]) == (0, 2)


async def test_summary_of_nothing_has_zero_rates_not_errors(client, sessionmaker):
    world = await build_world(sessionmaker)

    body = (await get(client, world, "summary")).json()

    assert numbers(body) == ZERO


@pytest.mark.parametrize(("answered_at", "on_time"), [
    (end_of(D(2026, 2, 24)), 1),                     # the last second of the deadline is still on time
    (at(D(2026, 2, 25), 0, 0, 0), 0),                # one second later is late
])
async def test_an_answer_at_the_deadline_is_on_time_and_one_second_later_is_late(
    client, sessionmaker, settings, answered_at, on_time
):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.submit(at(D(2026, 2, 13)), who=None, workroom=None, category="urban_traffic")
    await office.assign(form_id, at(D(2026, 2, 13), 11), "A", due_at=end_of(D(2026, 2, 24)))

    await office.reply(form_id, answered_at, "handler_a")

    body = (await get(client, world, "summary")).json()
    assert (body["answered"], body["on_time"], body["on_time_rate"]) == (1, on_time, float(on_time))
    # 13 Feb → 24 Feb is 2 working days (Saturday 14 Feb and Tuesday 24 Feb), whichever side of midnight.
    assert body["avg_answer_working_days"] == (2.0 if on_time else 3.0)


@pytest.mark.parametrize(("submitted", "answered", "working_days"), [
    (D(2026, 2, 13), D(2026, 2, 24), 2),   # over the Spring Festival: only the make-up Saturday 14 Feb and 24 Feb
    (D(2026, 2, 26), D(2026, 3, 2), 3),    # Fri 27 Feb, the make-up Saturday 28 Feb, Mon 2 Mar
    (D(2026, 2, 11), D(2026, 2, 11), 0),   # the same day
    (D(2026, 2, 14), D(2026, 2, 23), 0),   # submitted on the make-up Saturday, answered in the holiday
    (D(2026, 3, 6), D(2026, 3, 9), 1),     # Friday to Monday
])
async def test_working_days_to_answer_follow_the_chinese_calendar(
    client, sessionmaker, settings, submitted, answered, working_days
):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.submit(at(submitted, 9), who=None, workroom=None, category="urban_traffic")

    await office.do("answer_on_spot", form_id, at(answered, 16), reply_text="已答复。")

    body = (await get(client, world, "summary")).json()
    assert body["avg_answer_working_days"] == working_days


async def test_only_the_first_answer_counts_for_timeliness_and_working_days(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    form_id = await office.submit(at(D(2026, 3, 2)), who=None, workroom=None, category="urban_traffic")
    await office.assign(form_id, at(D(2026, 3, 2), 11), "A", due_at=end_of(D(2026, 3, 6)))
    await office.reply(form_id, at(D(2026, 3, 4)), "handler_a")  # on time, 2 working days
    await office.do("reopen", form_id, at(D(2026, 3, 5)), reason="不满意。")

    await office.reply(form_id, at(D(2026, 4, 30)), "handler_a")  # long after every deadline

    body = (await get(client, world, "summary")).json()
    assert numbers(body) == counts(collected=1, assigned=1, answered=1, answer_rate=1.0, on_time=1,
                                   on_time_rate=1.0, avg_answer_working_days=2.0, reopened=1)


async def test_satisfaction_counts_closed_forms_by_their_recorded_satisfaction(client, sessionmaker, settings):
    world = await build_world(sessionmaker)
    office = Office(sessionmaker, settings, world)
    outcomes = ["satisfied", "satisfied", "basically_satisfied", "unsatisfied", "unsatisfied", "unsatisfied", None]
    for satisfaction in outcomes:
        form_id = await office.submit(at(D(2026, 3, 2)), who=None, workroom=None, category="urban_traffic")
        await office.do("answer_on_spot", form_id, at(D(2026, 3, 2), 11), reply_text="已答复。")
        await office.close(form_id, at(D(2026, 3, 3)), satisfaction)
    # An answered form not yet followed up is not rated.
    form_id = await office.submit(at(D(2026, 3, 2)), who=None, workroom=None, category="urban_traffic")
    await office.do("answer_on_spot", form_id, at(D(2026, 3, 2), 11), reply_text="已答复。")

    body = (await get(client, world, "summary")).json()

    assert (body["satisfied"], body["basically_satisfied"], body["unsatisfied"]) == (2, 1, 3)
    assert body["closed"] == 7
    # (2 + 1) / 6 rated forms.
    assert body["satisfaction_rate"] == 0.5


# --- by unit -------------------------------------------------------------------------------------------


async def test_by_unit_counts_the_forms_each_unit_is_now_responsible_for(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)
    world = script.world

    response = await get(client, world, "by-unit")

    assert response.status_code == 200, response.text
    body = response.json()
    assert [(i["unit_id"], i["name"]) for i in body["items"]] == [
        (world.units["A"].id, "镇城建办"), (world.units["B"].id, "镇生态环境办"),
    ]
    by_unit = {item["unit_id"]: numbers(item) for item in body["items"]}
    assert by_unit == {world.units["A"].id: UNIT_A, world.units["B"].id: UNIT_B}
    assert body["next_cursor"] is None
    assert body["as_of"].endswith("+08:00")


async def test_by_unit_returned_counts_the_units_own_returns_by_the_forms_submission_day(
    client, sessionmaker, settings
):
    script = await run_script(sessionmaker, settings)
    world = script.world
    a, b = world.units["A"].id, world.units["B"].id

    # F5 (submitted 12 Feb) is B's now; A returned it. Alone on its day:
    day = await items(client, world, "by-unit", "unit_id", from_="2026-02-12", to="2026-02-12")

    assert day[a] == counts(returned=1)
    assert day[b] == counts(collected=1, assigned=1, answered=1, answer_rate=1.0, avg_answer_working_days=9.0,
                            reopened=1)
    # The form's own returned count shows where it was collected, not under the unit that has it now.
    assert (await get(client, world, "summary", from_="2026-02-12", to="2026-02-12")).json()["returned"] == 1


async def test_by_unit_with_a_date_window_counts_forms_submitted_inside_it(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)
    world = script.world
    a, b = world.units["A"].id, world.units["B"].id

    # 13–28 Feb: F2 (A), F3 and F8 (B); F4 has no unit.
    window = await items(client, world, "by-unit", "unit_id", from_="2026-02-13", to="2026-02-28")
    assert window[a] == counts(collected=1, assigned=1, answered=1, closed=1, answer_rate=1.0,
                               basically_satisfied=1, satisfaction_rate=1.0, on_time=1, on_time_rate=1.0,
                               avg_answer_working_days=2.0)
    assert window[b] == counts(collected=2, assigned=2, answered=1, closed=1, overdue=1, answer_rate=0.5,
                               unsatisfied=1, satisfaction_rate=0.0, on_time=1, on_time_rate=1.0,
                               avg_answer_working_days=3.0)
    # A whole month, read from the month cells: March holds only F6 (A) and F7 (no unit).
    march = await items(client, world, "by-unit", "unit_id", from_="2026-03-01", to="2026-03-31")
    assert march == {a: counts(collected=1, assigned=1, overdue=1), b: ZERO}
    # Open-ended windows.
    until = await items(client, world, "by-unit", "unit_id", to="2026-02-28")
    since = await items(client, world, "by-unit", "unit_id", from_="2026-03-01")
    assert until[a]["collected"] + since[a]["collected"] == UNIT_A["collected"]
    assert until[b]["collected"] + since[b]["collected"] == UNIT_B["collected"]
    assert until[a]["returned"] == 1 and since[a]["returned"] == 0


# --- by representative ---------------------------------------------------------------------------------


async def test_by_representative_counts_the_forms_each_one_entered(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)
    world = script.world
    rep, rep2 = world.representatives["rep"].id, world.representatives["rep2"].id

    response = await get(client, world, "by-representative")

    assert response.status_code == 200, response.text
    body = response.json()
    assert [(i["representative_id"], i["name"]) for i in body["items"]] == [(rep, "张代表"), (rep2, "李代表")]
    assert {i["representative_id"]: numbers(i) for i in body["items"]} == {rep: REP, rep2: REP2}
    # Forms from the public (F4, F7) are nobody's.
    total = sum(i["collected"] for i in body["items"])
    assert total == SUMMARY["collected"] - 2


async def test_by_representative_with_a_date_window(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)
    world = script.world
    rep, rep2 = world.representatives["rep"].id, world.representatives["rep2"].id

    window = await items(client, world, "by-representative", "representative_id", from_="2026-02-13",
                         to="2026-02-28")

    # 张代表: F2 and F8; 李代表: F3.
    assert window[rep] == counts(collected=2, assigned=2, answered=1, closed=1, overdue=1, answer_rate=0.5,
                                 basically_satisfied=1, satisfaction_rate=1.0, on_time=1, on_time_rate=1.0,
                                 avg_answer_working_days=2.0)
    assert window[rep2] == counts(collected=1, assigned=1, answered=1, closed=1, answer_rate=1.0, unsatisfied=1,
                                  satisfaction_rate=0.0, on_time=1, on_time_rate=1.0, avg_answer_working_days=3.0)
    march = await items(client, world, "by-representative", "representative_id", from_="2026-03-01",
                        to="2026-03-31")
    assert march == {rep: ZERO, rep2: counts(collected=1, assigned=1, overdue=1)}


@pytest.mark.parametrize("endpoint", ["by-unit", "by-representative"])
@pytest.mark.parametrize("query", [{"workroom": "LS-01"}, {"category": "urban_traffic"},
                                   {"workroom": "LS-02", "category": "environment", "from": "2026-02-01"}])
async def test_owner_breakdowns_refuse_workroom_and_category_filters(client, sessionmaker, endpoint, query):
    world = await build_world(sessionmaker)

    response = await client.get(f"/api/v1/stats/{endpoint}", params=query, headers=world.auth("coordinator"))

    assert_problem(response, 422, "unsupported_filter")


@pytest.mark.parametrize("endpoint", ["by-unit", "by-representative"])
async def test_owner_breakdowns_refuse_a_reversed_date_range(client, sessionmaker, endpoint):
    world = await build_world(sessionmaker)

    response = await get(client, world, endpoint, from_="2026-03-01", to="2026-02-01")

    assert_problem(response, 422, "invalid_date_range")


@pytest.mark.parametrize("endpoint", ["by-unit", "by-representative"])
async def test_owner_breakdowns_need_staff(client, sessionmaker, endpoint):
    await build_world(sessionmaker)

    response = await client.get(f"/api/v1/stats/{endpoint}")

    assert_problem(response, 401, "unauthorized")


# --- ETags on the breakdowns ---------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["by-unit", "by-representative"])
async def test_owner_breakdowns_answer_304_until_one_of_their_counts_changes(client, sessionmaker, settings, endpoint):
    script = await run_script(sessionmaker, settings)
    world, office = script.world, script.office
    first = await get(client, world, endpoint)
    assert first.status_code == 200, first.text
    tag = first.headers["ETag"]

    unchanged = await get(client, world, endpoint, headers={"If-None-Match": tag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["ETag"] == tag

    # A form from the public, online, is counted by no unit and no representative: still 304.
    await office.submit(at(D(2026, 3, 10)), who=None, workroom=None, category="urban_traffic")
    assert (await get(client, world, "summary")).json()["collected"] == 9
    assert (await get(client, world, endpoint, headers={"If-None-Match": tag})).status_code == 304

    # Closing F5 (B's, entered by 张代表) changes both breakdowns.
    await office.close(script.forms["F5"], at(D(2026, 3, 10)), "satisfied")
    changed = await get(client, world, endpoint, headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != tag
    assert (await get(client, world, endpoint, headers={"If-None-Match": changed.headers["ETag"]})).status_code == 304


# --- the other breakdowns carry the same new fields ------------------------------------------------------


async def test_by_workroom_items_carry_satisfaction_timeliness_and_working_days(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)

    by_workroom = await items(client, script.world, "by-workroom", "workroom")

    assert by_workroom == {
        "LS-01": REP,  # F1, F2, F5, F8: the forms 张代表 entered there
        "LS-02": counts(collected=3, assigned=2, answered=2, closed=2, overdue=1, answer_rate=0.6667,
                        unsatisfied=1, satisfaction_rate=0.0, on_time=2, on_time_rate=1.0,
                        avg_answer_working_days=1.5),
        None: counts(collected=1, declined=1),
    }


async def test_by_category_items_carry_satisfaction_timeliness_and_working_days(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)

    by_category = await items(client, script.world, "by-category", "category")

    assert by_category["urban_traffic"] == counts(
        collected=3, assigned=3, answered=3, closed=2, answer_rate=1.0, satisfied=1, unsatisfied=1,
        satisfaction_rate=0.5, on_time=1, on_time_rate=0.3333, avg_answer_working_days=5.67, returned=1, reopened=1,
    )
    assert by_category["environment"] == counts(
        collected=4, assigned=3, answered=2, closed=2, overdue=2, answer_rate=0.5, basically_satisfied=1,
        satisfaction_rate=1.0, on_time=2, on_time_rate=1.0, avg_answer_working_days=1.0,
    )
    assert by_category[None] == counts(collected=1, declined=1)
    assert all(v == ZERO for k, v in by_category.items() if k not in ("urban_traffic", "environment", None))


async def test_monthly_items_carry_satisfaction_timeliness_and_working_days(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)

    monthly = await items(client, script.world, "monthly", "month")

    assert monthly == {
        "2026-02": counts(collected=6, assigned=5, answered=5, closed=4, overdue=1, answer_rate=0.8333,
                          satisfied=1, basically_satisfied=1, unsatisfied=1, satisfaction_rate=0.6667,
                          on_time=3, on_time_rate=0.6, avg_answer_working_days=3.8, returned=1, reopened=1),
        "2026-03": counts(collected=2, assigned=1, declined=1, overdue=1, answer_rate=0.0),
    }


async def test_every_breakdown_adds_up_to_the_summary(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)
    world = script.world
    additive = ("collected", "assigned", "answered", "closed", "declined", "overdue", "satisfied",
                "basically_satisfied", "unsatisfied", "on_time", "returned", "reopened")

    for endpoint, key in (("by-workroom", "workroom"), ("by-category", "category"), ("monthly", "month")):
        listed = await items(client, world, endpoint, key)
        assert {m: sum(i[m] for i in listed.values()) for m in additive} == {m: SUMMARY[m] for m in additive}
    # Units: every form that has a unit, plus the returns made by units.
    units = await items(client, world, "by-unit", "unit_id")
    assert sum(i["collected"] for i in units.values()) == 6
    assert sum(i["returned"] for i in units.values()) == SUMMARY["returned"]


# --- the counters behind all of it -----------------------------------------------------------------------


async def test_counters_equal_a_recount_and_a_rebuild_reproduces_them_exactly(client, sessionmaker, settings):
    script = await run_script(sessionmaker, settings)
    world = script.world
    before = {endpoint: (await get(client, world, endpoint)).json()["items"]
              for endpoint in ("by-unit", "by-representative", "by-workroom", "by-category", "monthly")}
    async with transaction(sessionmaker) as session:
        assert await stats_service.verify(session) == []
        live = await stats_service.stored(session)
    assert any(key[0] == "unit" for key in live) and any(key[0] == "rep" for key in live)

    async with transaction(sessionmaker) as session:
        rebuilt_cells = await stats_service.rebuild(session)

    async with transaction(sessionmaker) as session:
        assert await stats_service.stored(session) == live
        assert await stats_service.verify(session) == []
    assert rebuilt_cells >= len(live)
    assert numbers((await get(client, world, "summary")).json()) == SUMMARY
    after = {endpoint: (await get(client, world, endpoint)).json()["items"] for endpoint in before}
    assert after == before
