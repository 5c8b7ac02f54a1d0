"""A per-process read cache, so a dashboard's poll that finds nothing new costs no database work at all:
one instance holds statistics answers, another resolved bearer tokens.

An entry is dropped when this process commits a transaction that wrote anything (see
``db.create_sessionmaker``), and expires after ``ttl`` seconds anyway: that bounds how late a change made
by another process, or a deadline passing (overdue is a matter of the clock), shows up. With the default
of one second a poll every few seconds always sees the truth, and a thousand polls a second cost one
computation a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    value: Any
    generation: int
    expires: float


@dataclass(frozen=True)
class _Flight:
    generation: int
    task: asyncio.Task[Any]


class ReadCache(Generic[T]):
    """Entries by key, each computed at most once at a time: requests that miss while a computation of
    the same key is running wait for it instead of starting their own (no stampede when an entry
    expires under a thousand polls a second)."""

    def __init__(self, ttl_seconds: float, *, max_entries: int = 1000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.generation = 0
        self._entries: dict[Hashable, Entry] = {}
        self._flights: dict[Hashable, _Flight] = {}

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    def peek(self, key: Hashable) -> T | None:
        """The fresh value for ``key``, or None: never computes, never waits."""
        entry = self._entries.get(key)
        if entry is not None and entry.generation == self.generation and entry.expires > time.monotonic():
            return entry.value  # type: ignore[no-any-return]
        return None

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """``compute`` runs as a task of its own (it must not use the caller's session): a caller that
        goes away does not cancel it for the others waiting."""
        entry = self._entries.get(key)
        if entry is not None and entry.generation == self.generation and entry.expires > time.monotonic():
            return entry.value  # type: ignore[no-any-return]
        flight = self._flights.get(key)
        if flight is None or flight.generation != self.generation:
            flight = _Flight(self.generation, asyncio.ensure_future(compute()))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda _task: self._landed(key, flight))
        return await asyncio.shield(flight.task)  # type: ignore[no-any-return]

    def _landed(self, key: Hashable, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.task.cancelled() or flight.task.exception() is not None:
            return  # (the waiters see the exception; asking for it marks it seen even if none is left)
        # Keep it only if nothing was committed while computing, and only while the cache is on.
        if self.ttl > 0 and flight.generation == self.generation:
            if len(self._entries) >= self.max_entries:  # filters are few in practice; never let odd ones pile up
                self._entries.clear()
            self._entries[key] = Entry(flight.task.result(), flight.generation, time.monotonic() + self.ttl)
