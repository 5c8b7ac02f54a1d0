"""Per-client rate limits. PLACEHOLDER: the API-clients helper fills this in (issue 6, point 6)."""

from __future__ import annotations

from app.config import Settings


class RateLimiter:
    async def hit(self, key: str, limit_per_minute: int) -> None:
        return None

    async def aclose(self) -> None:
        return None


def create(settings: Settings) -> RateLimiter:
    return RateLimiter()
