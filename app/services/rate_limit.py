"""Per-client rate limits (限流): ``limit_per_minute`` requests a minute, smoothly.

The rule is GCRA, the generic cell rate algorithm (a token bucket kept as one number per key): a bucket of
``limit`` requests that refills continuously, one request every ``60 / limit`` seconds. An idle client may
send its whole minute's worth at once; a busy one gets one request per interval, so there is never a
fresh allowance at each minute boundary. Each key keeps only its "theoretical arrival time" (TAT): the
moment its bucket would be full again. A request is let through when, after adding one interval, the TAT
is at most a minute ahead of now; otherwise the client is told how long until it would be
(``Retry-After``).

Times are whole microseconds, so ``limit`` requests from an idle start always fit exactly (floats would
refuse the seventh of seven now and then).

By default each process counts alone, in memory. With ``MINYI_REDIS_URL`` the count is shared by every
process through Redis: one round trip per request (a Lua script run on Redis's own clock, so the app
hosts' clocks need not agree), keys that expire when idle. If Redis cannot be reached, requests are not
refused for it: the process counts alone until Redis answers again, and says so in the log (once a
minute at most).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from app.config import MAX_LIMIT_PER_MINUTE, Settings
from app.errors import TooManyRequests

log = logging.getLogger("minyi.rate_limit")

PERIOD_US = 60_000_000  # the rate is per minute
DEFAULT_REDIS_PREFIX = "minyi:rate:"
# After Redis fails, count in memory this long before asking Redis again, so a Redis that is down (or a
# host that swallows packets) costs a request nothing but the first timeout.
REDIS_RETRY_SECONDS = 10.0
REDIS_TIMEOUT_SECONDS = 0.5
WARNING_EVERY_SECONDS = 60.0
PRUNE_EVERY_SECONDS = 60.0


def interval_us(limit_per_minute: int) -> int:
    """The time one request uses up: a minute divided by the limit, rounded down (never stricter).
    Limits are validated where they are set; one out of bounds here is clamped, never a 500."""
    return PERIOD_US // min(max(limit_per_minute, 1), MAX_LIMIT_PER_MINUTE)


def gcra(tat_us: int | None, now_us: int, interval: int) -> tuple[int | None, int]:
    """One request at ``now_us`` against a key whose TAT is ``tat_us`` (None: idle).

    Returns ``(new_tat, 0)`` when allowed, ``(None, wait_us)`` when refused (the state is left as it was:
    refused requests cost nothing, so a client that waits ``Retry-After`` gets through)."""
    new_tat = max(now_us if tat_us is None else tat_us, now_us) + interval
    wait = new_tat - now_us - PERIOD_US
    if wait > 0:
        return None, wait
    return new_tat, 0


def refuse(limit_per_minute: int, wait_us: int) -> TooManyRequests:
    seconds = max(1, math.ceil(wait_us / 1_000_000))
    return TooManyRequests(
        f"请求过于频繁：每分钟最多 {limit_per_minute} 次，请 {seconds} 秒后重试。", retry_after=seconds
    )


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class RateLimiter:
    """The in-memory limiter: one process counts alone. ``clock`` returns microseconds (injectable for
    tests). Idle keys (whose TAT has passed: their bucket is full, the same as never seen) are pruned at
    most once a minute, so the table holds only keys used in the last minute or so."""

    def __init__(self, *, clock: Callable[[], int] = _monotonic_us) -> None:
        self._clock = clock
        self._tats: dict[str, int] = {}
        self._next_prune = clock() + int(PRUNE_EVERY_SECONDS * 1_000_000)

    def __len__(self) -> int:
        return len(self._tats)

    async def hit(self, key: str, limit_per_minute: int) -> None:
        """Count one request for ``key``; raise ``TooManyRequests`` (429, ``Retry-After``) when over."""
        self.check(key, limit_per_minute)

    def check(self, key: str, limit_per_minute: int) -> None:
        # No await from reading the TAT to writing it: on one event loop each hit is atomic.
        now = self._clock()
        if now >= self._next_prune:
            self.prune(now)
        new_tat, wait = gcra(self._tats.get(key), now, interval_us(limit_per_minute))
        if new_tat is None:
            raise refuse(limit_per_minute, wait)
        self._tats[key] = new_tat

    def prune(self, now: int | None = None) -> None:
        now = self._clock() if now is None else now
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
        self._next_prune = now + int(PRUNE_EVERY_SECONDS * 1_000_000)

    async def aclose(self) -> None:
        return None


# KEYS[1]: the counter; ARGV[1]: the interval in µs; ARGV[2]: the period in µs. Returns {allowed, wait_us}.
# Redis's clock (TIME) is the one every process shares; the key expires when its bucket would be full.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end
local new_tat = tat + interval
local wait = new_tat - now - period
if wait > 0 then
  return {0, wait}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, 0}
"""


class RedisRateLimiter(RateLimiter):
    """Counts shared through Redis; the in-memory count (this class's own table) stands in while Redis
    cannot be reached."""

    def __init__(self, redis_url: str, *, prefix: str = DEFAULT_REDIS_PREFIX,
                 clock: Callable[[], int] = _monotonic_us) -> None:
        super().__init__(clock=clock)
        # Imported here: the in-memory limiter, the default, needs no Redis client at all.
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.prefix = prefix
        # Short timeouts and a single immediate retry (a pooled connection Redis dropped): the limiter
        # sits in front of every API-client request and must never hold one up for long.
        self._redis: Any = Redis.from_url(
            redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1),
        )
        self._script = self._redis.register_script(_GCRA_LUA)
        self._redis_down_until = 0  # µs on this limiter's clock; 0: Redis is believed up
        self._next_warning = 0
        self._failures = 0

    async def hit(self, key: str, limit_per_minute: int) -> None:
        interval = interval_us(limit_per_minute)
        if self._clock() >= self._redis_down_until:
            try:
                allowed, wait = await self._script(keys=[self.prefix + key], args=[interval, PERIOD_US])
            except Exception as exc:  # any Redis or network fault: count here rather than refuse the request
                self._redis_failed(exc)
            else:
                if self._redis_down_until:
                    log.warning("Redis is answering again: rate limits are shared again (%d failure(s) meanwhile)",
                                self._failures)
                    self._redis_down_until = self._failures = self._next_warning = 0
                if not allowed:
                    raise refuse(limit_per_minute, int(wait))
                return
        self.check(key, limit_per_minute)

    def _redis_failed(self, exc: Exception) -> None:
        now = self._clock()
        self._failures += 1
        self._redis_down_until = now + int(REDIS_RETRY_SECONDS * 1_000_000)
        if now >= self._next_warning:
            self._next_warning = now + int(WARNING_EVERY_SECONDS * 1_000_000)
            log.warning("Redis unreachable (%s: %s): counting rate limits in this process alone (%d failure(s))",
                        type(exc).__name__, exc, self._failures)

    async def aclose(self) -> None:
        await self._redis.aclose()


def create(settings: Settings, *, prefix: str | None = None) -> RateLimiter:
    """The app's limiter: shared through Redis when ``settings.redis_url`` is set, else in memory.
    ``prefix`` namespaces the Redis keys (default: ``MINYI_REDIS_PREFIX`` + ``rate:``)."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, prefix=prefix or settings.redis_prefix + "rate:")
    return RateLimiter()
