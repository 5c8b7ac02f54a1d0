"""No date makes a 500 (issue 15, point 2): every date and datetime a client can send is bounded by one
type (app/schemas/dates.py), and the tests here walk all of them.

- ``test_every_date_input_of_the_api_is_bounded`` reads the app's own /openapi.json: every request
  parameter and body field with ``format: date`` or ``date-time`` must carry the window
  (``formatMinimum``/``formatMaximum``, which only ``BoundedDate``/``BoundedDateTime`` write), and no
  route outside the schema (Open311, the pages) may take a typed date the walk would not see.
- ``test_no_date_makes_a_server_error`` sends, for every such field of every operation, out-of-range and
  malformed values (0001-01-01, 9999-12-31, 0000-00-00, 2026-02-30, five-digit years, offsets of ±23:59,
  +24:00, a Unix timestamp …) and the window's own edges, as every kind of caller (``CALLERS``: the public,
  a WeChat resident, an API client holding every scope, the office, a unit's handler, a representative),
  each request otherwise valid (``RECIPES``).
  Never a 5xx; every 4xx problem+json; an out-of-range value refused with 422 naming the field unless the
  caller was refused first (401/403); an edge value reaches the services (which may refuse it for their
  own reasons, never with a 5xx). ``test_the_window_is_1900_to_2100_inclusive`` pins the window itself.
- Open311's ``start_date``/``end_date`` (its own 400 shape), the shift import (the row's error), the
  streamed audit export (a 4xx before any byte) and the office pages that take dates (the message on the
  page, 422, nothing saved) each have tests of their own below.

How to cover a new date field: nothing, when it uses ``BoundedDate``/``BoundedDateTime``; the walk finds it.
A new *operation* with a date needs a recipe in ``RECIPES`` (``test_every_dated_operation_has_a_recipe``
says which).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

import httpx
import openpyxl
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import func, select

from app.config import TZ
from app.db import transaction
from app.models import AuditEvent, Resident, ServicePoint, Shift
from app.schemas import dates
from app.services import residents as resident_service
from app.services.rate_limit import MAX_LIMIT_PER_MINUTE
from tests.conftest import make_settings
from tests.factories import World, build_world, submit
from tests.support.apps import build_app
from tests.support.logins import sign_in
from tests.support.problems import PROBLEM_JSON, assert_problem
from tests.test_open311 import assert_error

# --- the values ------------------------------------------------------------------------------------------

# Refused, whatever else the request carries: 422 naming the field (when the caller gets that far).
BAD_DATES = ("9999-12-31", "0001-01-01", "0000-00-00", "2026-02-30", "99999-01-01", "1899-12-31", "2101-01-01",
             "2026-13-01", "1700000000")
BAD_DATETIMES = ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59",
                 "0000-00-00T00:00:00Z", "2026-02-30T10:00:00+08:00", "99999-01-01T00:00:00Z",
                 "2026-06-01T12:00:00+23:59", "2026-06-01T12:00:00-23:59", "2026-06-01T12:00:00+24:00",
                 "2101-01-01T00:00:00+08:00", "1700000000")
# The window's own edges, with the widest offsets: accepted as dates (the request may still be refused for
# something else, never with a 5xx).
EDGE_DATES = (dates.EARLIEST.isoformat(), dates.LATEST.isoformat())
EDGE_DATETIMES = ("1900-01-01T00:00:00", "1900-01-01T00:00:00+14:00", "2100-12-31T23:59:59",
                  "2100-12-31T23:59:59-14:00")
VALUES = {"date": (BAD_DATES, EDGE_DATES), "date-time": (BAD_DATETIMES, EDGE_DATETIMES)}

# Fields another engineer owns (deadlines, issue 15 point 1), bounded by the workflow's own window (its 422
# ``due_at_out_of_range``) rather than by the types: allowed without the schema's window, and walked for
# "never a 5xx, every 4xx problem+json" only; held to the whole rule once they carry the window.
PENDING = {
    ("POST", "/api/v1/forms/{form_id}/assign", ("due_at",)),
    ("POST", "/api/v1/forms/{form_id}/extension", ("due_at",)),
}


# --- reading the schema ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateInput:
    method: str
    path: str
    where: str  # "query", "path", "header", "body"
    name: tuple[str, ...]  # the parameter, or the field's path in the body
    format: str  # "date" or "date-time"
    bounded: bool


def _walk(spec: dict[str, Any], schema: dict[str, Any], name: tuple[str, ...], seen: frozenset[str]) -> Iterator[
        tuple[tuple[str, ...], str, bool]]:
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        if ref in seen or ref not in spec["components"]["schemas"]:
            return  # (FormCreate is referred to but not listed: the submission is read by hand, no dates)
        seen, schema = seen | {ref}, spec["components"]["schemas"][ref]
    if schema.get("format") in ("date", "date-time"):
        yield name, schema["format"], "formatMinimum" in schema and "formatMaximum" in schema
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from _walk(spec, option, name, seen)
    for prop, sub in schema.get("properties", {}).items():
        yield from _walk(spec, sub, (*name, prop), seen)
    if "items" in schema:
        yield from _walk(spec, schema["items"], name, seen)


def date_inputs(spec: dict[str, Any]) -> list[DateInput]:
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                for name, fmt, bounded in _walk(spec, parameter["schema"], (parameter["name"],), frozenset()):
                    found.append(DateInput(method.upper(), path, parameter["in"], name, fmt, bounded))
            for content in operation.get("requestBody", {}).get("content", {}).values():
                for name, fmt, bounded in _walk(spec, content.get("schema", {}), (), frozenset()):
                    found.append(DateInput(method.upper(), path, "body", name, fmt, bounded))
    return sorted(set(found), key=lambda i: (i.path, i.method, i.name))


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = build_app(make_settings(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('dates') / 'schema.db'}"))
    return app.openapi()


def _params(dependant: Any) -> Iterator[Any]:
    """Every parameter a route reads through FastAPI, its dependencies' included."""
    yield from (*dependant.query_params, *dependant.path_params, *dependant.header_params, *dependant.body_params)
    for sub in dependant.dependencies:
        yield from _params(sub)


