"""Reply notices to WeChat residents: the worker's side of the ``WechatNotice`` outbox.

A notice is written (pending) in the transaction of the answer it announces (services/changes.py), so
WeChat being slow or down never holds up or undoes a reply. ``send_due`` sends the due ones:

1. claim: in one short transaction, the due pending notices are leased (``next_attempt_at`` pushed
   ``LEASE`` ahead; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several workers share them;
2. per notice, in a short transaction: settle it without sending when nothing can be sent (no template
   configured, no WeChat, resident disabled: ``failed``; no credit: ``no_credit``), else spend one credit
   and mark it in flight (``errmsg`` ``IN_FLIGHT``);
3. send, outside any transaction, values fitted to WeChat's rules (``fit``);
4. record, in a short transaction: ``sent``; 43101 → ``refused`` (credits set to 0); another final
   answer → ``failed`` (credit given back: WeChat sent nothing); no answer and the request may have
   arrived → ``failed`` (never resent: it may have been delivered and the credit spent); no answer and
   the request never left → ``pending`` again after a back-off (credit given back), ``failed`` after
   ``MAX_ATTEMPTS``.

A notice found in flight whose lease ran out belongs to a worker that stopped between spending the
credit and recording WeChat's answer: it may have been sent, so it is ``failed``, never resent.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from app.config import TZ, Settings
from app.db import transaction
from app.models import STATUS_LABELS, NoticeStatus, OpinionForm, Resident, WechatNotice, utcnow
from app.services import residents as resident_service
from app.services import wechat as wechat_service

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)  # longer than one send with the client's own retries
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
IN_FLIGHT = "发送中"
REFUSED = 43101
MAX_ERRMSG = 500

NOT_CONFIGURED = "未配置微信小程序（MINYI_WECHAT_APP_ID / MINYI_WECHAT_APP_SECRET），未发送"
NO_TEMPLATE = "未配置回复通知模板（MINYI_WECHAT_REPLY_TEMPLATE_ID），未发送"
RESIDENT_DISABLED = "该微信用户已停用，未发送"
NO_CREDIT = "居民未订阅此模板或订阅次数已用完，未发送"
OUTCOME_UNKNOWN = "发送中断，微信可能已收到：不再重发"
MAYBE_SENT = "微信未答复，消息可能已发出：不再重发"


# --- fitting values to WeChat's rules ----------------------------------------------------------------

# Each key's type is its name without the trailing number (thing2 → thing, character_string1 →
# character_string); the type decides what WeChat accepts (docs/wechat.md, "Value rules").
_KEY = re.compile(r"([a-z_]+?)(\d*)")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NOT_CJK = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ASCII_VISIBLE = re.compile(r"[^!-~]")  # everything but printable ASCII without the space
_NOT_ASCII = re.compile(r"[^ -~]")  # everything but printable ASCII
_NOT_DIGITS = re.compile(r"[^0-9.]")
_NOT_LETTERS = re.compile(r"[^A-Za-z]")
_NOT_SYMBOLS = re.compile(r"[A-Za-z0-9\s]")
_NOT_PHONE = re.compile(r"[^0-9+\-()]")
ELLIPSIS = "…"

# type → (limit in characters, cleaner, ellipsis when cut, placeholder for an empty value)
_RULES: dict[str, tuple[int, Any, bool, str]] = {
    "thing": (20, lambda v: " ".join(v.split()), True, "无"),
    "phrase": (5, lambda v: _NOT_CJK.sub("", v), False, "无"),
    "character_string": (32, lambda v: _ASCII_VISIBLE.sub("", v), False, "-"),
    "number": (32, lambda v: _NOT_DIGITS.sub("", v), False, "0"),
    "letter": (32, lambda v: _NOT_LETTERS.sub("", v), False, "N"),
    "symbol": (5, lambda v: _NOT_SYMBOLS.sub("", v), False, "-"),
    "phone_number": (17, lambda v: _NOT_PHONE.sub("", v), False, "0"),
}


def key_type(key: str) -> str:
    match = _KEY.fullmatch(key)
    return match.group(1) if match else key


def _length(text: str) -> int:
    # In UTF-16 units, as the mini-program's JavaScript counts: an emoji counts twice, a margin for free.
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int, *, ellipsis: bool) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut (if ``ellipsis``)."""
    if _length(text) <= limit:
        return text
    room = limit - 1 if ellipsis else limit
    kept = ""
    for char in text:
        if _length(kept + char) > room:
            break
        kept += char
    return kept.rstrip() + ELLIPSIS if ellipsis else kept


