"""The ``minyi`` command: serve, migrate, create-user, demo, stats verify, worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app import migrate as migrations
from app.config import Settings, get_settings
from app.db import create_engine, create_sessionmaker, transaction
from app.errors import AppError
from app.services import audit as audit_service
from app.services import auth as auth_service
from app.services import backups as backup_service
from app.services import demo as demo_service
from app.services import logs as log_service
from app.services import similar_forms
from app.services import stats as stats_service
from app.services import stats_current
from app.services import workflow

cli = typer.Typer(help="Minyi 民意: opinion forms for Party Representative Workrooms.", no_args_is_help=True)
stats_cli = typer.Typer(help="Statistics counters.", no_args_is_help=True)
cli.add_typer(stats_cli, name="stats")
similar_cli = typer.Typer(help="Similar forms and topics.", no_args_is_help=True)
cli.add_typer(similar_cli, name="similar")

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


def _record(settings: Settings, action: str, target: str | None, details: dict[str, Any]) -> None:
    """An audit line for a command run on the server."""
    async def write(session: AsyncSession) -> None:
        await audit_service.record(session, principal=None, action=action, target=target, details=details)

    _in_transaction(settings, write)


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
    async def create(session: AsyncSession) -> Any:
        user = await auth_service.create_user(session, username=username, password=password, role=role,
                                              unit_id=unit_id, representative_id=representative_id)
        await audit_service.record(session, principal=None, action="user.create", target=f"user:{user.id}",
                                   details={"username": user.username, "role": user.role, "unit_id": unit_id,
                                            "representative_id": representative_id})
        return user

    try:
        user = _in_transaction(get_settings(), create)
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
    # Our JSON (or text) lines for this process and, through log_config, for every worker uvicorn starts;
    # no uvicorn access lines: the request-id middleware writes one per request (logger minyi.access).
    log_service.configure(settings)
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
        # X-Forwarded-* are applied by the app itself, from MINYI_TRUSTED_PROXIES only (app/main.py).
        workers=workers, proxy_headers=False,
        log_config=log_service.logging_config(settings), log_level=settings.log_level.lower(), access_log=False,
    )


@similar_cli.command("index")
def similar_index() -> None:
    """Index every form not indexed yet for similar forms and topics, oldest first, in batches (after an
    upgrade or a bulk load; the worker does it for new forms)."""
    settings = get_settings()

    async def run() -> int:
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        total = 0
        cache = similar_forms.FeatureCache()
        try:
            while done := await similar_forms.index_round(sessionmaker, settings, cache):
                total += done
                if total % 10_000 < done:
                    typer.echo(f"  {total:,} forms indexed")
        finally:
            await engine.dispose()
        return total

    typer.echo(f"indexed {asyncio.run(run()):,} forms")


@stats_cli.command("verify")
def stats_verify() -> None:
    """Recount every counter from the forms, and the summary's current counts as the forms list counts
    them; print differences and exit 1 if there are any."""

    async def both(session: AsyncSession) -> list[dict[str, Any]]:
        return await stats_current.verify(session) + await stats_service.verify(session)

    differences = _in_transaction(get_settings(), both)
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
def backup(path: Annotated[str, typer.Argument(help="File to write, or a directory to put a dated file in")]) -> None:
    """Back up the whole database to PATH while the app runs: SQLite's online backup, or pg_dump (custom
    format) on PostgreSQL. The file appears only when complete."""
    try:
        facts = asyncio.run(backup_service.backup(get_settings(), path))
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    # A backup carries every name and phone number: recorded like an export (issue 8.4), when the database's
    # schema has the audit log (an older one is being backed up before an upgrade).
    if facts.revision == migrations.head_revision():
        _record(get_settings(), "backup.create", str(facts.path), {"bytes": facts.bytes, "revision": facts.revision})
    typer.echo(f"backup written to {facts.path}: {facts.engine}, {facts.bytes} bytes, {facts.tables} tables, "
               f"schema {facts.revision}, {facts.seconds:.2f} s")


@cli.command()
def restore(
    path: Annotated[str, typer.Argument(help="A file written by minyi backup")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that already has data")] = False,
) -> None:
    """Replace the database with the backup at PATH (stop the app first). Refuses a database that already has
    forms, users or workrooms unless --force; after it, run minyi migrate if the backup's schema is older."""
    try:
        facts = asyncio.run(backup_service.restore(get_settings(), path, force=force))
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    if not facts.migrate_needed:  # recorded in the restored database (an older schema has no log to write to yet)
        _record(get_settings(), "backup.restore", str(facts.path), {"revision": facts.revision, "force": force})
    line = (f"restored {facts.path} into {facts.engine}: {facts.tables} tables, schema {facts.revision}, "
            f"{facts.seconds:.2f} s")
    if facts.migrate_needed:
        line += f"; older than this code's schema {facts.head}: run `minyi migrate` next"
    typer.echo(line)


@cli.command()
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count the forms that would be erased")] = False,
) -> None:
    """Erase the submitter's name and phone of forms closed longer ago than MINYI_PERSONAL_DATA_RETENTION_DAYS
    (content and counts stay); run it daily."""
    from app.services import personal_data as personal_data_service

    settings = get_settings()

    async def run(session: AsyncSession) -> int:
        count = await personal_data_service.retention(session, days=settings.personal_data_retention_days,
                                                      dry_run=dry_run)
        if not dry_run:
            await audit_service.record(session, principal=None, action="personal_data.retention",
                                       details={"days": settings.personal_data_retention_days, "erased_forms": count})
        return count

    count = _in_transaction(settings, run)
    verb = "would erase" if dry_run else "erased"
    typer.echo(f"{verb} the personal data of {count} form(s) closed more than "
               f"{settings.personal_data_retention_days} day(s) ago")


@cli.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt all personal data with the first key of MINYI_PERSONAL_DATA_KEYS (and encrypt values
    stored before encryption), recompute the phone look-up hashes."""
    from app.services import personal_data as personal_data_service

    settings = get_settings()

    async def run() -> dict[str, int]:
        engine = create_engine(settings)
        try:
            sessionmaker = create_sessionmaker(engine)
            counts = await personal_data_service.rotate_keys(sessionmaker)
            async with transaction(sessionmaker) as session:
                await audit_service.record(session, principal=None, action="personal_data.rotate_keys", details=counts)
            return counts
        finally:
            await engine.dispose()

    counts = asyncio.run(run())
    typer.echo("re-encrypted: " + ", ".join(f"{column} {n}" for column, n in counts.items()))


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
    from app.services import worker as worker_service

    settings = get_settings()
    log_service.configure(settings)
    handled = asyncio.run(worker_service.run_process(settings, once=once, worker_id=worker_id))
    if once:
        typer.echo(f"{handled} delivery/notice item(s) handled")


def main() -> None:
    cli()
