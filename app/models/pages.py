"""A page shown after a POST that failed (post, redirect, get: app/http/prg.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.crypto import PersonalText
from app.models.base import Base, UTCDateTime, utcnow


class PageState(Base):
    """The HTML a browser's failed form POST rendered (a validation message with every typed value), kept a
    few minutes under a random token so the browser can be redirected to a URL that reloads cleanly. It
    holds what the person typed (names, phones), so it is encrypted like personal data, shown only to the
    browser that posted it (``owner``: a keyed hash of its CSRF cookie) and deleted once expired."""

    __tablename__ = "page_state"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(PersonalText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
