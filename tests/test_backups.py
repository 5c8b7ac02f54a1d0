"""Backups (issue 8, point 6): `minyi backup` and `minyi restore` on both engines. A round trip restores
into a different database and every table (every one the database holds: Base.metadata's and
alembic_version) is compared row by row with the source.

The round trip runs the real command line in subprocesses on each engine. The other tests run the same
typer app (`app.cli.cli`: its argument parsing, the backup service, the audit lines, the messages and exit
codes) in this process, with the settings a subprocess would build, which saves a Python start-up and an
app import per command. In the deep variant (`MINYI_TEST_DEEP=1`, docs/testing.md) every command is a
real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sqlite3
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from PIL import Image
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy import MetaData, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from app import cli as cli_module
from app import crypto, migrate
from app.config import Settings
from app.db import transaction
from tests.support.apps import build_app
from app.models import Base
from app.services import audit as audit_service
from app.services import demo as demo_service
from tests.conftest import empty_database, fresh_database, make_settings, pg_url
from tests.factories import submit
from tests.support import DEEP

MINYI = [sys.executable, "-c", "from app.cli import main; main()"]
ROOT = Path(__file__).resolve().parent.parent
FORMS = "/api/v1/forms"


# --- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture
def settings(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    # Overrides conftest's: photos go under this test's tmp_path.
    return make_settings(db_url, photo_dir=tmp_path / "photos")


@pytest.fixture
def spare_url(db_engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A third database of the test's engine, with no schema (the target of a second restore)."""
    yield from empty_database(db_engine, request, tmp_path, "spare")


@pytest.fixture
def migrated_spare_url(db_engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another migrated database of the test's engine (as conftest's db_url makes them)."""
    folder = tmp_path / "migrated-spare"
    folder.mkdir()
    yield from fresh_database(db_engine, request, folder)


def _env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    env.update({"MINYI_DATABASE_URL": db_url, "MINYI_SECRET_KEY": "test-secret-key"})
    return env


async def minyi(db_url: str, *args: str, subprocess: bool = False) -> tuple[int, str, str]:
    """`minyi ARGS` against ``db_url``: (exit code, stdout, stderr). The real command in a subprocess when
    ``subprocess`` is set and in the deep variant, otherwise the same typer app in this process (see
    ``minyi_in_process``). Either way the event loop (and the app in this process) keeps running."""
    if subprocess or DEEP:
        return await minyi_subprocess(db_url, *args)
    return await asyncio.to_thread(minyi_in_process, db_url, *args)


async def minyi_subprocess(db_url: str, *args: str) -> tuple[int, str, str]:
    """The real command in a subprocess."""
    process = await asyncio.create_subprocess_exec(
        *MINYI, *args, env=_env(db_url), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


class CommandSettings(Settings):
    """The settings `minyi` builds in ``_env(db_url)``'s environment, in its working directory ROOT: the
    two MINYI_* variables given there (passed in) and ROOT/.env, never the MINYI_* variables of this
    process (the tests' lifted abuse limits, say), which the subprocess does not see."""

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, dotenv_settings, file_secret_settings


def command_settings(db_url: str) -> Settings:
    given = {k[len("MINYI_"):].lower(): v for k, v in _env(db_url).items() if k.startswith("MINYI_")}
    return CommandSettings(_env_file=ROOT / ".env", **given)  # type: ignore[arg-type]


def minyi_in_process(db_url: str, *args: str) -> tuple[int, str, str]:
    """`minyi ARGS` through typer's CliRunner against ``app.cli.cli`` (what ``main()`` runs), in a worker
    thread (the commands call asyncio.run). ``get_settings`` answers ``command_settings(db_url)``; the
    process-wide state a command changes (the personal-data key ring, set by every engine it creates) is
    put back afterwards. An unexpected exception exits 1 with its traceback on stderr, as the real command
    does."""
    settings = command_settings(db_url)
    ring = {name: (value.copy() if isinstance(value, list | set) else value)
            for name, value in vars(crypto.ring).items()}
    try:
        with mock.patch.object(cli_module, "get_settings", lambda: settings):
            result = CliRunner().invoke(cli_module.cli, list(args))
    finally:
        vars(crypto.ring).update(ring)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return result.exit_code, result.stdout, stderr


def tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 16), (200, 30, 30)).save(out, "JPEG", quality=90)
    return out.getvalue()


