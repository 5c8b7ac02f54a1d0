"""Throughput and latency of Minyi under wrk, as ratios to the app's own /healthz measured in the same run.

    .venv/bin/python bench/run.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/minyi_bench \
        --workers 1,2

For each worker count: start the app with uvicorn as a subprocess (127.0.0.1 only), wait for /healthz,
create a staff user and token, then run wrk phase after phase against that one server:

    healthz      GET  /healthz                          the baseline
    submit       POST /api/v1/forms                     a different JSON body every request
    submit_idem  POST /api/v1/forms + Idempotency-Key   what the offline queue / mini-program sends
    summary      GET  /api/v1/stats/summary             bearer token
    summary_304  the same with If-None-Match: <ETag>    every answer must be 304
    open311      GET  /open311/v2/requests.json         the public default list (≤ 1,000 requests), uncompressed
    open311_gzip the same with Accept-Encoding: gzip     as browsers, HTTP libraries and the checkers ask for it
    office_*     GET  /office/forms?...                 the office's forms list, first page, as a signed-in
                                                        coordinator: the default list and the five filters the
                                                        office uses most (OFFICE_LISTS), --office-connections each;
                                                        office_search: the list searched for a common word
    search_*     GET  /api/v1/forms?q=...               the API's Chinese search, first page by relevance: a
                                                        two-character word and a phrase (SEARCHES), bearer token,
                                                        --office-connections each
    similar      GET  /api/v1/forms/{id}/similar         a random one of 200 indexed forms' similar forms, bearer
                                                        token, --office-connections at once
    healthz_end  GET  /healthz again                    shows whether the machine drifted during the run

Each phase: a short warm-up, then ``--duration`` seconds with ``-c --connections -t --threads --latency``,
a hard timeout on every subprocess. The Lua scripts count the status codes wrk saw; a phase whose
answers are not all the expected status is flagged. Worker RSS (sum and max over the uvicorn worker
processes, from /proc) and the CPU seconds used by the app workers, PostgreSQL and wrk are sampled per
phase. Results go to bench/results/<timestamp>.json; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/minyi_bench"
BENCH_USER = "bench-office"
BENCH_PASSWORD = "bench-office-password"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_SECRET = "minyi-bench-secret-key-not-for-production-0123456789abcdef"  # as in bench/load.py

# name -> (wrk script, expected status, goal ratio to healthz or None)
PHASES: dict[str, tuple[str, int, float | None]] = {
    "healthz": ("healthz.lua", 200, None),
    "submit": ("submit.lua", 201, 0.25),
    "submit_idem": ("submit.lua", 201, 0.30),  # issue 18.1
    "summary": ("summary.lua", 200, 0.5),
    "summary_304": ("summary.lua", 304, 0.8),
    "open311": ("open311.lua", 200, 0.5),  # the Open311 default list: up to 1,000 requests (issue 18.3)
    "open311_gzip": ("open311_gzip.lua", 200, 0.5),  # the same, compressed, as clients ask for it
}
# The office's forms list, first page (issue 18.5): the default list and the five filters the office uses
# most — the dashboard's tiles and the list's side panel: the triage queue (oldest first), forms in
# progress, overdue ones, one workroom's, one category's. {workroom}/{category}: the town's first codes.
OFFICE_LISTS: dict[str, str] = {
    "office_default": "",
    "office_triage": "status=submitted",
    "office_in_progress": "status=assigned",
    "office_overdue": "overdue=true",
    "office_workroom": "workroom={workroom}",
    "office_category": "category={category}",
}
# The Chinese search (issue 19.1): the office's list searched, and the API's list (first page, by relevance,
# 50 forms) for a two-character word and for a phrase. Each is in 1 of 16 of the loaded forms' contents
# (62,500 at 1,000,000): the common-word case, where ranking every match would read them all.
SEARCH_WORD = "路灯"
SEARCH_PHRASE = "路灯坏了"
OFFICE_LISTS["office_search"] = "q=" + quote(SEARCH_WORD)
SEARCHES: dict[str, str] = {
    "search_term": "q=" + quote(SEARCH_WORD),
    "search_phrase": "q=" + quote(SEARCH_PHRASE),
}
for _name in OFFICE_LISTS:
    PHASES[_name] = ("office.lua", 200, None)
for _name in SEARCHES:
    PHASES[_name] = ("search.lua", 200, None)
# A form's similar forms (issue 19.2, p99 <= 30 ms at 1,000,000 forms): a coordinator asks for a random one of
# SIMILAR_SAMPLE forms indexed for similar forms (`minyi similar index` first), --office-connections at once.
PHASES["similar"] = ("similar.lua", 200, None)
SIMILAR_SAMPLE = 200
SIMILAR_P99_GOAL_MS = 30.0
PHASES["healthz_end"] = ("healthz.lua", 200, None)
OFFICE_P99_GOAL_MS = 50.0  # each office list's first page (issue 18.5)
SEARCH_P99_GOAL_MS = 50.0  # a search's first page at 1,000,000 forms: a two-character word, a phrase (issue 19.1)
P99_GOAL_MS = 50.0  # submissions, with and without a key, under 64 connections (issue 18.2)
RSS_GOAL_MB = 200.0  # per worker
OPEN311_P99_GOAL_MS = 100.0  # the public list (issue 18.3)
OPEN311_RSS_GOAL_MB = 160.0  # per worker while serving it


# --- processes ----------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(server_pid: int) -> list[int]:
    """The processes serving requests: uvicorn's spawned workers, or the server itself with one worker."""
    kids = [p for p in children(server_pid) if "resource_tracker" not in cmdline(p)]
    return kids or [server_pid]


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "postgres":
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def total_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class RssSampler(threading.Thread):
    """Samples the workers' RSS every 0.25 s while a phase runs (bounded by ``stop``)."""

    def __init__(self, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.server_pid = server_pid
        self.stop_event = threading.Event()
        self.max_sum_kb = 0
        self.max_worker_kb = 0

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            values = [rss_kb(p)[0] for p in worker_pids(self.server_pid)]
            self.max_sum_kb = max(self.max_sum_kb, sum(values))
            self.max_worker_kb = max(self.max_worker_kb, max(values, default=0))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


@dataclass
class CpuWindow:
    """CPU seconds used by the app workers, PostgreSQL and wrk across one phase."""

    server_pid: int
    start: float = 0.0
    app: dict[int, int] = field(default_factory=dict)
    pg: dict[int, int] = field(default_factory=dict)
    machine: tuple[int, int] = (0, 0)

    def begin(self) -> None:
        self.start = time.perf_counter()
        self.app = {p: cpu_ticks(p) for p in worker_pids(self.server_pid)}
        self.pg = {p: cpu_ticks(p) for p in postgres_pids()}
        self.machine = total_cpu_ticks()

    def end(self, wrk_ticks: int) -> dict[str, float]:
        wall = time.perf_counter() - self.start
        app = sum(cpu_ticks(p) - self.app.get(p, 0) for p in worker_pids(self.server_pid))
        pg = sum(cpu_ticks(p) - self.pg.get(p, 0) for p in postgres_pids())
        busy0, total0 = self.machine
        busy1, total1 = total_cpu_ticks()
        cores = os.cpu_count() or 1
        usage = {
            "wall_s": round(wall, 2),
            "app_cores": round(app / CLK_TCK / wall, 2),
            "postgres_cores": round(pg / CLK_TCK / wall, 2),
            "wrk_cores": round(wrk_ticks / CLK_TCK / wall, 2),
            "machine_busy_cores": round((busy1 - busy0) / max(1, total1 - total0) * cores, 2),
        }
        usage["app_cpu_s"] = round(app / CLK_TCK, 2)
        usage["postgres_cpu_s"] = round(pg / CLK_TCK, 2)
        # Whatever else ran on the machine meanwhile (other jobs, the sampler itself): a noisy neighbour shows here.
        usage["other_cores"] = round(max(0.0, usage["machine_busy_cores"] - usage["app_cores"]
                                         - usage["postgres_cores"] - usage["wrk_cores"]), 2)
        return usage


def wait_for_quiet(limit_s: float, threshold: float = 0.3) -> dict[str, float]:
    """Wait (at most ``limit_s``) until the machine is idle: < ``threshold`` cores busy over one second."""
    started = time.monotonic()
    cores = os.cpu_count() or 1
    busy = 0.0
    while True:
        busy0, total0 = total_cpu_ticks()
        time.sleep(1.0)
        busy1, total1 = total_cpu_ticks()
        busy = (busy1 - busy0) / max(1, total1 - total0) * cores
        waited = time.monotonic() - started
        if busy < threshold or waited >= limit_s:
            return {"waited_s": round(waited, 1), "busy_cores_before": round(busy, 2)}
        time.sleep(1.0)


class PgActivity(threading.Thread):
    """Samples pg_stat_activity for the benchmark database every 0.25 s: how many of the app's
    connections are running, waiting on a lock, or idle inside a transaction (the app holding it)."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        from sqlalchemy.engine import make_url

        u = make_url(database_url)
        self.dbname = u.database
        self.url = u.set(drivername="postgresql").render_as_string(hide_password=False)
        self.stop_event = threading.Event()
        self.samples = 0
        self.totals: dict[str, int] = {}

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            while not self.stop_event.is_set():
                rows = await conn.fetch(
                    """SELECT state, wait_event_type, wait_event, count(*) AS n FROM pg_stat_activity
                       WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                       GROUP BY 1, 2, 3""", self.dbname)
                self.samples += 1
                for r in rows:
                    key = r["state"] or "?"
                    if r["wait_event_type"] and r["state"] == "active":
                        key += f" / {r['wait_event_type']}:{r['wait_event']}"
                    self.totals[key] = self.totals.get(key, 0) + r["n"]
                await asyncio.sleep(0.25)
        finally:
            await conn.close()

    def stop(self) -> dict[str, float]:
        self.stop_event.set()
        self.join(timeout=5)
        return {k: round(v / max(1, self.samples), 1) for k, v in sorted(self.totals.items(), key=lambda kv: -kv[1])}


# --- the server ---------------------------------------------------------------------------------------


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def server_command(kind: str, port: int, workers: int) -> list[str]:
    if kind == "minyi":  # exactly what an operator runs: `minyi serve` (access log on, proxy headers)
        return [sys.executable, "-m", "app", "serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers)]
    return [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]


def niced(args: argparse.Namespace, command: list[str]) -> list[str]:
    """Run at another scheduling priority (``--nice``; negative needs root): keeps other jobs on a shared
    machine from stealing the benchmark's CPU. PostgreSQL's own processes keep their priority."""
    return ["nice", "-n", str(args.nice), *command] if args.nice else command


def start_server(args: argparse.Namespace, workers: int, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update({
        "MINYI_DATABASE_URL": args.database_url,
        "MINYI_ENVIRONMENT": "production",
        "MINYI_SECRET_KEY": env.get("MINYI_SECRET_KEY", BENCH_SECRET),
        # wrk is one client on one address sending what a whole town would: the per-IP abuse limits (a
        # resident's, 20 submissions a minute) would measure only the 429s.
        "MINYI_PUBLIC_SUBMIT_PER_IP_PER_MINUTE": "100000",
        "MINYI_TRACK_PER_IP_PER_MINUTE": "100000",
        # Likewise Open311's per-IP read limit (300 a minute): the bench measures the answers, not the 429s.
        "MINYI_OPEN311_READ_PER_IP_PER_MINUTE": "10000000",
        # No in-process worker: a loaded database is a backlog of forms not indexed for similar forms, and the
        # worker would spend every phase indexing them (`minyi similar index` does it apart, beforehand).
        # MINYI_WORKER_IN_PROCESS=true measures with it.
        "MINYI_WORKER_IN_PROCESS": env.get("MINYI_WORKER_IN_PROCESS", "false"),
        # The caller's PYTHONPATH is kept after the checkout (e.g. a sitecustomize for an A/B run).
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    if args.pool_size:
        env["MINYI_DB_POOL_SIZE"] = str(args.pool_size)
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(niced(args, server_command(args.server, port, workers)), cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200 and len(worker_pids(process.pid)) >= workers:
                    return process
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    stop_server(process)
    raise SystemExit(f"the server did not answer /healthz within 60 s; see {log_path}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    pids = worker_pids(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    for pid in pids:  # workers that outlived their supervisor, by their own pid only
        if pid != process.pid and os.path.exists(f"/proc/{pid}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- the app's data -----------------------------------------------------------------------------------


async def _token_and_codes(database_url: str) -> tuple[str, list[str], list[str]]:
    from sqlalchemy import select

    from app.config import Settings
    from app.db import create_engine, create_sessionmaker, transaction
    from app.models import Category, User, Workroom
    from app.services import auth as auth_service

    settings = Settings(database_url=database_url)
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            user = await session.scalar(select(User).where(User.username == BENCH_USER))
            if user is None:
                user = await auth_service.create_user(session, username=BENCH_USER, password=BENCH_PASSWORD,
                                                      role="coordinator")
            token, _ = await auth_service.issue_token(session, user=user, ttl_seconds=6 * 3600)
            categories = list(await session.scalars(select(Category.code).where(Category.active).order_by(Category.id)))
            workrooms = list(await session.scalars(select(Workroom.code).where(Workroom.active).order_by(Workroom.code)))
    finally:
        await engine.dispose()
    return token, categories, workrooms


DATABASE_URL: list[str] = []  # the run's (set by main)


@functools.cache
def similar_sample(database_url: str) -> list[int]:
    """SIMILAR_SAMPLE forms indexed for similar forms, drawn at random once per run."""
    async def run() -> list[int]:
        import asyncpg

        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            rows = await connection.fetch("SELECT form_id FROM topic_member TABLESAMPLE SYSTEM (1) LIMIT $1",
                                          SIMILAR_SAMPLE)
        finally:
            await connection.close()
        if not rows:
            raise SystemExit("no form is indexed for similar forms: run `minyi similar index` first")
        return [row["form_id"] for row in rows]

    return asyncio.run(run())


def database_facts(database_url: str, *, vacuum: bool = False) -> dict[str, Any]:
    """Facts of the benchmark's database; with ``vacuum``, first what autovacuum would have done, if it is off."""
    async def run() -> dict[str, Any]:
        import asyncpg
        from sqlalchemy.engine import make_url

        url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(url)
        try:
            autovacuum = await conn.fetchval("SHOW autovacuum")
            if autovacuum != "on" and vacuum:
                # Without autovacuum (this machine's CI cluster turns it off) the forms a run submits are never
                # marked all-visible, and the next run's lists read their heap rows instead of the index
                # alone (the capped count of a category's list: 2.4 -> 15 ms of PostgreSQL a page after
                # ~400,000 benchmark submissions). Production runs autovacuum: do its work first.
                print("autovacuum is off: VACUUM (ANALYZE) first, as autovacuum would have", file=sys.stderr)
                await conn.execute("VACUUM (ANALYZE)")
            return {
                "autovacuum": autovacuum,
                "forms": await conn.fetchval("SELECT count(*) FROM opinion_form"),
                "stat_cells": await conn.fetchval("SELECT count(*) FROM stat_cell"),
                "open_assigned": await conn.fetchval("SELECT count(*) FROM opinion_form WHERE status = 'assigned'"),
                "database_size": await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))"),
                "server_version": await conn.fetchval("SHOW server_version"),
                "max_connections": await conn.fetchval("SHOW max_connections"),
                "shared_buffers": await conn.fetchval("SHOW shared_buffers"),
                "synchronous_commit": await conn.fetchval("SHOW synchronous_commit"),
            }
        finally:
            await conn.close()

    return asyncio.run(run())


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# --- wrk ----------------------------------------------------------------------------------------------


