"""Abuse limits on what faces the open internet (OWASP ASVS V2.2, V11.1): public submissions, verification
codes (tracking look-ups, photos by ``?code=``) and logins.

- Per client IP, a minute: public submissions (anonymous and WeChat residents), verification-code
  attempts through any door and login attempts (GCRA, ``services/rate_limit.py``).
- Per subject: wrong verification codes for one tracking number (through any door: the one guard is
  ``services/verification.py``), and failed logins of one account, lock that number or account for a
  while (``services/lockouts.py``). While locked even the right code or password is refused, so guessing
  gains nothing; an admin can lift a lock (``GET/DELETE /api/v1/lockouts``). Unknown numbers and usernames are counted like real ones, so a lock reveals
  nothing about what exists.

Every refusal is ``TooManyRequests`` (429 with ``Retry-After``). The client IP is the direct peer, or
what a trusted proxy says (``MINYI_TRUSTED_PROXIES``, applied to the request before it gets here).
Counters are shared across processes through Redis when it is configured, in memory otherwise.
"""

from __future__ import annotations

import math

from starlette.requests import Request

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import TooManyRequests
from app.models import OpinionForm
from app.services import personal_data, verification, workflow
from app.services.auth import Principal
from app.services.lockouts import Lock

TRACK = verification.SUBJECT_PREFIX
LOGIN = "login:"
KINDS = {"track": TRACK, "login": LOGIN}


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def track_subject(tracking_no: str) -> str:
    return verification.subject(tracking_no)


def verification_guard(request: Request) -> verification.Guard:
    """The verification-code guard for this request: every door that takes a code passes it to
    ``services/verification.py``."""
    state = request.app.state
    return verification.Guard(rate_limiter=state.rate_limiter, lockouts=state.lockouts, settings=state.settings,
                              client_ip=client_ip(request))


def login_subject(username: str) -> str:
    return LOGIN + username.strip().lower()[:64]


async def _refuse_if_locked(request: Request, subject: str, message: str, code: str) -> None:
    left = await request.app.state.lockouts.locked_for(subject)
    if left > 0:
        minutes = max(1, math.ceil(left / 60))
        raise TooManyRequests(message.format(minutes=minutes), retry_after=math.ceil(left), code=code)


async def public_submission(request: Request, principal: Principal) -> None:
    """Count a submission against its IP unless staff or an API client (they have accounts and limits)."""
    if principal.user is not None or principal.client is not None:
        return
    settings = request.app.state.settings
    await request.app.state.rate_limiter.hit(f"ip:submit:{client_ip(request)}", settings.public_submit_per_ip_per_minute)


async def _before(request: Request, kind: str, subject: str, message: str, code: str) -> None:
    """Count an attempt against the client's IP, then refuse it if ``subject`` is locked."""
    settings = request.app.state.settings
    await request.app.state.rate_limiter.hit(f"ip:{kind}:{client_ip(request)}",
                                             getattr(settings, f"{kind}_per_ip_per_minute"))
    await _refuse_if_locked(request, subject, message, code)


async def _after(request: Request, kind: str, subject: str, *, ok: bool) -> None:
    """A success forgets the failures so far; a failure counts towards ``kind``'s lock."""
    lockouts, settings = request.app.state.lockouts, request.app.state.settings
    if ok:
        await lockouts.succeeded(subject)
    else:
        await lockouts.failed(subject, limit=getattr(settings, f"{kind}_failures_before_lock"),
                              window=settings.lockout_window_seconds, lock=getattr(settings, f"{kind}_lock_seconds"))


async def before_login(request: Request, username: str) -> None:
    await _before(request, "login", login_subject(username),
                  "该账号登录失败次数过多，已暂时锁定，请 {minutes} 分钟后再试或联系管理员解锁。", "account_locked")


async def after_login(request: Request, username: str, *, ok: bool) -> None:
    await _after(request, "login", login_subject(username), ok=ok)


async def current_locks(request: Request, kind: str | None = None) -> list[tuple[str, str, float]]:
    """(kind, subject, seconds left) of every lock now in force."""
    locks: list[Lock] = await request.app.state.lockouts.current(KINDS[kind] if kind else "")
    by_prefix = {prefix: name for name, prefix in KINDS.items()}
    result = []
    for lock in locks:
        for prefix, name in by_prefix.items():
            if lock.subject.startswith(prefix):
                result.append((name, lock.subject[len(prefix):], lock.seconds_left))
    return result


async def lift(request: Request, kind: str, subject: str) -> bool:
    key = track_subject(subject) if kind == "track" else login_subject(subject)
    return bool(await request.app.state.lockouts.lift(key))


# --- the doors' shared steps around a secret: one place for each, whichever door (API or page) asks ----------


async def reveal_contact(request: Request, session: AsyncSession, principal: Principal,
                         form_id: int) -> personal_data.Contact:
    """The audited reveal of a resident's name and phone: the user's per-minute limit, then the reveal and
    its audit line (services/personal_data.py)."""
    user = principal.require_staff()
    await request.app.state.rate_limiter.hit(f"reveal:{user.id}", personal_data.REVEALS_PER_MINUTE)
    return await personal_data.reveal_contact(session, principal, form_id, ip=client_ip(request))


async def reissue_code(request: Request, session: AsyncSession, principal: Principal,
                       form_id: int) -> tuple[OpinionForm, str]:
    """补发查询码: the workflow's new code, and the number's tracking lock lifted (the person asking is in front
    of the office or the representative)."""
    form, code = await workflow.reissue_code(session, principal=principal, form_id=form_id,
                                             settings=request.app.state.settings)
    await request.app.state.lockouts.lift(verification.subject(form.tracking_no))
    return form, code
