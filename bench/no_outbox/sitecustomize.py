# Bench-only counterfactual (never loaded by the app itself): make changes.record a no-op, so submissions
# write no outbox row and run no fan-out. Active only with BENCH_NO_OUTBOX=1 and this folder on PYTHONPATH:
#   BENCH_NO_OUTBOX=1 PYTHONPATH=bench/no_outbox .venv/bin/python bench/run.py ...
import os
import sys

if os.environ.get("BENCH_NO_OUTBOX") == "1":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    from app.services import changes

    async def _skip(session, happened):
        return None

    changes.record = _skip