def run_wrk(args: argparse.Namespace, port: int, phase: str, script_args: list[str], duration: int,
            latency: bool = True) -> tuple[dict[str, Any], int, str]:
    script, _, _ = PHASES[phase]
    path = {"submit.lua": "/api/v1/forms", "office.lua": "/office/forms", "search.lua": "/api/v1/forms"}.get(script, "/")
    quiet = phase in OFFICE_LISTS or phase in SEARCHES or phase == "similar"
    connections = args.office_connections if quiet else args.connections
    command = [args.wrk, "-t", str(min(args.threads, connections)), "-c", str(connections), "-d", f"{duration}s",
               "--timeout", "10s", "-s", str(BENCH / script)]
    if latency:
        command.append("--latency")
    command += [f"http://127.0.0.1:{port}{path}"]
    if script_args:
        command += ["--", *script_args]
    env = dict(os.environ, MINYI_BENCH_LUA=str(BENCH))
    process = subprocess.Popen(niced(args, command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               cwd=BENCH)
    ticks = 0
    deadline = time.monotonic() + duration + 30
    output = b""
    try:
        while process.poll() is None:
            ticks = max(ticks, cpu_ticks(process.pid))
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"wrk overran its {duration} s phase {phase}")
            time.sleep(0.2)
        output = process.stdout.read() if process.stdout else b""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    text = output.decode(errors="replace")
    match = re.search(r"^WRK_JSON (.*)$", text, re.M)
    if process.returncode != 0 or not match:
        raise SystemExit(f"wrk failed in phase {phase} (exit {process.returncode}):\n{text}")
    return json.loads(match.group(1)), ticks, text


