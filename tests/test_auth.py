"""Users and auth: logging in, who am I, tokens, creating users by API and by CLI (CONTRACT "Users and auth")."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.db import transaction
from app.models import AuthToken, User, utcnow
from tests.factories import PASSWORD, build_world
from tests.support.logins import bearer, request_token, token_of
from tests.support.problems import assert_problem

ROOT = Path(__file__).resolve().parent.parent


async def user_row(sessionmaker, username: str) -> User | None:
    async with transaction(sessionmaker) as session:
        return await session.scalar(select(User).where(User.username == username))


# --- POST /auth/token --------------------------------------------------------------------------------


async def test_login_with_right_password_returns_bearer_token(client, sessionmaker, settings):
    await build_world(sessionmaker)
    response = await request_token(client, "coordinator")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32
    assert body["expires_in"] == settings.token_ttl_seconds
    me = await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "coordinator"


async def test_each_login_issues_a_different_token(client, sessionmaker):
    await build_world(sessionmaker)
    assert await token_of(client, "admin") != await token_of(client, "admin")


async def test_a_staff_token_never_looks_like_a_residents(client, sessionmaker, monkeypatch):
    """Residents' tokens start with ``wx_``; a random staff token that happened to (1 in 262,144) was looked
    up among the residents and refused. The first draw here does; the token handed out must not."""
    import secrets

    from app.services import auth as auth_service

    real = secrets.token_urlsafe
    draws = iter(["wx_" + real(32)[3:]])  # the admin's, the first token build_world issues
    monkeypatch.setattr(auth_service.secrets, "token_urlsafe", lambda n: next(draws, None) or real(n))
    world = await build_world(sessionmaker)
    monkeypatch.undo()
    assert not any(token.startswith("wx_") for token in world.tokens.values())
    me = await client.get("/api/v1/auth/me", headers=world.auth("admin"))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "admin"


async def test_wrong_password_and_unknown_user_get_the_same_401(client, sessionmaker):
    await build_world(sessionmaker)
    wrong_password = await request_token(client, "admin", "not-the-password")
    unknown_user = await request_token(client, "nobody", PASSWORD)
    body = assert_problem(wrong_password, 401, "invalid_credentials")
    assert_problem(unknown_user, 401, "invalid_credentials")
    assert wrong_password.json() == unknown_user.json()
    assert "access_token" not in body


async def test_login_is_case_sensitive_on_the_password(client, sessionmaker):
    await build_world(sessionmaker)
    assert_problem(await request_token(client, "admin", PASSWORD.upper()), 401, "invalid_credentials")


async def test_inactive_user_cannot_log_in(client, sessionmaker):
    await build_world(sessionmaker)
    async with transaction(sessionmaker) as session:
        await session.execute(update(User).where(User.username == "handler_a").values(active=False))
    assert_problem(await request_token(client, "handler_a"), 401)


async def test_deactivating_a_user_invalidates_their_existing_tokens(client, sessionmaker):
    world = await build_world(sessionmaker)
    assert (await client.get("/api/v1/auth/me", headers=world.auth("rep"))).status_code == 200
    async with transaction(sessionmaker) as session:
        await session.execute(update(User).where(User.username == "rep").values(active=False))
    assert_problem(await client.get("/api/v1/auth/me", headers=world.auth("rep")), 401)


async def test_login_without_form_fields_is_422(client, sessionmaker):
    await build_world(sessionmaker)
    assert_problem(await client.post("/api/v1/auth/token", data={"username": "admin"}), 422, "validation_error")


async def test_login_with_json_body_instead_of_form_is_422_not_500(client, sessionmaker):
    await build_world(sessionmaker)
    response = await client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
    assert_problem(response, 422)


# --- GET /auth/me ------------------------------------------------------------------------------------


async def test_me_describes_the_user_and_their_binding(client, sessionmaker):
    world = await build_world(sessionmaker)
    handler = (await client.get("/api/v1/auth/me", headers=world.auth("handler_a"))).json()
    assert handler == {
        "id": world.user_ids["handler_a"], "username": "handler_a", "role": "handler",
        "unit_id": world.units["A"].id, "representative_id": None,
    }
    rep = (await client.get("/api/v1/auth/me", headers=world.auth("rep"))).json()
    assert rep["role"] == "representative"
    assert rep["representative_id"] == world.representatives["rep"].id
    assert rep["unit_id"] is None
    admin = (await client.get("/api/v1/auth/me", headers=world.auth("admin"))).json()
    assert (admin["role"], admin["unit_id"], admin["representative_id"]) == ("admin", None, None)


async def test_me_never_shows_the_password_hash(client, sessionmaker):
    world = await build_world(sessionmaker)
    response = await client.get("/api/v1/auth/me", headers=world.auth("admin"))
    assert "password" not in response.text
    assert "$argon2" not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWRtaW46Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5"},
        {"Authorization": "garbage"},
    ],
    ids=["none", "garbage", "empty", "basic", "no-scheme"],
)
async def test_me_without_a_valid_token_is_401_with_bearer_challenge(client, sessionmaker, headers):
    await build_world(sessionmaker)
    response = await client.get("/api/v1/auth/me", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_token_hash_sent_as_token_is_refused(client, sessionmaker):
    # Someone who reads the auth_token table must not be able to use what it holds.
    await build_world(sessionmaker)
    token = await token_of(client, "admin")
    stored = hashlib.sha256(token.encode()).hexdigest()
    assert_problem(await client.get("/api/v1/auth/me", headers=bearer(stored)), 401)


# --- what the database keeps -------------------------------------------------------------------------


async def test_passwords_are_stored_as_argon2_hashes(client, sessionmaker):
    await build_world(sessionmaker)
    admin = await user_row(sessionmaker, "admin")
    assert admin is not None
    assert admin.password_hash.startswith("$argon2")
    assert PASSWORD not in admin.password_hash


async def test_users_with_the_same_password_get_different_hashes(client, sessionmaker):
    await build_world(sessionmaker)
    admin = await user_row(sessionmaker, "admin")
    coordinator = await user_row(sessionmaker, "coordinator")
    assert admin.password_hash != coordinator.password_hash


async def test_tokens_are_stored_as_their_sha256_only(client, sessionmaker):
    world = await build_world(sessionmaker)
    token = await token_of(client, "coordinator")
    async with transaction(sessionmaker) as session:
        rows = (await session.scalars(
            select(AuthToken).where(AuthToken.user_id == world.user_ids["coordinator"])
        )).all()
    hashes = {row.token_hash for row in rows}
    assert token not in hashes
    assert hashlib.sha256(token.encode()).hexdigest() in hashes


async def test_expired_token_is_refused(client, sessionmaker):
    await build_world(sessionmaker)
    token = await token_of(client, "coordinator")
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200
    async with transaction(sessionmaker) as session:
        await session.execute(
            update(AuthToken)
            .where(AuthToken.token_hash == hashlib.sha256(token.encode()).hexdigest())
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_token_expires_at_is_login_time_plus_expires_in(client, sessionmaker):
    await build_world(sessionmaker)
    before = utcnow()
    response = await request_token(client, "admin")
    after = utcnow()
    token, expires_in = response.json()["access_token"], response.json()["expires_in"]
    async with transaction(sessionmaker) as session:
        row = await session.scalar(
            select(AuthToken).where(AuthToken.token_hash == hashlib.sha256(token.encode()).hexdigest())
        )
    assert before + timedelta(seconds=expires_in) - timedelta(seconds=1) <= row.expires_at
    assert row.expires_at <= after + timedelta(seconds=expires_in) + timedelta(seconds=1)


# --- POST /auth/logout -------------------------------------------------------------------------------


async def test_logout_revokes_only_that_token(client, sessionmaker):
    await build_world(sessionmaker)
    first = await token_of(client, "coordinator")
    second = await token_of(client, "coordinator")
    response = await client.post("/api/v1/auth/logout", headers=bearer(first))
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get("/api/v1/auth/me", headers=bearer(first)), 401, "invalid_token")
    assert_problem(await client.post("/api/v1/auth/logout", headers=bearer(first)), 401)
    still = await client.get("/api/v1/auth/me", headers=bearer(second))
    assert still.status_code == 200
    assert still.json()["username"] == "coordinator"


async def test_logout_records_when_the_token_was_revoked(client, sessionmaker):
    await build_world(sessionmaker)
    token = await token_of(client, "admin")
    await client.post("/api/v1/auth/logout", headers=bearer(token))
    async with transaction(sessionmaker) as session:
        row = await session.scalar(
            select(AuthToken).where(AuthToken.token_hash == hashlib.sha256(token.encode()).hexdigest())
        )
    assert row.revoked_at is not None


async def test_logout_without_token_is_401(client, sessionmaker):
    await build_world(sessionmaker)
    response = await client.post("/api/v1/auth/logout")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


# --- POST /users -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "coordinator", "handler", "representative"])
async def test_admin_creates_a_user_of_each_role_who_can_then_log_in(client, sessionmaker, role):
    world = await build_world(sessionmaker)
    binding: dict[str, int] = {}
    if role == "handler":
        binding = {"unit_id": world.units["B"].id}
    if role == "representative":
        binding = {"representative_id": world.representatives["rep2"].id}
    body = {"username": f"new_{role}", "password": "a-long-password", "role": role, **binding}
    response = await client.post("/api/v1/users", json=body, headers=world.auth("admin"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["username"] == f"new_{role}"
    assert created["role"] == role
    assert created["unit_id"] == binding.get("unit_id")
    assert created["representative_id"] == binding.get("representative_id")
    assert "password" not in created and "password_hash" not in created
    token = await token_of(client, f"new_{role}", "a-long-password")
    me = (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
    assert me["id"] == created["id"]
    assert me["role"] == role
    assert me["unit_id"] == binding.get("unit_id")
    assert me["representative_id"] == binding.get("representative_id")
    row = await user_row(sessionmaker, f"new_{role}")
    assert row.password_hash.startswith("$argon2")


@pytest.mark.parametrize("who", ["coordinator", "handler_a", "rep"])
async def test_only_admin_may_create_users(client, sessionmaker, who):
    world = await build_world(sessionmaker)
    body = {"username": "sneaky", "password": "a-long-password", "role": "admin"}
    response = await client.post("/api/v1/users", json=body, headers=world.auth(who))
    assert_problem(response, 403, "forbidden")
    assert await user_row(sessionmaker, "sneaky") is None


async def test_anonymous_may_not_create_users(client, sessionmaker):
    await build_world(sessionmaker)
    body = {"username": "sneaky", "password": "a-long-password", "role": "admin"}
    response = await client.post("/api/v1/users", json=body)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert await user_row(sessionmaker, "sneaky") is None


async def test_handler_without_unit_is_refused(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = {"username": "h2", "password": "a-long-password", "role": "handler"}
    assert_problem(await client.post("/api/v1/users", json=body, headers=world.auth("admin")), 422, "unit_required")
    assert await user_row(sessionmaker, "h2") is None


async def test_handler_with_unknown_unit_is_refused(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = {"username": "h2", "password": "a-long-password", "role": "handler", "unit_id": 99999}
    assert_problem(await client.post("/api/v1/users", json=body, headers=world.auth("admin")), 422, "unknown_unit")
    assert await user_row(sessionmaker, "h2") is None


@pytest.mark.parametrize("field", ["unit_id", "representative_id"])
async def test_ids_beyond_the_integer_column_are_422_not_500(client, sessionmaker, field):
    world = await build_world(sessionmaker)
    role = "handler" if field == "unit_id" else "representative"
    body = {"username": "h2", "password": "a-long-password", "role": role, field: 2**40}
    response = await client.post("/api/v1/users", json=body, headers=world.auth("admin"))
    assert_problem(response, 422)
    assert await user_row(sessionmaker, "h2") is None


async def test_representative_without_representative_record_is_refused(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = {"username": "r3", "password": "a-long-password", "role": "representative"}
    response = await client.post("/api/v1/users", json=body, headers=world.auth("admin"))
    assert_problem(response, 422, "representative_required")
    assert await user_row(sessionmaker, "r3") is None


async def test_representative_with_unknown_record_is_refused(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = {"username": "r3", "password": "a-long-password", "role": "representative", "representative_id": 99999}
    response = await client.post("/api/v1/users", json=body, headers=world.auth("admin"))
    assert_problem(response, 422, "unknown_representative")


@pytest.mark.parametrize(
    "extra",
    [{"role": "coordinator", "unit_id": "A"}, {"role": "admin", "representative_id": "rep"},
     {"role": "handler", "unit_id": "A", "representative_id": "rep"}],
    ids=["coordinator-with-unit", "admin-with-representative", "handler-with-both"],
)
async def test_bindings_that_do_not_fit_the_role_are_refused(client, sessionmaker, extra):
    world = await build_world(sessionmaker)
    body: dict[str, Any] = {"username": "odd", "password": "a-long-password", "role": extra["role"]}
    if "unit_id" in extra:
        body["unit_id"] = world.units[extra["unit_id"]].id
    if "representative_id" in extra:
        body["representative_id"] = world.representatives[extra["representative_id"]].id
    response = await client.post("/api/v1/users", json=body, headers=world.auth("admin"))
    assert_problem(response, 422, "invalid_binding")
    assert await user_row(sessionmaker, "odd") is None


async def test_duplicate_username_is_409_username_taken(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = {"username": "coordinator", "password": "another-password", "role": "coordinator"}
    response = await client.post("/api/v1/users", json=body, headers=world.auth("admin"))
    assert_problem(response, 409, "username_taken")
    # the existing user keeps their password
    assert (await request_token(client, "coordinator")).status_code == 200
    assert (await request_token(client, "coordinator", "another-password")).status_code == 401
    async with transaction(sessionmaker) as session:
        count = await session.scalar(select(func.count()).select_from(User).where(User.username == "coordinator"))
    assert count == 1


async def test_concurrent_creation_of_one_username_makes_one_user(client, sessionmaker):
    world = await build_world(sessionmaker)
    body = {"username": "twin", "password": "a-long-password", "role": "coordinator"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/users", json=body, headers=world.auth("admin")) for _ in range(4))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "username_taken"
    async with transaction(sessionmaker) as session:
        count = await session.scalar(select(func.count()).select_from(User).where(User.username == "twin"))
    assert count == 1


@pytest.mark.parametrize(
    "change",
    [{"password": "short"}, {"password": ""}, {"username": "x"}, {"username": "has space"},
     {"username": "张三"}, {"role": "superuser"}, {"role": None}, {"username": "u" * 65}],
    ids=["short-password", "empty-password", "one-letter-name", "space-in-name", "chinese-name",
         "unknown-role", "null-role", "long-name"],
)
async def test_invalid_user_bodies_are_422(client, sessionmaker, change):
    world = await build_world(sessionmaker)
    body = {"username": "valid_name", "password": "a-long-password", "role": "coordinator"} | change
    response = await client.post("/api/v1/users", json=body, headers=world.auth("admin"))
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"], problem
    async with transaction(sessionmaker) as session:
        count = await session.scalar(select(func.count()).select_from(User))
    assert count == len(world.user_ids)


# --- the CLI -----------------------------------------------------------------------------------------


async def run_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env.update(MINYI_DATABASE_URL=db_url, MINYI_ENVIRONMENT="test", MINYI_SECRET_KEY="test-secret-key")
    command = [sys.executable, "-c", "from app.cli import main; main()", *args]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    return await asyncio.to_thread(run)


async def test_cli_creates_a_user_who_can_log_in(client, sessionmaker, db_url):
    await build_world(sessionmaker)
    result = await run_cli(db_url, "create-user", "clerk", "--role", "coordinator", "--password", "cli-password-1")
    assert result.returncode == 0, result.stderr
    assert "clerk" in result.stdout
    token = await token_of(client, "clerk", "cli-password-1")
    me = (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
    assert (me["username"], me["role"], me["unit_id"], me["representative_id"]) == ("clerk", "coordinator", None, None)
    row = await user_row(sessionmaker, "clerk")
    assert row.password_hash.startswith("$argon2")


async def test_cli_creates_handler_and_representative_with_their_bindings(client, sessionmaker, db_url):
    world = await build_world(sessionmaker)
    unit_id, rep_id = world.units["B"].id, world.representatives["rep2"].id
    handler = await run_cli(db_url, "create-user", "clerk_b", "--role", "handler", "--password", "cli-password-1",
                            "--unit-id", str(unit_id))
    assert handler.returncode == 0, handler.stderr
    rep = await run_cli(db_url, "create-user", "li", "--role", "representative", "--password", "cli-password-2",
                        "--representative-id", str(rep_id))
    assert rep.returncode == 0, rep.stderr
    me = (await client.get("/api/v1/auth/me", headers=bearer(await token_of(client, "clerk_b", "cli-password-1")))).json()
    assert (me["role"], me["unit_id"]) == ("handler", unit_id)
    me = (await client.get("/api/v1/auth/me", headers=bearer(await token_of(client, "li", "cli-password-2")))).json()
    assert (me["role"], me["representative_id"]) == ("representative", rep_id)


async def test_cli_bad_role_exits_nonzero_and_creates_nothing(client, sessionmaker, db_url):
    await build_world(sessionmaker)
    result = await run_cli(db_url, "create-user", "boss", "--role", "superuser", "--password", "cli-password-1")
    assert result.returncode != 0
    assert "superuser" in result.stderr
    assert "Traceback" not in result.stderr
    assert await user_row(sessionmaker, "boss") is None
    assert_problem(await request_token(client, "boss", "cli-password-1"), 401)


async def test_cli_handler_without_unit_exits_nonzero_and_creates_nothing(client, sessionmaker, db_url):
    await build_world(sessionmaker)
    result = await run_cli(db_url, "create-user", "clerk", "--role", "handler", "--password", "cli-password-1")
    assert result.returncode != 0
    assert "unit_id" in result.stderr
    assert "Traceback" not in result.stderr
    assert await user_row(sessionmaker, "clerk") is None


async def test_cli_duplicate_username_exits_nonzero_and_keeps_the_old_password(client, sessionmaker, db_url):
    await build_world(sessionmaker)
    result = await run_cli(db_url, "create-user", "admin", "--role", "admin", "--password", "cli-password-1")
    assert result.returncode != 0
    assert "admin" in result.stderr
    assert "Traceback" not in result.stderr
    assert (await request_token(client, "admin")).status_code == 200
    assert (await request_token(client, "admin", "cli-password-1")).status_code == 401


async def test_cli_short_password_is_refused_like_the_api(client, sessionmaker, db_url):
    await build_world(sessionmaker)
    result = await run_cli(db_url, "create-user", "shorty", "--role", "coordinator", "--password", "1234567")
    assert result.returncode != 0
    assert "密码" in result.stderr and "Traceback" not in result.stderr
    assert await user_row(sessionmaker, "shorty") is None