def _time(value: datetime, *, with_time: bool) -> str:
    local = value.astimezone(TZ)
    return local.strftime("%Y年%m月%d日 %H:%M" if with_time else "%Y年%m月%d日")


def fit(key: str, value: str | datetime | None, *, now: datetime) -> str:
    """``value`` as WeChat accepts it for a key named ``key``: ``time``/``date`` keys get the local
    time written the Chinese way (``2026年11月26日 15:01``), every other type its allowed characters,
    cut to its length; an empty value becomes a placeholder (WeChat refuses empty values)."""
    kind = key_type(key)
    if kind in ("time", "date"):
        return _time(value if isinstance(value, datetime) else now, with_time=kind == "time")
    text = _time(value, with_time=True) if isinstance(value, datetime) else (value or "")
    if kind == "name":
        # Up to 10 Chinese characters, or up to 20 letters and symbols.
        if _CJK.search(text):
            return clip(_NOT_CJK.sub("", text), 10, ellipsis=False)
        return clip(" ".join(_NOT_ASCII.sub("", text).split()), 20, ellipsis=False) or "-"
    limit, clean, ellipsis, placeholder = _RULES.get(kind, _RULES["thing"])
    return clip(clean(text), limit, ellipsis=ellipsis) or placeholder


def _source(form: OpinionForm, source: str) -> str | datetime | None:
    """One of the values ``MINYI_WECHAT_REPLY_FIELDS`` may name."""
    match source:
        case "tracking_no":
            return form.tracking_no
        case "content":
            return form.content
        case "status":
            return STATUS_LABELS.get(form.status, form.status)
        case "reply":
            return form.reply
        case "answered_at":
            return form.answered_at
        case "submitted_at":
            return form.submitted_at
        case "category":
            return form.category.name if form.category else None
        case "workroom":
            return form.workroom.name if form.workroom else None
    log.warning("MINYI_WECHAT_REPLY_FIELDS names an unknown source %r", source)
    return None


def message_data(form: OpinionForm, fields: dict[str, str], *, now: datetime) -> dict[str, dict[str, str]]:
    """The subscription message's ``data`` for ``form`` (with its category and workroom loaded)."""
    return {key: {"value": fit(key, _source(form, source), now=now)} for key, source in fields.items()}


def message_page(template: str | None, form: OpinionForm) -> str | None:
    if not template:
        return None
    return template.replace("{id}", str(form.id)).replace("{tracking_no}", form.tracking_no)


# --- sending -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outgoing:
    notice_id: int
    attempts: int  # after this attempt: the record is written only if nobody has tried since
    resident_id: int
    openid: str
    template_id: str
    data: dict[str, dict[str, str]]
    page: str | None


async def send_due(
    sessionmaker: async_sessionmaker[AsyncSession], wechat: Any, settings: Settings, *,
    now: datetime | None = None, limit: int = 20,
) -> int:
    """Send the reply notices due at ``now`` (at most ``limit``); returns how many were handled (sent,
    settled without sending, or put back for a later attempt)."""
    now = now or utcnow()
    handled = 0
    for notice_id in await _claim(sessionmaker, now=now, limit=limit):
        outgoing = await _prepare(sessionmaker, wechat, settings, notice_id=notice_id, leased_until=now + LEASE,
                                  now=now)
        if outgoing is not None:
            await _send(sessionmaker, wechat, settings, outgoing, now=now)
        handled += 1
    return handled


