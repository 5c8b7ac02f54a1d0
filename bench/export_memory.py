"""Peak memory of a forms export: flat however many forms it holds.

    .venv/bin/python bench/export_memory.py --database-url sqlite+aiosqlite:////tmp/minyi-export.db --fill 100000

1. ``--fill N``: migrate the database and, if it holds fewer than N forms, insert plain forms until it holds
   N (in batches, with realistic Chinese content, submitter names and phones, and for about half of them a
   unit, a deadline and a reply), so the export has real text to write.
2. For each format (``--formats csv,xlsx``) export a tenth of the forms and then all of them, each in a
   fresh child process, through ``app.services.exports.write_forms`` (what a background export job runs)
   as an office user (so with names and phones). Each child reports its resident memory before the
   export (after imports and one query), the highest and the last of the samples taken after every page
   (``VmRSS``), the peak over the export (``VmHWM``, reset when the export starts: importing the app
   peaks higher than any export), the rows written, the seconds and the file size.

Memory stays flat when the peak of the whole export is close to the peak of a tenth of it: the ratio is
printed per format. Results go to bench/results/export-memory-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from app import migrate  # noqa: E402
from app.config import TZ, Settings  # noqa: E402
from app.db import create_engine, create_sessionmaker, transaction  # noqa: E402
from app.models import Category, HandlingUnit, OpinionForm, Role, User, Workroom  # noqa: E402
from app.services import exports as export_service  # noqa: E402
from app.services.auth import Principal  # noqa: E402
from app.services.forms import FormQuery  # noqa: E402

DEFAULT_URL = f"sqlite+aiosqlite:///{tempfile.gettempdir()}/minyi-export-bench.db"
BATCH = 5000
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
TOPICS = [
    "村口路灯坏了三盏，晚上走路看不清，请尽快修复。",
    "菜场门口电动车乱停，早高峰堵得走不动，希望规划停车区。",
    "小区旁边的河道有异味，夏天尤其严重，请环保部门来看看。",
    "老年食堂的饭菜价格涨了，希望能给八十岁以上老人补贴。",
    "学校门口没有红绿灯，孩子过马路很危险。",
    "工业园区夜间施工噪音大，影响周边居民休息。",
]


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def current_rss_mib() -> float:
    """Resident memory now, sampled after every page of the export."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """This process's peak resident memory since ``reset_peak_rss``. Not ``getrusage(...).ru_maxrss``: Linux
    carries that across fork and execve, and it cannot be reset, so it would show the imports' peak."""
    return _status_mib("VmHWM")


def reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux >= 4.0), so the peak is the export's own, not the imports'."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