def script_arguments(phase: str, token: str, etag: str | None, categories: list[str], workrooms: list[str]) -> list[str]:
    if phase in OFFICE_LISTS:
        return [token, OFFICE_LISTS[phase].format(workroom=workrooms[0], category=categories[0])]
    if phase in SEARCHES:
        return [token, SEARCHES[phase]]
    if phase == "similar":
        return [token, ",".join(str(i) for i in similar_sample(DATABASE_URL[0]))]
    if phase in ("submit", "submit_idem"):
        extra = ["idempotent"] if phase == "submit_idem" else []
        return [",".join(categories), ",".join(workrooms), *extra]
    if phase == "summary":
        return [token]
    if phase == "summary_304":
        return [token, etag or ""]
    return []


def run_workers(args: argparse.Namespace, workers: int, stamp: str) -> dict[str, Any]:
    port = free_port(args.port)
    log_path = args.results_dir / f"{stamp}-server-w{workers}.log"
    print(f"\n== {workers} worker(s): {' '.join(server_command(args.server, port, workers))}", flush=True)
    token, categories, workrooms = asyncio.run(_token_and_codes(args.database_url))
    process = start_server(args, workers, port, log_path)
    result: dict[str, Any] = {"workers": workers, "port": port, "phases": {}, "server_log": str(log_path)}
    try:
        pids = worker_pids(process.pid)
        result["worker_pids"] = pids
        result["rss_idle_kb"] = [rss_kb(p)[0] for p in pids]
        auth = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        etag = None
        for phase in args.phases:
            if phase == "summary_304":
                status, headers, _ = get(f"{base}/api/v1/stats/summary", auth)
                etag = headers.get("ETag") or headers.get("etag")
                check, _, _ = get(f"{base}/api/v1/stats/summary", {**auth, "If-None-Match": etag or ""})
                if status != 200 or check != 304:
                    raise SystemExit(f"summary answered {status} with ETag {etag!r}; the conditional GET {check}")
            script_args = script_arguments(phase, token, etag, categories, workrooms)
            quiet = wait_for_quiet(args.quiet_timeout) if args.quiet_timeout else {}
            if args.warmup:
                run_wrk(args, port, phase, script_args, args.warmup, latency=False)
            time.sleep(args.pause)
            sampler = RssSampler(process.pid)
            cpu = CpuWindow(process.pid)
            activity = PgActivity(args.database_url)
            sampler.start()
            activity.start()
            cpu.begin()
            stats, wrk_ticks, raw = run_wrk(args, port, phase, script_args, args.duration)
            usage = cpu.end(wrk_ticks)
            sampler.stop()
            pg_activity = activity.stop()
            _, expected, _ = PHASES[phase]
            seconds = stats["duration_us"] / 1e6
            statuses = {int(k): v for k, v in stats["statuses"].items()}
            errors = stats["errors"]
            socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
            requests = max(1, stats["requests"])
            usage["app_cpu_ms_per_request"] = round(usage["app_cpu_s"] * 1000 / requests, 3)
            usage["postgres_cpu_ms_per_request"] = round(usage["postgres_cpu_s"] * 1000 / requests, 3)
            entry = {
                "rps": round(stats["requests"] / seconds, 1),
                "requests": stats["requests"],
                "seconds": round(seconds, 2),
                "latency_ms": {k: round(float(v) / 1000, 2) for k, v in stats["latency_us"].items()},
                "statuses": statuses,
                "unexpected": sum(n for code, n in statuses.items() if code != expected),
                "socket_errors": socket_errors,
                "rss_max_sum_mb": round(sampler.max_sum_kb / 1024, 1),
                "rss_max_worker_mb": round(sampler.max_worker_kb / 1024, 1),
                "cpu": usage,
                "quiet": quiet,
                "pg_activity": pg_activity,
                "wrk_output": raw,
            }
            result["phases"][phase] = entry
            flag = "" if not entry["unexpected"] and not socket_errors else \
                f"  !! {entry['unexpected']} unexpected statuses {statuses}, {socket_errors} socket errors"
            print(f"  {phase:<12} {entry['rps']:>9,.1f} req/s  p99 {entry['latency_ms']['p99']:>8.2f} ms  "
                  f"rss {entry['rss_max_worker_mb']:.0f} MB/worker  cpu app {usage['app_cores']:.2f} "
                  f"pg {usage['postgres_cores']:.2f} wrk {usage['wrk_cores']:.2f} other {usage['other_cores']:.2f}  "
                  f"ms CPU/req app {usage['app_cpu_ms_per_request']:.3f} pg {usage['postgres_cpu_ms_per_request']:.3f}"
                  f"{flag}",
                  flush=True)
            print(f"  {'':<12} pg connections: {pg_activity}", flush=True)
        result["rss_end_kb"] = [rss_kb(p)[0] for p in worker_pids(process.pid)]
        result["rss_peak_kb"] = [rss_kb(p)[1] for p in worker_pids(process.pid)]
        if args.profile:
            result["profiles"] = profile(args, process, port, token, etag, categories, workrooms, stamp, workers)
    finally:
        stop_server(process)
    return result


