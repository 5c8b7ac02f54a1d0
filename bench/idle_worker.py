"""Usage: .venv/bin/python bench/idle_worker.py   (needs bench/load.py first)

CPU used by an idle app process (no requests) in 60 s, with the in-process worker on and off,
and by its PostgreSQL backends; alternated 3 times each."""
import os, subprocess, sys, time
ROOT = str(__import__("pathlib").Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from run import CLK_TCK as TCK, children, cpu_ticks  # noqa: E402 (bench/run.py's /proc helpers)
def cpu(pid):
    return cpu_ticks(pid) / TCK
def tree(pid):
    out, todo = [], [pid]
    while todo:  # the process and its descendants (uvicorn's worker), from /proc's children lists
        out.append(todo.pop())
        todo.extend(children(out[-1]))
    return out
def backends():
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc",
        "select pid from pg_stat_activity where datname='minyi_bench' and pid <> pg_backend_pid()"], capture_output=True, text=True)
    return [int(x) for x in r.stdout.split()]
def statements():
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc",
        "select xact_commit + xact_rollback from pg_stat_database where datname='minyi_bench'"], capture_output=True, text=True)
    return int(r.stdout.strip())
for rep in range(3):
    for on in ("true", "false"):
        env = dict(os.environ, MINYI_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/minyi_bench",
                   MINYI_ENVIRONMENT="production", MINYI_WORKER_IN_PROCESS=on, PYTHONPATH=ROOT,
                   MINYI_SECRET_KEY="minyi-bench-secret-key-not-for-production-0123456789abcdef")
        p = subprocess.Popen([f"{ROOT}/.venv/bin/python", "-m", "uvicorn", "app.main:create_app", "--factory",
                              "--host", "127.0.0.1", "--port", "8777", "--workers", "1", "--no-access-log",
                              "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            time.sleep(15)  # start-up, first polls
            pids, bes = tree(p.pid), backends()
            a0, b0, x0, t0 = sum(map(cpu, pids)), sum(map(cpu, bes)), statements(), time.monotonic()
            time.sleep(60)
            bes2 = backends()
            a1, b1, x1, t1 = sum(map(cpu, pids)), sum(map(cpu, bes)), statements(), time.monotonic()
            print(f"worker {on:5}: app {1000*(a1-a0)/(t1-t0):.1f} ms CPU/s, pg backends {1000*(b1-b0)/(t1-t0):.1f} ms CPU/s,"
                  f" transactions {(x1-x0)/(t1-t0):.1f}/s (incl. 2 psql probes), backends {len(bes)}->{len(bes2)}", flush=True)
        finally:
            p.terminate(); p.wait(10)
