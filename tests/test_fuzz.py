"""Fuzz the JSON API against its own /openapi.json with schemathesis (issue 8, point 10).

Every operation under /api/v1 is called with generated inputs, valid and invalid, on SQLite and on
PostgreSQL, as the public and as an admin. Whatever is sent: never a 5xx; a status the operation does not
declare is a failure; a declared status must come with a declared content type and a body that matches
its schema. A failure prints the request that reproduces it (a curl line; secrets show as [Filtered]).

The admin run goes everywhere: schemathesis' coverage phase (boundary values, missing and wrongly typed
fields) and then generated inputs. The public run, which mostly meets 401 outside the public operations,
only takes generated inputs. Both are derandomized, so a run is the same run every time. The everyday run
takes 4 generated inputs per operation, the deep one (`MINYI_TEST_DEEP=1`) 15.

The coverage phase (about 6,000 calls, a minute a run) runs on PostgreSQL in the everyday run and on both
engines in the deep one: its boundary values are checked by the validation both engines share, and where an
engine could still differ, PostgreSQL is the strict one (lengths, integer widths, encodings are enforced
there, where SQLite stores what it is given), so it is the engine that turns a missing check into a 500.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.db import transaction
from app.errors import PROBLEM_JSON
from app.models import User
from app.services import auth as auth_service
from app.services import forms as form_service
from app.services.auth import ANONYMOUS
from tests.conftest import wechat_settings
from tests.support import DEEP
from tests.factories import World, build_world
from tests.fake_wechat import FakeWeChat

# Generated inputs per operation (after the admin's coverage phase, which is the same in both): a few in the
# everyday run, 15 in the deep one (`MINYI_TEST_DEEP=1`, docs/testing.md).
EXAMPLES_PER_OPERATION = 15 if DEEP else 4
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
LOGOUT = "/api/v1/auth/logout"


def fuzz_config(*, coverage: bool) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": 8010,
        "generation": {
            # Credentials are the caller's, not generated (a generated X-API-Key would make every call a 401).
            "with-security-parameters": False,
            "max-examples": EXAMPLES_PER_OPERATION,
        },
        "phases": {
            # Wrong methods get Starlette's 405 everywhere alike: not worth a request per method per path.
            "coverage": {"enabled": coverage, "unexpected-methods": []},
            "stateful": {"enabled": False},
        },
    })


@dataclass
class Caller:
    name: str
    headers: dict[str, str]
    # POST /auth/logout revokes the token it is sent: the admin logs out a token of its own.
    logout_headers: dict[str, str]

    def headers_for(self, case: schemathesis.Case) -> dict[str, str]:
        # A copy each time: schemathesis adds its own headers to the dict it is given.
        return dict(self.logout_headers if case.operation.path == LOGOUT else self.headers)


@pytest.fixture
def settings(db_url: str, tmp_path: Path, fake_wechat: FakeWeChat) -> Settings:
    # Files under tmp_path; WeChat is the fake one (tests/fake_wechat.py); no background worker or
    # supervision, so generated webhooks are never delivered anywhere.
    return wechat_settings(db_url, fake_wechat, export_dir=tmp_path / "exports", photo_dir=tmp_path / "photos",
                           worker_in_process=False, supervise_interval_seconds=0)


@pytest.fixture
async def world(app: Any) -> tuple[World, str]:
    """The small town and one submitted form (the lowest ids the fuzzer tries exist), and a second admin
    token for logging out."""
    built = await build_world(app.state.sessionmaker)
    async with transaction(app.state.sessionmaker) as session:
        data = form_service.Submission(content="村口路灯坏了三盏，晚上走路看不清。", category="urban_traffic",
                                       workroom_code="LS-01")
        (accepted,) = await form_service.submit_many(session, [(ANONYMOUS, data)], settings=app.state.settings)
        assert not isinstance(accepted, Exception)
        admin = await session.get_one(User, built.user_ids["admin"])
        logout_token, _ = await auth_service.issue_token(session, user=admin, ttl_seconds=3600)
    # Schemathesis calls the app from an event loop of its own: no pooled connection may cross loops.
    await app.state.engine.dispose()
    return built, logout_token


@pytest.fixture(params=["anonymous", "admin"])
def caller(request: pytest.FixtureRequest, world: tuple[World, str]) -> Caller:
    built, logout_token = world
    if request.param == "anonymous":
        return Caller("anonymous", {}, {})
    return Caller("admin", built.auth("admin"), {"Authorization": f"Bearer {logout_token}"})


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32 (pytest/lazy.py) reads and rewrites ``item._nodeid``, which pytest 9.2 no longer
    # has (node ids became ``item._id``): give it one to read. Only its per-operation relabelling is lost;
    # failures still name their operation (label='POST /api/v1/...').
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture
def api_schema(app: Any, caller: Caller, db_engine: str) -> Iterator[Any]:
    """The schema the app serves at /openapi.json, called in-process (ASGI) on this test's database.

    Schemathesis runs the app's lifespan in an event loop of its own and ends it after the test, before
    the fixtures' teardown."""
    coverage = caller.name == "admin" and (DEEP or db_engine == "postgresql")
    yield schemathesis.openapi.from_asgi("/openapi.json", app, config=fuzz_config(coverage=coverage))
    # The lifespan froze the garbage collector's view of everything alive (app/main.py): for a server that
    # is right, for the rest of this test session it is not.
    gc.unfreeze()


schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex=r"^/api/v1/")


@schema.parametrize()
@hypothesis_settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_its_schema_says(case: schemathesis.Case, caller: Caller) -> None:
    case.call_and_validate(headers=caller.headers_for(case), checks=CHECKS)


# --- what the fuzzer found, one scenario each ------------------------------------------------------------


async def validate_against_the_schema(client: Any, response: Any, operation: str) -> None:
    """Assert that ``response`` has a status the operation (``"GET /api/v1/forms/{form_id}"``) declares, as
    problem+json for an error, and a body that matches the declared schema, in the schema the app serves."""
    method, path = operation.split(" ")
    spec = (await client.get("/openapi.json")).json()
    declared = spec["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in declared, (response.status_code, sorted(declared))
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM_JSON
        assert PROBLEM_JSON in declared[str(response.status_code)]["content"]
    await response.request.aread()  # schemathesis reads the request too (a multipart one is a stream)
    schemathesis.openapi.from_dict(spec)[path][method].validate_response(response)  # raises, saying why


async def test_an_audit_export_filtered_by_action_works_and_records_the_filter(client, world):
    # Was a 500: the filter `action` went to the audit recorder as its own argument `action`.
    built, _ = world
    response = await client.get("/api/v1/audit/export.csv", params={"action": "audit.", "actor_user_id": 1},
                                headers=built.auth("admin"))
    assert response.status_code == 200, response.text
    log = (await client.get("/api/v1/audit", params={"action": "audit.export"}, headers=built.auth("admin"))).json()
    [event] = log["items"]
    assert event["details"] == {"filters": {"action": "audit.", "actor_user_id": "1"}}


async def test_an_import_without_its_columns_answers_the_declared_problem(client, world):
    # Its 422 carries one error per missing column ({row, column, reason}), which the declared problem
    # schema did not allow (it only knew validation errors' {loc, msg, type}).
    built, _ = world
    response = await client.post("/api/v1/imports", data={"kind": "representatives"},
                                 files={"file": ("reps.csv", "电话\n13812345678\n".encode(), "text/csv")},
                                 headers=built.auth("admin"))
    assert response.status_code == 422 and response.json()["code"] == "missing_columns"
    assert {"row": 1, "column": "姓名", "reason": "缺少此列"} in response.json()["errors"]
    await validate_against_the_schema(client, response, "POST /api/v1/imports")


@pytest.mark.parametrize(("who", "url", "operation", "status"), [
    # A form's status forbids the action: 409, undeclared on every workflow action.
    ("admin", "/api/v1/forms/1/close", "POST /api/v1/forms/{form_id}/close", 409),
    # A code that exists: 409, undeclared on the creates.
    ("admin", "/api/v1/categories", "POST /api/v1/categories", 409),
    # Nobody signed in, unknown ids, a NUL in the query: declared nowhere, and 422 was declared as FastAPI's
    # application/json {"detail": [...]}, never what the API sends.
    ("anonymous", "/api/v1/forms", "GET /api/v1/forms", 401),
    ("admin", "/api/v1/forms/999", "GET /api/v1/forms/{form_id}", 404),
    ("admin", "/api/v1/forms?q=%00", "GET /api/v1/forms", 400),
    ("admin", "/api/v1/forms?limit=0", "GET /api/v1/forms", 422),
])
async def test_the_errors_the_api_answers_are_declared_as_problem_json(client, world, who, url, operation, status):
    built, _ = world
    method = operation.split(" ")[0]
    body = {"code": "urban_traffic", "name": "城建交通"} if url.endswith("categories") else {}
    response = await client.request(method, url, headers=built.auth(who) if who != "anonymous" else {},
                                    json=body if method == "POST" else None)
    assert response.status_code == status, response.text
    await validate_against_the_schema(client, response, operation)