def profile(args: argparse.Namespace, process: subprocess.Popen[bytes], port: int, token: str, etag: str | None,
            categories: list[str], workrooms: list[str], stamp: str, workers: int) -> dict[str, str]:
    """py-spy record of one worker while wrk loads each phase again (these numbers are not reported)."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        print("  (py-spy not installed: pip install py-spy)")
        return {}
    out: dict[str, str] = {}
    pid = worker_pids(process.pid)[0]
    for phase in ("submit", "submit_idem", "open311", "open311_gzip", "summary", "summary_304", "office_default", "healthz"):
        if phase not in args.phases:
            continue
        path = args.results_dir / f"{stamp}-w{workers}-{phase}.folded.txt"
        spy = subprocess.Popen([pyspy, "record", "-p", str(pid), "-d", str(args.duration), "-r", "200", "-f", "raw",
                                "-o", str(path), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            run_wrk(args, port, phase, script_arguments(phase, token, etag, categories, workrooms), args.duration,
                    latency=False)
            spy.wait(timeout=args.duration + 30)
        finally:
            if spy.poll() is None:
                spy.kill()
        out[phase] = str(path)
        top = path.with_suffix("").with_suffix(".top.txt")
        if path.exists():
            top.write_text(summarise_profile(path))
            print(f"  profile {phase}: {path} (top frames: {top})")
    return out


def summarise_profile(path: Path, limit: int = 60) -> str:
    """Inclusive and self share of each function in py-spy's folded stacks."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \((?:.*/)?([^/:]+):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:limit]]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:30]]
    return "\n".join(lines) + "\n"