async def _claim(sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime, limit: int) -> list[int]:
    async with transaction(sessionmaker) as session:
        query = (
            select(WechatNotice)
            .where(WechatNotice.status == NoticeStatus.pending, WechatNotice.next_attempt_at <= now)
            .order_by(WechatNotice.next_attempt_at, WechatNotice.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        notices = list(await session.scalars(query))
        for notice in notices:
            notice.next_attempt_at = now + LEASE
    return [notice.id for notice in notices]


async def _prepare(
    sessionmaker: async_sessionmaker[AsyncSession], wechat: Any, settings: Settings, *, notice_id: int,
    leased_until: datetime, now: datetime,
) -> _Outgoing | None:
    """Settle the notice if it cannot be sent, else spend a credit, mark it in flight and return what to send."""
    async with transaction(sessionmaker) as session:
        query = select(WechatNotice).where(WechatNotice.id == notice_id, WechatNotice.status == NoticeStatus.pending)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        notice = await session.scalar(query.execution_options(populate_existing=True))
        if notice is None or notice.next_attempt_at != leased_until:
            return None  # settled, or leased again, by another worker while this one sent earlier notices
        template_id = settings.wechat_reply_template_id
        notice.template_id = notice.template_id or template_id
        resident = await session.get(Resident, notice.resident_id)
        reason: tuple[NoticeStatus, str] | None = None
        if notice.errmsg == IN_FLIGHT:
            reason = NoticeStatus.failed, OUTCOME_UNKNOWN
        elif wechat is None:
            reason = NoticeStatus.failed, NOT_CONFIGURED
        elif not template_id:
            reason = NoticeStatus.failed, NO_TEMPLATE
        elif resident is None or not resident.active:
            reason = NoticeStatus.failed, RESIDENT_DISABLED
        elif not await resident_service.spend_credit(session, resident_id=resident.id, template_id=template_id):
            reason = NoticeStatus.no_credit, NO_CREDIT
        if reason is not None:
            notice.status, notice.errmsg = reason
            notice.errcode = None
            return None
        assert resident is not None and template_id is not None
        form = (await session.scalars(
            select(OpinionForm).where(OpinionForm.id == notice.form_id)
            .options(joinedload(OpinionForm.category), joinedload(OpinionForm.workroom))
        )).one()
        notice.attempts += 1
        notice.errcode = None
        notice.errmsg = IN_FLIGHT
        notice.next_attempt_at = now + LEASE
        notice.data = message_data(form, settings.wechat_reply_fields, now=now)
        return _Outgoing(notice_id=notice.id, attempts=notice.attempts, resident_id=resident.id, openid=resident.openid,
                         template_id=template_id, data=notice.data, page=message_page(settings.wechat_reply_page, form))


async def _send(
    sessionmaker: async_sessionmaker[AsyncSession], wechat: Any, settings: Settings, outgoing: _Outgoing, *,
    now: datetime,
) -> None:
    values: dict[str, Any]
    refund = False
    clear = False
    try:
        await wechat.send_subscription_message(
            openid=outgoing.openid, template_id=outgoing.template_id, data=outgoing.data, page=outgoing.page,
            miniprogram_state=settings.wechat_miniprogram_state,
        )
    except wechat_service.WeChatError as exc:
        errmsg = (exc.errmsg or "")[:MAX_ERRMSG]
        if exc.errcode == REFUSED:  # the resident refused, or WeChat counts no credit left: believe WeChat
            values = {"status": NoticeStatus.refused, "errcode": exc.errcode, "errmsg": errmsg}
            clear = True
        else:  # a final answer: nothing was sent, so the credit is still the resident's
            log.warning("reply notice %s refused by WeChat: %s %s", outgoing.notice_id, exc.errcode, exc.errmsg)
            values = {"status": NoticeStatus.failed, "errcode": exc.errcode, "errmsg": errmsg}
            refund = True
    except wechat_service.WeChatUnavailable as exc:
        if exc.may_have_sent:
            values = {"status": NoticeStatus.failed, "errmsg": MAYBE_SENT}
        elif outgoing.attempts >= MAX_ATTEMPTS:
            values = {"status": NoticeStatus.failed, "errmsg": f"微信暂不可用，已尝试 {outgoing.attempts} 次，未发送"}
            refund = True
        else:
            values = {"status": NoticeStatus.pending, "next_attempt_at": now + RETRY_DELAYS[outgoing.attempts - 1],
                      "errmsg": f"微信暂不可用（第 {outgoing.attempts} 次），稍后重试"}
            refund = True
    except Exception:  # a fault of ours or the client's: the request may have left, so never resend
        log.exception("reply notice %s: unexpected error while sending", outgoing.notice_id)
        values = {"status": NoticeStatus.failed, "errmsg": MAYBE_SENT}
    else:
        values = {"status": NoticeStatus.sent, "sent_at": now, "errcode": None, "errmsg": None}
    values.setdefault("errcode", None)
    async with transaction(sessionmaker) as session:
        recorded = await session.execute(
            update(WechatNotice)
            .where(WechatNotice.id == outgoing.notice_id, WechatNotice.attempts == outgoing.attempts)
            .values(**values)
            .returning(WechatNotice.id)
        )
        if recorded.first() is None:  # the notice is gone (its form deleted) or someone tried again since
            return
        if refund:
            await resident_service.refund_credit(session, resident_id=outgoing.resident_id,
                                                 template_id=outgoing.template_id)
        if clear:
            await resident_service.clear_credits(session, resident_id=outgoing.resident_id,
                                                 template_id=outgoing.template_id)
