"""Who may do what, proven (issue 8, point 3): one table lists every endpoint of the API, Open311 and the
operations probes against every kind of caller, and the expected answer; the tests walk all of it with real
requests against a real database (SQLite and PostgreSQL).

The callers (``CALLERS``): ``anonymous``; ``resident`` (a WeChat resident's ``wx_`` bearer token);
``admin``, ``coordinator``, ``handler`` (handler_a, unit A) and ``rep`` (张代表, workroom LS-01) with their
staff tokens; and four API clients (``X-API-Key``) holding one scope each: ``client:forms:write``,
``client:forms:read``, ``client:stats:read``, ``client:webhooks``.

How to read a row: ``TABLE[(METHOD, path template)] = Row(who may, the request, exceptions)``.

- ``Row.may`` is the set of callers allowed. An allowed caller must get a 2xx.
- Everyone else is refused: 401 when anonymous, 403 otherwise (problem+json, whose ``status`` says the same;
  Open311's own error list for ``/open311/`` paths).
- ``Row.answers`` overrides single cells where the answer is neither of those on purpose: ``HIDDEN`` (404,
  the endpoint hides that the object exists, e.g. another client's webhook), or a stated status with a
  comment saying why (Open311 refusing a missing api_key with 403, a token URL that never exists …).
- ``Row.call(town, caller)`` builds the request. It may create what the request needs (a form in the right
  state, a shift, a webhook …), shared through ``town.shared`` or fresh for every caller when the request
  changes or uses up its object (deleting, assigning, …), so that every allowed caller gets its 2xx.

How to add a row (``test_every_endpoint_has_a_row`` fails until you do):

1. Add ``(METHOD, "/path/{template}")`` to ``TABLE``, exactly as the route declares it.
2. Say who may: a set such as ``ALL``, ``STAFF``, ``OFFICE``, ``ADMIN_ONLY``, ``{RESIDENT}``, ``{W}`` (a
   client with ``forms:write``) or a union of them (``STAFF | {R}``).
3. Give the request: ``at("/api/v1/…")`` when it is the same for every caller, else a ``lambda t, c: …``
   calling a ``Town`` helper (or a new one) that fills the path's ids with objects that exist and sends a
   body valid enough to pass validation (FastAPI validates the body before the route can refuse the caller,
   so a bad body would hide the refusal behind a 422).
4. A cell that is neither allowed nor the plain 401/403 goes in ``Row.answers``, with a comment saying why.
   A cell whose current answer looks wrong is marked ``# BUG? …``: kept as it is when it is safe (more
   restrictive than needed), written as it should be (so the row fails) when someone gets in who must not.
5. Run ``.venv/bin/python -m pytest tests/test_authorization_matrix.py -q -k "<path>"`` on both engines.

The world is built once per engine (module-scoped) to keep the walk fast; the rows are written so that
none depends on another having run.

The HTML pages have a table of their own (``PAGES``, at the end of this file: ``test_every_page_has_a_row``
fails until every page route has a row), walked by signed-in browsers in the same world.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from PIL import Image
from sqlalchemy import select, update
from starlette.routing import Mount

from app.http import abuse
from app.http.deps import SESSION_COOKIE
from app.db import transaction
from tests.support.apps import build_app
from app.models import OpinionForm, Resident, utcnow
from app.models.similar import TopicMember
from app.services import auth as auth_service
from app.services import residents as resident_service
from app.services import similar_forms
from app.services.rate_limit import MAX_LIMIT_PER_MINUTE
from app.web import office as office_page
from app.web.session import CSRF_FIELD
from tests.conftest import ENGINES, fresh_database, make_settings, wechat_settings
from tests.factories import PASSWORD, World, build_world
from tests.fake_wechat import FakeWeChat

# --- the callers -------------------------------------------------------------------------------------

ANON, RESIDENT = "anonymous", "resident"
ADMIN, COORD, HANDLER, REP = "admin", "coordinator", "handler", "rep"
W, R, S, H = "client:forms:write", "client:forms:read", "client:stats:read", "client:webhooks"
# Allowed callers tend to come first: the ones refused after them then meet warm caches (the login cache,
# the dashboard's poll answers), which must refuse them all the same.
CALLERS = (ADMIN, COORD, HANDLER, REP, W, R, S, H, RESIDENT, ANON)
CLIENT_SCOPES = {W: "forms:write", R: "forms:read", S: "stats:read", H: "webhooks"}
STAFF_USERS = {ADMIN: "admin", COORD: "coordinator", HANDLER: "handler_a", REP: "rep"}

ALL = frozenset(CALLERS)
STAFF = frozenset(STAFF_USERS)
OFFICE = frozenset({ADMIN, COORD})
ADMIN_ONLY = frozenset({ADMIN})
CLIENTS = frozenset(CLIENT_SCOPES)
NOBODY: frozenset[str] = frozenset()

OK = 200  # any 2xx
HIDDEN = 404  # refused by answering as if the object did not exist


@dataclass(frozen=True)
class Call:
    """One request: the path (ids filled in) and what it carries. ``headers`` replaces the caller's own
    credentials when set."""

    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    headers: Mapping[str, str] | None = None


CallFn = Callable[["Town", str], Awaitable[Call]]


@dataclass(frozen=True)
class Row:
    may: AbstractSet[str]
    call: CallFn
    answers: Mapping[str, int] = field(default_factory=dict)

    def expected(self, caller: str) -> int:
        if caller in self.answers:
            return self.answers[caller]
        if caller in self.may:
            return OK
        return 401 if caller == ANON else 403


def at(path: str, **request: Any) -> CallFn:
    """The same request for every caller."""

    async def call(_town: Town, _caller: str) -> Call:
        return Call(path, **request)

    return call


def every(status: int) -> dict[str, int]:
    return dict.fromkeys(CALLERS, status)


CONTENT = "村口路灯坏了三盏，晚上走路看不清，请尽快修复。"
CALENDAR_YEAR = date.today().year + 5  # the working-day calendar rows' own days (entries reach five years ahead)
OPEN311_FILED = {"service_code": "urban_traffic", "address_string": "洛社镇石塘湾村村口", "description": CONTENT}


# --- the table -----------------------------------------------------------------------------------------

TABLE: dict[tuple[str, str], Row] = {
    # Operations probes. /metrics runs here with MINYI_METRICS_TOKEN set, as a production server should:
    # only that token opens it, so every caller of the table (staff bearer tokens included: they are not
    # the metrics credential) gets 401 with WWW-Authenticate; test_the_metrics_token_opens_metrics shows
    # the token itself working. (Unset, /metrics is open to anyone: see its setting's comment.)
    ("GET", "/healthz"): Row(ALL, at("/healthz")),
    ("GET", "/readyz"): Row(ALL, at("/readyz")),
    ("GET", "/metrics"): Row(NOBODY, at("/metrics"), every(401)),

    # --- auth and users
    ("POST", "/api/v1/auth/token"): Row(ALL, at("/api/v1/auth/token", data={"username": "coordinator",
                                                                           "password": PASSWORD})),
    # Logging out revokes the token it is sent with: staff log out a fresh token of their own.
    ("POST", "/api/v1/auth/logout"): Row(STAFF, lambda t, c: t.logout(c)),
    ("GET", "/api/v1/auth/me"): Row(STAFF, at("/api/v1/auth/me")),
    ("POST", "/api/v1/users"): Row(ADMIN_ONLY, lambda t, c: t.new_user()),

    # --- reference data
    ("GET", "/api/v1/workrooms"): Row(STAFF, at("/api/v1/workrooms")),
    ("POST", "/api/v1/workrooms"): Row(ADMIN_ONLY, lambda t, c: t.unique(lambda n: Call(
        "/api/v1/workrooms", json={"code": f"MX-{n}", "name": f"矩阵测试工作室{n}"}))),
    ("GET", "/api/v1/workrooms/{code}"): Row(STAFF, at("/api/v1/workrooms/LS-01")),
    ("PATCH", "/api/v1/workrooms/{code}"): Row(ADMIN_ONLY, at("/api/v1/workrooms/LS-02", json={"area": "第二网格"})),
    ("GET", "/api/v1/representatives"): Row(STAFF, at("/api/v1/representatives")),
    ("POST", "/api/v1/representatives"): Row(ADMIN_ONLY, at("/api/v1/representatives", json={"name": "王代表"})),
    ("GET", "/api/v1/representatives/{representative_id}"): Row(
        STAFF, lambda t, c: t.path("/api/v1/representatives/{}", t.rep_id("rep2"))),
    ("PATCH", "/api/v1/representatives/{representative_id}"): Row(
        ADMIN_ONLY, lambda t, c: t.path("/api/v1/representatives/{}", t.rep_id("rep2"), json={"level": "district"})),
    ("GET", "/api/v1/units"): Row(STAFF, at("/api/v1/units")),
    ("POST", "/api/v1/units"): Row(ADMIN_ONLY, lambda t, c: t.unique(lambda n: Call(
        "/api/v1/units", json={"name": f"矩阵测试办{n}"}))),
    ("GET", "/api/v1/categories"): Row(ALL, at("/api/v1/categories")),
    ("POST", "/api/v1/categories"): Row(ADMIN_ONLY, lambda t, c: t.unique(lambda n: Call(
        "/api/v1/categories", json={"code": f"matrix_{n}", "name": f"矩阵测试类别{n}"}))),
    ("PATCH", "/api/v1/categories/{code}"): Row(ADMIN_ONLY, at("/api/v1/categories/urban_traffic",
                                                               json={"keywords": "路灯,道路"})),

    # --- exports
    ("GET", "/api/v1/forms/export.{fmt}"): Row(STAFF, at("/api/v1/forms/export.csv")),
    # Files are for staff, as their summaries say: a stats:read client reads the same views as JSON only,
    # a forms:read client lists forms but does not export them.
    ("GET", "/api/v1/stats/{view}/export.{fmt}"): Row(STAFF, at("/api/v1/stats/by-workroom/export.csv")),
    ("POST", "/api/v1/exports"): Row(STAFF, at("/api/v1/exports", json={"format": "csv"})),
    # The job is the coordinator's: its creator and admins read it; other staff get 403 export_forbidden.
    ("GET", "/api/v1/exports/{job_id}"): Row(
        OFFICE, lambda t, c: t.path("/api/v1/exports/{}", t.export_job())),
    ("GET", "/api/v1/exports/{job_id}/download"): Row(
        OFFICE, lambda t, c: t.path("/api/v1/exports/{}/download", t.export_job())),

    # --- forms and their workflow: a fresh form in the right state for every caller where the action
    # changes it. Forms are in LS-01 (张代表's workroom) and given to unit A (handler_a's) unless said.
    ("POST", "/api/v1/forms"): Row(ALL - {R, S, H}, at("/api/v1/forms", json={
        "content": CONTENT, "category": "urban_traffic", "workroom_code": "LS-01"})),
    ("GET", "/api/v1/forms"): Row(STAFF | {R}, at("/api/v1/forms")),
    # A form of LS-02 given to unit B: handler_a and 张代表 may not see it. They get 403 form_forbidden,
    # not a 404: staff learn that the id exists, nothing more (residents and clients are 403 anyway).
    ("GET", "/api/v1/forms/{form_id}"): Row(OFFICE | {R}, lambda t, c: t.on_form(
        "/api/v1/forms/{}", "ls02-unit-b", state="assigned", workroom="LS-02", unit="B")),
    # Similar forms: as the form itself (its similar forms are then filtered by the caller's visibility).
    ("GET", "/api/v1/forms/{form_id}/similar"): Row(OFFICE | {R}, lambda t, c: t.on_form(
        "/api/v1/forms/{}/similar", "ls02-unit-b", state="assigned", workroom="LS-02", unit="B")),
    ("POST", "/api/v1/forms/{form_id}/assign"): Row(OFFICE, lambda t, c: t.fresh_form(
        "assign", "submitted", {"unit_id": t.unit("A")})),
    ("POST", "/api/v1/forms/{form_id}/reassign"): Row(OFFICE, lambda t, c: t.fresh_form(
        "reassign", "assigned", {"unit_id": t.unit("B")})),
    ("POST", "/api/v1/forms/{form_id}/reply"): Row(OFFICE | {HANDLER}, lambda t, c: t.fresh_form(
        "reply", "assigned", {"reply": "已安排维修，三日内完成。"})),
    ("POST", "/api/v1/forms/{form_id}/close"): Row(OFFICE, lambda t, c: t.fresh_form(
        "close", "answered", {"satisfaction": "satisfied"})),
    ("POST", "/api/v1/forms/{form_id}/reopen"): Row(OFFICE, lambda t, c: t.fresh_form(
        "reopen", "answered", {"reason": "群众反映路灯仍未修好。"})),
    # Only the unit holding the form returns it or asks for more time: the office gets 403 not_your_unit.
    ("POST", "/api/v1/forms/{form_id}/return"): Row({HANDLER}, lambda t, c: t.fresh_form(
        "return", "assigned", {"reason": "不属于本单位职责。"})),
    ("POST", "/api/v1/forms/{form_id}/extension"): Row({HANDLER}, lambda t, c: t.fresh_form(
        "extension", "assigned", {"due_at": t.days_ahead(120), "reason": "需要协调供电公司。"})),
    ("POST", "/api/v1/forms/{form_id}/extension/approve"): Row(OFFICE, lambda t, c: t.fresh_form(
        "extension/approve", "extension_requested", {"note": "同意。"})),
    ("POST", "/api/v1/forms/{form_id}/extension/refuse"): Row(OFFICE, lambda t, c: t.fresh_form(
        "extension/refuse", "extension_requested", {"note": "请按期办理。"})),
    # Entered by 张代表 at the stall: he (or the office) may record the answer given on the spot.
    ("POST", "/api/v1/forms/{form_id}/answer-on-spot"): Row(OFFICE | {REP}, lambda t, c: t.fresh_form(
        "answer-on-spot", "submitted", {"reply": "已当场解释政策。"}, by=REP)),
    ("POST", "/api/v1/forms/{form_id}/urge"): Row(OFFICE, lambda t, c: t.fresh_form(
        "urge", "assigned", {"note": "请加快办理。"})),
    # Staff who can see the form (all four here: LS-01, unit A) may add an internal note.
    ("POST", "/api/v1/forms/{form_id}/notes"): Row(STAFF, lambda t, c: t.on_form(
        "/api/v1/forms/{}/notes", "ls01-unit-a", state="assigned", json={"note": "已电话联系提交人。"})),
    # 补发查询码: the office, and the representative who entered the form (张代表 here); the unit may not.
    ("POST", "/api/v1/forms/{form_id}/verification-code"): Row(OFFICE | {REP}, lambda t, c: t.fresh_form(
        "verification-code", "submitted", None, by=REP)),
    # The audited reveal of the resident's name and phone (issue 15.6): staff who may see the form, never
    # an API key (the disclosure table below shows what each gets).
    ("POST", "/api/v1/forms/{form_id}/contact"): Row(STAFF, lambda t, c: t.on_form(
        "/api/v1/forms/{}/contact", "ls01-unit-a", state="assigned")),
    ("POST", "/api/v1/forms/{form_id}/clear-review"): Row(OFFICE, lambda t, c: t.fresh_form(
        "clear-review", "flagged", {"note": "内容无问题。"})),
    ("POST", "/api/v1/forms/{form_id}/decline"): Row(OFFICE, lambda t, c: t.fresh_form(
        "decline", "submitted", {"reason": "不属于意见征询范围。"})),
    # 合并办理 (issue 19.3): the office only; a fresh lead and form for every caller, a fresh follower to unmerge.
    ("POST", "/api/v1/forms/{form_id}/merge"): Row(OFFICE, lambda t, c: t.merge_pair()),
    ("POST", "/api/v1/forms/{form_id}/unmerge"): Row(OFFICE, lambda t, c: t.merged_follower(
        "/api/v1/forms/{}/unmerge")),
    # Public tracking: the number and its verification code are the credential, whoever asks.
    ("GET", "/api/v1/track/{tracking_no}"): Row(ALL, lambda t, c: t.track()),
    # 不再接收短信通知: the same credential; asking again is a 200 that changes nothing.
    ("POST", "/api/v1/track/{tracking_no}/sms-stop"): Row(ALL, lambda t, c: t.sms_stop()),

    # --- photos: a form the resident submitted, in LS-01 and given to unit A, so all four staff see it.
    # The forms:write client did not submit it: 403 (it may add photos to its own forms only).
    ("POST", "/api/v1/forms/{form_id}/photos"): Row(STAFF | {RESIDENT}, lambda t, c: t.on_form(
        "/api/v1/forms/{}/photos", "photo-upload", state="assigned", by=RESIDENT,
        files={"file": ("photo.jpg", jpeg(), "image/jpeg")})),
    ("GET", "/api/v1/forms/{form_id}/photos"): Row(STAFF | {RESIDENT, R}, lambda t, c: t.photo_path(
        "/api/v1/forms/{form}/photos")),
    ("GET", "/api/v1/forms/{form_id}/photos/{photo_id}"): Row(STAFF | {RESIDENT, R}, lambda t, c: t.photo_path(
        "/api/v1/forms/{form}/photos/{photo}")),
    ("GET", "/api/v1/forms/{form_id}/photos/{photo_id}/thumbnail"): Row(STAFF | {RESIDENT, R}, lambda t, c: t.photo_path(
        "/api/v1/forms/{form}/photos/{photo}/thumbnail")),

    # --- statistics
    ("GET", "/api/v1/stats/summary"): Row(STAFF | {S}, at("/api/v1/stats/summary")),
    ("GET", "/api/v1/stats/hot-topics"): Row(STAFF | {S}, at("/api/v1/stats/hot-topics")),
    ("GET", "/api/v1/stats/by-workroom"): Row(STAFF | {S}, at("/api/v1/stats/by-workroom")),
    ("GET", "/api/v1/stats/by-category"): Row(STAFF | {S}, at("/api/v1/stats/by-category")),
    ("GET", "/api/v1/stats/monthly"): Row(STAFF | {S}, at("/api/v1/stats/monthly")),
    ("GET", "/api/v1/stats/by-unit"): Row(STAFF | {S}, at("/api/v1/stats/by-unit")),
    ("GET", "/api/v1/stats/by-representative"): Row(STAFF | {S}, at("/api/v1/stats/by-representative")),
    ("GET", "/api/v1/stats/answer-days"): Row(STAFF | {S}, at("/api/v1/stats/answer-days")),
    # Records of duty (issue 20.3): 张代表's own record, he or the office (a stats:read client the JSON);
    # another representative's is 403 for him (tests/test_records.py). A workroom's: the office.
    ("GET", "/api/v1/representatives/{representative_id}/record"): Row(OFFICE | {REP, S}, lambda t, c: t.path(
        "/api/v1/representatives/{}/record", t.rep_id("rep"))),
    ("GET", "/api/v1/workrooms/{code}/records"): Row(OFFICE | {S}, at("/api/v1/workrooms/LS-01/records")),

    # --- the brief (工作简报): read as the statistics are; the office writes its draft; any staff member may
    # have its file written in the background (the job is theirs, as an export job is). 1999: a period with
    # nothing in it, so the jobs started here draw no chart.
    ("GET", "/api/v1/reports/{period}"): Row(STAFF | {S}, at("/api/v1/reports/2026-11")),
    ("PUT", "/api/v1/reports/{period}/draft"): Row(OFFICE, at("/api/v1/reports/2026-11/draft",
                                                              json={"opening": "矩阵测试开头。"})),
    ("POST", "/api/v1/reports/{period}/jobs"): Row(STAFF, at("/api/v1/reports/1999/jobs", json={"format": "docx"})),

    # --- duty rosters
    # Public, but the check-in times only to staff (tests/test_rosters.py): attendance is the office's.
    ("GET", "/api/v1/workrooms/{code}/shifts"): Row(ALL, at("/api/v1/workrooms/LS-01/shifts")),
    ("POST", "/api/v1/workrooms/{code}/shifts"): Row(OFFICE, lambda t, c: t.new_shift_body()),
    ("DELETE", "/api/v1/shifts/{shift_id}"): Row(OFFICE, lambda t, c: t.on_fresh_shift("/api/v1/shifts/{}")),
    ("GET", "/api/v1/workrooms/{code}/on-duty"): Row(ALL, at("/api/v1/workrooms/LS-01/on-duty")),
    ("POST", "/api/v1/rota/preview"): Row(OFFICE, lambda t, c: t.rota("/api/v1/rota/preview", week=0)),
    ("POST", "/api/v1/rota/commit"): Row(OFFICE, lambda t, c: t.rota("/api/v1/rota/commit", week=None)),
    # 张代表's own shift: he or the office may ask someone to take it.
    ("POST", "/api/v1/shifts/{shift_id}/swap"): Row(OFFICE | {REP}, lambda t, c: t.on_fresh_shift(
        "/api/v1/shifts/{}/swap", json={"to_representative_id": t.rep_id("rep2")})),
    ("GET", "/api/v1/swaps"): Row(OFFICE | {REP}, at("/api/v1/swaps")),
    # action=accept on a swap 李代表's shift asks of 张代表: only he answers it, not even the office.
    ("POST", "/api/v1/swaps/{swap_id}/{action}"): Row({REP}, lambda t, c: t.swap_to_rep("accept")),
    # A shift of 张代表 running now: only he checks in.
    ("POST", "/api/v1/shifts/{shift_id}/check-in"): Row({REP}, lambda t, c: t.current_shift_check_in()),
    ("GET", "/api/v1/attendance"): Row(OFFICE, at("/api/v1/attendance")),

    # --- service points
    ("GET", "/api/v1/service-points"): Row(ALL, at("/api/v1/service-points")),
    ("POST", "/api/v1/service-points"): Row(OFFICE, lambda t, c: t.new_point_body()),
    ("GET", "/api/v1/service-points/funnel"): Row(STAFF, at("/api/v1/service-points/funnel")),
    ("GET", "/api/v1/service-points/{service_point_id}"): Row(ALL, lambda t, c: t.on_point(
        "/api/v1/service-points/{}", fresh=False)),
    ("PATCH", "/api/v1/service-points/{service_point_id}"): Row(OFFICE, lambda t, c: t.on_point(
        "/api/v1/service-points/{}", fresh=False, json={"location": "村委会门口"})),
    ("DELETE", "/api/v1/service-points/{service_point_id}"): Row(OFFICE, lambda t, c: t.on_point(
        "/api/v1/service-points/{}", fresh=True)),

    # --- paper forms (issue 20.1), batches of LS-01 (张代表's workroom): the office prints and voids; the office
    # and 张代表 read, print and type them in. Units, residents and clients have no paper.
    ("POST", "/api/v1/paper-batches"): Row(OFFICE, at("/api/v1/paper-batches", json={"workroom_code": "LS-01",
                                                                                    "count": 1})),
    ("GET", "/api/v1/paper-batches"): Row(OFFICE | {REP}, at("/api/v1/paper-batches")),
    ("GET", "/api/v1/paper-batches/reconciliation"): Row(OFFICE | {REP}, at("/api/v1/paper-batches/reconciliation")),
    ("GET", "/api/v1/paper-batches/{batch_id}"): Row(OFFICE | {REP}, lambda t, c: t.paper("/api/v1/paper-batches/{}")),
    ("GET", "/api/v1/paper-batches/{batch_id}/pdf"): Row(OFFICE | {REP}, lambda t, c: t.paper(
        "/api/v1/paper-batches/{}/pdf")),
    # Each uses its sheet up: a fresh batch of one for every caller.
    ("POST", "/api/v1/paper-batches/{batch_id}/voids"): Row(OFFICE, lambda t, c: t.paper(
        "/api/v1/paper-batches/{}/voids", fresh=True, json={"serials": ["{serial}"], "reason": "淋湿"})),
    ("POST", "/api/v1/paper-batches/{batch_id}/forms"): Row(OFFICE | {REP}, lambda t, c: t.paper(
        "/api/v1/paper-batches/{}/forms", fresh=True, json={"serial": "{serial}", "content": CONTENT})),

    # --- the register of activities (issue 20.2), of LS-01 (张代表's workroom): the office and 张代表 record
    # them. Anyone reads a public one; one that is not public only staff and clients with a read scope (the
    # rest: 404, as if it did not exist). Photos of a public activity are as public as it is.
    ("GET", "/api/v1/activities"): Row(ALL, at("/api/v1/activities")),
    ("POST", "/api/v1/activities"): Row(OFFICE | {REP}, lambda t, c: t.new_activity_body()),
    ("GET", "/api/v1/activities/export.{fmt}"): Row(OFFICE, at("/api/v1/activities/export.csv")),
    ("GET", "/api/v1/activities/{activity_id}"): Row(STAFF | {R, S}, lambda t, c: t.on_activity(
        "/api/v1/activities/{}", public=False), {W: HIDDEN, H: HIDDEN, RESIDENT: HIDDEN, ANON: HIDDEN}),
    ("PATCH", "/api/v1/activities/{activity_id}"): Row(OFFICE | {REP}, lambda t, c: t.on_activity(
        "/api/v1/activities/{}", json={"attendance": 30})),
    ("DELETE", "/api/v1/activities/{activity_id}"): Row(OFFICE | {REP}, lambda t, c: t.on_activity(
        "/api/v1/activities/{}", fresh=True)),
    ("POST", "/api/v1/activities/{activity_id}/photos"): Row(OFFICE | {REP}, lambda t, c: t.on_activity(
        "/api/v1/activities/{}/photos", fresh=True, files={"file": ("photo.jpg", jpeg(), "image/jpeg")})),
    ("GET", "/api/v1/activities/{activity_id}/photos"): Row(ALL, lambda t, c: t.activity_photo(
        "/api/v1/activities/{activity}/photos")),
    ("GET", "/api/v1/activities/{activity_id}/photos/{photo_id}"): Row(ALL, lambda t, c: t.activity_photo(
        "/api/v1/activities/{activity}/photos/{photo}")),
    ("GET", "/api/v1/activities/{activity_id}/photos/{photo_id}/thumbnail"): Row(ALL, lambda t, c: t.activity_photo(
        "/api/v1/activities/{activity}/photos/{photo}/thumbnail")),
    ("DELETE", "/api/v1/activities/{activity_id}/photos/{photo_id}"): Row(OFFICE | {REP}, lambda t, c: t.activity_photo(
        "/api/v1/activities/{activity}/photos/{photo}", fresh=True)),
    ("GET", "/api/v1/stats/activities"): Row(STAFF | {S}, at("/api/v1/stats/activities")),

    # --- calendars. The .ics feeds' credential is the token in their URL, whoever fetches it (a wrong or
    # missing token is a 404 for everyone: tests/test_calendars.py).
    ("GET", "/api/v1/calendars/representatives/{representative_id}.ics"): Row(ALL, lambda t, c: t.feed(
        "/api/v1/calendars/representatives/{}".format(t.rep_id("rep")))),
    ("GET", "/api/v1/calendars/workrooms/{code}.ics"): Row(ALL, lambda t, c: t.feed(
        "/api/v1/calendars/workrooms/LS-01")),
    # 张代表's own calendar: he or the office.
    ("GET", "/api/v1/calendars/representatives/{representative_id}"): Row(OFFICE | {REP}, lambda t, c: t.path(
        "/api/v1/calendars/representatives/{}", t.rep_id("rep"))),
    ("POST", "/api/v1/calendars/representatives/{representative_id}/reset"): Row(OFFICE | {REP}, lambda t, c: t.path(
        "/api/v1/calendars/representatives/{}/reset", t.rep_id("rep"))),
    ("GET", "/api/v1/calendars/workrooms/{code}"): Row(OFFICE, at("/api/v1/calendars/workrooms/LS-01")),
    ("POST", "/api/v1/calendars/workrooms/{code}/reset"): Row(OFFICE, at("/api/v1/calendars/workrooms/LS-01/reset")),

    # --- imports and the roster exports
    ("POST", "/api/v1/imports"): Row(OFFICE, lambda t, c: t.unique(lambda n: Call(
        "/api/v1/imports", data={"kind": "representatives"},
        files={"file": ("代表.csv", import_csv(f"矩阵代表{n}"), "text/csv")}))),
    # The empty template (a header row and one made-up example) is public.
    ("GET", "/api/v1/imports/template/{kind}.{fmt}"): Row(ALL, at("/api/v1/imports/template/representatives.csv")),
    # The coordinator's import job: its creator and admins.
    ("GET", "/api/v1/imports/{job_id}"): Row(OFFICE, lambda t, c: t.path("/api/v1/imports/{}", t.import_job())),
    ("GET", "/api/v1/rosters/export.{fmt}"): Row(OFFICE, at("/api/v1/rosters/export.xlsx")),
    ("GET", "/api/v1/attendance/export.{fmt}"): Row(OFFICE, at("/api/v1/attendance/export.csv")),
    ("GET", "/api/v1/service-points/funnel/export.{fmt}"): Row(
        OFFICE, at("/api/v1/service-points/funnel/export.csv?by=representative")),

    # --- the WeChat mini-program: login is public (the wx.login() code is the credential); the rest is the
    # resident's own.
    ("POST", "/api/v1/wechat/login"): Row(ALL, lambda t, c: t.wechat_login()),
    ("GET", "/api/v1/me/forms"): Row({RESIDENT}, at("/api/v1/me/forms")),
    ("GET", "/api/v1/me/forms/{form_id}"): Row({RESIDENT}, lambda t, c: t.on_form(
        "/api/v1/me/forms/{}", "residents-own", by=RESIDENT)),
    ("GET", "/api/v1/me/subscriptions"): Row({RESIDENT}, at("/api/v1/me/subscriptions")),
    ("POST", "/api/v1/me/subscriptions"): Row({RESIDENT}, at("/api/v1/me/subscriptions", json={
        "template_id": "TPL_matrix", "accepted": 1})),

    # --- API clients: admins manage them (here a spare client, never one of the callers); a client reads
    # itself.
    ("GET", "/api/v1/api-clients/me"): Row(CLIENTS, at("/api/v1/api-clients/me")),
    ("GET", "/api/v1/api-clients"): Row(ADMIN_ONLY, at("/api/v1/api-clients")),
    ("POST", "/api/v1/api-clients"): Row(ADMIN_ONLY, at("/api/v1/api-clients", json={
        "name": "矩阵测试平台", "scopes": ["stats:read"]})),
    ("GET", "/api/v1/api-clients/{client_id}"): Row(ADMIN_ONLY, lambda t, c: t.on_spare_client(
        "/api/v1/api-clients/{}")),
    ("PATCH", "/api/v1/api-clients/{client_id}"): Row(ADMIN_ONLY, lambda t, c: t.on_spare_client(
        "/api/v1/api-clients/{}", json={"name": "矩阵备用平台"})),
    ("POST", "/api/v1/api-clients/{client_id}/rotate"): Row(ADMIN_ONLY, lambda t, c: t.on_spare_client(
        "/api/v1/api-clients/{}/rotate")),
    ("DELETE", "/api/v1/api-clients/{client_id}"): Row(ADMIN_ONLY, lambda t, c: t.on_spare_client(
        "/api/v1/api-clients/{}", fresh=True)),

    # --- webhooks: the one used belongs to ANOTHER client with the webhooks scope. Admins manage every
    # webhook; our client:webhooks caller is answered 404, as if it did not exist (HIDDEN).
    ("GET", "/api/v1/webhooks"): Row({ADMIN, H}, at("/api/v1/webhooks")),
    ("POST", "/api/v1/webhooks"): Row({ADMIN, H}, lambda t, c: t.new_webhook_body()),
    ("GET", "/api/v1/webhooks/{webhook_id}"): Row(ADMIN_ONLY, lambda t, c: t.on_webhook(
        "/api/v1/webhooks/{hook}"), {H: HIDDEN}),
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): Row(ADMIN_ONLY, lambda t, c: t.on_webhook(
        "/api/v1/webhooks/{hook}", json={"active": True}), {H: HIDDEN}),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): Row(ADMIN_ONLY, lambda t, c: t.on_webhook(
        "/api/v1/webhooks/{hook}", fresh=True), {H: HIDDEN}),
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): Row(ADMIN_ONLY, lambda t, c: t.on_webhook(
        "/api/v1/webhooks/{hook}/rotate-secret"), {H: HIDDEN}),
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): Row(ADMIN_ONLY, lambda t, c: t.on_webhook(
        "/api/v1/webhooks/{hook}/test"), {H: HIDDEN}),
    ("POST", "/api/v1/webhooks/{webhook_id}/resume"): Row(ADMIN_ONLY, lambda t, c: t.on_webhook(
        "/api/v1/webhooks/{hook}/resume"), {H: HIDDEN}),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): Row(ADMIN_ONLY, lambda t, c: t.on_webhook(
        "/api/v1/webhooks/{hook}/deliveries"), {H: HIDDEN}),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): Row(ADMIN_ONLY, lambda t, c: t.on_webhook(
        "/api/v1/webhooks/{hook}/deliveries/{delivery}"), {H: HIDDEN}),
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): Row(
        ADMIN_ONLY, lambda t, c: t.on_webhook("/api/v1/webhooks/{hook}/deliveries/{delivery}/redeliver"),
        {H: HIDDEN}),

    # --- the changes feed, lockouts, the audit log, personal data
    ("GET", "/api/v1/changes"): Row(OFFICE | {R}, at("/api/v1/changes")),
    ("GET", "/api/v1/lockouts"): Row(ADMIN_ONLY, at("/api/v1/lockouts")),
    ("DELETE", "/api/v1/lockouts/{kind}/{subject}"): Row(ADMIN_ONLY, lambda t, c: t.lockout()),
    ("GET", "/api/v1/audit"): Row(ADMIN_ONLY, at("/api/v1/audit")),
    ("GET", "/api/v1/audit/export.csv"): Row(ADMIN_ONLY, at("/api/v1/audit/export.csv")),
    ("GET", "/api/v1/personal-data"): Row(ADMIN_ONLY, at("/api/v1/personal-data", params={"phone": "13900001111"})),
    ("POST", "/api/v1/personal-data/erase"): Row(ADMIN_ONLY, at("/api/v1/personal-data/erase",
                                                                json={"phone": "13900001111"})),

    # --- the working-day calendar (issue 15): the office reads it, admins change it. Days of their own in
    # CALENDAR_YEAR (within the five years ahead an entry may be); the template's header row is public.
    ("GET", "/api/v1/working-calendar"): Row(OFFICE, at("/api/v1/working-calendar", params={"year": "2026"})),
    ("POST", "/api/v1/working-calendar/days"): Row(ADMIN_ONLY, lambda t, c: t.calendar_body()),
    ("PATCH", "/api/v1/working-calendar/days/{day}"): Row(ADMIN_ONLY, at("/api/v1/working-calendar/days/2026-10-01",
                                                                         json={"name": "国庆节"})),
    ("DELETE", "/api/v1/working-calendar/days/{day}"): Row(ADMIN_ONLY, lambda t, c: t.on_calendar_day(
        "/api/v1/working-calendar/days/{}")),
    ("POST", "/api/v1/working-calendar/import"): Row(ADMIN_ONLY, at("/api/v1/working-calendar/import", files={
        "file": ("通知.csv", f"日期,类型,名称\n{CALENDAR_YEAR}-12-31,放假,矩阵测试\n".encode(), "text/csv")})),
    ("GET", "/api/v1/working-calendar/template.csv"): Row(ALL, at("/api/v1/working-calendar/template.csv")),

    # --- Open311 GeoReport v2: reads are public. Filing needs an api_key with forms:write (here sent as
    # X-API-Key); without one Open311 answers 403, anonymous callers included, as the spec says.
    ("GET", "/open311/discovery.{fmt}"): Row(ALL, at("/open311/discovery.json")),
    ("GET", "/open311/v2/services.{fmt}"): Row(ALL, at("/open311/v2/services.json")),
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): Row(ALL, at("/open311/v2/services/urban_traffic.json")),
    ("GET", "/open311/v2/requests.{fmt}"): Row(ALL, at("/open311/v2/requests.json")),
    ("POST", "/open311/v2/requests.{fmt}"): Row({W}, at("/open311/v2/requests.json", data=OPEN311_FILED),
                                                {ANON: 403}),
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): Row(ALL, lambda t, c: t.published_request()),
    # No token is ever issued (every service is realtime): 404 for everyone, whoever asks.
    ("GET", "/open311/v2/tokens/{token}.{fmt}"): Row(ALL, at("/open311/v2/tokens/abc123.json"), every(404)),
}


# --- the tests -----------------------------------------------------------------------------------------

PREFIXES = ("/api/", "/open311/")
PROBES = ("/healthz", "/readyz", "/metrics")


def endpoints(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route under /api/ and /open311/, and of the probes; HEAD skipped."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path_format
        if not isinstance(path, str) or not (path.startswith(PREFIXES) or path in PROBES):
            continue
        # A mounted sub-application there would hide its endpoints from this walk.
        assert not isinstance(route.original_route, Mount), f"a Mount at {path}: list its endpoints instead"
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, path))
    return found


def test_every_endpoint_has_a_row(tmp_path: Path) -> None:
    app = build_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'routes.db'}"))
    routes = endpoints(app)
    assert len(routes) > 100, "the walk over the routes found almost nothing: did FastAPI change how it lists them?"
    missing = sorted(routes - set(TABLE))
    stale = sorted(set(TABLE) - routes)
    assert not missing, f"endpoints without a row in TABLE (add one: see the top of this file): {missing}"
    assert not stale, f"rows in TABLE for endpoints that are gone: {stale}"


def test_the_table_names_only_known_callers() -> None:
    for key, row in TABLE.items():
        assert row.may <= ALL and set(row.answers) <= ALL, key


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("endpoint", sorted(TABLE), ids=lambda e: f"{e[0]} {e[1]}")
async def test_every_caller_gets_the_answer_in_the_table(town: Town, endpoint: tuple[str, str]) -> None:
    method, _template = endpoint
    row = TABLE[endpoint]
    wrong = []
    for caller in CALLERS:
        call = await row.call(town, caller)
        response = await town.send(method, call, caller)
        mismatch = check(response, row.expected(caller))
        if mismatch:
            wrong.append(f"  {caller:<20} {mismatch}")
    assert not wrong, f"{method} {endpoint[1]}:\n" + "\n".join(wrong)


@pytest.mark.asyncio(loop_scope="module")
async def test_the_metrics_token_opens_metrics(town: Town) -> None:
    response = await town.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert "minyi_" in response.text


def check(response: httpx.Response, expected: int) -> str | None:
    """What is wrong with ``response`` for the cell's expected answer, or None."""
    status = response.status_code
    if expected == OK:
        if 200 <= status < 300:
            return None
        return f"expected 2xx, got {status}: {response.text[:300]}"
    if status != expected:
        return f"expected {expected}, got {status}: {response.text[:300]}"
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/problem+json"):
        body = response.json()
        if body.get("status") != expected:
            return f"problem+json status {body.get('status')} under HTTP {status}"
    elif response.request.url.path.startswith("/open311/") and content_type.startswith("application/json"):
        codes = [error.get("code") for error in response.json()]
        if codes != [expected]:
            return f"Open311 error codes {codes} under HTTP {status}"
    elif response.request.url.path.startswith(("/api/", *PROBES)):
        return f"a {status} that is not problem+json ({content_type})"
    return None


