"""The per-process read cache's streamed answers (app/services/read_cache.py): made once per key at a time,
read by every caller from the first chunk, cached whole at the end, bounded in bytes. No database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.services.read_cache import ReadCache


async def read(flow: bytes | AsyncIterator[bytes]) -> bytes:
    if isinstance(flow, bytes):
        return flow
    return b"".join([chunk async for chunk in flow])


class Maker:
    """An answer of ``parts`` chunks that waits for ``go`` before each chunk after the first."""

    def __init__(self, *parts: bytes, fail_after: int | None = None) -> None:
        self.parts, self.fail_after = parts, fail_after
        self.go = asyncio.Event()
        self.runs = 0

    async def produce(self) -> AsyncIterator[bytes]:
        self.runs += 1
        for n, part in enumerate(self.parts):
            if n:
                await self.go.wait()
            if self.fail_after is not None and n == self.fail_after:
                raise RuntimeError("the database went away")
            yield part


async def test_callers_during_a_flight_read_the_same_chunks_and_the_answer_is_made_once():
    cache: ReadCache[bytes] = ReadCache(60)
    maker = Maker(b"[1", b",2", b",3]")
    first = await cache.get_or_stream("k", maker.produce)
    assert await anext(first) == b"[1"  # sent before the rest exists
    late = await cache.get_or_stream("k", maker.produce)  # joins the flight, reads from the first chunk
    maker.go.set()
    assert b"[1" + await read(first) == await read(late) == b"[1,2,3]"
    assert await read(await cache.get_or_stream("k", maker.produce)) == b"[1,2,3]"
    assert maker.runs == 1
    await asyncio.sleep(0)  # (the flight's task ends a moment after its last chunk)
    assert await cache.get_or_stream("k", maker.produce) == b"[1,2,3]"  # whole, from memory


async def test_a_caller_who_goes_away_stops_nobody_else():
    cache: ReadCache[bytes] = ReadCache(60)
    maker = Maker(b"a", b"b", b"c")
    leaving = await cache.get_or_stream("k", maker.produce)
    staying = await cache.get_or_stream("k", maker.produce)
    assert await anext(leaving) == b"a"
    await leaving.aclose()  # type: ignore[union-attr]
    maker.go.set()
    assert await read(staying) == b"abc"
    await asyncio.sleep(0)
    assert cache.peek("k") == b"abc"


async def test_a_failure_reaches_every_reader_and_nothing_is_cached():
    cache: ReadCache[bytes] = ReadCache(60)
    maker = Maker(b"a", b"b", fail_after=1)
    readers = [await cache.get_or_stream("k", maker.produce) for _ in range(2)]
    maker.go.set()
    for flow in readers:
        with pytest.raises(RuntimeError, match="went away"):
            await read(flow)
    assert cache.peek("k") is None
    again = Maker(b"ok")
    assert await read(await cache.get_or_stream("k", again.produce)) == b"ok" and again.runs == 1


async def test_a_write_during_a_flight_keeps_its_answer_out_of_the_cache():
    cache: ReadCache[bytes] = ReadCache(60)
    maker = Maker(b"old", b"er")
    flow = await cache.get_or_stream("k", maker.produce)
    cache.invalidate()  # a commit in this process while the answer was being read
    maker.go.set()
    assert await read(flow) == b"older"
    await asyncio.sleep(0)
    assert cache.peek("k") is None


async def test_cached_bytes_are_bounded():
    cache: ReadCache[bytes] = ReadCache(60, max_bytes=10)
    for key, value in (("a", b"123456"), ("b", b"1234")):
        assert await read(await cache.get_or_stream(key, Maker(value).produce)) == value
        await asyncio.sleep(0)
    assert cache.peek("a") == b"123456" and cache.peek("b") == b"1234"
    await read(await cache.get_or_stream("c", Maker(b"12").produce))  # 6 + 4 + 2 > 10: the others go
    await asyncio.sleep(0)
    assert cache.peek("a") is None and cache.peek("c") == b"12"
    await read(await cache.get_or_stream("d", Maker(b"x" * 11).produce))  # never kept: bigger than the bound
    await asyncio.sleep(0)
    assert cache.peek("d") is None


async def test_a_derived_form_is_made_once_per_entry_and_goes_with_it():
    cache: ReadCache[bytes] = ReadCache(60, max_bytes=1000)
    await read(await cache.get_or_stream("k", Maker(b"abcdef").produce))
    await asyncio.sleep(0)  # (the flight's task lands a moment after its last chunk)
    value = await cache.get_or_stream("k", Maker(b"never").produce)
    assert value == b"abcdef"
    made: list[bytes] = []

    def upper(data: bytes) -> bytes:
        made.append(data)
        return data.upper()

    # Ten callers at once, one making; off the loop too.
    both = await asyncio.gather(*(cache.derived("k", value, "upper", upper, in_thread=n % 2 == 0) for n in range(10)))
    assert both == [b"ABCDEF"] * 10 and made == [b"abcdef"]
    assert cache._bytes == 12  # the value and its derived form
    # Not the cached value (another key's, an equal copy, a key never cached): no derived form.
    assert await cache.derived("k", bytes(bytearray(value)), "upper", upper) is None
    assert await cache.derived("other", value, "upper", upper) is None
    assert len(made) == 1
    # Gone with its entry: after a write, the next value's derived form is made from the next value.
    cache.invalidate()
    assert await cache.derived("k", value, "upper", upper) is None
    await read(await cache.get_or_stream("k", Maker(b"xyz").produce))
    await asyncio.sleep(0)
    fresh = await cache.get_or_stream("k", Maker(b"never").produce)
    assert await cache.derived("k", fresh, "upper", upper) == b"XYZ" and made[-1] == b"xyz"
    assert cache._bytes == 6


async def test_a_derived_form_without_room_is_made_for_its_caller_and_not_kept():
    cache: ReadCache[bytes] = ReadCache(60, max_bytes=10)
    await read(await cache.get_or_stream("k", Maker(b"abcdef").produce))
    await asyncio.sleep(0)
    value = await cache.get_or_stream("k", Maker(b"never").produce)
    assert isinstance(value, bytes)
    runs: list[int] = []

    def double(data: bytes) -> bytes:
        runs.append(1)
        return data * 2

    assert await cache.derived("k", value, "double", double) == b"abcdefabcdef"
    await asyncio.sleep(0)
    assert await cache.derived("k", value, "double", double) == b"abcdefabcdef"
    assert len(runs) == 2 and cache._bytes == 6  # 6 + 12 > 10: never kept


async def test_settled_waits_for_the_answer_being_made_and_not_otherwise():
    cache: ReadCache[bytes] = ReadCache(60)
    await asyncio.wait_for(cache.settled("k"), 1)  # nothing being made: at once
    maker = Maker(b"a", b"b")
    first = await cache.get_or_stream("k", maker.produce)
    waiting = asyncio.ensure_future(cache.settled("k"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    maker.go.set()
    assert await read(first) == b"ab"
    await asyncio.wait_for(waiting, 1)
    assert cache.peek("k") == b"ab"
    failing = Maker(b"a", b"b", fail_after=1)
    cache.invalidate()
    flow = await cache.get_or_stream("k", failing.produce)
    waiting = asyncio.ensure_future(cache.settled("k"))
    failing.go.set()
    with pytest.raises(RuntimeError):
        await read(flow)
    await asyncio.wait_for(waiting, 1)  # ended: the failure is the flow's readers' to see, not the waiter's
    assert cache.peek("k") is None