def _mentions_date(annotation: Any) -> bool:
    if isinstance(annotation, type):
        if issubclass(annotation, date):
            return True
        if issubclass(annotation, BaseModel):
            return any(_mentions_date(f.annotation) for f in annotation.model_fields.values())
    return any(_mentions_date(arg) for arg in get_args(annotation))


def test_every_date_input_of_the_api_is_bounded(spec: dict[str, Any], tmp_path) -> None:
    inputs = date_inputs(spec)
    assert len(inputs) > 40, "the walk found almost no date inputs: did the schema's shape change?"
    unbounded = [i for i in inputs if not i.bounded and (i.method, i.path, i.name) not in PENDING]
    assert not unbounded, "date inputs without the window (use app.schemas.dates.BoundedDate/BoundedDateTime):\n" + \
        "\n".join(f"  {i.method} {i.path} {i.where} {'.'.join(i.name)}" for i in unbounded)
    # Routes left out of the schema (Open311, the pages) read their arguments by hand, through
    # app.schemas.dates (tests below); none may declare a typed date the walk above would not see.
    app = build_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'routes.db'}"))
    hidden = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or route.include_in_schema:
            continue
        hidden += [f"{route.path} {p.name}" for p in _params(route.dependant) if _mentions_date(p.field_info.annotation)]
    assert not hidden, f"typed dates on routes outside the schema: {hidden}"


def test_every_dated_operation_has_a_recipe(spec: dict[str, Any]) -> None:
    operations = {(i.method, i.path) for i in date_inputs(spec)}
    missing = sorted(operations - set(RECIPES))
    stale = sorted(set(RECIPES) - operations)
    assert not missing, f"operations taking a date without a recipe in RECIPES (add one): {missing}"
    assert not stale, f"recipes for operations that take no date (any more): {stale}"


# --- the town and its callers ----------------------------------------------------------------------------

# Each kind of caller: the public, a WeChat resident, an API client holding every scope, the office (admin:
# the audit log is theirs alone) and staff bound to a unit or a workroom (their lists are filtered).
CALLERS = ("admin", "handler_a", "rep", "client", "resident", "anonymous")


@dataclass
class Town:
    world: World
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def rep(self, key: str = "rep") -> int:
        return self.world.representatives[key].id


