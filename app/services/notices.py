"""Reply notices to WeChat residents. PLACEHOLDER: the residents' helper fills this in (issue 6, point 3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings


async def send_due(
    sessionmaker: async_sessionmaker[AsyncSession], wechat: Any, settings: Settings, *,
    now: datetime | None = None, limit: int = 20,
) -> int:
    return 0
