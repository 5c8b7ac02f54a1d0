"""Test fixtures: every database test runs once on SQLite and once on PostgreSQL.

Each test gets a fresh database holding the migrated schema: SQLite copies a migrated template file,
PostgreSQL clones a migrated template database (``CREATE DATABASE ... TEMPLATE``) — or, much cheaper,
gets back a database an earlier test of this process used, reset to the template's content
(``_PgDatabases``: every table emptied, the template's rows and sequence values put back), unless that test changed anything a reset cannot undo (then it is dropped). Tests commit for
real, so concurrency is tested through real transactions.

PostgreSQL defaults to ``postgresql://postgres@127.0.0.1:5432/postgres`` (``MINYI_TEST_POSTGRES_URL``
overrides it). When no server answers, PostgreSQL tests are skipped with the reason, except when
``MINYI_TEST_REQUIRE_POSTGRES=1`` or ``CI`` is set: then they fail, so CI never silently skips them.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import io
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.config import Settings
from app.services import auth as auth_service
from tests.support.apps import build_app
from tests.support.serving import serve

# Abuse limits (app/http/abuse.py) are lifted for every test that is not about them: the suite submits,
# tracks and logs in from one address far more often than a resident would. Set in the environment so that
# the servers and commands tests start in subprocesses inherit it; tests/test_abuse.py passes its own limits.
ABUSE_LIMITS_LIFTED = {
    "MINYI_PUBLIC_SUBMIT_PER_IP_PER_MINUTE": "100000", "MINYI_TRACK_PER_IP_PER_MINUTE": "100000",
    "MINYI_LOGIN_PER_IP_PER_MINUTE": "100000", "MINYI_TRACK_FAILURES_BEFORE_LOCK": "1000",
    "MINYI_LOGIN_FAILURES_BEFORE_LOCK": "1000",
}
os.environ.update(ABUSE_LIMITS_LIFTED)

REDIS_URL = os.environ.get("MINYI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("MINYI_TEST_REQUIRE_REDIS") == "1" or bool(os.environ.get("CI"))
PG_ADMIN_URL = os.environ.get("MINYI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("MINYI_TEST_REQUIRE_POSTGRES") == "1" or bool(os.environ.get("CI"))
ENGINES = ("sqlite", "postgresql")
_counter = itertools.count()

# The longest tests of the suite (10-60 s each on 2 cores; `make test` lists the slowest), started first.
# `make test` runs on every core with work stealing: each worker takes a block of the collected tests and
# an idle one takes tests from another's end. A long test that happens to come last keeps one worker busy
# while the others wait (it cost ~45 s a run); started first, the run ends on short tests on every worker.
# Only the order changes: each test still runs alone, in any order (`--random-order-seed` shuffles anyway).
LONG_FIRST = (
    "tests/test_fuzz.py::test_every_operation_answers_as_its_schema_says",
    "tests/test_faults.py::",
    "tests/test_stats_property.py::",
    "tests/test_commands.py::",
    "tests/test_many_processes.py::",
    "tests/test_examples.py::",
    "tests/test_stats_rebuild.py::",
    "tests/test_observability.py::test_serve",
    "tests/test_webhooks.py::test_a_worker_killed_mid_delivery",
    "tests/test_demo.py::",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix)), len(LONG_FIRST))

    long_ones = [item for item in items if rank(item) < len(LONG_FIRST)]
    if not long_ones or len(long_ones) == len(items):
        return
    long_ones.sort(key=rank)  # stable: within a group, the collected order
    rest = [item for item in items if rank(item) == len(LONG_FIRST)]
    # Dealt to the front of each worker's block: the blocks are contiguous slices of this list.
    # The order is decided where the tests are collected: in each xdist worker, which knows how many there are.
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers == 1:
        items[:] = long_ones + rest
        return
    block = len(items) // workers
    dealt: list[list[pytest.Item]] = [long_ones[w::workers] for w in range(workers)]
    ordered: list[pytest.Item] = []
    rest_iter = iter(rest)
    for w in range(workers):
        ordered += dealt[w]
        while len(ordered) < (w + 1) * block and (nxt := next(rest_iter, None)) is not None:
            ordered.append(nxt)
    ordered += list(rest_iter)
    items[:] = ordered


def pg_url(database: str, driver: str = "postgresql+asyncpg") -> str:
    url = make_url(PG_ADMIN_URL).set(drivername=driver, database=database)
    return url.render_as_string(hide_password=False)


async def pg_admin(sql: str, *args: object) -> None:
    connection = await asyncpg.connect(pg_url(make_url(PG_ADMIN_URL).database or "postgres", "postgresql"))
    try:
        await connection.execute(sql, *args)
    finally:
        await connection.close()


async def _seal_template(name: str) -> None:
    connection = await asyncpg.connect(pg_url(name, "postgresql"))
    try:
        await connection.execute("VACUUM (FREEZE, ANALYZE)")
    finally:
        await connection.close()
    await pg_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')


def _pg_available() -> str | None:
    try:
        asyncio.run(asyncio.wait_for(pg_admin("SELECT 1"), timeout=5))
    except Exception as exc:  # any connection failure: report why
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(autouse=True)
def _unfrozen_garbage_collector() -> Iterator[None]:
    """An app's lifespan freezes the collector's view of everything alive (app/main.py), right for a
    server but, in a test process, a leak of every test's objects from then on: undone after each test."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real argon2, with the cost turned down so creating users in every test stays fast.
    monkeypatch.setattr(auth_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """The name of a migrated template database, or None when PostgreSQL is not reachable."""
    reason = _pg_available()
    if reason is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (CI) but not reachable at {PG_ADMIN_URL}: {reason}")
        yield None
        return
    name = f"minyi_tmpl_{os.getpid()}"
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    asyncio.run(migrate.upgrade(pg_url(name)))
    # No connections to the template from now on: CREATE DATABASE waits (in 100 ms steps, up to 5 s) while
    # anyone is connected to its template, and the autovacuum launcher visits a fresh, just-written
    # database. Analyzed and frozen first, nothing in it needs a visit; closed, autovacuum leaves it alone.
    asyncio.run(_seal_template(name))
    yield name
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# What a reset cannot put back, as one digest: the schema (relations, columns, indexes, constraints,
# triggers, functions, types, schemas, extensions) and anything kept beside the tables.
_FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, '|' ORDER BY item), '')) FROM (
  SELECT 'rel:' || n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || coalesce(a.attname, '') || ':'
         || coalesce(format_type(a.atttypid, a.atttypmod), '') || ':' || coalesce(a.attnotnull::text, '') AS item
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 'con:' || conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint
   WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  UNION ALL SELECT 'trg:' || tgname FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT 'fn:' || p.proname FROM pg_proc p
   WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  UNION ALL SELECT 'type:' || t.typname FROM pg_type t
   WHERE t.typnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)
  UNION ALL SELECT 'ns:' || nspname FROM pg_namespace
  UNION ALL SELECT 'ext:' || extname FROM pg_extension
  UNION ALL SELECT 'lo:' || count(*) FROM pg_largeobject_metadata
  UNION ALL SELECT 'set:' || count(*) FROM pg_db_role_setting WHERE setdatabase = (
    SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL SELECT 'xact:' || count(*) FROM pg_prepared_xacts WHERE database = current_database()
) items
"""


class _PgDatabases:
    """This test process's PostgreSQL databases. Cloning the template and dropping the clone cost more
    than most tests (a 9.8 MB copy, 7.5 MB of it system catalogs, and half the machine's time in the kernel
    under the suite's load); so a used database is reset to the template's content and handed to the next
    test. The reset (~0.04 s): every other connection to it ended, the schema's fingerprint compared with
    the template's (a test that changed the schema, or left anything outside the tables, gets its database
    dropped and the next test a fresh clone), every table emptied, the template's rows
    copied back and its sequence values set. Every name it made is dropped at the end of the session."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.spare: list[str] = []
        self.made: list[str] = []
        self.fingerprint: str | None = None
        self.tables: list[str] = []
        self.rows: dict[str, bytes] = {}
        self.sequences: list[tuple[str, int | None, int]] = []

    def take(self) -> str:
        if self.spare:
            return self.spare.pop()
        name = f"minyi_t_{os.getpid()}_{next(_counter)}"
        self.made.append(name)
        asyncio.run(pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        if self.fingerprint is None:
            asyncio.run(self._learn(name))
        return name

    def give_back(self, name: str) -> None:
        try:
            reusable = asyncio.run(self._reset(name))
        except Exception:  # anything odd: a fresh clone for the next test is always right
            reusable = False
        if reusable:
            self.spare.append(name)
        else:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        for name in self.made:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _learn(self, name: str) -> None:
        """The template's content, read from its first (untouched) clone."""
        connection = await asyncpg.connect(pg_url(name, "postgresql"))
        try:
            self.fingerprint = await connection.fetchval(_FINGERPRINT)
            self.tables = [row[0] for row in await connection.fetch(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")]
            for table in self.tables:
                if await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                    buffer = io.BytesIO()
                    await connection.copy_from_query(f"SELECT * FROM {table}", output=buffer, format="binary")
                    self.rows[table] = buffer.getvalue()
            self.sequences = [(row[0], row[1], row[2]) for row in await connection.fetch(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), last_value, start_value"
                " FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")]
        finally:
            await connection.close()

    async def _reset(self, name: str) -> bool:
        # Few round trips: each is ~0.3 ms on a quiet machine and several under the suite's load, and there
        # are ~50 tables and ~30 sequences; so one connection, and one batch of statements per step.
        connection = await asyncpg.connect(pg_url(name, "postgresql"))
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            if await connection.fetchval(_FINGERPRINT) != self.fingerprint:
                return False
            async with connection.transaction():
                # No FK checks on the copy. DELETE, not TRUNCATE: a few rows each, and no files made and
                # unlinked (TRUNCATE's new files cost as much as a clone). Dead rows are autovacuum's.
                await connection.execute("SET LOCAL session_replication_role = replica; "
                                         + " ".join(f"DELETE FROM {table};" for table in self.tables))
                for table, data in self.rows.items():
                    schema, _, bare = table.partition(".")
                    await connection.copy_to_table(bare.strip('"'), schema_name=schema.strip('"'),
                                                   source=io.BytesIO(data), format="binary")
                # A sequence the template never used starts again at its start (setval's is_called false:
                # what ALTER SEQUENCE … RESTART does, without DDL's catalog writes).
                if self.sequences:
                    await connection.execute("SELECT " + ", ".join(
                        f"setval('{sequence}', {int(last_value)}, true)" if last_value is not None
                        else f"setval('{sequence}', {int(start)}, false)"
                        for sequence, last_value, start in self.sequences))
        finally:
            connection.terminate()  # committed: nothing to wait for on the way out
        return True


@pytest.fixture(scope="session")
def pg_databases(pg_template: str | None) -> Iterator[_PgDatabases | None]:
    if pg_template is None:
        yield None
        return
    databases = _PgDatabases(pg_template)
    try:
        yield databases
    finally:
        databases.close()


def fresh_database(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if engine == "sqlite":
        path = tmp_path / "minyi.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    databases = request.getfixturevalue("pg_databases")
    if databases is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} (set MINYI_TEST_POSTGRES_URL); SQLite ran")
    name = databases.take()
    try:
        yield pg_url(name)
    finally:
        databases.give_back(name)


@pytest.fixture(params=ENGINES)
def db_engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(db_engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(db_engine, request, tmp_path)


def empty_database(engine: str, request: pytest.FixtureRequest, tmp_path: Path, stem: str = "empty") -> Iterator[str]:
    """A database with no schema at all (SQLite: ``<stem>.db`` under ``tmp_path``), dropped afterwards."""
    if engine == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'{stem}.db'}"
        return
    if request.getfixturevalue("pg_template") is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}; SQLite ran")
    name = f"minyi_e_{os.getpid()}_{next(_counter)}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url(name)
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_db_url(db_engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    yield from empty_database(db_engine, request, tmp_path)


def make_settings(db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url, "environment": "test", "secret_key": "test-secret-key", "db_pool_size": 20,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = build_app(settings)
    yield application
    await application.state.engine.dispose()


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def sessionmaker(app: object) -> async_sessionmaker[AsyncSession]:
    return app.state.sessionmaker  # type: ignore[attr-defined]


# --- a real server and a real browser ---------------------------------------------------------------

REQUIRE_BROWSER = os.environ.get("MINYI_TEST_REQUIRE_BROWSER") == "1" or bool(os.environ.get("CI"))
CHROMIUM = os.environ.get("MINYI_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots of the browser tests (git-ignored)


@pytest.fixture
async def live_server(db_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """The app served over real HTTP on 127.0.0.1 (tests/support/serving.py), on this test's database: its
    base URL. An app of its own (its own caches, worker and settings, as a server process would have), served
    on the test's event loop: no interpreter to start and no app to import per test, which made this fixture
    the slowest setup of the suite."""
    settings = make_settings(db_url, supervise_interval_seconds=0, export_dir=tmp_path / "exports",
                             photo_dir=tmp_path / "photos")
    application = build_app(settings)
    try:
        async with serve(application) as base:
            yield base
    finally:
        await application.state.engine.dispose()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """Debian's Chromium driven by Playwright (its own browser download cannot work here)."""
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium fonts-noto-cjk)"
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def phone(browser: object) -> AsyncIterator[object]:
    """A browser context the size of a phone (390×844), Chinese, touch."""
    context = await browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
        locale="zh-CN", timezone_id="Asia/Shanghai",
    )
    try:
        yield context
    finally:
        await context.close()


async def screenshot(page: object, name: str) -> Path:
    """Save a full-page screenshot under tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


# --- a fake WeChat ------------------------------------------------------------------------------------

from tests.fake_wechat import FakeWeChat  # noqa: E402  (kept with its fixtures)


@pytest.fixture(scope="session")
def _fake_wechat_server() -> Iterator[FakeWeChat]:
    fake = FakeWeChat()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_wechat(_fake_wechat_server: FakeWeChat) -> Iterator[FakeWeChat]:
    """The fake WeChat (tests/fake_wechat.py), a real HTTP server on 127.0.0.1 shared by the session and
    reset before and after each test, so no state leaks between tests."""
    _fake_wechat_server.reset()
    yield _fake_wechat_server
    _fake_wechat_server.reset()


def wechat_settings(db_url: str, fake: FakeWeChat, **overrides: object) -> Settings:
    """Settings for an app that talks to ``fake`` as its mini-program's WeChat."""
    values: dict[str, object] = {
        "wechat_base_url": fake.base_url, "wechat_app_id": fake.app_id, "wechat_app_secret": fake.app_secret,
    }
    values.update(overrides)
    return make_settings(db_url, **values)


@pytest.fixture
async def redis() -> AsyncIterator[object]:
    """A connection to the test Redis (``MINYI_TEST_REDIS_URL``). Skipped, saying why, when none answers,
    except when ``MINYI_TEST_REQUIRE_REDIS=1`` or ``CI`` is set: then it fails."""
    from redis.asyncio import Redis

    connection = Redis.from_url(REDIS_URL)
    try:
        await connection.ping()
    except Exception as exc:  # any connection failure: report why
        await connection.aclose()
        if REQUIRE_REDIS:
            pytest.fail(f"Redis is required (CI) but not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL} (set MINYI_TEST_REDIS_URL): {exc}")
    yield connection
    await connection.aclose()
