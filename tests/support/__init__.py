"""Helpers shared by the test modules: apps, problem answers, logins. See docs/testing.md."""

import os

# `MINYI_TEST_DEEP=1 make test`: the deep variant, where tests made cheaper for the everyday run (fewer fuzz
# examples, backups in-process instead of through the command line) run as deep as they used to.
DEEP = os.environ.get("MINYI_TEST_DEEP") == "1"
