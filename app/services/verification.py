"""One guard for one secret: every door that takes a form's verification code (查询码) goes through here.

The doors today: public tracking (the page ``POST /track`` and ``GET /api/v1/track/{no}?code=``) and a
form's photos (``GET``/``POST /api/v1/forms/{id}/photos[...]?code=``). A new door checks a code with
``find`` (by tracking number) or ``check`` (a form it already holds), never with
``forms.check_verification_code`` itself: a code has a million values, so a door without the guard
would be the one a guesser uses.

For every attempt, whichever the door:

1. the client's IP spends one of its ``MINYI_TRACK_PER_IP_PER_MINUTE`` attempts (one bucket for every
   door; the IP is the peer, or what a trusted proxy says: ``MINYI_TRUSTED_PROXIES``);
2. a locked number is refused, even with the right code (429 ``tracking_locked``);
3. a wrong code counts towards the number's lock (``MINYI_TRACK_FAILURES_BEFORE_LOCK`` within
   ``MINYI_LOCKOUT_WINDOW_SECONDS`` lock it for ``MINYI_TRACK_LOCK_SECONDS``); a right one forgets the
   failures so far.

The lock is the tracking number's (``track:<NO>``, see services/lockouts.py), so wrong guesses through
the photos count towards the lock the tracking page shows, and the reverse. A door that names a form by
id and finds none counts under ``#<id>``: unknown numbers and ids lock like real ones, so a lock tells
nothing about what exists. No schema is involved: counters and locks live where the lockouts live (this
process, or Redis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import NotFound, TooManyRequests
from app.models import OpinionForm
from app.services import forms as form_service
from app.services.lockouts import Lockouts

SUBJECT_PREFIX = "track:"  # the lockouts' subject of a tracking number (admins lift it as kind "track")
IP_KEY = "ip:track:"  # the rate limiter's key of a client's attempts, shared by every door
MAX_NUMBER = 40
LOCKED = "该编号查询码错误次数过多，已暂时锁定，请 {minutes} 分钟后再试。"


def number_of(tracking_no: str) -> str:
    """A tracking number as the lock knows it: trimmed, capitals, at most 40 characters."""
    return tracking_no.strip().upper()[:MAX_NUMBER]


def subject(number: str) -> str:
    return SUBJECT_PREFIX + number_of(number)


def _unknown_id(form_id: int) -> str:
    return f"#{form_id}"


@dataclass
class Guard:
    """The guard as one request sees it: the shared counters, the settings and the client's address.

    ``rate_limiter`` is a services.rate_limit.RateLimiter; ``proven`` holds the forms whose code this
    request already proved, so a door that looks twice (an upload checks before and after reading the
    photo) counts one attempt."""

    rate_limiter: Any
    lockouts: Lockouts
    settings: Settings
    client_ip: str
    proven: set[int] = field(default_factory=set)

    async def attempt(self, number: str) -> None:
        """Count one attempt from this client, then refuse it while ``number`` is locked."""
        await self.rate_limiter.hit(IP_KEY + self.client_ip, self.settings.track_per_ip_per_minute)
        left = await self.lockouts.locked_for(subject(number))
        if left > 0:
            raise TooManyRequests(LOCKED.format(minutes=max(1, math.ceil(left / 60))), retry_after=math.ceil(left),
                                  code="tracking_locked")

    async def settle(self, number: str, *, ok: bool) -> None:
        """A right code forgets the failures so far; a wrong one counts towards the number's lock."""
        if ok:
            await self.lockouts.succeeded(subject(number))
            return
        await self.lockouts.failed(subject(number), limit=self.settings.track_failures_before_lock,
                                   window=self.settings.lockout_window_seconds, lock=self.settings.track_lock_seconds)

    def matches(self, form: OpinionForm, code: str) -> bool:
        return form_service.check_verification_code(self.settings.secret_key, form, code.strip())


async def find(session: AsyncSession, guard: Guard, *, tracking_no: str, code: str) -> OpinionForm:
    """Public tracking: the form of ``tracking_no`` if ``code`` is its code. An unknown number and a wrong
    code give the same 404 ``tracking_not_found``, so neither can be probed; 429 as the guard says."""
    number = number_of(tracking_no)
    await guard.attempt(number)
    form = await form_service.get_by_tracking_no(session, number) if number else None
    ok = form is not None and guard.matches(form, code)
    await guard.settle(number, ok=ok)
    if form is None or not ok:
        raise NotFound("未找到该编号的意见，或查询码不正确。", code="tracking_not_found")
    return form


async def check(guard: Guard, form: OpinionForm | None, *, form_id: int, code: str) -> bool:
    """Whether ``code`` is the code of ``form`` (None: no form has ``form_id``), counted under the form's
    tracking number. The door answers a False as it answers an unknown form; 429 as the guard says."""
    if form is not None and form.id in guard.proven:
        return True
    number = form.tracking_no if form is not None else _unknown_id(form_id)
    await guard.attempt(number)
    ok = form is not None and guard.matches(form, code)
    await guard.settle(number, ok=ok)
    if ok and form is not None:
        guard.proven.add(form.id)
    return ok