# --- report -------------------------------------------------------------------------------------------


def goal_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    phases = result["phases"]
    base = phases.get("healthz", {}).get("rps")
    rows = []
    for name, entry in phases.items():
        _, _, goal = PHASES[name]
        ratio = entry["rps"] / base if base else None
        verdict = ""
        if goal is not None and ratio is not None:
            verdict = "PASS" if ratio >= goal else f"MISS ({ratio / goal:.0%} of goal)"
        rows.append({"phase": name, "rps": entry["rps"], "p50": entry["latency_ms"]["p50"],
                     "p99": entry["latency_ms"]["p99"], "ratio": ratio, "goal": goal, "verdict": verdict,
                     "ok": not entry["unexpected"] and not entry["socket_errors"], "statuses": entry["statuses"],
                     "rss": entry["rss_max_worker_mb"], "cpu": entry["cpu"]})
    return rows


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    for result in results:
        lines.append(f"\n### {result['workers']} worker(s)\n")
        lines.append("| phase | req/s | p50 ms | p99 ms | ratio to /healthz | goal | result | statuses | "
                     "max RSS/worker MB | CPU cores app / pg / wrk / other | CPU ms per request app / pg |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- | --- |")
        for row in goal_rows(result):
            ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else ""
            goal = f"≥ {row['goal']}" if row["goal"] is not None else ""
            statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(row["statuses"].items()))
            if not row["ok"]:
                statuses += " **(unexpected)**"
            cpu = row["cpu"]
            lines.append(f"| {row['phase']} | {row['rps']:,.0f} | {row['p50']:.1f} | {row['p99']:.1f} | {ratio} | "
                         f"{goal} | {row['verdict']} | {statuses} | {row['rss']:.0f} | "
                         f"{cpu['app_cores']:.2f} / {cpu['postgres_cores']:.2f} / {cpu['wrk_cores']:.2f} / "
                         f"{cpu['other_cores']:.2f} | {cpu['app_cpu_ms_per_request']:.2f} / {cpu['postgres_cpu_ms_per_request']:.2f} |")
        def p99_line(phase: str, label: str, goal_ms: float) -> str | None:
            entry = result["phases"].get(phase)
            if not entry:
                return None
            p99 = entry["latency_ms"]["p99"]
            verdict = "PASS" if p99 <= goal_ms else f"MISS (+{p99 - goal_ms:.0f} ms)"
            return f"{label} p99: {p99:.1f} ms (goal ≤ {goal_ms:.0f} ms): {verdict}"

        checks = [
            p99_line("submit", f"submission at {result.get('connections', '')} connections", P99_GOAL_MS),
            p99_line("submit_idem", f"submission with Idempotency-Key at {result.get('connections', '')} connections",
                     P99_GOAL_MS),
            *(p99_line(name, f"{name} ({query or 'default'}) at {result.get('office_connections', '')} connections",
                       OFFICE_P99_GOAL_MS) for name, query in OFFICE_LISTS.items()),
            *(p99_line(name, f"{name} (GET /api/v1/forms?{query}) at {result.get('office_connections', '')} connections",
                       SEARCH_P99_GOAL_MS) for name, query in SEARCHES.items()),
            p99_line("open311", "Open311 public list", OPEN311_P99_GOAL_MS),
            p99_line("open311_gzip", "Open311 public list, gzip", OPEN311_P99_GOAL_MS),
            p99_line("similar", f"a form's similar forms at {result.get('office_connections', '')} connections",
                     SIMILAR_P99_GOAL_MS),
        ]
        lines.append("")
        lines += [line for line in checks if line]
        for phase in ("open311", "open311_gzip"):
            if open311 := result["phases"].get(phase):
                rss = open311["rss_max_worker_mb"]
                verdict = "PASS" if rss <= OPEN311_RSS_GOAL_MB else f"MISS (+{rss - OPEN311_RSS_GOAL_MB:.0f} MB)"
                lines.append(f"{phase} worker RSS: {rss:.0f} MB (goal ≤ {OPEN311_RSS_GOAL_MB:.0f} MB): {verdict}")
        peak = max([e["rss_max_worker_mb"] for e in result["phases"].values()] +
                   [kb / 1024 for kb in result.get("rss_peak_kb", [])])
        verdict = "PASS" if peak <= RSS_GOAL_MB else f"MISS (+{peak - RSS_GOAL_MB:.0f} MB)"
        lines.append(f"worker memory: peak RSS {peak:.0f} MB per worker (VmHWM), "
                     f"{max(e['rss_max_sum_mb'] for e in result['phases'].values()):.0f} MB summed over "
                     f"{result['workers']} worker(s) (goal ≤ {RSS_GOAL_MB:.0f} MB per worker): {verdict}")
    return "\n".join(lines)