async def build_town(client: httpx.AsyncClient, sessionmaker: Any) -> Town:
    world = await build_world(sessionmaker)
    town = Town(world, {"anonymous": {}})
    for user in ("admin", "coordinator", "handler_a", "rep"):
        town.credentials[user] = world.auth(user)
    created = await client.post("/api/v1/api-clients", headers=world.auth("admin"), json={
        "name": "日期边界", "scopes": ["forms:write", "forms:read", "stats:read", "webhooks"],
        "rate_limit_per_minute": MAX_LIMIT_PER_MINUTE})
    assert created.status_code == 201, created.text
    town.credentials["client"] = {"X-API-Key": created.json()["key"]}
    async with transaction(sessionmaker) as session:
        resident = Resident(openid="dates-resident")
        session.add(resident)
        await session.flush()
        token, _ = await resident_service.issue_token(session, resident=resident, ttl_seconds=3600)
    town.credentials["resident"] = {"Authorization": f"Bearer {token}"}
    point = await client.post("/api/v1/service-points", headers=world.auth("coordinator"), json={
        "workroom_code": "LS-01", "title": "流动服务点进村", "place_type": "village", "location": "石塘湾村",
        "starts_at": "2030-06-03T09:00:00+08:00", "ends_at": "2030-06-03T11:00:00+08:00"})
    assert point.status_code == 201, point.text
    town.ids["point"] = point.json()["id"]
    activity = await client.post("/api/v1/activities", headers=world.auth("coordinator"), json={
        "workroom_code": "LS-01", "title": "日期边界活动", "held_on": "2030-06-03"})  # issue 20.2
    assert activity.status_code == 201, activity.text
    town.ids["activity"] = activity.json()["id"]
    form = await submit(client, workroom_code="LS-01")
    town.ids["form"] = form["id"]
    assigned = await submit(client, workroom_code="LS-01")
    answer = await client.post(f"/api/v1/forms/{assigned['id']}/assign", headers=world.auth("coordinator"),
                               json={"unit_id": world.units["A"].id})
    assert answer.status_code == 200, answer.text
    town.ids["assigned"] = assigned["id"]
    return town


# --- the recipes: a valid request for every operation that takes a date -----------------------------------


@dataclass(frozen=True)
class Call:
    path: str
    params: dict[str, str] | None = None
    json: Any = None


Recipe = Callable[[Town, tuple[str, ...], str], Call]


def around(value: str, hours: int, fallback: str) -> str:
    """A time ``hours`` from ``value`` when it is a usable datetime, else ``fallback``: the other end of a
    span whose one end is under test."""
    try:
        moved = dates.parse_datetime(value) + timedelta(hours=hours)
        return dates.check_datetime(moved).isoformat()
    except (dates.DateRangeError, OverflowError):
        return fallback


def same_day(value: str) -> str:
    try:
        return dates.parse_date(value).isoformat()
    except dates.DateRangeError:
        return "2030-06-03"


def query(path: str) -> Recipe:
    return lambda t, name, value: Call(path, params={name[0]: value})


def span(path: str, extra: Callable[[Town], dict[str, Any]]) -> Recipe:
    """A body with ``starts_at``/``ends_at``: the field under test takes the value, the other follows it."""
    def recipe(town: Town, name: tuple[str, ...], value: str) -> Call:
        if name == ("starts_at",):
            times = {"starts_at": value, "ends_at": around(value, 2, "2030-06-04T11:00:00+08:00")}
        else:
            times = {"starts_at": around(value, -2, "2030-06-04T09:00:00+08:00"), "ends_at": value}
        return Call(path.format(**town.ids), json={**extra(town), **times})
    return recipe


def rota(path: str) -> Recipe:
    def recipe(town: Town, name: tuple[str, ...], value: str) -> Call:
        days = {"from": value, "to": same_day(value)} if name == ("from",) else {"from": same_day(value), "to": value}
        return Call(path, json={**days, "skip_holidays": True, "workrooms": [{
            "code": "LS-02", "weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "09:00", "end": "11:00",
            "representative_ids": [town.rep("rep2")]}]})
    return recipe


