"""Our WeChat client. PLACEHOLDER: the WeChat helper fills this in (issue 6, point 1)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings


def client_from_settings(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    return None