def machine_facts() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk_version = subprocess.run([shutil.which("wrk") or "wrk", "-v"], capture_output=True, text=True).stdout
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "app", "alembic"],
                           capture_output=True, text=True).stdout
    return {
        "nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "wrk": wrk_version.splitlines()[0] if wrk_version else "",
        # MINYI_BENCH_COMMIT names the revision when the app runs from an export (git archive) of it.
        "commit": commit.strip() or os.environ.get("MINYI_BENCH_COMMIT", "(not a git checkout)"),
        "app_tree_modified": bool(dirty.strip()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=os.environ.get("MINYI_BENCH_DATABASE_URL", DEFAULT_URL))
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts, one server each (default 1,2)")
    p.add_argument("--server", choices=("uvicorn", "minyi"), default="uvicorn",
                   help="uvicorn: app.main:create_app --factory --no-access-log (default); "
                        "minyi: `minyi serve --no-migrate` (access log on)")
    p.add_argument("--duration", type=int, default=15, help="seconds per measured phase (default 15)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load before each phase (default 3)")
    p.add_argument("--pause", type=float, default=2.0, help="idle seconds between warm-up and phase (default 2)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--office-connections", type=int, default=2,
                   help="connections for the office list and search phases (default 2: two office staff loading "
                        "pages back to back, 100-200 pages a second, far above an office's real rate)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--pool-size", type=int, default=0, help="MINYI_DB_POOL_SIZE for the server (default: the app's)")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--nice", type=int, default=0, help="run the server and wrk at this nice level (e.g. -5)")
    p.add_argument("--quiet-timeout", type=float, default=90,
                   help="before each phase wait up to this long for the machine to go idle (0: don't)")
    p.add_argument("--profile", action="store_true", help="afterwards, py-spy record one worker per phase")
    p.add_argument("--results-dir", type=Path, default=BENCH / "results")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    args = p.parse_args(argv)
    args.phases = [ph for ph in args.phases.split(",") if ph]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases {unknown}")
    if not (1 <= args.duration <= 120 and 0 <= args.warmup <= 30 and 1 <= args.connections <= 1024):
        p.error("duration 1–120 s, warm-up 0–30 s, connections 1–1024")
    from sqlalchemy.engine import make_url

    args.database_url = make_url(args.database_url).set(drivername="postgresql+asyncpg").render_as_string(
        hide_password=False)
    return args


def main() -> None:
    # A SIGTERM (timeout, kill) unwinds like Ctrl-C, so the server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    DATABASE_URL.append(args.database_url)
    if not shutil.which(args.wrk) and not Path(args.wrk).exists():
        raise SystemExit("wrk not found: apt-get install -y wrk")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    facts = database_facts(args.database_url, vacuum=True)
    print(f"database: {facts['forms']:,} forms, {facts['stat_cells']:,} counter cells, {facts['database_size']}, "
          f"PostgreSQL {facts['server_version']}", flush=True)
    started = time.monotonic()
    results = []
    for workers in [int(w) for w in args.workers.split(",") if w]:
        result = run_workers(args, workers, stamp)
        result["connections"] = args.connections
        result["office_connections"] = args.office_connections
        results.append(result)
    report = {
        "started": stamp, "elapsed_s": round(time.monotonic() - started, 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_facts(), "database": facts, "database_after": database_facts(args.database_url),
        "results": results,
        "goals": {"ratios": {k: v[2] for k, v in PHASES.items() if v[2] is not None},
                  "submit_p99_ms": P99_GOAL_MS, "worker_rss_mb": RSS_GOAL_MB, "office_p99_ms": OFFICE_P99_GOAL_MS,
                  "search_p99_ms": SEARCH_P99_GOAL_MS, "similar_p99_ms": SIMILAR_P99_GOAL_MS},
    }
    path = args.results_dir / f"{stamp}.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    print(markdown(results))
    print(f"\nresults: {path}  ({report['elapsed_s']} s)")


if __name__ == "__main__":
    main()
