"""Lockouts (锁定): after ``limit`` failures within ``window`` seconds, a subject is locked for ``lock``
seconds. Subjects are strings such as ``login:alice`` or ``track:LS2026-00107``.

Unlike a rate limit, a lock is all or nothing and it outlives the failures that caused it: the right
password or verification code does not get through a locked subject (that is what stops guessing), and
an admin can lift a lock early. A success forgets the failures so far.

By default each process keeps its own locks, in memory. With ``MINYI_REDIS_URL`` they are shared through
Redis (a failure count key that expires with its window, a lock key that expires with the lock), so a
guesser cannot spread attempts over processes. If Redis cannot be reached, the process keeps counting in
memory until it answers again (said in the log), as the rate limiter does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.config import Settings

log = logging.getLogger("minyi.lockouts")

DEFAULT_REDIS_PREFIX = "minyi:lock:"
REDIS_RETRY_SECONDS = 10.0
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class Lock:
    subject: str
    seconds_left: float


class Lockouts:
    """Locks kept in this process. ``clock`` returns seconds (injectable for tests)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # subject -> (count, window ends)
        self._locks: dict[str, float] = {}  # subject -> locked until

    async def locked_for(self, subject: str) -> float:
        """Seconds until ``subject`` is unlocked (0: not locked)."""
        return self._locked_for(subject)

    def _locked_for(self, subject: str) -> float:
        until = self._locks.get(subject)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._locks[subject]
            return 0.0
        return left

    async def failed(self, subject: str, *, limit: int, window: float, lock: float) -> float:
        """Count one failure; returns the lock's seconds when this failure locked the subject, else 0."""
        return self._failed(subject, limit=limit, window=window, lock=lock)

    def _failed(self, subject: str, *, limit: int, window: float, lock: float) -> float:
        now = self._clock()
        self._prune(now)
        count, ends = self._failures.get(subject, (0, now + window))
        count += 1
        if count >= limit:
            self._failures.pop(subject, None)
            self._locks[subject] = now + lock
            return lock
        self._failures[subject] = (count, ends)
        return 0.0

    async def succeeded(self, subject: str) -> None:
        self._failures.pop(subject, None)

    async def lift(self, subject: str) -> bool:
        """Lift a lock (and forget the failures); True when there was a lock to lift."""
        self._failures.pop(subject, None)
        return self._locks.pop(subject, None) is not None

    async def current(self, prefix: str = "") -> list[Lock]:
        now = self._clock()
        self._prune(now)
        return sorted((Lock(s, until - now) for s, until in self._locks.items() if s.startswith(prefix)),
                      key=lambda lock: lock.subject)

    def _prune(self, now: float) -> None:
        self._failures = {s: (c, ends) for s, (c, ends) in self._failures.items() if ends > now}
        self._locks = {s: until for s, until in self._locks.items() if until > now}

    async def aclose(self) -> None:
        return None


# KEYS[1]: failures, KEYS[2]: lock. ARGV: limit, window ms, lock ms. Returns the lock's ms, or 0.
_FAILED_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return tonumber(ARGV[3])
end
return 0
"""


class RedisLockouts(Lockouts):
    """Locks shared through Redis; this process's own table stands in while Redis cannot be reached."""

    def __init__(self, redis_url: str, *, prefix: str = DEFAULT_REDIS_PREFIX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.prefix = prefix
        self._redis: Any = Redis.from_url(
            redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1), decode_responses=True,
        )
        self._script = self._redis.register_script(_FAILED_LUA)
        self._down_until = 0.0

    def _up(self) -> bool:
        return self._clock() >= self._down_until

    def _down(self, exc: Exception) -> None:
        if self._up():
            log.warning("Redis unreachable (%s: %s): lockouts counted in this process alone for now",
                        type(exc).__name__, exc)
        self._down_until = self._clock() + REDIS_RETRY_SECONDS

    async def locked_for(self, subject: str) -> float:
        if self._up():
            try:
                ms = await self._redis.pttl(self.prefix + "on:" + subject)
            except Exception as exc:  # any Redis fault: fall back to this process's count
                self._down(exc)
            else:
                return max(0.0, ms / 1000) if ms and ms > 0 else self._locked_for(subject)
        return self._locked_for(subject)

    async def failed(self, subject: str, *, limit: int, window: float, lock: float) -> float:
        if self._up():
            try:
                ms = await self._script(keys=[self.prefix + "fail:" + subject, self.prefix + "on:" + subject],
                                        args=[limit, max(1, int(window * 1000)), max(1, int(lock * 1000))])
            except Exception as exc:
                self._down(exc)
            else:
                return int(ms) / 1000
        return self._failed(subject, limit=limit, window=window, lock=lock)

    async def succeeded(self, subject: str) -> None:
        await super().succeeded(subject)
        if self._up():
            try:
                await self._redis.delete(self.prefix + "fail:" + subject)
            except Exception as exc:
                self._down(exc)

    async def lift(self, subject: str) -> bool:
        lifted = await super().lift(subject)
        if self._up():
            try:
                existed = await self._redis.delete(self.prefix + "on:" + subject)
                await self._redis.delete(self.prefix + "fail:" + subject)
                lifted = lifted or existed > 0
            except Exception as exc:
                self._down(exc)
        return lifted

    async def current(self, prefix: str = "") -> list[Lock]:
        found = {lock.subject: lock for lock in await super().current(prefix)}
        if self._up():
            try:
                async for key in self._redis.scan_iter(match=f"{self.prefix}on:{prefix}*", count=500):
                    ms = await self._redis.pttl(key)
                    if ms and ms > 0:
                        subject = key[len(self.prefix) + 3:]
                        found[subject] = Lock(subject, ms / 1000)
            except Exception as exc:
                self._down(exc)
        return sorted(found.values(), key=lambda lock: lock.subject)

    async def aclose(self) -> None:
        await self._redis.aclose()


def create(settings: Settings, *, prefix: str | None = None) -> Lockouts:
    """Shared through Redis when ``settings.redis_url`` is set (keys under ``MINYI_REDIS_PREFIX`` +
    ``lock:``), else in memory."""
    if settings.redis_url:
        return RedisLockouts(settings.redis_url, prefix=prefix or settings.redis_prefix + "lock:")
    return Lockouts()
