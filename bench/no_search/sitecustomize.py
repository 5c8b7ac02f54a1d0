# Bench-only counterfactual (never loaded by the app itself): make search.index a no-op, so submissions write
# no search row (what the Chinese search, issue 19.1, costs a submission). Active only with BENCH_NO_SEARCH=1
# and this folder on PYTHONPATH:
#   BENCH_NO_SEARCH=1 PYTHONPATH=bench/no_search .venv/bin/python bench/run.py --phases healthz,submit,healthz_end ...
# Forms submitted so are missing from the search: reload the database (bench/load.py --fresh) afterwards.
import os
import sys

if os.environ.get("BENCH_NO_SEARCH") == "1":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    from app.services import search

    async def _skip(session, forms):
        return None

    search.index = _skip
