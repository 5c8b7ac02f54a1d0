"""Pages kept for post, redirect, get (app/http/prg.py): the HTML a browser's failed form POST rendered,
under a random token, for the browser that posted it, for a few minutes."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PageState, utcnow

KEPT_FOR = timedelta(minutes=10)  # long enough to read the message and reload; the page holds what was typed


async def keep(session: AsyncSession, *, owner: str, status_code: int, body: str, now: datetime | None = None) -> str:
    """Keep ``body`` for ``owner``; its token. Expired pages are deleted on the way (an index range)."""
    now = now or utcnow()
    await session.execute(delete(PageState).where(PageState.expires_at < now))
    token = secrets.token_urlsafe(24)
    session.add(PageState(token=token, owner=owner, status_code=status_code, body=body, created_at=now,
                          expires_at=now + KEPT_FOR))
    await session.flush()
    return token


async def read(session: AsyncSession, *, token: str, owner: str, now: datetime | None = None) -> PageState | None:
    """The page kept under ``token`` for ``owner``, while it lasts (a reload shows it again); None otherwise."""
    page = await session.scalar(select(PageState).where(PageState.token == token[:64]))
    if page is None or page.owner != owner or page.expires_at <= (now or utcnow()):
        return None
    return page
