"""The rate limiter (services/rate_limit.py): GCRA maths on an injected clock, the memory bound, and the
Redis-backed limiter against the real Redis on 127.0.0.1 (shared counts, atomic hits, expiring keys, and
counting alone when Redis is unreachable)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.errors import TooManyRequests
from app.services import rate_limit
from app.services.rate_limit import RateLimiter, RedisRateLimiter, gcra, interval_us
from tests.conftest import REDIS_URL, make_settings

SECOND = 1_000_000  # the limiter's clock counts microseconds
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: int = 1_000 * SECOND) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * SECOND)


def allowed(limiter: RateLimiter, key: str, limit: int) -> bool:
    try:
        limiter.check(key, limit)
    except TooManyRequests:
        return False
    return True


def count_allowed(limiter: RateLimiter, key: str, limit: int, tries: int) -> int:
    return sum(allowed(limiter, key, limit) for _ in range(tries))


# --- the maths -------------------------------------------------------------------------------------


def test_an_idle_key_gets_its_whole_minute_at_once_and_not_one_more():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert count_allowed(limiter, "k", 3, 3) == 3
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("k", 3)
    # One request every 20 s refills the bucket: the next one fits 20 s from now.
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert refused.value.headers["Retry-After"] == "20"
    assert refused.value.extra["retry_after"] == 20
    assert "每分钟最多 3 次" in refused.value.detail


@pytest.mark.parametrize("limit", [1, 7, 11, 600, 1000])
def test_exactly_the_limit_fits_from_idle_whatever_the_rounding(limit):
    limiter = RateLimiter(clock=Clock())
    assert count_allowed(limiter, "k", limit, limit + 5) == limit


def test_the_allowance_refills_smoothly_not_at_a_minute_boundary():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert count_allowed(limiter, "k", 6, 6) == 6  # one request every 10 s from now on
    clock.advance(9.999)
    assert not allowed(limiter, "k", 6)
    clock.advance(0.001)
    assert allowed(limiter, "k", 6)
    assert not allowed(limiter, "k", 6)
    clock.advance(30)
    assert count_allowed(limiter, "k", 6, 10) == 3  # 30 s buys three, not a new minute's six


def test_a_steady_client_at_its_rate_is_never_refused():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(500):
        assert allowed(limiter, "k", 60)
        clock.advance(1)


def test_a_refused_request_costs_nothing():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    count_allowed(limiter, "k", 3, 3)
    for _ in range(50):  # hammering while refused does not push the next slot further away
        assert not allowed(limiter, "k", 3)
    clock.advance(20)
    assert allowed(limiter, "k", 3)


def test_retry_after_is_the_wait_rounded_up_and_at_least_one_second():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    count_allowed(limiter, "k", 3, 3)
    clock.advance(19.5)
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("k", 3)
    assert refused.value.headers["Retry-After"] == "1"  # 0.5 s left: never "0"
    clock.advance(0.5)
    assert allowed(limiter, "k", 3)


def test_keys_count_separately():
    limiter = RateLimiter(clock=Clock())
    assert count_allowed(limiter, "client:1", 2, 5) == 2
    assert count_allowed(limiter, "client:2", 2, 5) == 2


def test_a_lower_limit_applies_to_the_next_request():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert count_allowed(limiter, "k", 60, 10) == 10
    # The client's limit is cut to 6 a minute: ten requests used 10 s of the 60 s bucket, 50 s buy five more.
    assert count_allowed(limiter, "k", 6, 10) == 5


def test_gcra_returns_the_new_arrival_time_or_the_wait():
    minute, interval = 60 * SECOND, interval_us(3)
    assert interval == 20 * SECOND
    assert gcra(None, 0, interval) == (20 * SECOND, 0)
    assert gcra(minute, 0, interval) == (None, 20 * SECOND)
    assert gcra(5 * SECOND, 10 * SECOND, interval) == (30 * SECOND, 0)  # a past TAT counts as idle


def test_limits_out_of_bounds_are_clamped_not_an_error():
    assert interval_us(0) == interval_us(1) == 60 * SECOND
    assert interval_us(10**9) == interval_us(rate_limit.MAX_LIMIT_PER_MINUTE)


# --- memory ----------------------------------------------------------------------------------------


def test_idle_keys_are_pruned_so_the_table_stays_bounded():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for n in range(5000):
        limiter.check(f"client:{n}", 600)
    assert len(limiter) == 5000
    clock.advance(61)  # every bucket is full again: the same as never seen
    limiter.check("client:busy", 600)
    assert len(limiter) == 1


def test_pruning_keeps_what_a_key_still_owes():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    count_allowed(limiter, "busy", 2, 2)  # one request every 30 s from now on
    clock.advance(29)
    limiter.prune()
    assert len(limiter) == 1
    assert not allowed(limiter, "busy", 2)  # pruning did not forget it
    clock.advance(1)
    assert allowed(limiter, "busy", 2)


async def test_create_without_redis_counts_in_memory(tmp_path):
    limiter = rate_limit.create(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    assert type(limiter) is RateLimiter
    for _ in range(2):
        await limiter.hit("k", 2)
    with pytest.raises(TooManyRequests):
        await limiter.hit("k", 2)
    await limiter.aclose()


# --- Redis (the ``redis`` fixture is in conftest) ---------------------------------------------------


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own, removed afterwards."""
    value = f"minyi-test:{uuid.uuid4().hex}:"
    yield value
    keys = [key async for key in redis.scan_iter(match=f"{value}*")]
    if keys:
        await redis.delete(*keys)