def assign(town: Town, name: tuple[str, ...], value: str) -> Call:
    """A submitted form given to unit A with a deadline (``PENDING``: the deadlines' field)."""
    return Call(f"/api/v1/forms/{town.ids['form']}/assign",
                json={"unit_id": town.world.units["A"].id, name[0]: value})


def extension(town: Town, name: tuple[str, ...], value: str) -> Call:
    """Unit A asks for a later deadline on the form it holds (``PENDING``: the deadlines' field)."""
    return Call(f"/api/v1/forms/{town.ids['assigned']}/extension", json={name[0]: value, "reason": "需要协调供电公司。"})


def both_days(path: Callable[[Town], str]) -> Recipe:
    """``from`` and ``to`` together (the records take both or neither): the other day follows the one under test."""
    def recipe(town: Town, name: tuple[str, ...], value: str) -> Call:
        days = {"from": value, "to": same_day(value)} if name == ("from",) else {"from": same_day(value), "to": value}
        return Call(path(town), params=days)
    return recipe


POINT = {"workroom_code": "LS-01", "title": "流动服务点进村", "place_type": "village", "location": "石塘湾村"}

RECIPES: dict[tuple[str, str], Recipe] = {
    ("GET", "/api/v1/forms"): query("/api/v1/forms"),
    ("GET", "/api/v1/forms/export.{fmt}"): query("/api/v1/forms/export.csv"),
    ("POST", "/api/v1/exports"): lambda t, name, value: Call("/api/v1/exports", json={
        "format": "csv", "filters": {name[-1]: value}}),
    ("GET", "/api/v1/stats/summary"): query("/api/v1/stats/summary"),
    ("GET", "/api/v1/stats/answer-days"): query("/api/v1/stats/answer-days"),
    ("GET", "/api/v1/stats/by-workroom"): query("/api/v1/stats/by-workroom"),
    ("GET", "/api/v1/stats/by-category"): query("/api/v1/stats/by-category"),
    ("GET", "/api/v1/stats/monthly"): query("/api/v1/stats/monthly"),
    ("GET", "/api/v1/stats/by-unit"): query("/api/v1/stats/by-unit"),
    ("GET", "/api/v1/stats/by-representative"): query("/api/v1/stats/by-representative"),
    ("GET", "/api/v1/stats/{view}/export.{fmt}"): query("/api/v1/stats/monthly/export.csv"),
    ("GET", "/api/v1/workrooms/{code}/shifts"): query("/api/v1/workrooms/LS-01/shifts"),
    ("POST", "/api/v1/workrooms/{code}/shifts"): span("/api/v1/workrooms/LS-01/shifts",
                                                     lambda t: {"representative_id": t.rep()}),
    ("GET", "/api/v1/workrooms/{code}/on-duty"): query("/api/v1/workrooms/LS-01/on-duty"),
    ("POST", "/api/v1/rota/preview"): rota("/api/v1/rota/preview"),
    ("POST", "/api/v1/rota/commit"): rota("/api/v1/rota/commit"),
    ("GET", "/api/v1/attendance"): query("/api/v1/attendance"),
    ("GET", "/api/v1/attendance/export.{fmt}"): query("/api/v1/attendance/export.csv"),
    ("GET", "/api/v1/rosters/export.{fmt}"): query("/api/v1/rosters/export.xlsx"),
    ("GET", "/api/v1/service-points"): query("/api/v1/service-points"),
    ("POST", "/api/v1/service-points"): span("/api/v1/service-points", lambda t: POINT),
    ("PATCH", "/api/v1/service-points/{service_point_id}"): span("/api/v1/service-points/{point}", lambda t: {}),
    ("GET", "/api/v1/service-points/funnel"): query("/api/v1/service-points/funnel"),
    ("GET", "/api/v1/service-points/funnel/export.{fmt}"): query("/api/v1/service-points/funnel/export.csv"),
    ("GET", "/api/v1/activities"): query("/api/v1/activities"),
    ("GET", "/api/v1/activities/export.{fmt}"): query("/api/v1/activities/export.csv"),
    ("POST", "/api/v1/activities"): lambda t, name, value: Call("/api/v1/activities", json={
        "workroom_code": "LS-01", "title": "日期边界活动", name[0]: value}),
    ("PATCH", "/api/v1/activities/{activity_id}"): lambda t, name, value: Call(
        f"/api/v1/activities/{t.ids['activity']}", json={name[0]: value}),
    ("GET", "/api/v1/stats/activities"): query("/api/v1/stats/activities"),
    ("GET", "/api/v1/representatives/{representative_id}/record"): both_days(
        lambda t: f"/api/v1/representatives/{t.rep()}/record"),
    ("GET", "/api/v1/workrooms/{code}/records"): both_days(lambda t: "/api/v1/workrooms/LS-01/records"),
    ("GET", "/api/v1/audit"): query("/api/v1/audit"),
    ("GET", "/api/v1/audit/export.csv"): query("/api/v1/audit/export.csv"),
    ("POST", "/api/v1/working-calendar/days"): lambda t, name, value: Call("/api/v1/working-calendar/days", json={
        "day": value, "kind": "holiday", "name": "边界测试"}),
    ("PATCH", "/api/v1/working-calendar/days/{day}"): lambda t, name, value: Call(
        f"/api/v1/working-calendar/days/{value}", json={"name": "边界测试"}),
    ("DELETE", "/api/v1/working-calendar/days/{day}"): lambda t, name, value: Call(
        f"/api/v1/working-calendar/days/{value}"),
    ("POST", "/api/v1/forms/{form_id}/assign"): assign,
    ("POST", "/api/v1/forms/{form_id}/extension"): extension,
}


