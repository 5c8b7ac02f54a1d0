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
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    value: Any
    generation: int
    expires: float
    # Forms of ``value`` made from it (its gzip, say), by name: each a task, made once, gone with the entry.
    derived: dict[str, asyncio.Future[bytes]] = field(default_factory=dict)
    derived_sizes: dict[str, int] = field(default_factory=dict)  # of those finished and counted in the cache's bytes


@dataclass
class _Tee:
    """The chunks of an answer being made, for every reader who asked while it was being made: each reads
    them as they come, from the first, and the whole answer is cached once the last one is in."""

    chunks: list[bytes] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False
    error: BaseException | None = None

    def put(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.finished, self.error = True, error
        self._wake()

    def _wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def follow(self) -> AsyncIterator[bytes]:
        sent = 0
        while True:
            changed = self.changed
            while sent < len(self.chunks):
                sent += 1
                yield self.chunks[sent - 1]
            if self.finished:
                if self.error is not None:
                    raise self.error
                return
            await changed.wait()


@dataclass(frozen=True)
class _Flight:
    generation: int
    task: asyncio.Task[Any]
    tee: _Tee | None = None


class ReadCache(Generic[T]):
    """Entries by key, each computed at most once at a time: requests that miss while a computation of
    the same key is running wait for it instead of starting their own (no stampede when an entry
    expires under a thousand polls a second)."""

    def __init__(self, ttl_seconds: float, *, max_entries: int = 1000, max_bytes: int | None = None) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        # Of bytes values, the most kept at once (None: no bound): odd queries with big answers must not
        # grow a worker.
        self.max_bytes = max_bytes
        self._bytes = 0
        self.generation = 0
        self._entries: dict[Hashable, Entry] = {}
        self._flights: dict[Hashable, _Flight] = {}

    def invalidate(self) -> None:
        self.generation += 1
        self._clear()

    def _clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _fresh(self, key: Hashable) -> Entry | None:
        """``key``'s entry while it holds: made since the last write of this process, not expired."""
        entry = self._entries.get(key)
        if entry is not None and entry.generation == self.generation and entry.expires > time.monotonic():
            return entry
        return None

    def peek(self, key: Hashable) -> T | None:
        """The fresh value for ``key``, or None: never computes, never waits."""
        entry = self._fresh(key)
        return None if entry is None else entry.value  # type: ignore[no-any-return]

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """``compute`` runs as a task of its own (it must not use the caller's session): a caller that
        goes away does not cancel it for the others waiting."""
        entry = self._fresh(key)
        if entry is not None:
            return entry.value  # type: ignore[no-any-return]
        flight = self._flights.get(key)
        if flight is None or flight.generation != self.generation:
            flight = _Flight(self.generation, asyncio.ensure_future(compute()))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda _task: self._landed(key, flight))
        return await asyncio.shield(flight.task)  # type: ignore[no-any-return]

    async def get_or_stream(
        self, key: Hashable, produce: Callable[[], AsyncIterator[bytes]]
    ) -> bytes | AsyncIterator[bytes]:
        """The cached bytes for ``key``, or the chunks of the answer as ``produce`` makes them: it runs as a
        task of its own, at most once at a time per key, and every caller that misses meanwhile reads the
        same chunks from the first (a caller that goes away stops nobody else). Its whole answer is cached
        when it ends. An error of ``produce`` reaches every reader, where it happens in the stream."""
        cached = self.peek(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        flight = self._flights.get(key)
        if flight is None or flight.generation != self.generation or flight.tee is None or flight.tee.error:
            tee = _Tee()

            async def run() -> bytes:
                try:
                    async for chunk in produce():
                        tee.put(chunk)
                except BaseException as exc:
                    tee.finish(exc)
                    raise
                tee.finish()
                return b"".join(tee.chunks)

            flight = _Flight(self.generation, asyncio.ensure_future(run()), tee)
            self._flights[key] = flight
            flight.task.add_done_callback(lambda _task: self._landed(key, flight))
        return flight.tee.follow()  # type: ignore[union-attr]

    async def derived(
        self, key: Hashable, value: bytes, name: str, make: Callable[[bytes], bytes], *, in_thread: bool = False
    ) -> bytes | None:
        """``make(value)`` where ``value`` is the bytes cached for ``key`` now (its compressed form, say): made
        once per entry however many ask at once (``in_thread``: off the event loop), kept with the entry, and
        dropped with it, so it is never older than the value it was made from (and made again, for whoever
        asks, while the cache has no room to keep it). None when ``value`` is not (or no longer) the cached
        one: the caller makes do without."""
        entry = self._fresh(key)
        if entry is None or entry.value is not value:
            return None
        made = entry.derived.get(name)
        if made is None:
            made = asyncio.ensure_future(asyncio.to_thread(make, value) if in_thread else _now(make, value))
            entry.derived[name] = made
            made.add_done_callback(lambda _made: self._kept(key, entry, name, made))
        return await asyncio.shield(made)

    def _kept(self, key: Hashable, entry: Entry, name: str, made: asyncio.Future[bytes]) -> None:
        """Counts a derived form in the cache's bytes, or lets it go (failed, no room, entry gone)."""
        if made.cancelled() or made.exception() is not None or self._entries.get(key) is not entry:
            entry.derived.pop(name, None)
            return
        size = len(made.result())
        if self.max_bytes is not None and self._bytes + size > self.max_bytes:
            entry.derived.pop(name, None)
            return
        entry.derived_sizes[name] = size
        self._bytes += size

    async def settled(self, key: Hashable) -> None:
        """Waits for the answer to ``key`` being made now, if one is (how it ended is for the caller to read
        from the cache): for a caller that would rather take the whole cached answer than follow the chunks."""
        flight = self._flights.get(key)
        if flight is not None and flight.generation == self.generation:
            await asyncio.wait([flight.task])

    def _landed(self, key: Hashable, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.task.cancelled() or flight.task.exception() is not None:
            return  # (the waiters see the exception; asking for it marks it seen even if none is left)
        # Keep it only if nothing was committed while computing, and only while the cache is on.
        if self.ttl > 0 and flight.generation == self.generation:
            value = flight.task.result()
            size = len(value) if isinstance(value, bytes) else 0
            if self.max_bytes is not None and size > self.max_bytes:
                return
            # Filters are few in practice; never let odd ones pile up.
            if len(self._entries) >= self.max_entries or (
                self.max_bytes is not None and self._bytes + size > self.max_bytes
            ):
                self._clear()
            old = self._entries.get(key)
            if old is not None:
                self._bytes -= _size(old)
            self._entries[key] = Entry(value, flight.generation, time.monotonic() + self.ttl)
            self._bytes += size


def _size(entry: Entry) -> int:
    """The bytes an entry holds: its value's and its finished derived forms'."""
    return (len(entry.value) if isinstance(entry.value, bytes) else 0) + sum(entry.derived_sizes.values())


async def _now(make: Callable[[bytes], bytes], value: bytes) -> bytes:
    return make(value)
