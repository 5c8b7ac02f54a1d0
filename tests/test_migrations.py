"""The schema comes from Alembic alone: upgrade, downgrade and no drift, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrate
from app.models import Base
from app.models.forms import compared_by_alembic


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_to_head_creates_every_table(empty_db_url):
    await migrate.upgrade(empty_db_url)
    assert await _tables(empty_db_url) >= set(Base.metadata.tables)
    assert await migrate.current_revision(empty_db_url) == migrate.head_revision()


async def test_upgrade_seeds_the_chinese_categories(empty_db_url):
    await migrate.upgrade(empty_db_url)
    engine = create_async_engine(empty_db_url)
    try:
        async with engine.connect() as connection:
            rows = dict((await connection.execute(text("SELECT code, name FROM category"))).all())
    finally:
        await engine.dispose()
    assert rows["urban_traffic"] == "城建交通"
    assert rows["environment"] == "环境卫生"
    assert len(rows) >= 8


async def test_downgrade_to_base_removes_every_table(empty_db_url):
    await migrate.upgrade(empty_db_url)
    await migrate.downgrade(empty_db_url, "base")
    assert await _tables(empty_db_url) - {"alembic_version"} == set()
    # And back up again: the migrations are repeatable.
    await migrate.upgrade(empty_db_url)
    assert await _tables(empty_db_url) >= set(Base.metadata.tables)


async def test_models_and_migrations_do_not_drift(empty_db_url):
    await migrate.upgrade(empty_db_url)
    engine = create_async_engine(empty_db_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True, "include_name": compared_by_alembic}),
                    Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_the_head_read_without_alembic_is_alembics_head():
    from alembic.script import ScriptDirectory

    assert migrate.head_revision() == ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