# --- the walk --------------------------------------------------------------------------------------------


def judge(response: httpx.Response, name: tuple[str, ...], *, bad: bool) -> str | None:
    """What is wrong with the answer to one value, or None."""
    status = response.status_code
    said = f"{status}: {response.text[:300]}"
    if status >= 500:
        return f"a server error, {said}"
    if status >= 400:
        if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
            return f"a {status} that is not problem+json ({response.headers.get('content-type')})"
        body = response.json()
        if body.get("status") != status:
            return f"problem+json status {body.get('status')} under HTTP {status}"
    about_it = [e for e in (response.json().get("errors") or []) if tuple(map(str, e["loc"][1:])) == name] \
        if status == 422 else []
    if bad:
        if status in (401, 403):
            return None  # refused before the date was read
        if status != 422 or not about_it:
            return f"expected 422 naming {'.'.join(name)}, got {said}"
        if not about_it[0]["msg"].startswith(f"{'.'.join(name)}：") or about_it[0]["type"] not in dates.ERROR_TYPES:
            return f"not the dates' message naming the field: {about_it[0]}"
        if about_it[0]["msg"] not in response.json()["detail"]:
            return f"the detail does not say it: {response.json()['detail']}"
        return None
    return None  # an edge: the services ran (a narrower domain, a deadline say, may still refuse it: a 4xx)


async def test_no_date_makes_a_server_error(client, sessionmaker, spec: dict[str, Any]) -> None:
    """Every value as the first caller that gets past the door; as every other caller, the edges (where the
    services run, with that caller's own filters) and one bad value (past the door every caller meets the
    same validation, already walked)."""
    town = await build_town(client, sessionmaker)
    wrong: list[str] = []
    sent = 0
    for item in date_inputs(spec):
        # A field the deadlines bound their own way: never a 5xx, any 4xx (their window, their message).
        strict = item.bounded or (item.method, item.path, item.name) not in PENDING
        bad_values, edge_values = VALUES[item.format]
        recipe = RECIPES[(item.method, item.path)]
        walked_all = False
        for caller in CALLERS:
            bad_ones = bad_values if not walked_all else bad_values[:1]
            for value, bad in [*((v, True) for v in bad_ones), *((v, False) for v in edge_values)]:
                call = recipe(town, item.name, value)
                sent += 1
                try:
                    response = await client.request(item.method, call.path, params=call.params, json=call.json,
                                                    headers=town.credentials[caller])
                except Exception as exc:  # a streamed answer that died after its status (the ASGI client raises)
                    wrong.append(f"  {item.method} {item.path} {'.'.join(item.name)}={value} as {caller}: "
                                 f"the answer broke off: {type(exc).__name__}: {str(exc)[:120]}")
                    continue
                problem = judge(response, item.name, bad=bad and strict)
                if problem:
                    wrong.append(f"  {item.method} {item.path} {'.'.join(item.name)}={value} as {caller}: {problem}")
                if bad and response.status_code in (401, 403):
                    break  # this caller is refused before any date is read: the other values are the same
            else:
                walked_all = True
    assert sent > 500
    assert not wrong, f"{len(wrong)} of {sent} answers wrong:\n" + "\n".join(wrong[:60])


