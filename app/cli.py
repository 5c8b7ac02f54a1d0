"""The ``minyi`` command: serve, migrate, create-user, demo, stats verify, worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app import migrate as migrations
from app.config import Settings, get_settings
from app.db import create_engine, create_sessionmaker, transaction
from app.errors import AppError
from app.services import auth as auth_service
from app.services import demo as demo_service
from app.services import stats as stats_service
from app.services import workflow

cli = typer.Typer(help="Minyi 民意: opinion forms for Party Representative Workrooms.", no_args_is_help=True)
stats_cli = typer.Typer(help="Statistics counters.", no_args_is_help=True)
cli.add_typer(stats_cli, name="stats")

T = TypeVar("T")


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@cli.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Bring the database schema to REVISION (default: the latest) with Alembic."""
    settings = get_settings()
    asyncio.run(migrations.upgrade(settings.database_url, revision))
    typer.echo(f"database at {revision}")


@cli.command("create-user")
def create_user(
    username: str,
    role: Annotated[str, typer.Option(help="admin | coordinator | handler | representative")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    unit_id: Annotated[int | None, typer.Option(help="Handling unit (handlers)")] = None,
    representative_id: Annotated[int | None, typer.Option(help="Representative record (representatives)")] = None,
) -> None:
    """Create a staff user."""
    try:
        user = _in_transaction(get_settings(), lambda s: auth_service.create_user(
            s, username=username, password=password, role=role, unit_id=unit_id, representative_id=representative_id))
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"created user {user.username} (id {user.id}, role {user.role})")


@cli.command()
def demo(
    force: Annotated[bool, typer.Option(help="Load even if the database already has forms")] = False,
) -> None:
    """Load the demo town (11 workrooms, 30 representatives, 107 forms) into an empty database."""
    settings = get_settings()
    asyncio.run(migrations.upgrade(settings.database_url))
    loaded = _in_transaction(settings, lambda s: demo_service.load(s, settings=settings, force=force))
    typer.echo("demo town loaded" if loaded else "database already has data: demo not loaded")
    _print_demo_logins()


def _print_demo_logins() -> None:
    typer.echo("\n演示账号 Demo logins (demo mode only):")
    for username, password, role in demo_service.DEMO_USERS:
        typer.echo(f"  {role:<15} {username:<14} {password}")
    typer.echo("")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: MINYI_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: MINYI_PORT")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="Run migrations first")] = False,
    demo_mode: Annotated[bool, typer.Option("--demo", help="Migrate, load the demo town if empty, print demo logins")] = False,
) -> None:
    """Serve the app with uvicorn."""
    import os

    import uvicorn

    settings = get_settings()
    if demo_mode or settings.demo:
        os.environ["MINYI_DEMO"] = "true"
        get_settings.cache_clear()
        settings = get_settings()
        asyncio.run(migrations.upgrade(settings.database_url))
        _in_transaction(settings, lambda s: demo_service.load(s, settings=settings, force=False))
        _print_demo_logins()
    elif migrate_first:
        asyncio.run(migrations.upgrade(settings.database_url))
    uvicorn.run(
        "app.main:create_app", factory=True, host=host or settings.host, port=port or settings.port,
        workers=workers, proxy_headers=True, log_level="info",
    )


@stats_cli.command("verify")
def stats_verify() -> None:
    """Recount every counter from the forms; print differences and exit 1 if there are any."""
    differences = _in_transaction(get_settings(), stats_service.verify)
    if differences:
        typer.echo(json.dumps(differences, ensure_ascii=False, indent=2))
        typer.echo(f"{len(differences)} counter cell(s) differ from a recount", err=True)
        raise typer.Exit(1)
    typer.echo("counters match a recount")


@stats_cli.command("rebuild")
def stats_rebuild() -> None:
    """Recompute every counter from the forms (after a bulk load, or to repair what verify reports)."""
    cells = _in_transaction(get_settings(), stats_service.rebuild)
    typer.echo(f"rebuilt {cells} counter cells")


@cli.command()
def supervise() -> None:
    """Record supervision events (预警, 逾期, 督办) for forms that moved up the ladder; run daily or more often."""
    written = _in_transaction(get_settings(), workflow.supervise)
    typer.echo(f"{written} supervision event(s) recorded")


@cli.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due now, then exit")] = False,
    worker_id: Annotated[str | None, typer.Option("--id", help="Name recorded on each webhook attempt")] = None,
) -> None:
    """Deliver webhooks and WeChat reply notices from the outbox until SIGTERM (set MINYI_WORKER_IN_PROCESS=false
    on the app processes when running these); any number may run at once."""
    import logging

    from app.services import worker as worker_service

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handled = asyncio.run(worker_service.run_process(get_settings(), once=once, worker_id=worker_id))
    if once:
        typer.echo(f"{handled} delivery/notice item(s) handled")


def main() -> None:
    cli()