# --- the town the requests run in ----------------------------------------------------------------------

METRICS_TOKEN = "matrix-metrics-token-0123456789"


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


# The office's activity form (app/web/activities.py), for LS-01.
ACTIVITY_FORM = {"workroom_code": "LS-01", "kind": "party_service", "title": "矩阵党群服务日", "held_on": "2026-05-08",
                 "attendance": "20", "public": "true"}


def import_csv(name: str) -> bytes:
    rows = [["姓名", "层级", "电话", "工作室编号"], [name, "镇", "", "LS-01"]]
    return ("\ufeff" + "\r\n".join(",".join(row) for row in rows) + "\r\n").encode()


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: webhook pings there fail at once, and harmlessly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def expect(response: httpx.Response, *statuses: int) -> Any:
    """A setup step's answer, checked; its JSON when it has a body."""
    assert response.status_code in statuses, f"setup failed: {response.request.method} {response.request.url}: " \
                                             f"{response.status_code} {response.text}"
    return response.json() if response.content and "json" in response.headers.get("content-type", "") else None


class Town:
    """The app, a client for it, the callers' credentials, and helpers that make what a row needs."""

    def __init__(self, app: FastAPI, http: httpx.AsyncClient, world: World, fake: FakeWeChat) -> None:
        self.app, self.http, self.world, self.fake = app, http, world, fake
        self.credentials: dict[str, dict[str, str]] = {ANON: {}}
        self._shared: dict[str, Any] = {}
        self._counter = itertools.count(1)
        self._dead_port = closed_port()

    # -- basics

    def auth(self, caller: str) -> dict[str, str]:
        return self.credentials[caller]

    async def send(self, method: str, call: Call, caller: str) -> httpx.Response:
        headers = dict(call.headers) if call.headers is not None else self.auth(caller)
        return await self.http.request(method, call.path, params=call.params, json=call.json, data=call.data,
                                       files=call.files, headers=headers)

    async def shared(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """Made once per engine, on first use."""
        if key not in self._shared:
            self._shared[key] = await make()
        return self._shared[key]

    def number(self) -> int:
        return next(self._counter)

    async def unique(self, make: Callable[[int], Call]) -> Call:
        """A request carrying a name or code nobody used yet."""
        return make(self.number())

    async def path(self, template: str, *ids: Any, **request: Any) -> Call:
        return Call(template.format(*[await i if isinstance(i, Awaitable) else i for i in ids]), **request)

    def unit(self, key: str) -> int:
        return self.world.units[key].id

    def rep_id(self, key: str) -> int:
        return self.world.representatives[key].id

    def days_ahead(self, days: int) -> str:
        return (utcnow() + timedelta(days=days)).isoformat()

    def slot(self, hours: int = 2) -> tuple[str, str]:
        """A time nobody's shift uses yet: a day of its own, 30 days on or later, 09:00 Shanghai."""
        start = (utcnow() + timedelta(days=30 + self.number())).replace(hour=1, minute=0, second=0, microsecond=0)
        return start.isoformat(), (start + timedelta(hours=hours)).isoformat()

    # -- auth and users

    async def logout(self, caller: str) -> Call:
        if caller not in STAFF_USERS:
            return Call("/api/v1/auth/logout")
        async with transaction(self.app.state.sessionmaker) as session:
            user = await auth_service.resolve_token(session, self.world.tokens[STAFF_USERS[caller]])
            token, _ = await auth_service.issue_token(session, user=user, ttl_seconds=600)
        return Call("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})

    async def new_user(self) -> Call:
        return Call("/api/v1/users", json={"username": f"matrix{self.number()}", "password": PASSWORD,
                                           "role": "coordinator"})

    # -- forms

    async def form(self, state: str = "submitted", *, by: str = ANON, workroom: str = "LS-01", unit: str = "A",
                   **fields: Any) -> dict[str, Any]:
        """A form through the API, taken to ``state``: submitted, assigned, answered, extension_requested
        (assigned, then its unit asks for more time) or flagged (submitted, then flagged for review)."""
        body = {"content": CONTENT, "category": "urban_traffic", "workroom_code": workroom, **fields}
        form: dict[str, Any] = expect(await self.http.post("/api/v1/forms", json=body, headers=self.auth(by)), 201)
        if state in ("assigned", "answered", "extension_requested"):
            expect(await self.http.post(f"/api/v1/forms/{form['id']}/assign", json={"unit_id": self.unit(unit)},
                                        headers=self.auth(COORD)), 200)
        if state == "answered":
            expect(await self.http.post(f"/api/v1/forms/{form['id']}/reply", json={"reply": "已修复。"},
                                        headers=self.auth(COORD)), 200)
        if state == "extension_requested":
            expect(await self.http.post(f"/api/v1/forms/{form['id']}/extension", headers=self.auth(HANDLER),
                                        json={"due_at": self.days_ahead(120), "reason": "需要协调。"}), 200)
        if state == "flagged":
            # What WeChat's content check leaves on a risky text (tests/test_content_check.py goes through it).
            async with transaction(self.app.state.sessionmaker) as session:
                await session.execute(
                    update(OpinionForm).where(OpinionForm.id == form["id"]).values(review_flag="review"))
        return form

    async def fresh_form(self, action: str, state: str, body: Any, *, by: str = ANON) -> Call:
        form = await self.form(state, by=by)
        return Call(f"/api/v1/forms/{form['id']}/{action}", json=body)

    async def merge_pair(self, template: str = "/api/v1/forms/{}/merge") -> Call:
        """Two fresh forms: the request merges the second into the first."""
        lead, form = await self.form(), await self.form()
        if template.startswith("/api/"):
            return Call(template.format(lead["id"]), json={"form_ids": [form["id"]]})
        return Call(template.format(lead["id"]), data={"tracking_nos": form["tracking_no"]})

    async def topic(self, template: str) -> Call:
        """A topic of one form (indexed now): the request is about it."""
        async def make() -> int:
            form = await self.form()
            async with transaction(self.app.state.sessionmaker) as session:
                await similar_forms.index_pending(session, settings=self.app.state.settings)
                return int(await session.scalar(select(TopicMember.topic_id).where(TopicMember.form_id == form["id"])))
        return Call(template.format(await self.shared("topic", make)))

    async def merged_follower(self, template: str, **request: Any) -> Call:
        """A fresh form merged into another fresh one: the request is about the follower."""
        lead, form = await self.form(), await self.form()
        expect(await self.http.post(f"/api/v1/forms/{lead['id']}/merge", json={"form_ids": [form["id"]]},
                                    headers=self.auth(COORD)), 200)
        return Call(template.format(form["id"]), **request)

    async def on_form(self, template: str, key: str, *, state: str = "submitted", by: str = ANON,
                      workroom: str = "LS-01", unit: str = "A", **request: Any) -> Call:
        form = await self.shared(f"form:{key}", lambda: self.form(state, by=by, workroom=workroom, unit=unit))
        return Call(template.format(form["id"]), **request)

    async def track(self) -> Call:
        form = await self.shared("form:tracked", self.form)
        return Call(f"/api/v1/track/{form['tracking_no']}", params={"code": form["verification_code"]})

    async def sms_stop(self) -> Call:
        form = await self.shared("form:tracked", self.form)
        return Call(f"/api/v1/track/{form['tracking_no']}/sms-stop", json={"code": form["verification_code"]})

    async def published_request(self) -> Call:
        form = await self.shared("form:public", lambda: self.form(public=True))
        return Call(f"/open311/v2/requests/{form['tracking_no']}.json")

    async def photo_path(self, template: str) -> Call:
        async def make() -> tuple[int, int]:
            form = await self.form("assigned", by=RESIDENT)
            photo = expect(await self.http.post(f"/api/v1/forms/{form['id']}/photos", headers=self.auth(RESIDENT),
                                                files={"file": ("photo.jpg", jpeg(), "image/jpeg")}), 201)
            return form["id"], photo["id"]

        form_id, photo_id = await self.shared("photo", make)
        return Call(template.format(form=form_id, photo=photo_id))

    # -- exports and imports

    async def export_job(self) -> int:
        async def make() -> int:
            job = expect(await self.http.post("/api/v1/exports", json={"format": "csv"},
                                              headers=self.auth(COORD)), 202)
            await self.app.state.exports.join()  # the file is written in the background: until it has been
            read = expect(await self.http.get(f"/api/v1/exports/{job['id']}", headers=self.auth(COORD)), 200)
            assert read["status"] == "done", read
            return int(job["id"])

        return int(await self.shared("export", make))

    async def report_job(self) -> int:
        """The coordinator's report job for 1999 (nothing in it), written to the end."""
        async def make() -> int:
            job = expect(await self.http.post("/api/v1/reports/1999/jobs", json={"format": "docx"},
                                              headers=self.auth(COORD)), 202)
            await self.app.state.exports.join()
            return int(job["id"])

        return int(await self.shared("report-job", make))

    async def import_job(self) -> int:
        async def make() -> int:
            job = expect(await self.http.post(
                "/api/v1/imports", data={"kind": "representatives"}, headers=self.auth(COORD),
                files={"file": ("代表.csv", import_csv("矩阵导入代表"), "text/csv")}), 201)
            return int(job["id"])

        return int(await self.shared("import", make))

    # -- rosters

    async def shift(self, rep: str = "rep", workroom: str = "LS-01", *, now: bool = False) -> int:
        if now:
            start = utcnow() - timedelta(minutes=10)
            starts_at, ends_at = start.isoformat(), (start + timedelta(hours=3)).isoformat()
        else:
            starts_at, ends_at = self.slot()
        shift = expect(await self.http.post(
            f"/api/v1/workrooms/{workroom}/shifts", headers=self.auth(COORD),
            json={"representative_id": self.rep_id(rep), "starts_at": starts_at, "ends_at": ends_at}), 201)
        return int(shift["id"])

    async def new_shift_body(self) -> Call:
        starts_at, ends_at = self.slot()
        return Call("/api/v1/workrooms/LS-01/shifts",
                    json={"representative_id": self.rep_id("rep"), "starts_at": starts_at, "ends_at": ends_at})

    async def on_fresh_shift(self, template: str, **request: Any) -> Call:
        return Call(template.format(await self.shift()), **request)

    def calendar_day(self) -> str:
        """A day of CALENDAR_YEAR nobody entered yet (1 January on, one after another)."""
        self._shared["calendar:days"] = self._shared.get("calendar:days", 0) + 1
        return (date(CALENDAR_YEAR, 1, 1) + timedelta(days=self._shared["calendar:days"])).isoformat()

    async def calendar_body(self) -> Call:
        return Call("/api/v1/working-calendar/days", json={"day": self.calendar_day(), "kind": "holiday",
                                                           "name": "矩阵测试"})

    async def on_calendar_day(self, template: str, **request: Any) -> Call:
        """A holiday entered now, for a row that changes or deletes it."""
        day = self.calendar_day()
        expect(await self.http.post("/api/v1/working-calendar/days", headers=self.auth(ADMIN),
                                    json={"day": day, "kind": "holiday", "name": "矩阵测试"}), 201)
        return Call(template.format(day), **request)

    async def rota(self, path: str, *, week: int | None) -> Call:
        """李代表 at LS-02 on one Monday about two years on: a week of its own per call unless ``week``."""
        week = self.number() if week is None else week
        first = date.today() + timedelta(days=730 + 7 * week)
        return Call(path, json={
            "from": first.isoformat(), "to": (first + timedelta(days=6)).isoformat(), "skip_holidays": False,
            "workrooms": [{"code": "LS-02", "weekdays": [1], "start": "09:00", "end": "11:00",
                           "representative_ids": [self.rep_id("rep2")]}],
        })

    async def swap_to_rep(self, action: str) -> Call:
        async def make() -> int:
            shift_id = await self.shift("rep2", "LS-02")
            swap = expect(await self.http.post(f"/api/v1/shifts/{shift_id}/swap", headers=self.auth(COORD),
                                               json={"to_representative_id": self.rep_id("rep")}), 201)
            return int(swap["id"])

        return Call(f"/api/v1/swaps/{await self.shared('swap', make)}/{action}")

    async def current_shift_check_in(self) -> Call:
        shift_id = await self.shared("shift:now", lambda: self.shift(now=True))
        return Call(f"/api/v1/shifts/{shift_id}/check-in")

    # -- service points

    def point_body(self) -> dict[str, Any]:
        starts_at, ends_at = self.slot()
        return {"workroom_code": "LS-01", "title": "流动服务点进村", "place_type": "village", "location": "石塘湾村",
                "starts_at": starts_at, "ends_at": ends_at, "representative_ids": [self.rep_id("rep")]}

    async def new_point_body(self) -> Call:
        return Call("/api/v1/service-points", json=self.point_body())

    async def point(self) -> int:
        point = expect(await self.http.post("/api/v1/service-points", json=self.point_body(),
                                            headers=self.auth(COORD)), 201)
        return int(point["id"])

    async def on_point(self, template: str, *, fresh: bool, **request: Any) -> Call:
        point_id = await self.point() if fresh else await self.shared("point", self.point)
        return Call(template.format(point_id), **request)

    # -- activities (issue 20.2): LS-01's, made by the coordinator

    async def activity(self, *, public: bool = True) -> int:
        made = expect(await self.http.post("/api/v1/activities", headers=self.auth(COORD), json={
            "workroom_code": "LS-01", "kind": "market", "title": f"矩阵活动{self.number()}", "held_on": "2026-05-06",
            "public": public, "representative_ids": [self.rep_id("rep")]}), 201)
        return int(made["id"])

    async def new_activity_body(self) -> Call:
        return Call("/api/v1/activities", json={"workroom_code": "LS-01", "kind": "visit", "title": "矩阵走访",
                                                "held_on": "2026-05-07", "attendance": 12})

    async def on_activity(self, template: str, *, fresh: bool = False, public: bool = True, **request: Any) -> Call:
        if fresh:
            activity_id = await self.activity(public=public)
        else:
            activity_id = await self.shared(f"activity:{public}", lambda: self.activity(public=public))
        return Call(template.format(activity_id), **request)

    async def activity_photo(self, template: str, *, fresh: bool = False) -> Call:
        """A photo the coordinator put on an LS-01 public activity (a fresh one of its own when the request
        deletes it)."""
        async def make() -> tuple[int, int]:
            activity_id = await self.activity() if fresh else await self.shared("activity:True", self.activity)
            photo = expect(await self.http.post(f"/api/v1/activities/{activity_id}/photos", headers=self.auth(COORD),
                                                files={"file": ("photo.jpg", jpeg(), "image/jpeg")}), 201)
            return activity_id, int(photo["id"])

        activity_id, photo_id = await make() if fresh else await self.shared("activity-photo", make)
        return Call(template.format(activity=activity_id, photo=photo_id))

    # -- paper forms

    async def paper_batch(self) -> dict[str, Any]:
        return dict(expect(await self.http.post("/api/v1/paper-batches", json={"workroom_code": "LS-01", "count": 1},
                                                headers=self.auth(COORD)), 201))

    async def paper(self, template: str, *, fresh: bool = False, json: Any = None, data: Any = None) -> Call:
        """A batch of one sheet of LS-01: shared, or ``fresh`` for every caller (a request that uses the sheet
        up). ``{serial}`` in the body's values is the sheet's serial."""
        made = await self.paper_batch() if fresh else await self.shared("paper-batch", self.paper_batch)

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace("{serial}", made["first_serial"])
            return [fill(v) for v in value] if isinstance(value, list) else value

        body = {k: fill(v) for k, v in (json or data or {}).items()} or None
        return Call(template.format(made["id"]), json=body if json is not None else None,
                    data=body if data is not None else None)

    # -- calendars

    async def feed(self, url_path: str) -> Call:
        """The feed's current subscription URL (asked for by an admin each time: a reset row changes it)."""
        url = httpx.URL(expect(await self.http.get(url_path, headers=self.auth(ADMIN)), 200)["url"])
        return Call(url.path, params=dict(url.params))

    # -- WeChat

    async def wechat_login(self) -> Call:
        return Call("/api/v1/wechat/login", json={"code": self.fake.issue_code(f"matrix-{self.number()}")})

    # -- API clients and webhooks

    async def api_client(self, scopes: list[str], name: str) -> tuple[int, str]:
        created = expect(await self.http.post(
            "/api/v1/api-clients", headers=self.auth(ADMIN),
            json={"name": name, "scopes": scopes, "rate_limit_per_minute": MAX_LIMIT_PER_MINUTE}), 201)
        return int(created["id"]), str(created["key"])

    async def on_spare_client(self, template: str, *, fresh: bool = False, **request: Any) -> Call:
        async def make() -> int:
            return (await self.api_client(["forms:read"], "备用平台"))[0]

        client_id = await make() if fresh else await self.shared("spare-client", make)
        return Call(template.format(client_id), **request)

    def webhook_body(self) -> dict[str, Any]:
        return {"url": f"http://127.0.0.1:{self._dead_port}/minyi", "events": ["form.submitted"]}

    async def new_webhook_body(self) -> Call:
        return Call("/api/v1/webhooks", json=self.webhook_body())

    async def other_webhook(self) -> int:
        """A webhook of another integrator (an API client with the webhooks scope, not our caller)."""
        _, key = await self.shared("other-client", lambda: self.api_client(["webhooks"], "另一家平台"))
        hook = expect(await self.http.post("/api/v1/webhooks", json=self.webhook_body(),
                                           headers={"X-API-Key": key}), 201)
        return int(hook["id"])

    async def on_webhook(self, template: str, *, fresh: bool = False, **request: Any) -> Call:
        async def make() -> tuple[int, int]:
            hook_id = await self.other_webhook()
            await self.form()  # form.submitted: one delivery to the webhook
            deliveries = expect(await self.http.get(f"/api/v1/webhooks/{hook_id}/deliveries",
                                                    headers=self.auth(ADMIN)), 200)["items"]
            assert deliveries, "the submitted form made no delivery"
            return hook_id, int(deliveries[0]["id"])

        if fresh:
            return Call(template.format(hook=await self.other_webhook()), **request)
        hook_id, delivery_id = await self.shared("webhook", make)
        return Call(template.format(hook=hook_id, delivery=delivery_id), **request)

    # -- lockouts

    async def lockable_user(self) -> None:
        expect(await self.http.post("/api/v1/users", headers=self.auth(ADMIN), json={
            "username": "lockedout", "password": PASSWORD, "role": "coordinator"}), 201)

    async def lockout(self) -> Call:
        """An account locked by a failed login (the app here locks after one), to lift: locked again for
        every caller, since the admin lifts it."""
        username = "lockedout"
        await self.shared("user:lockedout", self.lockable_user)
        subject = abuse.login_subject(username)
        if not await self.app.state.lockouts.locked_for(subject):
            expect(await self.http.post("/api/v1/auth/token",
                                        data={"username": username, "password": "wrong-password"}), 401)
        assert await self.app.state.lockouts.locked_for(subject) > 0
        return Call(f"/api/v1/lockouts/login/{username}")


# --- fixtures: one database, app and town per engine for the whole module --------------------------------


@pytest.fixture(scope="module", params=ENGINES)
def matrix_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Sync, so that conftest's database helpers (asyncio.run) run outside the test's event loop.
    yield from fresh_database(request.param, request, tmp_path_factory.mktemp(f"matrix-{request.param}"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def town(
    matrix_db_url: str, tmp_path_factory: pytest.TempPathFactory, _fake_wechat_server: FakeWeChat
) -> AsyncIterator[Town]:
    files = tmp_path_factory.mktemp("matrix-files")
    settings = wechat_settings(
        matrix_db_url, _fake_wechat_server, worker_in_process=False, supervise_interval_seconds=0,
        export_dir=files / "exports", photo_dir=files / "photos", metrics_token=METRICS_TOKEN,
        login_failures_before_lock=1,  # so that one failed login makes a lockout to lift
    )
    with pytest.MonkeyPatch.context() as patch:
        # Real argon2, cheap (as conftest does per test): this world lives for the whole module.
        patch.setattr(auth_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        app = build_app(settings)
        state = app.state
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            try:
                world = await build_world(state.sessionmaker)
                town = Town(app, http, world, _fake_wechat_server)
                for caller, username in STAFF_USERS.items():
                    town.credentials[caller] = world.auth(username)
                for caller, scope in CLIENT_SCOPES.items():
                    _, key = await town.api_client([scope], f"矩阵客户端 {scope}")
                    town.credentials[caller] = {"X-API-Key": key}
                async with transaction(state.sessionmaker) as session:
                    resident = Resident(openid="matrix-resident")
                    session.add(resident)
                    await session.flush()
                    token, _ = await resident_service.issue_token(session, resident=resident, ttl_seconds=3600)
                town.credentials[RESIDENT] = {"Authorization": f"Bearer {token}"}
                yield town
            finally:
                await state.submissions.drain()
                await state.exports.shutdown()
                await state.imports.shutdown()
                if state.wechat is not None:
                    await state.wechat.aclose()
                await state.rate_limiter.aclose()
                await state.lockouts.aclose()
                await state.engine.dispose()


# === the pages ===========================================================================================
#
# The same proof for everything else the app routes: the HTML pages, their form posts, the QR codes, posters
# and the service worker. A page knows only the browser's cookie session (app/web/session.py), so the callers
# are browsers: ``anonymous``; ``admin``, ``coordinator``, ``handler`` (handler_a) and ``rep`` (张代表), each
# signed in once through the login page (its CSRF token, the session cookie kept); and ``bearer``, a browser
# that sends admin's staff API token in Authorization and has no session: pages must treat it as anonymous.
# Residents and API clients use no pages. Every browser (bearer and anonymous too) holds the CSRF cookie of a
# page it fetched and sends its token with each POST, so a refusal is the sign-in's, never the CSRF check's.
#
# How to read a row: ``PAGES[(METHOD, path template)] = PageRow(who may, the request, …)``.
#
# - An allowed caller gets ``PageRow.done``: by default a 2xx (``SHOWN``); for a form post, the 303 the
#   page redirects to (``see("/office/forms/{id}")``: the Location's path, ``{id}`` a number; a location
#   with ``?`` or ``#`` is compared whole).
# - A refused caller that is signed out (anonymous, bearer) is sent to sign in: 303 to
#   ``/login?next=<the path asked for>`` (``TO_LOGIN``). A refused caller signed in gets the 403 error page.
# - ``PageRow.answers`` overrides single cells, e.g. the login page sending a signed-in user to their home.
# - ``fork=True``: the request runs in a copy of the caller's browser (its cookies copied), for the rows that
#   would otherwise change who the caller is (signing in, signing out).
#
# ``PAGE_VARIANTS`` adds the other values of a path's last segment (each action of /office/forms/{id}/{action},
# each step, each swap answer) and other objects worth proving, with the same rules.

BEARER = "bearer"
PAGE_CALLERS = (ADMIN, COORD, HANDLER, REP, BEARER, ANON)
PAGE_ALL = frozenset(PAGE_CALLERS)
SIGNED_OUT = frozenset({BEARER, ANON})
STAFF_PAGES = OFFICE | {HANDLER}  # the office's form pages a handling unit shares


@dataclass(frozen=True)
class Answer:
    """What a page answers: ``status`` (``OK``: any 2xx) and, for a redirect, where to."""

    status: int
    location: str | None = None

    def __str__(self) -> str:
        if self.location:
            return f"{self.status} → {self.location}"
        return "2xx" if self.status == OK else str(self.status)


SHOWN = Answer(OK)
REFUSED = Answer(403)
TO_LOGIN = Answer(303, "/login?next=<the path asked for>")


def see(location: str) -> Answer:
    """Redirect after POST (or to the caller's home): 303 to ``location``."""
    return Answer(303, location)


# Where a signed-in user lands (app/web/auth.py home_of).
HOME = {ADMIN: see("/office"), COORD: see("/office"), HANDLER: see("/office/unit"), REP: see("/rep")}


@dataclass
class Browser:
    caller: str
    http: httpx.AsyncClient
    csrf: str
    headers: dict[str, str] = field(default_factory=dict)


PageCallFn = Callable[["Browsers", Browser], Awaitable[Call]]


@dataclass(frozen=True)
class PageRow:
    may: AbstractSet[str]
    call: PageCallFn
    done: Answer = SHOWN
    answers: Mapping[str, Answer] = field(default_factory=dict)
    fork: bool = False

    def expected(self, caller: str) -> Answer:
        if caller in self.answers:
            return self.answers[caller]
        if caller in self.may:
            return self.done
        return TO_LOGIN if caller in SIGNED_OUT else REFUSED


PAGES: dict[tuple[str, str], PageRow] = {
    # --- signing in and out. Anyone may sign in (the signed-out ones here as the coordinator) and lands on
    # their home; anyone may sign out (staff sign out a fresh session of a copy of their browser).
    ("GET", "/login"): PageRow(PAGE_ALL, at("/login"), answers=HOME),
    ("POST", "/login"): PageRow(PAGE_ALL, lambda p, b: p.login_form(b), fork=True,
                                answers={**HOME, ANON: see("/office"), BEARER: see("/office")}),
    ("POST", "/logout"): PageRow(PAGE_ALL, lambda p, b: p.fresh_session(b), see("/"), fork=True),

    # --- residents' pages: no account. Signed-in staff see them as anyone does (a form sent from /submit
    # is the public's, whoever is signed in).
    ("GET", "/"): PageRow(PAGE_ALL, at("/")),
    ("GET", "/submit"): PageRow(PAGE_ALL, at("/submit")),
    ("GET", "/similar-hint"): PageRow(PAGE_ALL, at("/similar-hint", params={"content": CONTENT})),
    ("POST", "/submit"): PageRow(PAGE_ALL, at("/submit", data={
        "content": CONTENT, "category": "urban_traffic", "workroom_code": "LS-01"}), see("/receipt")),
    # The receipt reads the signed cookie the caller's own submission set just before.
    ("GET", "/receipt"): PageRow(PAGE_ALL, lambda p, b: p.receipt(b)),
    ("GET", "/track"): PageRow(PAGE_ALL, at("/track")),
    # The tracking number and its verification code are the credential, whoever asks.
    ("POST", "/track"): PageRow(PAGE_ALL, lambda p, b: p.track()),
    ("POST", "/track/sms-stop"): PageRow(PAGE_ALL, lambda p, b: p.track(stop=True)),
    ("GET", "/w/{code}"): PageRow(PAGE_ALL, at("/w/LS-01")),
    ("GET", "/w/{code}/qr.svg"): PageRow(PAGE_ALL, at("/w/LS-01/qr.svg")),
    ("GET", "/w/{code}/poster"): PageRow(PAGE_ALL, at("/w/LS-01/poster")),
    ("GET", "/w/{code}/duty"): PageRow(PAGE_ALL, at("/w/LS-01/duty")),
    ("GET", "/p/{point_id}"): PageRow(PAGE_ALL, lambda p, b: p.on_point("/p/{}")),
    ("GET", "/p/{point_id}/qr.svg"): PageRow(PAGE_ALL, lambda p, b: p.on_point("/p/{}/qr.svg")),
    ("GET", "/p/{point_id}/poster"): PageRow(PAGE_ALL, lambda p, b: p.on_point("/p/{}/poster")),
    ("GET", "/service-points"): PageRow(PAGE_ALL, at("/service-points")),
    ("GET", "/duty/today"): PageRow(PAGE_ALL, at("/duty/today")),
    # The representatives' service worker is a static script: nothing in it is anyone's.
    ("GET", "/sw.js"): PageRow(PAGE_ALL, at("/sw.js")),
    # The site's icon: our own SVG, the same for everyone.
    ("GET", "/favicon.ico"): PageRow(PAGE_ALL, at("/favicon.ico")),

    # --- representatives: 张代表's own pages and actions. The office and the units are refused (403): the
    # office answers on the spot from /office/forms/{id}, and assigns shifts from /office/rosters.
    ("GET", "/rep"): PageRow({REP}, at("/rep")),
    ("POST", "/rep/forms"): PageRow({REP}, at("/rep/forms", data={
        "content": CONTENT, "category": "urban_traffic", "source": "w:LS-01"}), see("/rep")),
    # A form 张代表 entered at the stall, fresh for every caller.
    ("POST", "/rep/forms/{form_id}/answer-on-spot"): PageRow({REP}, lambda p, b: p.fresh_form(
        "/rep/forms/{}/answer-on-spot", "submitted", {"reply": "已当场解释政策。"}, by=REP), see("/rep")),
    # 补发查询码 from 今天我录入的: a form 张代表 entered, fresh for every caller; the new code in /rep's receipt.
    ("POST", "/rep/forms/{form_id}/verification-code"): PageRow({REP}, lambda p, b: p.fresh_form(
        "/rep/forms/{}/verification-code", "submitted", {}, by=REP), see("/rep")),
    ("GET", "/rep/duty"): PageRow({REP}, at("/rep/duty")),
    ("GET", "/rep/record"): PageRow({REP}, at("/rep/record")),
    ("POST", "/rep/calendar/reset"): PageRow({REP}, at("/rep/calendar/reset"), see("/rep/duty#calendar")),
    # 张代表's shift running now (the API table's: a second check-in changes nothing and answers the same).
    ("POST", "/rep/shifts/{shift_id}/check-in"): PageRow({REP}, lambda p, b: p.running_shift(
        "/rep/shifts/{}/check-in"), see("/rep")),
    # A shift of 张代表's, later on, fresh for every caller: asked to be taken by 李代表.
    ("POST", "/rep/shifts/{shift_id}/swap"): PageRow({REP}, lambda p, b: p.fresh_shift(
        "/rep/shifts/{}/swap", data={"to_representative_id": str(p.town.rep_id("rep2"))}), see("/rep")),
    # A swap the office asked of 张代表 for 李代表's shift: only he answers it.
    ("POST", "/rep/swaps/{swap_id}/{action}"): PageRow({REP}, lambda p, b: p.swap_asked_of_rep(
        "/rep/swaps/{}/accept"), see("/rep")),

    # --- the office (admin, coordinator) and the handling units (handler_a of unit A).
    ("GET", "/office"): PageRow(OFFICE, at("/office"), answers={HANDLER: see("/office/unit")}),
    ("GET", "/office/forms"): PageRow(OFFICE, at("/office/forms")),
    # A topic's forms: every member of staff, each seeing the forms of it they may see (a resident's bearer
    # token is no page session: the login page, as for every staff page).
    ("GET", "/office/topics/{topic_id}"): PageRow(OFFICE | {HANDLER, REP}, lambda p, b: p.town.topic("/office/topics/{}")),
    # A form of LS-02 given to unit B: handler_a is refused (403 form_forbidden), as on the API.
    ("GET", "/office/forms/{form_id}"): PageRow(OFFICE, lambda p, b: p.town.on_form(
        "/office/forms/{}", "ls02-unit-b", state="assigned", workroom="LS-02", unit="B")),
    # An internal note on a form of LS-01 held by unit A: the office and that unit; each action is in
    # PAGE_VARIANTS.
    ("POST", "/office/forms/{form_id}/{action}"): PageRow(STAFF_PAGES, lambda p, b: p.town.on_form(
        "/office/forms/{}/note", "ls01-unit-a", state="assigned", data={"note": "已电话联系提交人。"}),
        see("/office/forms/{id}")),
    # Bulk actions on the desk's selected rows: the office only, back to the list (a form that cannot be
    # urged is named in the message, not refused as a request).
    ("POST", "/office/forms/bulk"): PageRow(OFFICE, at("/office/forms/bulk", data={"op": "urge", "ids": "1"}),
                                            see("/office/forms")),
    # 补发查询码 on the form's page: the office only (back to the form, which shows the new code once).
    ("POST", "/office/forms/{form_id}/verification-code"): PageRow(OFFICE, lambda p, b: p.town.on_form(
        "/office/forms/{}/verification-code", "ls01-unit-a", state="assigned"), see("/office/forms/{id}")),
    # The audited reveal, shown in place on the form's page: the office and the unit holding the form.
    ("POST", "/office/forms/{form_id}/contact"): PageRow(STAFF_PAGES, lambda p, b: p.town.on_form(
        "/office/forms/{}/contact", "ls01-unit-a", state="assigned")),
    # 合并办理 on the form's page: the office only, back to the form (as the API's rows).
    ("POST", "/office/forms/{form_id}/merge"): PageRow(OFFICE, lambda p, b: p.town.merge_pair(
        "/office/forms/{}/merge"), see("/office/forms/{id}")),
    ("POST", "/office/forms/{form_id}/unmerge"): PageRow(OFFICE, lambda p, b: p.town.merged_follower(
        "/office/forms/{}/unmerge"), see("/office/forms/{id}")),
    ("GET", "/office/unit"): PageRow({HANDLER}, at("/office/unit"), answers={
        ADMIN: see("/office/forms"), COORD: see("/office/forms")}),  # the office's list is /office/forms

    # --- the office's rosters and service points
    ("GET", "/office/rosters"): PageRow(OFFICE, at("/office/rosters")),
    ("POST", "/office/rosters/shifts"): PageRow(OFFICE, lambda p, b: p.new_shift_form(), see("/office/rosters")),
    ("POST", "/office/rosters/shifts/{shift_id}/delete"): PageRow(OFFICE, lambda p, b: p.fresh_shift(
        "/office/rosters/shifts/{}/delete"), see("/office/rosters")),
    ("GET", "/office/rosters/calendar"): PageRow(OFFICE, at("/office/rosters/calendar", params={"workroom": "LS-01"})),
    ("POST", "/office/rosters/calendar/reset"): PageRow(OFFICE, at("/office/rosters/calendar/reset", data={
        "workroom": "LS-02"}), see("/office/rosters/calendar?workroom=LS-02")),
    ("GET", "/office/rota"): PageRow(OFFICE, at("/office/rota")),
    ("POST", "/office/rota/{step}"): PageRow(OFFICE, lambda p, b: p.rota_form("preview", week=0)),
    ("GET", "/office/swaps"): PageRow(OFFICE, at("/office/swaps")),
    # A swap 李代表 accepted, waiting for the office: fresh for every caller.
    ("POST", "/office/swaps/{swap_id}/{action}"): PageRow(OFFICE, lambda p, b: p.accepted_swap(
        "/office/swaps/{}/approve"), see("/office/swaps")),
    ("GET", "/office/attendance"): PageRow(OFFICE, at("/office/attendance")),
    ("GET", "/office/service-points"): PageRow(OFFICE, at("/office/service-points")),
    ("POST", "/office/service-points"): PageRow(OFFICE, lambda p, b: p.new_point_form(),
                                                see("/office/service-points")),
    ("GET", "/office/funnel"): PageRow(OFFICE, at("/office/funnel")),

    # --- paper forms (issue 20.1): the office, and 张代表 for LS-01's batches; printing a batch and voiding
    # sheets are the office's. A unit is refused (403); each use of a sheet has a fresh batch of one.
    ("GET", "/office/paper"): PageRow(OFFICE | {REP}, at("/office/paper")),
    ("POST", "/office/paper"): PageRow(OFFICE, at("/office/paper", data={"workroom_code": "LS-01", "count": "1",
                                                                       "page_size": "A5"}), see("/office/paper/{id}")),
    ("GET", "/office/paper/entry"): PageRow(OFFICE | {REP}, at("/office/paper/entry")),
    ("POST", "/office/paper/entry"): PageRow(OFFICE | {REP}, lambda p, b: p.town.paper(
        "/office/paper/entry", fresh=True, data={"serial": "{serial}", "content": CONTENT}), see("/office/paper/entry")),
    ("GET", "/office/paper/{batch_id}"): PageRow(OFFICE | {REP}, lambda p, b: p.town.paper("/office/paper/{}")),
    ("POST", "/office/paper/{batch_id}/voids"): PageRow(OFFICE, lambda p, b: p.town.paper(
        "/office/paper/{}/voids", fresh=True, data={"serials": "{serial}", "reason": "淋湿"}), see("/office/paper/{id}")),
    ("GET", "/office/records"): PageRow(OFFICE, at("/office/records", params={"workroom": "LS-01"})),
    ("GET", "/office/records/{representative_id}"): PageRow(OFFICE, lambda p, b: p.town.path(
        "/office/records/{}", p.town.rep_id("rep"))),

    # --- the register of activities (issue 20.2): the office for every workroom, 张代表 for LS-01's (the
    # activities used are LS-01's); the handling units have no part in it. The public list is everyone's.
    ("GET", "/w/{code}/activities"): PageRow(PAGE_ALL, at("/w/LS-01/activities")),
    ("GET", "/office/activities"): PageRow(OFFICE | {REP}, at("/office/activities")),
    ("GET", "/office/activities/new"): PageRow(OFFICE | {REP}, at("/office/activities/new")),
    ("POST", "/office/activities"): PageRow(OFFICE | {REP}, at("/office/activities", data=ACTIVITY_FORM),
                                            see("/office/activities/{id}?saved=1")),
    ("GET", "/office/activities/{activity_id}"): PageRow(OFFICE | {REP}, lambda p, b: p.town.on_activity(
        "/office/activities/{}")),
    ("POST", "/office/activities/{activity_id}"): PageRow(OFFICE | {REP}, lambda p, b: p.town.on_activity(
        "/office/activities/{}", data=ACTIVITY_FORM), see("/office/activities/{id}?saved=1")),
    ("GET", "/office/activities/{activity_id}/delete"): PageRow(OFFICE | {REP}, lambda p, b: p.town.on_activity(
        "/office/activities/{}/delete")),
    ("POST", "/office/activities/{activity_id}/delete"): PageRow(OFFICE | {REP}, lambda p, b: p.town.on_activity(
        "/office/activities/{}/delete", fresh=True), see("/office/activities?deleted=1")),
    ("POST", "/office/activities/{activity_id}/photos"): PageRow(OFFICE | {REP}, lambda p, b: p.town.on_activity(
        "/office/activities/{}/photos", fresh=True, files={"photos": ("photo.jpg", jpeg(), "image/jpeg")}),
        see("/office/activities/{id}")),
    ("POST", "/office/activities/{activity_id}/photos/{photo_id}/delete"): PageRow(
        OFFICE | {REP}, lambda p, b: p.town.activity_photo(
            "/office/activities/{activity}/photos/{photo}/delete", fresh=True), see("/office/activities/{id}")),

    # --- imports: the coordinator's job (its creator and admins, as on the API).
    ("GET", "/office/imports"): PageRow(OFFICE, at("/office/imports")),
    ("POST", "/office/imports"): PageRow(OFFICE, lambda p, b: p.import_form(), see("/office/imports/{id}")),
    ("GET", "/office/imports/{job_id}"): PageRow(OFFICE, lambda p, b: p.import_job()),
    ("GET", "/office/imports/{job_id}/errors.csv"): PageRow(OFFICE, lambda p, b: p.import_job("/errors.csv")),
    ("GET", "/office/exports/forms"): PageRow(OFFICE, at("/office/exports/forms?status=submitted")),

    # --- the brief (工作简报): the office's pages; the job page shows the coordinator's job (and admins').
    ("GET", "/office/reports"): PageRow(OFFICE, at("/office/reports")),
    ("GET", "/office/reports/{period}"): PageRow(OFFICE, at("/office/reports/2026-11")),
    ("POST", "/office/reports/{period}/opening"): PageRow(OFFICE, at("/office/reports/2026-11/opening", data={
        "opening": "矩阵测试开头。"}), see("/office/reports/2026-11#opening")),
    ("POST", "/office/reports/{period}/cases"): PageRow(OFFICE, at("/office/reports/2026-11/cases"),
                                                        see("/office/reports/2026-11#cases")),
    ("POST", "/office/reports/{period}/jobs"): PageRow(OFFICE, at("/office/reports/1999/jobs", data={
        "format": "docx"}), see("/office/reports/1999/jobs/{id}")),
    ("GET", "/office/reports/{period}/jobs/{job_id}"): PageRow(OFFICE, lambda p, b: p.report_job()),

    # --- the working-day calendar: the office reads it, admins change it (days of CALENDAR_YEAR's December,
    # apart from the API rows' days, which start in January).
    ("GET", "/office/calendar"): PageRow(OFFICE, at("/office/calendar")),
    ("POST", "/office/calendar/days"): PageRow({ADMIN}, at("/office/calendar/days", data={
        "day": f"{CALENDAR_YEAR}-12-30", "kind": "holiday", "name": "矩阵页面"}),
        see(f"/office/calendar?year={CALENDAR_YEAR}#day-{CALENDAR_YEAR}-12-30")),
    ("POST", "/office/calendar/days/{day}/edit"): PageRow({ADMIN}, at("/office/calendar/days/2026-10-01/edit", data={
        "kind": "holiday", "name": "国庆节"}), see("/office/calendar?year=2026#day-2026-10-01")),
    ("POST", "/office/calendar/days/{day}/delete"): PageRow({ADMIN}, lambda p, b: p.town.on_calendar_day(
        "/office/calendar/days/{}/delete"), see(f"/office/calendar?year={CALENDAR_YEAR}")),
    ("POST", "/office/calendar/import"): PageRow({ADMIN}, at("/office/calendar/import", files={
        "file": ("通知.csv", f"日期,类型,名称\n{CALENDAR_YEAR}-12-29,放假,矩阵页面\n".encode(), "text/csv")}),
        see(f"/office/calendar?year={CALENDAR_YEAR}&imported=1")),
}

# The other values of a path's last segment, and other objects worth proving: (METHOD, path template,
# what) → row, with the same rules as PAGES.
PAGE_VARIANTS: dict[tuple[str, str, str], PageRow] = {
    # handler_a's own unit's form: the office and that unit.
    ("GET", "/office/forms/{form_id}", "a form held by unit A"): PageRow(STAFF_PAGES, lambda p, b: p.town.on_form(
        "/office/forms/{}", "ls01-unit-a", state="assigned")),
    ("POST", "/office/rota/{step}", "commit"): PageRow(OFFICE, lambda p, b: p.rota_form("commit", week=None),
                                                       see("/office/rosters")),
    ("POST", "/office/swaps/{swap_id}/{action}", "refuse"): PageRow(OFFICE, lambda p, b: p.accepted_swap(
        "/office/swaps/{}/refuse"), see("/office/swaps")),
    ("POST", "/rep/swaps/{swap_id}/{action}", "decline"): PageRow({REP}, lambda p, b: p.swap_asked_of_rep(
        "/rep/swaps/{}/decline"), see("/rep")),
    # A swap 张代表 asked for his own shift: only he may withdraw it.
    ("POST", "/rep/swaps/{swap_id}/{action}", "cancel"): PageRow({REP}, lambda p, b: p.swap_asked_by_rep(
        "/rep/swaps/{}/cancel"), see("/rep")),
}


def _form_action(action: str, state: str, data: Mapping[str, str], may: AbstractSet[str], *, by: str = ANON
                 ) -> tuple[tuple[str, str, str], PageRow]:
    """One action of /office/forms/{id}/{action}, on a form of LS-01 (given to unit A once assigned) fresh in
    ``state`` for every caller; the page comes back to the form."""
    return ("POST", "/office/forms/{form_id}/{action}", action), PageRow(
        may, lambda p, b: p.fresh_form(f"/office/forms/{{}}/{action}", state, data, by=by),
        see("/office/forms/{id}"))


# The workflow service decides who may take each action (the page lets the office and the units in, and
# refuses representatives itself): the same answers as the API's rows for the same actions.
PAGE_VARIANTS.update(dict([
    _form_action("assign", "submitted", {"unit_id": "{unit A}"}, OFFICE),
    _form_action("reassign", "assigned", {"unit_id": "{unit B}"}, OFFICE),
    _form_action("decline", "submitted", {"reason": "不属于意见征询范围。"}, OFFICE),
    # Entered by 张代表 at the stall; on this page the office records it (he uses /rep).
    _form_action("answer-on-spot", "submitted", {"reply": "已当场解释政策。"}, OFFICE, by=REP),
    _form_action("reply", "assigned", {"reply": "已安排维修，三日内完成。"}, STAFF_PAGES),
    # Only the unit holding the form returns it or asks for more time.
    _form_action("return", "assigned", {"reason": "不属于本单位职责。"}, {HANDLER}),
    _form_action("extension", "assigned", {"due_at": "{in 120 days}", "reason": "需要协调供电公司。"}, {HANDLER}),
    _form_action("extension-approve", "extension_requested", {"note": "同意。"}, OFFICE),
    _form_action("extension-refuse", "extension_requested", {"note": "请按期办理。"}, OFFICE),
    _form_action("urge", "assigned", {"note": "请加快办理。"}, OFFICE),
    _form_action("close", "answered", {"satisfaction": "satisfied"}, OFFICE),
    _form_action("reopen", "answered", {"reason": "群众反映路灯仍未修好。"}, OFFICE),
    _form_action("note", "assigned", {"note": "已电话联系提交人。"}, STAFF_PAGES),
    _form_action("clear-review", "flagged", {"note": "内容无问题。"}, OFFICE),
]))


# --- the tests of the pages ------------------------------------------------------------------------------

NOT_PAGES = ("/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


def pages(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route that is not the API's, Open311's, a probe, the API's docs or
    the static files; HEAD skipped."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path_format
        if not isinstance(path, str) or path.startswith((*PREFIXES, "/static/")) or path in NOT_PAGES:
            continue
        assert not isinstance(route.original_route, Mount), f"a Mount at {path}: list its endpoints instead"
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, path))
    return found


def test_every_page_has_a_row(tmp_path: Path) -> None:
    app = build_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'routes.db'}"))
    routes = pages(app)
    assert len(routes) > 40, "the walk over the pages found almost nothing: did FastAPI change how it lists them?"
    missing = sorted(routes - set(PAGES))
    stale = sorted(set(PAGES) - routes)
    assert not missing, f"pages without a row in PAGES (add one: see the pages' section of this file): {missing}"
    assert not stale, f"rows in PAGES for pages that are gone: {stale}"
    assert {(method, path) for method, path, _ in PAGE_VARIANTS} <= routes


def test_every_office_form_action_has_a_variant() -> None:
    listed = {what for method, path, what in PAGE_VARIANTS if path == "/office/forms/{form_id}/{action}"}
    assert listed == set(office_page.ACTION_BODIES)


def test_the_page_tables_name_only_known_callers() -> None:
    for key, row in [*PAGES.items(), *PAGE_VARIANTS.items()]:
        assert row.may <= PAGE_ALL and set(row.answers) <= PAGE_ALL, key


async def _walk(browsers: Browsers, method: str, row: PageRow) -> list[str]:
    wrong = []
    for caller in PAGE_CALLERS:
        async with browsers.use(caller, fork=row.fork) as browser:
            call = await row.call(browsers, browser)
            response = await browsers.send(browser, method, call)
        mismatch = check_page(response, row.expected(caller))
        if mismatch:
            wrong.append(f"  {caller:<12} {mismatch}")
    return wrong


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("page", sorted(PAGES), ids=lambda e: f"{e[0]} {e[1]}")
async def test_every_caller_gets_the_page_answer_in_the_table(browsers: Browsers, page: tuple[str, str]) -> None:
    wrong = await _walk(browsers, page[0], PAGES[page])
    assert not wrong, f"{page[0]} {page[1]}:\n" + "\n".join(wrong)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("variant", sorted(PAGE_VARIANTS), ids=lambda e: f"{e[0]} {e[1]} [{e[2]}]")
async def test_every_caller_gets_the_variant_answer_in_the_table(
    browsers: Browsers, variant: tuple[str, str, str]
) -> None:
    wrong = await _walk(browsers, variant[0], PAGE_VARIANTS[variant])
    assert not wrong, f"{variant[0]} {variant[1]} [{variant[2]}]:\n" + "\n".join(wrong)


def check_page(response: httpx.Response, expected: Answer) -> str | None:
    """What is wrong with ``response`` for the cell's expected answer, or None."""
    status = response.status_code
    location = response.headers.get("location", "")
    got = f"{status}" + (f" → {location}" if location else f": {response.text[:200]!r}")
    if expected.status == OK:
        return None if 200 <= status < 300 else f"expected 2xx, got {got}"
    if status != expected.status:
        return f"expected {expected}, got {got}"
    if expected is TO_LOGIN:
        asked = response.request.url.path + (f"?{response.request.url.query.decode()}"
                                             if response.request.url.query else "")
        # A POST without a Referer comes back to no page in particular (the action takes POST only).
        want = f"/login?next={quote(asked)}" if response.request.method in ("GET", "HEAD") else "/login"
        return None if location == want else f"expected 303 → {want}, got {got}"
    if expected.location is not None:
        whole = "?" in expected.location or "#" in expected.location
        pattern = re.escape(expected.location).replace(re.escape("{id}"), r"\d+")
        if not re.fullmatch(pattern, location if whole else urlsplit(location).path):
            return f"expected {expected}, got {got}"
    if status == 403:
        if not response.headers.get("content-type", "").startswith("text/html"):
            return f"a 403 that is not the error page ({response.headers.get('content-type')})"
        if CSRF_REFUSED in response.text:  # every browser sends its token: a refusal must be the sign-in's
            return "a 403 from the CSRF check, not from who the caller is"
    return None


# --- the browsers the page requests run in ----------------------------------------------------------------

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CSRF_REFUSED = "页面已过期或来源不明"  # app/web/session.py check_csrf's message


class Browsers:
    """One browser per page caller, signed in once, on the API table's town; and the helpers that make what a
    page row needs (through the API, as the town does)."""

    def __init__(self, town: Town) -> None:
        self.town = town
        self.by_caller: dict[str, Browser] = {}

    def client(self, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.town.app), base_url="http://testserver",
                                 cookies=cookies)

    async def sign_in(self, browser: Browser, username: str) -> None:
        response = await browser.http.post("/login", data={"username": username, "password": PASSWORD,
                                                           CSRF_FIELD: browser.csrf})
        assert response.status_code == 303, f"signing in as {username}: {response.status_code} {response.text[:300]}"
        assert response.cookies.get(SESSION_COOKIE), "no session cookie after signing in"

    async def open(self, caller: str) -> None:
        http = self.client()
        login = await http.get("/login")  # sets the browser's CSRF cookie; the page carries its token
        match = CSRF_META.search(login.text)
        assert match, login.text[:300]
        browser = Browser(caller, http, match.group(1))
        if caller in STAFF_USERS:
            await self.sign_in(browser, STAFF_USERS[caller])
        elif caller == BEARER:
            browser.headers = self.town.world.auth("admin")
        self.by_caller[caller] = browser

    async def aclose(self) -> None:
        for browser in self.by_caller.values():
            await browser.http.aclose()

    @contextlib.asynccontextmanager
    async def use(self, caller: str, *, fork: bool) -> AsyncIterator[Browser]:
        """The caller's browser, or a copy of it (its cookies copied) thrown away afterwards."""
        browser = self.by_caller[caller]
        if not fork:
            yield browser
            return
        async with self.client(httpx.Cookies(browser.http.cookies)) as http:
            yield Browser(caller, http, browser.csrf, dict(browser.headers))

    async def send(self, browser: Browser, method: str, call: Call) -> httpx.Response:
        data: Any = call.data
        if method == "POST":  # as the page's form does: its CSRF token in the csrf_token field
            data = {CSRF_FIELD: browser.csrf, **(call.data or {})}
        headers = {**browser.headers, **(call.headers or {})}
        return await browser.http.request(method, call.path, params=call.params, data=data, files=call.files,
                                          headers=headers)

    # -- signing in and out

    async def login_form(self, browser: Browser) -> Call:
        return Call("/login", data={"username": STAFF_USERS.get(browser.caller, "coordinator"), "password": PASSWORD})

    async def fresh_session(self, browser: Browser) -> Call:
        """Staff sign out a session of their own made for it (this copy of their browser signs in again)."""
        if browser.caller in STAFF_USERS:
            await self.sign_in(browser, STAFF_USERS[browser.caller])
        return Call("/logout")

    # -- residents

    async def receipt(self, browser: Browser) -> Call:
        sent = await self.send(browser, "POST", Call("/submit", data={
            "content": CONTENT, "category": "urban_traffic", "workroom_code": "LS-01"}))
        assert sent.status_code == 303 and sent.headers["location"] == "/receipt", sent.text[:300]
        return Call("/receipt")

    async def track(self, *, stop: bool = False) -> Call:
        form = await self.town.shared("form:tracked", self.town.form)
        return Call("/track/sms-stop" if stop else "/track",
                    data={"no": form["tracking_no"], "code": form["verification_code"]})

    async def on_point(self, template: str) -> Call:
        return Call(template.format(await self.town.shared("point", self.town.point)))

    # -- forms

    async def fresh_form(self, template: str, state: str, data: Mapping[str, str], *, by: str = ANON) -> Call:
        form = await self.town.form(state, by=by)
        filled = {"{unit A}": str(self.town.unit("A")), "{unit B}": str(self.town.unit("B")),
                  "{in 120 days}": (date.today() + timedelta(days=120)).isoformat()}
        return Call(template.format(form["id"]), data={k: filled.get(v, v) for k, v in data.items()})

    # -- rosters

    async def running_shift(self, template: str) -> Call:
        shift_id = await self.town.shared("shift:now", lambda: self.town.shift(now=True))
        return Call(template.format(shift_id))

    async def fresh_shift(self, template: str, **request: Any) -> Call:
        return Call(template.format(await self.town.shift()), **request)

    async def new_shift_form(self) -> Call:
        day = self.town.slot()[0][:10]  # a day of its own (09:00 Shanghai is that day in UTC too)
        return Call("/office/rosters/shifts", data={
            "workroom": "LS-01", "week": day, "representative_id": str(self.town.rep_id("rep")), "day": day,
            "start": "09:00", "end": "11:00"})

    async def rota_form(self, step: str, *, week: int | None) -> Call:
        """The API table's rota (李代表 at LS-02, one Monday about two years on) as the page's form."""
        body = (await self.town.rota("/api/v1/rota/preview", week=week)).json
        (pattern,) = body["workrooms"]
        key = f"w-{pattern['code']}"
        return Call(f"/office/rota/{step}", data={
            "planned": "1", "from": body["from"], "to": body["to"], f"{key}-on": "1",
            f"{key}-weekday": [str(d) for d in pattern["weekdays"]], f"{key}-start": pattern["start"],
            f"{key}-end": pattern["end"], f"{key}-rep": [str(r) for r in pattern["representative_ids"]]})

    async def swap(self, shift_id: int, to: str) -> int:
        swap = expect(await self.town.http.post(f"/api/v1/shifts/{shift_id}/swap", headers=self.town.auth(COORD),
                                                json={"to_representative_id": self.town.rep_id(to)}), 201)
        return int(swap["id"])

    async def swap_asked_of_rep(self, template: str) -> Call:
        """李代表's shift, which the office asked 张代表 to take: fresh for every caller."""
        return Call(template.format(await self.swap(await self.town.shift("rep2", "LS-02"), "rep")))

    async def swap_asked_by_rep(self, template: str) -> Call:
        """张代表's shift, which he asked 李代表 to take: fresh for every caller."""
        shift_id = await self.town.shift()
        swap = expect(await self.town.http.post(f"/api/v1/shifts/{shift_id}/swap", headers=self.town.auth(REP),
                                                json={"to_representative_id": self.town.rep_id("rep2")}), 201)
        return Call(template.format(swap["id"]))

    async def accepted_swap(self, template: str) -> Call:
        """张代表's shift, which 李代表 agreed to take: waiting for the office. Fresh for every caller."""
        swap_id = await self.swap(await self.town.shift(), "rep2")
        expect(await self.town.http.post(f"/api/v1/swaps/{swap_id}/accept", headers=self.town.world.auth("rep2")), 200)
        return Call(template.format(swap_id))

    # -- service points and imports

    async def new_point_form(self) -> Call:
        day = self.town.slot()[0][:10]
        return Call("/office/service-points", data={
            "workroom_code": "LS-01", "title": "流动服务点进村", "place_type": "village", "location": "石塘湾村",
            "starts_at": f"{day}T14:00", "ends_at": f"{day}T16:00",
            "representative_ids": [str(self.town.rep_id("rep"))]})

    async def import_form(self) -> Call:
        return Call("/office/imports", data={"kind": "representatives"}, files={
            "file": ("代表.csv", import_csv(f"矩阵页面代表{self.town.number()}"), "text/csv")})

    async def import_job(self, suffix: str = "") -> Call:
        return Call(f"/office/imports/{await self.town.import_job()}{suffix}")

    async def report_job(self) -> Call:
        return Call(f"/office/reports/1999/jobs/{await self.town.report_job()}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browsers(town: Town) -> AsyncIterator[Browsers]:
    opened = Browsers(town)
    try:
        for caller in PAGE_CALLERS:
            await opened.open(caller)
        yield opened
    finally:
        await opened.aclose()


# === what each caller reads of a form (issue 15, points 5 and 6) =========================================
#
# The tables above say who gets in; this one says what each caller who gets in reads of one form that carries
# every kind of secret: the resident's name and phone, the office's assignment instructions and an internal
# note (services/disclosure.py is the policy). ``DISCLOSED[(what, how)] = {caller: the secrets it reads}``,
# where a secret is one of ``SECRET`` (whole) or ``MASKED`` (``欧***``, ``137****1234``); every secret not
# listed for a caller must be absent from its answer, in any spelling the table knows.

SECRET = {"name": "欧阳秘密", "phone": "13700001234", "instructions": "批办秘语：先联系村书记",
          "note": "内部秘语：涉及补偿"}
MASKED = {"name*": "欧***", "phone*": "137****1234"}
EVERY_SECRET = {**SECRET, **MASKED}
DISCLOSURE_CONTENT = "矩阵披露测试：村口排水沟堵塞，雨天积水。"

WHOLE = frozenset({"name", "phone"})  # the office's view of the person
MASKED_PERSON = frozenset({"name*", "phone*"})  # everyone else's
INTERNAL = frozenset({"instructions", "note"})


@dataclass(frozen=True)
class Secrets:
    form_id: int
    tracking_no: str
    code: str
    hook_id: int  # a webhook of the webhooks-only client (H), made before the form: its deliveries carry it


async def secrets_form(town: Town) -> Secrets:
    async def make() -> Secrets:
        hook = expect(await town.http.post("/api/v1/webhooks", headers=town.auth(H), json={
            "url": f"http://127.0.0.1:{town._dead_port}/minyi", "events": ["form.submitted", "form.answered"]}), 201)
        form = await town.form("submitted", submitter_name=SECRET["name"], submitter_phone=SECRET["phone"],
                               content=DISCLOSURE_CONTENT)
        path = f"/api/v1/forms/{form['id']}"
        expect(await town.http.post(f"{path}/assign", headers=town.auth(COORD), json={
            "unit_id": town.unit("A"), "instructions": SECRET["instructions"]}), 200)
        expect(await town.http.post(f"{path}/notes", headers=town.auth(COORD), json={"note": SECRET["note"]}), 200)
        expect(await town.http.post(f"{path}/reply", headers=town.auth(HANDLER), json={
            "reply": "已疏通排水沟。", "internal_note": SECRET["note"]}), 200)
        return Secrets(form["id"], form["tracking_no"], form["verification_code"], int(hook["id"]))

    secrets: Secrets = await town.shared("form:secrets", make)
    return secrets


async def own_deliveries(town: Town, s: Secrets, caller: str) -> Call:
    """The webhooks-only client reads its own webhook's deliveries of the form (and so does an admin)."""
    listed = expect(await town.http.get(f"/api/v1/webhooks/{s.hook_id}/deliveries", headers=town.auth(ADMIN)), 200)
    assert len(listed["items"]) >= 2, listed  # form.submitted and form.answered
    return Call(f"/api/v1/webhooks/{s.hook_id}/deliveries/{listed['items'][0]['id']}")


async def changes_of_form(town: Town, s: Secrets, caller: str) -> Call:
    """The page of the changes feed that holds the form's changes (the module's other rows add many forms;
    on PostgreSQL a change shows once older transactions end, so the end of the feed is waited on:
    tests/support/changes.py)."""
    cursor: str | None = None
    deadline = time.monotonic() + 30
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = expect(await town.http.get("/api/v1/changes", params=params, headers=town.auth(ADMIN)), 200)
        if any(item["form_id"] == s.form_id for item in page["items"]):
            return Call("/api/v1/changes", params=params)
        if len(page["items"]) < 100:  # the end for now
            assert time.monotonic() < deadline, "the form's changes never showed in the feed"
            await asyncio.sleep(0.05)
        cursor = page["next_cursor"] or cursor


SecretCall = Callable[[Town, Secrets, str], Awaitable[Call]]


def on(template: str, **request: Any) -> SecretCall:
    async def call(_town: Town, s: Secrets, _caller: str) -> Call:
        ids = {"id": s.form_id, "no": s.tracking_no, "code": s.code}
        params = {k: v.format(**ids) for k, v in request.get("params", {}).items()}
        rest = {k: v for k, v in request.items() if k != "params"}
        return Call(template.format(**ids), params=params or None, **rest)

    return call


DISCLOSED: dict[tuple[str, str], tuple[SecretCall, Mapping[str, AbstractSet[str]]]] = {
    # The list carries instructions (no notes: those live in the timeline) for staff; names whole for the office.
    ("GET", "/api/v1/forms"): (on("/api/v1/forms", params={"q": DISCLOSURE_CONTENT}), {
        ADMIN: WHOLE | {"instructions"}, COORD: WHOLE | {"instructions"},
        HANDLER: MASKED_PERSON | {"instructions"}, REP: MASKED_PERSON | {"instructions"}, R: MASKED_PERSON}),
    ("GET", "/api/v1/forms/{form_id}"): (on("/api/v1/forms/{id}"), {
        ADMIN: WHOLE | INTERNAL, COORD: WHOLE | INTERNAL,
        HANDLER: MASKED_PERSON | INTERNAL, REP: MASKED_PERSON | INTERNAL, R: MASKED_PERSON}),
    # Exports never carry the timeline (so no notes); names as the list has them.
    ("GET", "/api/v1/forms/export.{fmt}"): (on("/api/v1/forms/export.csv", params={"q": DISCLOSURE_CONTENT}), {
        ADMIN: WHOLE | {"instructions"}, COORD: WHOLE | {"instructions"},
        HANDLER: MASKED_PERSON | {"instructions"}, REP: MASKED_PERSON | {"instructions"}}),
    # Integrators read the case: no person, nothing of the office's own business, whatever their scopes.
    ("GET", "/api/v1/changes"): (changes_of_form, {ADMIN: set(), COORD: set(), R: set()}),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): (own_deliveries, {ADMIN: set(), H: set()}),
    ("GET", "/api/v1/track/{tracking_no}"): (on("/api/v1/track/{no}", params={"code": "{code}"}), dict.fromkeys(
        CALLERS, set())),
    # The reveal: the person whole, to staff who may see the form (and recorded: see test_contact_reveal.py).
    ("POST", "/api/v1/forms/{form_id}/contact"): (on("/api/v1/forms/{id}/contact"), dict.fromkeys(STAFF, WHOLE)),
}


def test_the_disclosure_table_names_known_endpoints_and_callers(tmp_path: Path) -> None:
    routes = endpoints(build_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'routes.db'}")))
    for key, (_, reads) in DISCLOSED.items():
        assert key in routes, key
        assert set(reads) <= ALL, key
        for caller, secrets in reads.items():
            assert set(secrets) <= set(EVERY_SECRET), (key, caller)


def secrets_in(text: str) -> set[str]:
    return {key for key, value in EVERY_SECRET.items() if value in text}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("endpoint", sorted(DISCLOSED), ids=lambda e: f"{e[0]} {e[1]}")
async def test_every_caller_reads_what_the_disclosure_table_says(town: Town, endpoint: tuple[str, str]) -> None:
    s = await secrets_form(town)
    make, reads = DISCLOSED[endpoint]
    wrong = []
    for caller, expected in reads.items():
        call = await make(town, s, caller)
        response = await town.send(endpoint[0], call, caller)
        if not 200 <= response.status_code < 300:
            wrong.append(f"  {caller:<20} {response.status_code} {response.text[:200]}")
            continue
        assert s.tracking_no in response.text or f'"id":{s.form_id}' in response.text.replace(" ", ""), \
            f"{caller}: the form is not in the answer, so the row proves nothing"
        found = secrets_in(response.text)
        if found != set(expected):
            wrong.append(f"  {caller:<20} reads {sorted(found)}, the table says {sorted(expected)}")
    assert not wrong, f"{endpoint[0]} {endpoint[1]}:\n" + "\n".join(wrong)


PAGES_DISCLOSED: dict[tuple[str, str], Mapping[str, AbstractSet[str]]] = {
    # The form's page: the office reads everything; the unit holding it the office's notes and the person
    # masked, with the button to reveal (below).
    ("GET", "/office/forms/{id}"): {ADMIN: WHOLE | INTERNAL, COORD: WHOLE | INTERNAL,
                                    HANDLER: MASKED_PERSON | INTERNAL},
    ("POST", "/office/forms/{id}/contact"): {ADMIN: WHOLE | INTERNAL, COORD: WHOLE | INTERNAL,
                                             HANDLER: WHOLE | INTERNAL},
}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("page", sorted(PAGES_DISCLOSED), ids=lambda e: f"{e[0]} {e[1]}")
async def test_every_caller_reads_on_the_pages_what_the_disclosure_table_says(
        browsers: Browsers, page: tuple[str, str]) -> None:
    s = await secrets_form(browsers.town)
    wrong = []
    for caller, expected in PAGES_DISCLOSED[page].items():
        async with browsers.use(caller, fork=False) as browser:
            response = await browsers.send(browser, page[0], Call(page[1].format(id=s.form_id)))
        assert response.status_code == 200, f"{caller}: {response.status_code} {response.text[:300]}"
        assert DISCLOSURE_CONTENT in response.text
        found = secrets_in(response.text)
        if found != set(expected):
            wrong.append(f"  {caller:<12} reads {sorted(found)}, the table says {sorted(expected)}")
    assert not wrong, f"{page[0]} {page[1]}:\n" + "\n".join(wrong)