async def load_town(client: httpx.AsyncClient, sessionmaker, settings,  # type: ignore[no-untyped-def]
                    *, demo: bool = True) -> None:
    """The demo town (unless ``demo`` is False), forms through the API (one with a photo), and an audit line."""
    if demo:
        async with transaction(sessionmaker) as session:
            assert await demo_service.load(session, settings=settings) is True
    for content in ("菜场门口积水严重，下雨天进不去。", "村口路灯坏了三盏，晚上走路看不清。"):
        await submit(client, content=content, submitter_name="王阿姨", submitter_phone="13812345678")
    with_photo = await client.post(FORMS, data={"content": "小区门口的井盖松动，车一过就响。", "category": "urban_traffic"},
                                   files=[("file", ("p.jpg", tiny_jpeg(), "image/jpeg"))])
    assert with_photo.status_code == 201, with_photo.text
    async with transaction(sessionmaker) as session:
        await audit_service.record(session, principal=None, action="user.create", target="user:1",
                                   details={"username": "office", "note": "备份测试"})


async def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table the database holds, every row, ordered by primary key (by every column when it has none).
    Tables are reflected, so values are what the driver returns (personal data stays encrypted)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            metadata = MetaData()
            await connection.run_sync(metadata.reflect)
            rows: dict[str, list[tuple[Any, ...]]] = {}
            for name, table in sorted(metadata.tables.items()):
                order = list(table.primary_key.columns) or list(table.columns)
                rows[name] = [tuple(row) for row in await connection.execute(select(table).order_by(*order))]
            return rows
    finally:
        await engine.dispose()


