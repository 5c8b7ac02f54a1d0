"""Errors on the HTML pages: the same AppError family the API renders as problem+json, shown to a person.

A full page load gets an error page with the message and a way back; an htmx request gets the message
as a toast (the page stays as it was, nothing typed is lost); a page that needs a signed-in user
redirects to /login and comes back afterwards.

Pages are in Chinese only: the problem's title carries an English gloss for API clients ("未找到 Not
Found"), which the page drops, and a detail with no Chinese in it (a framework's "Not Found") is replaced by
the status's own sentence. The API's problem+json is unchanged (a contract).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from app.web.render import is_htmx, render


_CHINESE = re.compile(r"[\u4e00-\u9fff]")
_ENGLISH_TAIL = re.compile(r"[\sA-Za-z'-]+$")
PAGE_TITLES = {
    400: "请求有误", 401: "请先登录", 403: "无权操作", 404: "页面不存在", 405: "不支持此操作", 406: "无法提供该格式",
    409: "状态冲突", 413: "提交的内容太大", 415: "不支持的内容类型", 422: "内容有误", 429: "请求过于频繁",
    500: "服务器出错", 502: "外部服务出错", 503: "服务暂不可用",
}
PAGE_DETAILS = {
    404: "您要找的页面不存在，可能地址有误或已被删除。",
    405: "该页面不支持此操作，请返回上一页重试。",
    500: "服务器出错，请稍后重试；已保存的内容不受影响。",
}


def page_text(problem: dict[str, Any]) -> dict[str, Any]:
    """The problem as a page shows it: a Chinese title and detail, nothing in English."""
    status = int(problem.get("status", 500))
    title = PAGE_TITLES.get(status) or _ENGLISH_TAIL.sub("", str(problem.get("title") or "")) or "出错了"
    detail = str(problem.get("detail") or "")
    if not _CHINESE.search(detail):
        detail = PAGE_DETAILS.get(status, "请求未能完成，请返回上一页重试。")
    return {"status": status, "title": title, "detail": detail}


def page_problem(request: Request, problem: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if problem.get("code") == "login_required" and "Location" in headers:
        if is_htmx(request):  # a swap of the login page into a fragment would be wrong: reload to it instead
            return Response(status_code=204, headers={"HX-Redirect": headers["Location"]})
        return RedirectResponse(headers["Location"], status_code=303)
    status = int(problem.get("status", 500))
    page = page_text(problem)
    headers.pop("WWW-Authenticate", None)
    if is_htmx(request):
        headers.update({"HX-Retarget": "#toasts", "HX-Reswap": "beforeend"})
        return render(request, "error.html", {"problem": page}, block="toast", status_code=status, headers=headers)
    return render(request, "error.html", {"problem": page}, status_code=status, headers=headers)
