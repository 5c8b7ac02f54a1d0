"""WeChat's msgSecCheck v2 on text that comes through the mini-program (MINYI_WECHAT_CONTENT_CHECK).

PLACEHOLDER: the residents' helper fills this in (see issue 6, point 4).
"""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.services.auth import Principal
from app.services.forms import Submission


async def screen(wechat: Any, *, principal: Principal, data: Submission, settings: Settings) -> Submission:
    return data
