"""WeChat's msgSecCheck v2 on text that comes through the mini-program (MINYI_WECHAT_CONTENT_CHECK).

WeChat requires mini-programs that publish what users write to filter it. Only text a WeChat resident
sends is checked (it is asked with their openid, and WeChat answers only for users active in the
mini-program within the last two hours, i.e. inside the submit request). The answer decides:

- ``risky``: refused with 422 ``content_risky``; nothing is written and the resident may revise it;
- ``review``: accepted and flagged ``content_review`` for the office (``GET /api/v1/forms?review=true``);
- ``pass``: accepted, WeChat's answer kept on the form;
- WeChat unreachable or refusing to check (e.g. 61010): accepted and flagged ``check_unavailable``.
  A resident's opinion is never lost because WeChat could not be asked.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from app.config import Settings
from app.errors import Invalid
from app.services import wechat as wechat_service
from app.services.auth import Principal
from app.services.forms import Submission

log = logging.getLogger(__name__)

REVIEW = "content_review"
UNAVAILABLE = "check_unavailable"
SCENE_COMMENT = 2  # msgSecCheck's scenes: 1 profile, 2 comment, 3 forum, 4 social log; an opinion is a comment
MAX_CHECKED = 2500  # msgSecCheck takes at most 2,500 characters (our fields together stay below it)


def checked_text(data: Submission) -> str:
    """Everything the resident wrote that may be shown to anyone: content, location, the name they gave."""
    return "\n".join(part for part in (data.content, data.location, data.submitter_name) if part)[:MAX_CHECKED]


async def screen(wechat: Any, *, principal: Principal, data: Submission, settings: Settings) -> Submission:
    """``data`` as it may be written (with WeChat's verdict and the office's flag), or Invalid when WeChat
    calls it risky. A no-op unless the check is on, WeChat is configured and a resident is submitting."""
    resident = principal.resident
    if not settings.wechat_content_check or wechat is None or resident is None:
        return data
    try:
        result = await wechat.msg_sec_check(openid=resident.openid, content=checked_text(data), scene=SCENE_COMMENT)
    except wechat_service.WeChatError as exc:
        log.warning("msgSecCheck refused for resident %s: %s %s", resident.id, exc.errcode, exc.errmsg)
        return replace(data, review_flag=UNAVAILABLE, content_check={"error": exc.errcode, "errmsg": exc.errmsg})
    except wechat_service.WeChatUnavailable:
        log.warning("msgSecCheck unavailable for resident %s", resident.id)
        return replace(data, review_flag=UNAVAILABLE, content_check={"error": "unavailable"})
    check = {"suggest": result.suggest, "label": result.label, "trace_id": result.trace_id}
    if result.suggest == "pass":
        return replace(data, review_flag=None, content_check=check)
    if result.suggest == "risky":
        log.info("msgSecCheck risky for resident %s: label %s, trace %s", resident.id, result.label, result.trace_id)
        raise Invalid("内容未通过微信内容安全检测，请修改后重新提交。", code="content_risky",
                      extra={"label": result.label, "trace_id": result.trace_id})
    # "review", or a verdict WeChat may add later: let a person look at it.
    return replace(data, review_flag=REVIEW, content_check=check)