# --- the widening helpers ----------------------------------------------------------------------------------


def test_widening_a_day_never_overflows() -> None:
    assert dates.next_day(date.max) == date(2101, 1, 1) and dates.next_day(date(2026, 2, 28)) == date(2026, 3, 1)
    lower, upper = dates.local_day_bounds(date.min, date.max)
    assert lower.astimezone(UTC) < upper.astimezone(UTC)  # both turn into UTC (what the databases store)
    assert dates.local_day_bounds(date(2026, 5, 1), date(2026, 5, 1))[1] == datetime(2026, 5, 2, tzinfo=TZ)


@pytest.mark.parametrize(("kind", "value", "error"), [
    *(("date", v, None) for v in EDGE_DATES),
    *(("date-time", v, None) for v in EDGE_DATETIMES),
    ("date", "1899-12-31", "date_out_of_range"), ("date", "2101-01-01", "date_out_of_range"),
    ("date", "2026-02-30", "date_invalid"), ("date", "1700000000", "date_invalid"),
    ("date-time", "2101-01-01T00:00:00-14:00", "datetime_out_of_range"),
    ("date-time", "2026-06-01T00:00:00+14:01", "datetime_offset_out_of_range"),
    ("date-time", "2026-06-01T24:00:01", "datetime_invalid"),
])
def test_the_window_is_1900_to_2100_inclusive(kind: str, value: str, error: str | None) -> None:
    model = TypeAdapter(dates.BoundedDate if kind == "date" else dates.BoundedDateTime)
    if error is None:
        model.validate_python(value)
    else:
        with pytest.raises(ValidationError) as refused:
            model.validate_python(value)
        assert refused.value.errors()[0]["type"] == error


# --- the API's answer, as a client reads it ------------------------------------------------------------


async def test_the_public_calendar_refuses_a_far_date_naming_the_field(client, sessionmaker) -> None:
    # The probe's own example: anonymous, GET /api/v1/service-points?to=9999-12-31 was a 500.
    await build_world(sessionmaker)
    body = assert_problem(await client.get("/api/v1/service-points", params={"to": "9999-12-31"}), 422,
                          "validation_error")
    [error] = body["errors"]
    assert error == {"loc": ["query", "to"], "msg": "to：日期须在 1900-01-01 至 2100-12-31 之间",
                     "type": "date_out_of_range"}
    assert "to：日期须在 1900-01-01 至 2100-12-31 之间。" in body["detail"]
    body = assert_problem(await client.get("/api/v1/service-points", params={"from": "2026-02-30"}), 422)
    assert body["errors"][0]["msg"].startswith("from：不是有效的日期")


