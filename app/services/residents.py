"""Residents who come through the WeChat mini-program: login by code2Session, their tokens, their forms,
and the notice credits they give (WeChat's one-time subscription model)."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.errors import NotFound, PermissionDenied, TooManyRequests, Unauthorized, Unavailable, Upstream
from app.models import OpinionForm, Resident, ResidentToken, SubscriptionCredit, utcnow
from app.services import forms as form_service
from app.services.auth import RESIDENT_TOKEN_PREFIX, token_hash
from app.services import wechat as wechat_service

log = logging.getLogger(__name__)

# Residents' tokens carry a prefix (one no staff token starts with), so a bearer token is looked up in
# the right table at once.
TOKEN_PREFIX = RESIDENT_TOKEN_PREFIX
# Credits kept per (resident, template) at most: each accept is one message, and nobody taps "allow"
# a thousand times; the cap only stops a looping client from growing the number without bound.
MAX_CREDITS = 1000

# code2Session answers that are about our own configuration, not the resident's code: telling the
# mini-program "log in again" would only loop. Everything else WeChat refuses is the code's fault (401).
_MISCONFIGURED = {40013: "AppID 无效", 40125: "AppSecret 无效", 40164: "服务器 IP 不在微信白名单"}
_RATE_LIMITED = 45011


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# --- tokens ------------------------------------------------------------------------------------------


async def issue_token(
    session: AsyncSession, *, resident: Resident, ttl_seconds: int, now: datetime | None = None
) -> tuple[str, int]:
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ResidentToken(token_hash=token_hash(token), resident_id=resident.id, created_at=now,
                              expires_at=now + timedelta(seconds=ttl_seconds)))
    await session.flush()
    return token, ttl_seconds


async def resolve_token(session: AsyncSession, token: str, *, now: datetime | None = None) -> Resident:
    now = now or utcnow()
    found = (await session.execute(
        select(Resident, ResidentToken)
        .join(ResidentToken, ResidentToken.resident_id == Resident.id)
        .where(ResidentToken.token_hash == token_hash(token))
    )).first()
    if found is None:
        raise Unauthorized("登录凭证无效。", code="invalid_token")
    resident, row = found
    if row.revoked_at is not None or row.expires_at <= now or not resident.active:
        raise Unauthorized("登录凭证已失效，请重新登录。", code="invalid_token")
    return resident


# --- login -------------------------------------------------------------------------------------------


async def find_or_create(
    session: AsyncSession, *, openid: str, unionid: str | None, now: datetime | None = None
) -> Resident:
    """The resident of ``openid``, created on first sight, with its login time (and unionid, when WeChat
    gave one) brought up to date. One upsert: two first logins of one openid at the same moment both
    get the same row, never a unique-constraint error."""
    now = now or utcnow()
    insert_ = _insert(session)
    table = Resident.__table__
    statement = insert_(table).values(openid=openid, unionid=unionid, active=True, created_at=now, last_login_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=["openid"],
        set_={"last_login_at": now, "unionid": func.coalesce(statement.excluded.unionid, table.c.unionid)},
    ).returning(table.c.id)
    resident_id = (await session.execute(statement)).scalar_one()
    resident = await session.get(Resident, resident_id, populate_existing=True)
    assert resident is not None  # just written in this transaction
    return resident


def _refused(exc: Any) -> Exception:
    """The AppError for a code2Session refusal (``exc`` is a ``wechat.WeChatError``)."""
    errcode, errmsg = exc.errcode, exc.errmsg
    extra = {"errcode": errcode}
    if errcode in _MISCONFIGURED:
        log.error("code2Session refused our configuration: %s %s", errcode, errmsg)
        return Upstream(f"微信登录配置有误（{errcode}）：{_MISCONFIGURED[errcode]}，请联系管理员。",
                        code="wechat_misconfigured", extra=extra)
    if errcode == _RATE_LIMITED:
        return TooManyRequests(f"微信登录过于频繁（{errcode}），请稍后再试。", retry_after=60,
                               code="wechat_rate_limited")
    return Unauthorized(f"微信登录失败（{errcode}）：{errmsg}", code="wechat_login_failed", extra=extra)


async def login(
    session: AsyncSession, *, wechat: Any, code: str, ttl_seconds: int, now: datetime | None = None
) -> tuple[str, int]:
    """Exchange a ``wx.login()`` code for our own token (never WeChat's session_key) of the resident
    bound to that WeChat user. WeChat is asked before the database is touched, so no transaction waits
    on it."""
    if wechat is None:
        raise Unavailable("微信登录尚未配置（MINYI_WECHAT_APP_ID / MINYI_WECHAT_APP_SECRET）。",
                          code="wechat_not_configured")
    try:
        found = await wechat.code2session(code)
    except wechat_service.WeChatError as exc:
        raise _refused(exc) from exc
    except wechat_service.WeChatUnavailable as exc:
        raise Unavailable("暂时无法连接微信，请稍后重试。", code="wechat_unavailable") from exc
    resident = await find_or_create(session, openid=found.openid, unionid=found.unionid, now=now)
    if not resident.active:
        raise PermissionDenied("该微信用户已被停用，如有疑问请联系党代表工作室。", code="resident_disabled")
    return await issue_token(session, resident=resident, ttl_seconds=ttl_seconds, now=now)


# --- their forms -------------------------------------------------------------------------------------


def _mine(resident_id: int) -> Select[Any]:
    return select(OpinionForm).where(OpinionForm.resident_id == resident_id).options(
        joinedload(OpinionForm.category), joinedload(OpinionForm.workroom),
        selectinload(OpinionForm.events), selectinload(OpinionForm.photos),
    )


async def list_forms(
    session: AsyncSession, *, resident_id: int, limit: int = 50, cursor: str | None = None
) -> tuple[list[OpinionForm], str | None]:
    """The resident's own forms, newest first, keyset-paginated like every form list."""
    query = _mine(resident_id)
    if cursor:
        query = query.where(OpinionForm.id < form_service.decode_cursor(cursor))
    limit = max(1, min(limit, form_service.MAX_PAGE))
    rows = list((await session.scalars(query.order_by(OpinionForm.id.desc()).limit(limit + 1))).unique())
    next_cursor = form_service.encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def get_form(session: AsyncSession, *, resident_id: int, form_id: int) -> OpinionForm:
    """One of the resident's own forms. Someone else's form answers exactly like one that does not exist."""
    form = (await session.scalars(_mine(resident_id).where(OpinionForm.id == form_id))).unique().one_or_none()
    if form is None:
        raise NotFound(f"意见征询表 {form_id} 不存在。", code="form_not_found")
    return form


# --- notice credits ----------------------------------------------------------------------------------


async def list_credits(session: AsyncSession, *, resident_id: int) -> list[SubscriptionCredit]:
    query = select(SubscriptionCredit).where(SubscriptionCredit.resident_id == resident_id)
    return list(await session.scalars(
        query.order_by(SubscriptionCredit.template_id).execution_options(populate_existing=True)
    ))


async def add_credits(
    session: AsyncSession, *, resident_id: int, template_id: str, accepted: int, now: datetime | None = None
) -> list[SubscriptionCredit]:
    """Add the accepts the mini-program reports (one upsert: concurrent reports add up, none is lost);
    returns every template's credits of the resident."""
    if accepted > 0:
        now = now or utcnow()
        insert_ = _insert(session)
        table = SubscriptionCredit.__table__
        statement = insert_(table).values(resident_id=resident_id, template_id=template_id,
                                          credits=min(accepted, MAX_CREDITS), updated_at=now)
        total = table.c.credits + statement.excluded.credits
        await session.execute(statement.on_conflict_do_update(
            index_elements=["resident_id", "template_id"],
            set_={"credits": case((total > MAX_CREDITS, MAX_CREDITS), else_=total), "updated_at": now},
        ))
    return await list_credits(session, resident_id=resident_id)


async def spend_credit(session: AsyncSession, *, resident_id: int, template_id: str) -> bool:
    """Take one credit, if there is one (one conditional UPDATE: two senders never share a credit)."""
    spent = await session.execute(
        update(SubscriptionCredit)
        .where(SubscriptionCredit.resident_id == resident_id, SubscriptionCredit.template_id == template_id,
               SubscriptionCredit.credits > 0)
        .values(credits=SubscriptionCredit.credits - 1, updated_at=utcnow())
        .returning(SubscriptionCredit.credits)
    )
    return spent.first() is not None


async def refund_credit(session: AsyncSession, *, resident_id: int, template_id: str) -> None:
    """Give back a credit whose message WeChat certainly did not send."""
    table = SubscriptionCredit.__table__
    await session.execute(
        update(table)
        .where(table.c.resident_id == resident_id, table.c.template_id == template_id)
        .values(credits=case((table.c.credits >= MAX_CREDITS, MAX_CREDITS), else_=table.c.credits + 1),
                updated_at=utcnow())
    )


async def clear_credits(session: AsyncSession, *, resident_id: int, template_id: str) -> None:
    """WeChat says the resident has no credit left (43101): believe it over our count."""
    await session.execute(
        update(SubscriptionCredit)
        .where(SubscriptionCredit.resident_id == resident_id, SubscriptionCredit.template_id == template_id)
        .values(credits=0, updated_at=utcnow())
    )