async def hits_allowed(limiter: RateLimiter, key: str, limit: int, tries: int) -> int:
    allowed_count = 0
    for _ in range(tries):
        try:
            await limiter.hit(key, limit)
            allowed_count += 1
        except TooManyRequests:
            pass
    return allowed_count


async def test_redis_limiter_refuses_past_the_limit_with_retry_after(redis, prefix):
    limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
    try:
        assert await hits_allowed(limiter, "client:1", 3, 3) == 3
        with pytest.raises(TooManyRequests) as refused:
            await limiter.hit("client:1", 3)
        assert 1 <= int(refused.value.headers["Retry-After"]) <= 20
        assert len(limiter) == 0  # nothing was counted in memory
    finally:
        await limiter.aclose()


async def test_two_limiters_on_one_redis_share_the_count(redis, prefix):
    first, second = RedisRateLimiter(REDIS_URL, prefix=prefix), RedisRateLimiter(REDIS_URL, prefix=prefix)
    try:
        assert await hits_allowed(first, "client:1", 4, 2) == 2
        assert await hits_allowed(second, "client:1", 4, 2) == 2
        with pytest.raises(TooManyRequests):
            await second.hit("client:1", 4)
        with pytest.raises(TooManyRequests):
            await first.hit("client:1", 4)
        assert await hits_allowed(first, "client:2", 4, 1) == 1  # another key, its own count
    finally:
        await first.aclose()
        await second.aclose()


async def test_concurrent_hits_through_redis_never_exceed_the_limit(redis, prefix):
    limiters = [RedisRateLimiter(REDIS_URL, prefix=prefix) for _ in range(3)]
    try:
        async def one(n: int) -> bool:
            try:
                await limiters[n % 3].hit("client:1", 5)
            except TooManyRequests:
                return False
            return True

        results = await asyncio.gather(*(one(n) for n in range(30)))
        assert sum(results) == 5
    finally:
        for limiter in limiters:
            await limiter.aclose()


async def test_redis_keys_expire_when_the_bucket_is_full_again(redis, prefix):
    limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
    try:
        await limiter.hit("client:1", 3)
        ttl = await redis.pttl(f"{prefix}client:1")
        assert 0 < ttl <= 20_000  # one request of three a minute: full again in 20 s
        await limiter.hit("client:1", 3)
        assert 20_000 < await redis.pttl(f"{prefix}client:1") <= 40_000
    finally:
        await limiter.aclose()


async def test_different_prefixes_count_apart(redis, prefix):
    one, two = RedisRateLimiter(REDIS_URL, prefix=prefix + "a:"), RedisRateLimiter(REDIS_URL, prefix=prefix + "b:")
    try:
        assert await hits_allowed(one, "client:1", 2, 3) == 2
        assert await hits_allowed(two, "client:1", 2, 3) == 2
    finally:
        await one.aclose()
        await two.aclose()


async def test_unreachable_redis_counts_in_memory_and_warns_once_a_minute(caplog):
    clock = Clock()
    limiter = RedisRateLimiter(UNREACHABLE_REDIS, clock=clock)
    caplog.set_level(logging.WARNING, logger="minyi.rate_limit")
    try:
        assert await hits_allowed(limiter, "client:1", 3, 5) == 3  # served, and still limited, in memory
        assert len(limiter) == 1
        warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(warnings) == 1
        clock.advance(rate_limit.REDIS_RETRY_SECONDS)  # Redis is tried again: still down, no new warning yet
        await hits_allowed(limiter, "client:2", 3, 1)
        assert limiter._failures == 2
        assert len([r for r in caplog.records if "Redis unreachable" in r.getMessage()]) == 1
        clock.advance(rate_limit.WARNING_EVERY_SECONDS)
        await hits_allowed(limiter, "client:2", 3, 1)
        assert len([r for r in caplog.records if "Redis unreachable" in r.getMessage()]) == 2
    finally:
        await limiter.aclose()


async def test_create_with_redis_url_shares_through_redis(redis, prefix, tmp_path):
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", redis_url=REDIS_URL)
    limiter = rate_limit.create(settings, prefix=prefix)
    try:
        assert isinstance(limiter, RedisRateLimiter)
        await limiter.hit("client:9", 3)
        assert await redis.exists(f"{prefix}client:9") == 1
    finally:
        await limiter.aclose()
