"""A per-process read cache, so a dashboard's poll that finds nothing new costs no database work at all:
one instance holds statistics answers, another resolved bearer tokens.

An entry is dropped when this process commits a transaction that wrote anything (see
``db.create_sessionmaker``), and expires after ``ttl`` seconds anyway: that bounds how late a change made
by another process, or a deadline passing (overdue is a matter of the clock), shows up. With the default
of one second a poll every few seconds always sees the truth, and a thousand polls a second cost one
computation a second.
"""

from __future__ import annotations

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


class ReadCache(Generic[T]):
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self.generation = 0
        self._entries: dict[Hashable, Entry] = {}

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        entry = self._entries.get(key)
        if entry is not None and entry.generation == self.generation and entry.expires > time.monotonic():
            return entry.value  # type: ignore[no-any-return]
        generation = self.generation
        value = await compute()
        # Keep it only if nothing was committed while computing, and only while the cache is on.
        if self.ttl > 0 and generation == self.generation:
            if len(self._entries) > 1000:  # filters are few in practice; never let odd ones pile up
                self._entries.clear()
            self._entries[key] = Entry(value, generation, time.monotonic() + self.ttl)
        return value
