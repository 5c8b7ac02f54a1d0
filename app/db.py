"""The async engine and sessions.

The request is the unit of work: ``get_session`` yields one session inside one transaction, commits when
the endpoint returns (before the response is sent: the dependency is declared with ``scope="function"``)
and rolls back on any error. Services only flush.

SQLite: WAL, a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for every transaction, so two
writers queue on the database lock instead of failing half-way with ``SQLITE_BUSY`` when a read
transaction tries to upgrade. That serialises SQLite writers, which is the embedded default's honest
limit; PostgreSQL is the engine for concurrency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session

from app import crypto
from app.config import Settings


def ensure_sqlite_folder(database_url: str) -> None:
    """SQLite creates the file but not its folder (``./data`` on a fresh clone)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(settings: Settings) -> AsyncEngine:
    # Every engine reads and writes personal data with these settings' keys (app/crypto.py).
    crypto.configure(settings)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_folder(settings.database_url)
        engine = create_async_engine(
            url, echo=settings.db_echo, connect_args={"timeout": settings.sqlite_busy_timeout_seconds},
            pool_size=5, max_overflow=10,
        )
        _configure_sqlite(engine, busy_timeout_ms=round(settings.sqlite_busy_timeout_seconds * 1000))
        return engine
    return create_async_engine(
        url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
    )


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Take transaction control away from the driver so "begin" below decides how to start one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class AppSession(Session):
    """The session class of every sessionmaker here. Its listeners are registered once, at import: a
    listener registered per sessionmaker on a class of its own would be held by SQLAlchemy's class-level
    event registry for as long as the process lives, and with it the app its callback closes over."""


_AFTER_WRITE_COMMIT = "minyi.after_write_commit"


@event.listens_for(AppSession, "do_orm_execute")
def _statement(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info["wrote"] = True


@event.listens_for(AppSession, "after_flush")
def _flushed(session: Session, _context: object) -> None:
    session.info["wrote"] = True


@event.listens_for(AppSession, "after_commit")
def _committed(session: Session) -> None:
    callback = session.info.get(_AFTER_WRITE_COMMIT)
    if session.info.pop("wrote", False) and callback is not None:
        callback()


@event.listens_for(AppSession, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop("wrote", None)


def create_sessionmaker(
    engine: AsyncEngine, *, after_write_commit: Callable[[], None] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions for one app. ``after_write_commit`` runs after each commit of a transaction that wrote
    something (ORM flushes or DML statements), e.g. to drop cached statistics. It travels in each
    session's ``info`` (copied from the sessionmaker's), so nothing global holds it."""
    info = {_AFTER_WRITE_COMMIT: after_write_commit} if after_write_commit is not None else None
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, sync_session_class=AppSession,
                              info=info)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block ends normally, roll back on any exception (re-raised)."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
