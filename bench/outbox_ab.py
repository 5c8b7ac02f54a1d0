"""Usage: .venv/bin/python bench/outbox_ab.py [BATCH_SIZE ...]   (default 1 16 64; needs bench/load.py first)

Interleaved A/B: forms.submit_many for a batch of B anonymous submissions, with the outbox
(changes.record) and without it, in one process and one connection, each transaction rolled back.
Reports app CPU (process_time), PostgreSQL backend CPU (/proc of pg_backend_pid) and wall, per form."""
import asyncio, os, random, sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
os.environ.update(MINYI_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/minyi_bench",
                  MINYI_ENVIRONMENT="production", MINYI_DB_POOL_SIZE="1",
                  MINYI_SECRET_KEY="minyi-bench-secret-key-not-for-production-0123456789abcdef")
from sqlalchemy import text
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.services import changes, forms
from app.services.auth import ANONYMOUS

real_record = changes.record
async def skip(session, happened): return None
record_cpu = [0.0]
async def timed(session, happened):
    t = time.process_time(); await real_record(session, happened); record_cpu[0] += time.process_time() - t

TOPICS = ["小区门口的路灯坏了好几盏，晚上出行不安全，希望尽快维修。", "菜场周边早上占道经营严重，电动车和行人都很难通过。"]

def pg_cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

async def main():
    settings = Settings()
    engine = create_engine(settings); sm = create_sessionmaker(engine)
    async with sm() as s:
        cats = list((await s.execute(text("select code from category"))).scalars())
        rooms = list((await s.execute(text("select code from workroom"))).scalars())
        pid = await s.scalar(text("select pg_backend_pid()"))
    # the same connection (pool 1, no overflow in use) for every round
    def batch(n):
        return [(ANONYMOUS, forms.Submission(content=f"{random.choice(TOPICS)}（{random.random()}）",
                 category=random.choice(cats), workroom_code=random.choice(rooms), submitter_name="王伟",
                 submitter_phone=f"139{random.randrange(10**8):08d}", public=random.random() < .5)) for _ in range(n)]
    for size in map(int, sys.argv[1:] or ["1", "16", "64"]):
        rounds = max(40, 2000 // size)
        acc = {"on": [0.0, 0.0, 0.0, 0], "off": [0.0, 0.0, 0.0, 0]}
        record_cpu[0] = 0.0
        for i in range(rounds + 4):
            for mode in (("on", "off") if i % 2 else ("off", "on")):
                changes.record = timed if mode == "on" else skip
                b = batch(size)
                async with sm() as s:
                    pid = await s.scalar(text("select pg_backend_pid()"))
                    c0, p0, w0 = time.process_time(), pg_cpu(pid), time.perf_counter()
                    res = await forms.submit_many(s, b, settings=settings)
                    assert all(not isinstance(r, Exception) for r in res), res
                    await s.rollback()
                    c1, p1, w1 = time.process_time(), pg_cpu(pid), time.perf_counter()
                if i >= 4:  # warm-up rounds dropped
                    a = acc[mode]; a[0] += c1 - c0; a[1] += p1 - p0; a[2] += w1 - w0; a[3] += size
        n_on = acc["on"][3]
        print(f"batch {size:3d}: " + "  ".join(
            f"{m}: app {a[0]/a[3]*1e3:.3f} ms/form, pg {a[1]/a[3]*1e3:.3f}, wall {a[2]/a[3]*1e3:.3f}"
            for m, a in acc.items()) + f"  | record() alone {record_cpu[0]/(n_on + 4*size*0)*1e3:.3f} ms/form app CPU")
    await engine.dispose()

asyncio.run(main())
