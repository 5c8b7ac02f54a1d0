"""Run Alembic migrations from inside the app (CLI, start-up, tests) on an async engine.

Alembic is imported only by the functions that migrate: a serving worker needs the head revision alone
(for /readyz), and Alembic with Mako is ~10 MB of every worker's memory (issue 18.3).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import ensure_sqlite_folder

if TYPE_CHECKING:
    from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "alembic" / "versions"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["configure_logger"] = False
    return config


async def _run(url: str, action: str, revision: str) -> None:
    ensure_sqlite_folder(url)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def run(sync_connection: Connection) -> None:
                from alembic import command

                config = alembic_config()
                config.attributes["connection"] = sync_connection
                getattr(command, action)(config, revision)

            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    await _run(url, "upgrade", revision)


async def downgrade(url: str, revision: str = "base") -> None:
    await _run(url, "downgrade", revision)


@cache
def head_revision() -> str | None:
    """The revision no other revision follows, read from the scripts' ``revision`` and ``down_revision``
    assignments (what Alembic's ``heads`` reads; tests/test_migrations.py checks the two agree)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for script in VERSIONS.glob("*.py"):
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
            if not isinstance(target, ast.Name) or target.id not in ("revision", "down_revision"):
                continue
            value = ast.literal_eval(node.value)  # type: ignore[union-attr,arg-type]
            if target.id == "revision":
                revisions.add(value)
            elif target.id == "down_revision" and value is not None:
                followed.update(value if isinstance(value, (tuple, list)) else [value])
    heads = revisions - followed
    if len(heads) > 1:
        raise RuntimeError(f"more than one migration head: {sorted(heads)}")
    return next(iter(heads), None)


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            from alembic.runtime.migration import MigrationContext

            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
