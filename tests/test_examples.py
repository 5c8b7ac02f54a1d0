"""The runnable examples under examples/ keep working: each is run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_mini_program_walkthrough_runs_end_to_end(empty_db_url):
    # A real server, the fake WeChat and a webhook receiver: login → submit with photo → my forms →
    # subscribe → reply → notice, signed webhooks and the changes feed (see docs/integration.md).
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "miniprogram_flow.py"), "--database-url", empty_db_url],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK: the whole flow worked." in done.stdout
    assert '"touser": "o_example_resident_0001"' in done.stdout  # the notice reached (fake) WeChat
    assert "webhook chg_3 form.answered" in done.stdout