def without_backup_lines(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The audit lines `minyi backup` (in the source, after the backup) and `minyi restore` (in the target,
    after the restore) write about themselves, left out of a comparison."""
    own = ("backup.create", "backup.restore")
    return {**rows, "audit_event": [r for r in rows["audit_event"] if not any(a in r for a in own)]}


def assert_same(source: dict[str, list[tuple[Any, ...]]], restored: dict[str, list[tuple[Any, ...]]]) -> None:
    assert set(Base.metadata.tables) | {"alembic_version"} <= set(source)
    assert sorted(restored) == sorted(source)
    for name in source:
        assert restored[name] == source[name], f"table {name} differs"


async def forms_and_last_numbers(url: str) -> tuple[int, int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            forms = await connection.scalar(text("SELECT count(*) FROM opinion_form"))
            numbers = await connection.scalar(text("SELECT COALESCE(SUM(last_value), 0) FROM tracking_sequence"))
            return int(forms or 0), int(numbers or 0)
    finally:
        await engine.dispose()


# --- round trip ----------------------------------------------------------------------------------------


async def test_backup_then_restore_into_another_database_gives_back_every_table_row_for_row(
        client, sessionmaker, settings, db_url, db_engine, empty_db_url, tmp_path):
    await load_town(client, sessionmaker, settings)
    source = await snapshot(db_url)
    for name in ("opinion_form", "form_event", "form_photo", "audit_event", "app_user", "workroom", "shift",
                 "stat_cell", "tracking_sequence", "alembic_version"):
        assert source[name], f"{name} has no rows: the comparison would prove nothing"

    backup_file = tmp_path / "backups" / "minyi.backup"
    backup_file.parent.mkdir()
    # The real command line, end to end, on each engine (the other tests run the same app in-process).
    code, out, err = await minyi(db_url, "backup", str(backup_file), subprocess=True)
    assert code == 0, err
    head = migrate.head_revision()
    assert f"backup written to {backup_file}: {db_engine}," in out
    assert f"{len(source)} tables, schema {head}" in out
    assert backup_file.stat().st_size > 0
    assert os.listdir(backup_file.parent) == ["minyi.backup"]  # no temporary file left beside it

    code, out, err = await minyi(empty_db_url, "restore", str(backup_file), subprocess=True)
    assert code == 0, err
    assert f"into {db_engine}: {len(source)} tables, schema {head}" in out
    assert "minyi migrate" not in out
    restored_rows = await snapshot(empty_db_url)
    # Both commands are recorded in the audit log: the backup in the source, the restore in the restored
    # database (after the rows the backup carried).
    *carried, restore_line = restored_rows["audit_event"]
    assert "backup.restore" in restore_line and str(backup_file) in restore_line
    restored_rows["audit_event"] = carried
    assert_same(source, restored_rows)
    assert any("backup.create" in row for row in (await snapshot(db_url))["audit_event"])

    # The restored database serves: a new form takes the next ids and tracking number.
    restored_app = build_app(make_settings(empty_db_url, photo_dir=tmp_path / "photos"))
    try:
        transport = httpx.ASGITransport(app=restored_app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as restored:
            created = await submit(restored)
            tracked = await restored.get(f"/api/v1/track/{created['tracking_no']}",
                                         params={"code": created["verification_code"]})
            assert tracked.status_code == 200
    finally:
        await restored_app.state.engine.dispose()
    assert (await forms_and_last_numbers(empty_db_url))[0] == len(source["opinion_form"]) + 1


async def test_backup_into_a_directory_writes_a_dated_file_there(client, sessionmaker, settings, db_url, tmp_path):
    await submit(client)
    folder = tmp_path / "nightly"
    folder.mkdir()
    code, out, err = await minyi(db_url, "backup", str(folder))
    assert code == 0, err
    [written] = list(folder.iterdir())
    assert written.name.startswith("minyi-") and str(written) in out


# --- consistency while the app writes ------------------------------------------------------------------


async def test_a_backup_taken_while_residents_submit_is_one_consistent_moment(
        client, db_url, spare_url, tmp_path):
    submitted = 0
    keep_going = asyncio.Event()
    keep_going.set()

    async def residents() -> None:
        nonlocal submitted
        while keep_going.is_set():
            await submit(client)
            submitted += 1

    async def until(count: int) -> None:
        while submitted < count:
            if writer.done():  # the residents stopped: say why instead of waiting forever
                writer.result()
                raise AssertionError(f"the writer stopped after {submitted} forms")
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(residents())
    try:
        await until(3)
        backup_file = tmp_path / "busy.backup"
        code, _out, err = await minyi(db_url, "backup", str(backup_file))
        assert code == 0, err
        after_backup = submitted
        await until(after_backup + 3)  # writes continue after the backup, too
    finally:
        keep_going.clear()
        await writer
    code, _out, err = await minyi(spare_url, "restore", str(backup_file))
    assert code == 0, err

    forms, numbers = await forms_and_last_numbers(spare_url)
    assert forms == numbers  # every form's number handed out, and no number without its form
    assert 3 <= forms < submitted  # taken in the middle of the writes
    assert (await forms_and_last_numbers(db_url))[0] == submitted
    if spare_url.startswith("sqlite"):
        # The SQLite backup is one self-contained file: it opens on its own, in rollback-journal mode.
        with contextlib.closing(sqlite3.connect(backup_file)) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert connection.execute("SELECT count(*) FROM opinion_form").fetchone()[0] == forms


# --- restore's refusals ----------------------------------------------------------------------------------


async def test_restore_refuses_a_database_in_use_without_force_and_replaces_it_with_force(
        client, sessionmaker, settings, db_url, migrated_spare_url, tmp_path):
    await load_town(client, sessionmaker, settings, demo=False)
    backup_file = tmp_path / "town.backup"
    code, _out, err = await minyi(db_url, "backup", str(backup_file))
    assert code == 0, err

    # The target is in use: its own form, and a line in its append-only audit log.
    target_app = build_app(make_settings(migrated_spare_url, photo_dir=tmp_path / "photos"))
    try:
        transport = httpx.ASGITransport(app=target_app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as target:
            await submit(target, content="另一个数据库里的意见，不能被悄悄覆盖。")
        async with transaction(target_app.state.sessionmaker) as session:
            await audit_service.record(session, principal=None, action="workroom.create", target="workroom:LS-99")
    finally:
        await target_app.state.engine.dispose()
    before = await snapshot(migrated_spare_url)

    code, out, err = await minyi(migrated_spare_url, "restore", str(backup_file))
    assert code == 1
    assert "已有数据" in err and "--force" in err
    assert await snapshot(migrated_spare_url) == before

    # --force replaces it whole: tables dropped and re-created (PostgreSQL) or pages copied (SQLite), never
    # a DELETE, which audit_event's triggers would refuse.
    code, out, err = await minyi(migrated_spare_url, "restore", str(backup_file), "--force")
    assert code == 0, err
    assert_same(without_backup_lines(await snapshot(db_url)), without_backup_lines(await snapshot(migrated_spare_url)))


async def test_restore_refuses_a_file_that_is_not_a_minyi_backup_of_this_engine(
        db_engine, migrated_spare_url, tmp_path):
    plain = tmp_path / "notes.txt"
    plain.write_text("这不是备份 not a backup\n" * 20)
    foreign_sqlite = tmp_path / "other-app.db"
    with contextlib.closing(sqlite3.connect(foreign_sqlite)) as connection:  # SQLite, but not Minyi's
        connection.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)")
        connection.commit()
    fake_dump = tmp_path / "broken.dump"
    fake_dump.write_bytes(b"PGDMP" + os.urandom(2000))
    refused = [(plain, "不是 Minyi 备份"), (tmp_path / "missing.backup", "无法读取")]
    if db_engine == "sqlite":
        refused += [(foreign_sqlite, "alembic_version"), (fake_dump, "PostgreSQL 备份")]
    else:
        minyi_sqlite = f"sqlite+aiosqlite:///{tmp_path / 'minyi-sqlite.db'}"
        await migrate.upgrade(minyi_sqlite)
        sqlite_backup = tmp_path / "sqlite.backup"
        code, _out, err = await minyi(minyi_sqlite, "backup", str(sqlite_backup))
        assert code == 0, err
        refused += [(foreign_sqlite, "SQLite 备份"), (sqlite_backup, "SQLite 备份"), (fake_dump, "无法读取")]
    before = await snapshot(migrated_spare_url)
    for path, says in refused:
        code, _out, err = await minyi(migrated_spare_url, "restore", str(path), "--force")
        assert code == 1, f"{path.name} was restored"
        assert err.startswith("error: ") and says in err, (path.name, err)
    assert await snapshot(migrated_spare_url) == before


async def test_restore_refuses_a_backup_from_a_newer_schema(db_url, migrated_spare_url, tmp_path):
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    finally:
        await engine.dispose()
    backup_file = tmp_path / "future.backup"
    code, out, err = await minyi(db_url, "backup", str(backup_file))
    assert code == 0, err
    assert "schema 9999_from_the_future" in out
    before = await snapshot(migrated_spare_url)
    code, _out, err = await minyi(migrated_spare_url, "restore", str(backup_file), "--force")
    assert code == 1 and "升级 Minyi" in err
    assert await snapshot(migrated_spare_url) == before


async def test_restoring_an_older_schema_says_to_migrate_and_migrate_brings_it_to_head(
        empty_db_url, spare_url, tmp_path):
    await migrate.upgrade(empty_db_url, "0006")
    backup_file = tmp_path / "old.backup"
    code, out, err = await minyi(empty_db_url, "backup", str(backup_file))
    assert code == 0, err
    code, out, err = await minyi(spare_url, "restore", str(backup_file))
    assert code == 0, err
    assert "schema 0006" in out and "run `minyi migrate` next" in out
    assert await migrate.current_revision(spare_url) == "0006"
    code, _out, err = await minyi(spare_url, "migrate")
    assert code == 0, err
    assert await migrate.current_revision(spare_url) == migrate.head_revision()


# --- a failed backup --------------------------------------------------------------------------------------


async def test_a_backup_to_a_place_that_cannot_be_written_fails_and_leaves_nothing(db_url, tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    before = sorted(os.listdir(tmp_path))
    for target in (f"{tmp_path / 'no-such-folder'}/", str(tmp_path / "no-such-folder" / "minyi.backup"),
                   str(not_a_folder / "minyi.backup")):
        code, _out, err = await minyi(db_url, "backup", target)
        assert code == 1 and err.startswith("error: ") and "无法" in err, err
    assert sorted(os.listdir(tmp_path)) == before  # no file, no folder, no temporary file
    assert not_a_folder.read_text() == "x"
    if os.geteuid() != 0:  # root writes into any folder, whatever its mode
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _out, err = await minyi(db_url, "backup", str(locked / "minyi.backup"))
        assert code == 1 and list(locked.iterdir()) == []


async def test_a_backup_that_fails_half_way_leaves_no_file_and_keeps_the_older_backup(
        db_engine, db_url, tmp_path):  # db_url: skips PostgreSQL when no server answers
    folder = tmp_path / "backups"
    folder.mkdir()
    older = folder / "minyi.backup"
    older.write_bytes(b"last night's backup")
    if db_engine == "sqlite":  # the database file is damaged: SQLite fails in the middle of the copy
        broken = tmp_path / "damaged.db"
        broken.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
        source_url = f"sqlite+aiosqlite:///{broken}"
    else:  # pg_dump starts and fails: no such database
        source_url = pg_url(f"minyi_missing_{uuid.uuid4().hex[:8]}")
    code, _out, err = await minyi(source_url, "backup", str(older))
    assert code == 1 and err.startswith("error: ")
    assert older.read_bytes() == b"last night's backup"
    assert os.listdir(folder) == ["minyi.backup"]
    fresh = folder / "new.backup"
    code, _out, err = await minyi(source_url, "backup", str(fresh))
    assert code == 1 and not fresh.exists()
    assert os.listdir(folder) == ["minyi.backup"]
