"""Structured logs (issue 8.7): one JSON object per line, carrying the id of the request being served.

``configure(settings)`` sets up the root logger for a process (``minyi serve``, each of its uvicorn workers,
``minyi worker``); ``logging_config(settings)`` is the same set-up as a ``dictConfig`` dictionary, which is
what uvicorn applies again in every worker process it starts. uvicorn's own loggers are routed through the
same formatter; its access log stays off, the request-id middleware writes one line per request instead
(logger ``minyi.access``).

A line: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``request_id`` inside a request, every
``extra=`` field, ``exc_info`` (the traceback as text) when there is one. Never put personal data or query
strings in a message or an extra field: the access lines carry the path without its query.

Here too, as ``count_wechat_errors``, the one counter a service keeps for ``GET /metrics``: the WeChat
client (services/wechat.py) cannot depend on the API layer that serves the metrics.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Awaitable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics

from app.config import Settings

# The id of the request this code runs for (set by the middleware in app/http/observability.py).
request_id: ContextVar[str | None] = ContextVar("minyi_request_id", default=None)

# The attributes every LogRecord has: whatever else a record carries came from ``extra=``.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# uvicorn repeats its message with terminal colours in ``extra``: noise in a log line.
_DROPPED_EXTRAS = frozenset({"color_message"})


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items()
            if key not in _RECORD_FIELDS and key not in _DROPPED_EXTRAS and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line (no new dependency: the standard library's json)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        for key, value in _extras(record).items():
            entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a terminal: ``time LEVEL logger [request id]: message key=value …``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        current = extras.pop("request_id", None) or request_id.get()
        record.request_tag = f" [{current}]" if current else ""
        try:
            line = super().format(record)
        finally:
            del record.request_tag
        if extras:
            first, newline, rest = line.partition("\n")  # keep a traceback below the line
            line = first + "".join(f" {key}={value}" for key, value in extras.items()) + newline + rest
        return line


def logging_config(settings: Settings) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a Minyi process (also uvicorn's ``log_config``)."""
    formatter = "json" if settings.log_format == "json" else "text"
    return {
        "version": 1,
        # Loggers made at import time (``logging.getLogger(__name__)``) must keep working.
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": f"{__name__}.JsonFormatter"},
            "text": {"()": f"{__name__}.TextFormatter"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": formatter, "stream": "ext://sys.stderr"},
        },
        "root": {"handlers": ["stderr"], "level": settings.log_level},
        "loggers": {
            # uvicorn's start-up and error lines go through the root handler, in the same format.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # One access line per request comes from the middleware (minyi.access), never two.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure(settings: Settings) -> None:
    """Set up this process's logging from ``log_format`` and ``log_level``."""
    logging.config.dictConfig(logging_config(settings))


# --- the counters services keep (exposed by GET /metrics) ---------------------------------------------

# Counters say how many, not when a series began: no ``*_created`` samples.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
WECHAT_ERRORS = Counter(
    "minyi_wechat_errors", "WeChat answers with an errcode other than 0, and calls that got no usable answer "
    '(errcode "transport")', ["api", "errcode"], registry=REGISTRY,
)


def _errcode_label(errcode: Any) -> str | None:
    """The label of a non-zero errcode, None for success (absent, 0 or "0")."""
    try:
        number = int(errcode or 0)
    except (TypeError, ValueError):
        return "invalid"
    return None if number == 0 else str(number)


async def count_wechat_errors(api: str, exchange: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Await one exchange with WeChat (``api`` is its path), counting an errcode other than 0 or a call that
    got no usable answer; the answer, or the exception, goes on unchanged."""
    try:
        answer = await exchange
    except Exception:
        WECHAT_ERRORS.labels(api=api, errcode="transport").inc()
        raise
    label = _errcode_label(answer.get("errcode"))
    if label is not None:
        WECHAT_ERRORS.labels(api=api, errcode=label).inc()
    return answer
