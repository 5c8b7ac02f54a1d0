"""Backups (issue 8, point 6): ``minyi backup`` and ``minyi restore`` of the whole database.

- SQLite: SQLite's online backup API (``sqlite3.Connection.backup``) copies every page in one step inside
  one read transaction, so the copy is one consistent moment even while the app keeps writing (WAL: the
  readers never block the writers). It runs in a worker thread, never on the event loop. The copy is turned
  into a single self-contained file (rollback journal, not WAL). Restoring copies the backup's pages into
  the configured database file through the same API: no row is ever deleted or updated, so the triggers
  that keep ``audit_event`` append-only never fire.
- PostgreSQL: ``pg_dump --format=custom`` of the database in ``MINYI_DATABASE_URL``; restoring is
  ``pg_restore --clean --if-exists --single-transaction``: the dump's tables are dropped and re-created
  (DDL, never a DELETE), all or nothing. Connection details go to libpq through its environment
  (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``): the password is never on a command line.

A backup is written to a temporary file beside the target and renamed into place only when complete: a
failed backup leaves no file at the target (and an older backup there untouched). Photos
(``MINYI_PHOTO_DIR``) and export files live on disk, not in the database: back them up with the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import func, inspect, select, table
from sqlalchemy.engine import URL, make_url

from app import migrate as migrations
from app.config import Settings
from app.db import create_engine, ensure_sqlite_folder
from app.errors import AppError, Conflict, Invalid

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"
# Tables whose rows make a database "in use": restoring over them needs --force.
DATA_TABLES = ("opinion_form", "app_user", "workroom")
PG_DUMP = "pg_dump"
PG_RESTORE = "pg_restore"
# A table's line in `pg_restore --list` ("214; 1259 44525 TABLE public alembic_version owner"), not its data's.
_TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+)(?: |$)", re.MULTILINE)
SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


class BackupFailed(AppError):
    """The backup or restore itself failed (a tool's error, a disk error)."""

    status = 500
    title = "备份或恢复失败 Backup Failed"
    default_code = "backup_failed"


@dataclass(frozen=True)
class BackupFacts:
    engine: str  # "sqlite" | "postgresql"
    path: Path
    bytes: int
    tables: int
    revision: str | None
    seconds: float


@dataclass(frozen=True)
class RestoreFacts(BackupFacts):
    head: str | None
    # The restored schema is older than this code's: run ``minyi migrate`` before serving.
    migrate_needed: bool


def _engine(settings: Settings) -> str:
    backend = make_url(settings.database_url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise Invalid(f"不支持备份此数据库 (backups support SQLite and PostgreSQL, not {backend})",
                      code="backup_unsupported")
    return backend


def _sqlite_file(settings: Settings) -> Path:
    database = make_url(settings.database_url).database
    if not database or database == ":memory:":
        raise Invalid("内存数据库无法备份 (an in-memory SQLite database cannot be backed up or restored)",
                      code="backup_unsupported")
    return Path(database)


def _target(given: Path | str, engine: str) -> Path:
    """A directory gets a dated file name inside it (handy for cron); anything else is the file itself."""
    path = Path(given)
    if path.is_dir():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return path / f"minyi-{stamp}.{'db' if engine == 'sqlite' else 'dump'}"
    if str(given).endswith(("/", os.sep)):  # meant as a folder, and there is none
        raise BackupFailed(f"无法在 {path} 写入备份 (no such folder: {path})")
    return path


# --- backup ---------------------------------------------------------------------------------------


async def backup(settings: Settings, path: Path | str) -> BackupFacts:
    """Write a backup of the configured database to ``path`` (a file, or a directory to put a dated file in)."""
    engine = _engine(settings)
    started = time.monotonic()
    target = _target(path, engine)
    if engine == "sqlite":
        source = _sqlite_file(settings)
        if not source.is_file():
            raise Invalid(f"数据库文件不存在 (no database file at {source})", code="backup_no_database")
        if target.resolve() == source.resolve():
            raise Invalid("备份文件不能是数据库文件本身 (the backup cannot overwrite the database itself)",
                          code="backup_target")
    temporary = _temporary_beside(target)
    try:
        if engine == "sqlite":
            tables, revision = await anyio.to_thread.run_sync(_sqlite_backup, source, temporary)
        else:
            tables, revision = await _pg_dump(settings, temporary)
        size = temporary.stat().st_size
        await anyio.to_thread.run_sync(_publish, temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return BackupFacts(engine=engine, path=target, bytes=size, tables=tables, revision=revision,
                       seconds=time.monotonic() - started)


def _temporary_beside(target: Path) -> Path:
    try:
        descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise BackupFailed(f"无法在 {target.parent} 写入备份 (cannot write there: {exc.strerror or exc})") from exc
    os.close(descriptor)
    return Path(name)


def _publish(temporary: Path, target: Path) -> None:
    """Make the complete file durable, then put it at its name in one step."""
    with temporary.open("rb+") as file:
        os.fsync(file.fileno())
    temporary.replace(target)
    with contextlib.suppress(OSError):  # some file systems cannot open or sync a directory
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _sqlite_backup(source: Path, destination: Path) -> tuple[int, str | None]:
    # One step (pages=-1): the whole copy happens inside one read transaction of the source, so it is one
    # consistent moment; the app's writers carry on meanwhile (WAL).
    try:
        with contextlib.closing(sqlite3.connect(source, timeout=30)) as src, \
                contextlib.closing(sqlite3.connect(destination)) as dst:
            src.backup(dst)
            # The copy carries the source's WAL flag; a backup is one self-contained file.
            dst.execute("PRAGMA journal_mode=DELETE")
            return _sqlite_describe(dst)
    except sqlite3.Error as exc:
        raise BackupFailed(f"SQLite 备份失败 (SQLite backup failed: {exc})") from exc


def _sqlite_describe(connection: sqlite3.Connection) -> tuple[int, str | None]:
    names = {row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    revision = None
    if "alembic_version" in names:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    return len(names), revision


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """The database name (as a conninfo string) and the environment pg_dump/pg_restore connect with."""
    url: URL = make_url(settings.database_url)
    env = dict(os.environ)
    query = {key: (value[0] if isinstance(value, tuple) else value) for key, value in url.query.items()}
    ssl_mode = next((mode for mode in (query.get("sslmode"), query.get("ssl")) if mode in SSL_MODES), None)
    for variable, value in (("PGHOST", url.host or query.get("host")), ("PGPORT", url.port),
                            ("PGUSER", url.username), ("PGPASSWORD", url.password), ("PGSSLMODE", ssl_mode)):
        if value not in (None, ""):
            env[variable] = str(value)
    database = url.database or ""
    if not database:
        raise Invalid("MINYI_DATABASE_URL 未指定数据库名 (the URL names no database)", code="backup_no_database")
    quoted = database.replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{quoted}'", env


async def _run(program: str, *args: str, env: dict[str, str]) -> str:
    try:
        process = await asyncio.create_subprocess_exec(
            program, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError as exc:
        raise BackupFailed(f"找不到 {program}，请安装 PostgreSQL 客户端 (install the PostgreSQL client tools)") from exc
    try:
        stdout, stderr = await process.communicate()
    except BaseException:  # cancelled or interrupted: the tool must not go on writing
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        raise
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip().splitlines()
        raise BackupFailed(f"{program} 失败 (exit {process.returncode}): {' '.join(message[-3:]) or 'no message'}")
    return stdout.decode(errors="replace")


async def _pg_dump(settings: Settings, destination: Path) -> tuple[int, str | None]:
    database, env = _libpq(settings)
    await _run(PG_DUMP, "--format=custom", "--no-owner", "--no-privileges", f"--file={destination}",
               f"--dbname={database}", env=env)
    return await _pg_describe(destination)


async def _pg_describe(dump: Path) -> tuple[int, str | None]:
    """(tables, alembic revision) read from the dump itself, so they are facts about the file."""
    toc = await _run(PG_RESTORE, "--list", str(dump), env=dict(os.environ))
    tables = {(schema, name) for schema, name in _TOC_TABLE.findall(toc)}
    if not any(name == "alembic_version" for _, name in tables):
        return len(tables), None
    # The table's data as the SQL pg_restore would run: "COPY public.alembic_version ... FROM stdin;",
    # one line per row, then "\.".
    script = await _run(PG_RESTORE, "--data-only", "--table=alembic_version", "--file=-", str(dump),
                        env=dict(os.environ))
    _, found, rows = script.partition("FROM stdin;\n")
    first = rows.split("\n", 1)[0] if found else ""
    return len(tables), (first.split("\t", 1)[0] or None) if first and first != "\\." else None


# --- restore --------------------------------------------------------------------------------------


async def restore(settings: Settings, path: Path | str, *, force: bool = False) -> RestoreFacts:
    """Replace the configured database with the backup at ``path``. Refuses a database that is in use
    (forms, users or workrooms) unless ``force``, and a backup whose schema is newer than this code."""
    engine = _engine(settings)
    started = time.monotonic()
    path = Path(path)
    tables, revision = await _check_backup(path, engine)
    head = migrations.head_revision()
    if _is_newer(revision, head):
        raise Conflict(f"备份的数据库结构 {revision} 比本程序的 {head} 新，请先升级 Minyi "
                       f"(the backup's schema is newer than this code: upgrade Minyi first)", code="backup_newer")
    if not force and await _in_use(settings, engine):
        raise Conflict("目标数据库已有数据；确认要覆盖请加 --force "
                       "(the target database already has data: add --force to replace it)",
                       code="restore_target_in_use")
    if engine == "sqlite":
        target = _sqlite_file(settings)
        if target.exists() and target.resolve() == path.resolve():
            raise Invalid("备份文件就是目标数据库 (the backup is the configured database itself)", code="backup_target")
        ensure_sqlite_folder(settings.database_url)
        await anyio.to_thread.run_sync(_sqlite_restore, path, target)
    else:
        database, env = _libpq(settings)
        await _run(PG_RESTORE, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
                   f"--dbname={database}", str(path), env=env)
    restored = await migrations.current_revision(settings.database_url)
    if _is_newer(restored, head):  # cannot happen after the check above, unless the file changed meanwhile
        raise Conflict(f"恢复后的数据库结构 {restored} 比本程序的 {head} 新，请升级 Minyi "
                       f"(the restored schema is newer than this code)", code="backup_newer")
    return RestoreFacts(engine=engine, path=path, bytes=path.stat().st_size, tables=tables, revision=restored,
                        seconds=time.monotonic() - started, head=head, migrate_needed=restored != head)


async def _check_backup(path: Path, engine: str) -> tuple[int, str | None]:
    """(tables, revision) of a Minyi backup for ``engine``; Invalid otherwise."""
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise Invalid(f"无法读取备份文件 {path} (cannot read it: {exc.strerror or exc})", code="not_a_backup") from exc
    kind = "sqlite" if header == SQLITE_MAGIC else "postgresql" if header.startswith(PG_MAGIC) else None
    if kind is None:
        raise Invalid(f"{path} 不是 Minyi 备份文件 (not a Minyi backup: neither an SQLite database nor a "
                      f"pg_dump custom-format file)", code="not_a_backup")
    if kind != engine:
        names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
        raise Invalid(f"{path} 是 {names[kind]} 备份，而配置的数据库是 {names[engine]} "
                      f"(a {names[kind]} backup cannot be restored into {names[engine]})", code="backup_wrong_engine")
    if kind == "sqlite":
        tables, revision, problem = await anyio.to_thread.run_sync(_sqlite_check, path)
        if problem:
            raise Invalid(f"{path} 已损坏 (the SQLite file is damaged: {problem})", code="not_a_backup")
    else:
        try:
            tables, revision = await _pg_describe(path)
        except BackupFailed as exc:
            raise Invalid(f"{path} 无法读取 (pg_restore cannot read it: {exc.detail})", code="not_a_backup") from exc
    if revision is None:
        raise Invalid(f"{path} 不是 Minyi 备份：没有数据库结构版本 (no alembic_version: not a Minyi database)",
                      code="not_a_backup")
    return tables, revision


def _sqlite_check(path: Path) -> tuple[int, str | None, str | None]:
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
            tables, revision = _sqlite_describe(connection)
    except sqlite3.Error as exc:
        return 0, None, str(exc)
    return tables, revision, None if verdict == "ok" else verdict


def _sqlite_restore(backup_file: Path, target: Path) -> None:
    # Page by page through SQLite itself (the target's WAL and locks included): no row is deleted.
    try:
        with contextlib.closing(sqlite3.connect(f"{backup_file.resolve().as_uri()}?mode=ro", uri=True)) as src, \
                contextlib.closing(sqlite3.connect(target, timeout=30)) as dst:
            src.backup(dst)
    except sqlite3.Error as exc:
        raise BackupFailed(f"SQLite 恢复失败 (SQLite restore failed: {exc})") from exc


def _is_newer(revision: str | None, head: str | None) -> bool:
    """A revision this code does not know comes from a newer Minyi."""
    if revision is None or revision == head:
        return False
    try:
        return ScriptDirectory.from_config(migrations.alembic_config()).get_revision(revision) is None
    except CommandError:
        return True


async def _in_use(settings: Settings, engine: str) -> bool:
    if engine == "sqlite" and not _sqlite_file(settings).exists():
        return False
    database = create_engine(settings)
    try:
        async with database.connect() as connection:
            present = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
            for name in DATA_TABLES:
                if name in present and await connection.scalar(
                        select(func.count()).select_from(table(name))):
                    return True
        return False
    finally:
        await database.dispose()
