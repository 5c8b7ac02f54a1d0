"""Request ids, structured logs, /metrics and /readyz (issue 8.7). Placeholder: filled in by the
observability work."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the request-id middleware and the operations routes to ``app``."""