async def test_an_odd_offset_is_refused_and_a_plain_time_is_beijing_time(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    shifts = "/api/v1/workrooms/LS-01/shifts"
    body = {"representative_id": world.representatives["rep"].id, "starts_at": "2030-06-03T09:00:00+23:59",
            "ends_at": "2030-06-03T11:00:00+08:00"}
    problem = assert_problem(await client.post(shifts, json=body, headers=world.auth("coordinator")), 422)
    assert problem["errors"][0]["msg"] == "starts_at：时区偏移须在 -14:00 至 +14:00 之间"
    body["starts_at"] = "2030-06-03T09:00"
    created = await client.post(shifts, json=body, headers=world.auth("coordinator"))
    assert created.status_code == 201, created.text
    assert created.json()["starts_at"] == "2030-06-03T09:00:00+08:00"


# --- the audit export: refused before its first byte -------------------------------------------------------


async def test_the_audit_export_refuses_a_bad_filter_before_sending_anything(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    admin = world.auth("admin")
    for since in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z"):
        async with client.stream("GET", "/api/v1/audit/export.csv", params={"since": since}, headers=admin) as answer:
            await answer.aread()  # the whole answer arrives: no stream dies half-way
        assert_problem(answer, 422, "validation_error")
    async with transaction(sessionmaker) as session:  # refused exports are not recorded as done
        assert await session.scalar(select(func.count()).select_from(AuditEvent)
                                    .where(AuditEvent.action == "audit.export")) == 0
    answer = await client.get("/api/v1/audit/export.csv", params={"since": "1900-01-01T00:00:00+14:00",
                                                                  "until": "2100-12-31T23:59:59-14:00"}, headers=admin)
    assert answer.status_code == 200, answer.text
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [row[8] for row in rows[1:]] == ["audit.export"]  # the export's own line, inside the window


# --- Open311: its own error shape --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_open311_dates_outside_the_window_are_its_400_naming_the_argument(client, sessionmaker, fmt) -> None:
    town = await build_town(client, sessionmaker)
    for caller in ("anonymous", "resident", "coordinator"):
        headers = town.credentials[caller]
        for name in ("start_date", "end_date"):
            for value in (*BAD_DATES, *BAD_DATETIMES):
                answer = await client.get(f"/open311/v2/requests.{fmt}", params={name: value}, headers=headers)
                description = assert_error(answer, 400)
                assert name in description, (value, description)
            for value in (*EDGE_DATES, "1900-01-01T00:00:00+14:00", "2100-12-31T23:59:59-14:00"):
                answer = await client.get(f"/open311/v2/requests.{fmt}", params={name: value}, headers=headers)
                assert answer.status_code == 200, (name, value, answer.text)


# --- imports: the row's error ------------------------------------------------------------------------------


async def test_a_shift_import_names_each_row_whose_date_is_out_of_range(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    header = ["工作室编号", "日期", "开始", "结束", "代表姓名", "代表编号"]
    days = ["9999-12-31", "0001-01-01", "0000-00-00", "2026-02-30", "1899/12/31", "2101年1月1日", "1900-01-01"]
    rows = [header, *(["LS-01", day, "09:00", "11:00", "张代表", ""] for day in days)]
    content = ("\ufeff" + "\r\n".join(",".join(row) for row in rows) + "\r\n").encode()
    answer = await client.post("/api/v1/imports", data={"kind": "shifts"}, headers=world.auth("coordinator"),
                               files={"file": ("值班.csv", content, "text/csv")})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["status"] == "failed" and job["imported"] == 0
    assert [(e["row"], e["column"]) for e in job["errors"]] == [(n, "日期") for n in range(2, 8)]
    reasons = [e["reason"] for e in job["errors"]]
    assert reasons[0] == "“9999-12-31”：日期须在 1900-01-01 至 2100-12-31 之间"
    assert reasons[2] == "“0000-00-00”不是有效日期，应为 YYYY-MM-DD"
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Shift)) == 0


async def test_a_shift_sheet_with_a_far_date_cell_names_the_row(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    workbook = openpyxl.Workbook()
    workbook.active.append(["工作室编号", "日期", "开始", "结束", "代表姓名", "代表编号"])
    workbook.active.append(["LS-01", date(9999, 12, 31), "09:00", "11:00", "张代表", None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    answer = await client.post("/api/v1/imports", data={"kind": "shifts"}, headers=world.auth("coordinator"),
                               files={"file": ("值班.xlsx", buffer.getvalue(), "application/octet-stream")})
    assert answer.status_code == 201, answer.text
    [error] = answer.json()["errors"]
    assert (error["row"], error["column"]) == (2, "日期") and "日期须在 1900-01-01 至 2100-12-31 之间" in error["reason"]


async def test_a_shift_import_at_the_edges_of_the_window_imports(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    rows = [["工作室编号", "日期", "开始", "结束", "代表姓名", "代表编号"],
            ["LS-01", "1900-01-01", "09:00", "11:00", "张代表", ""], ["LS-01", "2100/12/31", "22:00", "23:30", "张代表", ""]]
    content = ("\ufeff" + "\r\n".join(",".join(row) for row in rows) + "\r\n").encode()
    answer = await client.post("/api/v1/imports", data={"kind": "shifts"}, headers=world.auth("coordinator"),
                               files={"file": ("值班.csv", content, "text/csv")})
    assert answer.status_code == 201 and answer.json()["imported"] == 2, answer.text


# --- the office pages that take dates: the message on the page ------------------------------------------------


@dataclass(frozen=True)
class PageCase:
    method: str
    path: str
    field: str  # the form field or query parameter holding the date
    form: Callable[[World, str], dict[str, Any]]  # the rest of a valid form (or query) around the date


def _rota_page_form(world: World, value: str) -> dict[str, Any]:
    return {"planned": "1", "from": value, "to": "2030-06-09", "w-LS-01-on": "1", "w-LS-01-weekday": ["1"],
            "w-LS-01-start": "09:00", "w-LS-01-end": "11:00", "w-LS-01-rep": [str(world.representatives["rep"].id)]}


PAGE_CASES = [
    PageCase("GET", "/office/rosters", "week", lambda w, v: {"workroom": "LS-01", "week": v}),
    PageCase("GET", "/office/attendance", "from", lambda w, v: {"from": v}),
    PageCase("GET", "/office/attendance", "to", lambda w, v: {"to": v}),
    PageCase("GET", "/office/funnel", "from", lambda w, v: {"from": v}),
    PageCase("GET", "/office/funnel", "to", lambda w, v: {"to": v}),
    PageCase("POST", "/office/rosters/shifts", "day", lambda w, v: {
        "workroom": "LS-01", "week": "2030-06-03", "representative_id": str(w.representatives["rep"].id), "day": v,
        "start": "09:00", "end": "11:00"}),
    PageCase("POST", "/office/rota/preview", "from", _rota_page_form),
    PageCase("POST", "/office/rota/commit", "from", _rota_page_form),
    PageCase("POST", "/office/service-points", "starts_at", lambda w, v: {
        "workroom_code": "LS-01", "title": "流动服务点进村", "place_type": "village", "location": "石塘湾村",
        "starts_at": v, "ends_at": "2030-06-03T11:00"}),
]
PAGE_BAD = {"starts_at": ("9999-12-31T09:00", "0001-01-01T09:00", "2026-02-30T09:00", "0000-00-00T00:00")}
PAGE_MESSAGES = ("日期须在 1900-01-01 至 2100-12-31 之间", "不是有效的日期", "不是有效的时间")


async def saved(sessionmaker: Any) -> tuple[int, int]:
    async with transaction(sessionmaker) as session:
        return (int(await session.scalar(select(func.count()).select_from(Shift))),
                int(await session.scalar(select(func.count()).select_from(ServicePoint))))


@pytest.mark.parametrize("case", PAGE_CASES, ids=lambda c: f"{c.method} {c.path} {c.field}")
async def test_an_office_page_shows_a_bad_date_on_the_page(client, sessionmaker, case: PageCase) -> None:
    world = await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    before = await saved(sessionmaker)
    for value in PAGE_BAD.get(case.field, ("9999-12-31", "0001-01-01", "2026-02-30", "0000-00-00", "99999-01-01")):
        form = case.form(world, value)
        if case.method == "GET":
            answer = await client.get(case.path, params=form)
        else:
            answer = await client.post(case.path, data={"csrf_token": token, **form})
        assert answer.status_code == 422, (value, answer.status_code, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert any(message in answer.text for message in PAGE_MESSAGES), (value, answer.text[:2000])
    assert await saved(sessionmaker) == before  # nothing written


async def test_an_office_page_takes_the_edges_of_the_window(client, sessionmaker) -> None:
    world = await build_world(sessionmaker)
    token = await sign_in(client, "coordinator")
    for path, params in (("/office/rosters", {"week": "1900-01-01"}), ("/office/rosters", {"week": "2100-12-31"}),
                         ("/office/attendance", {"from": "1900-01-01", "to": "2100-12-31"}),
                         ("/office/funnel", {"from": "2100-12-31", "to": "2100-12-31"})):
        answer = await client.get(path, params=params)
        assert answer.status_code < 500 and "日期须在" not in answer.text, (path, params, answer.text[:300])
    added = await client.post("/office/rosters/shifts", data={
        "csrf_token": token, "workroom": "LS-01", "week": "2100-12-27",
        "representative_id": str(world.representatives["rep"].id), "day": "2100-12-31", "start": "22:00",
        "end": "23:30"})
    assert added.status_code == 303 and added.headers["location"].endswith("week=2100-12-27"), added.text[:300]