async def fill(url: str, target: int) -> int:
    await migrate.upgrade(url)
    engine = create_engine(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    sessionmaker = create_sessionmaker(engine)
    try:
        async with transaction(sessionmaker) as session:
            have = int(await session.scalar(select(func.count()).select_from(OpinionForm)) or 0)
            workroom_ids = list((await session.scalars(select(Workroom.id))).all())
            if not workroom_ids:
                for i in range(1, 12):
                    session.add(Workroom(code=f"LS-{i:02d}", name=f"第{i}党代表工作室", address="洛社镇", area="网格"))
                for name in ("镇城建办", "镇生态环境办", "镇社会事业局", "镇派出所"):
                    session.add(HandlingUnit(name=name))
                await session.flush()
                workroom_ids = list((await session.scalars(select(Workroom.id))).all())
            unit_ids = list((await session.scalars(select(HandlingUnit.id))).all())
            category_ids = list((await session.scalars(select(Category.id))).all())
        rng = random.Random(20261126)
        now = datetime.now(UTC)
        number = have
        while number < target:
            rows: list[dict[str, Any]] = []
            for _ in range(min(BATCH, target - number)):
                number += 1
                submitted = now - timedelta(minutes=(target - number) * 7)
                row: dict[str, Any] = {
                    "tracking_no": f"EX{submitted.year}-{number:07d}", "verification_hash": "0" * 64,
                    "content": rng.choice(TOPICS) * rng.randint(1, 3), "category_id": rng.choice(category_ids),
                    "channel": "workroom", "workroom_id": rng.choice(workroom_ids),
                    "submitter_name": rng.choice(SURNAMES) + "先生", "submitter_phone": f"139{rng.randint(0, 10**8 - 1):08d}",
                    "location": "洛社镇", "public": False, "status": "submitted", "submitted_at": submitted,
                    "submitted_on": submitted.astimezone(TZ).date(), "updated_at": submitted,
                    "unit_id": None, "due_at": None, "reply": None, "assigned_at": None, "answered_at": None,
                }
                if rng.random() < 0.5:
                    row.update(status="answered", unit_id=rng.choice(unit_ids), assigned_at=submitted,
                               due_at=submitted + timedelta(days=14), answered_at=submitted + timedelta(days=5),
                               reply="已转相关部门现场查看，问题已于本周内处理完毕，感谢您的反映。")
                rows.append(row)
            async with transaction(sessionmaker) as session:
                await session.execute(insert(OpinionForm), rows)
            print(f"  {number:,} forms", file=sys.stderr)
        return number
    finally:
        await engine.dispose()


async def child(url: str, fmt: str, fraction: float, out: Path) -> dict[str, Any]:
    engine = create_engine(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    sessionmaker = create_sessionmaker(engine)
    try:
        async with transaction(sessionmaker) as session:
            max_id = int(await session.scalar(select(func.max(OpinionForm.id))) or 0)
            min_id = int(await session.scalar(select(func.min(OpinionForm.id))) or 0)
        upto = min_id + int((max_id - min_id + 1) * fraction) - 1
        office = Principal(user=User(id=0, username="bench", role=Role.admin, active=True))
        import_peak = peak_rss_mib()
        reset_peak_rss()
        before = current_rss_mib()
        samples: list[float] = []

        async def sample(_rows: int) -> None:
            samples.append(current_rss_mib())

        started = time.perf_counter()
        rows = await export_service.write_forms(
            out, fmt, sessionmaker, principal=office, filters=FormQuery(), now=datetime.now(UTC), max_id=upto,
            on_progress=sample,
        )
        seconds = time.perf_counter() - started
        return {"format": fmt, "rows": rows, "seconds": round(seconds, 2), "rss_before_mib": round(before, 1),
                "rss_max_during_mib": round(max(samples, default=before), 1),
                "rss_last_page_mib": round(samples[-1] if samples else before, 1),
                "peak_rss_mib": round(peak_rss_mib(), 1), "import_peak_rss_mib": round(import_peak, 1),
                "file_mib": round(out.stat().st_size / 2**20, 1)}
    finally:
        await engine.dispose()
        out.unlink(missing_ok=True)


def run_child(url: str, fmt: str, fraction: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"export.{fmt}"
        result = subprocess.run(
            [sys.executable, __file__, "--child", "--database-url", url, "--formats", fmt,
             "--fraction", str(fraction), "--out", str(out)],
            check=True, capture_output=True, text=True, timeout=3600,
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--fill", type=int, default=0, help="first make the database hold this many forms")
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(asyncio.run(child(args.database_url, args.formats, args.fraction, args.out))))
        return

    if args.fill:
        started = time.perf_counter()
        total = asyncio.run(fill(args.database_url, args.fill))
        print(f"database holds {total:,} forms (filled in {time.perf_counter() - started:.0f} s)", file=sys.stderr)

    results = []
    for fmt in args.formats.split(","):
        tenth, whole = run_child(args.database_url, fmt, 0.1), run_child(args.database_url, fmt, 1.0)
        results += [tenth, whole]
        print(f"{fmt}: {tenth['rows']:,} rows peak RSS {tenth['peak_rss_mib']} MiB; {whole['rows']:,} rows peak "
              f"RSS {whole['peak_rss_mib']} MiB (ratio {whole['peak_rss_mib'] / tenth['peak_rss_mib']:.2f}), "
              f"{whole['seconds']} s, file {whole['file_mib']} MiB", file=sys.stderr)

    print("| format | rows | seconds | RSS before (MiB) | max RSS during (MiB) | RSS at last page (MiB) "
          "| peak RSS of the export (MiB) | file (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['format']} | {r['rows']:,} | {r['seconds']} | {r['rss_before_mib']} | {r['rss_max_during_mib']} "
              f"| {r['rss_last_page_mib']} | {r['peak_rss_mib']} | {r['file_mib']} |")
    out = BENCH / "results" / f"export-memory-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"database_url": args.database_url, "python": platform.python_version(),
                               "machine": platform.machine(), "results": results}, indent=2))
    print(f"results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
