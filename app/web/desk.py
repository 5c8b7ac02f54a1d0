"""The office's desk (issue 17.2): the forms list as a dense, sortable table with numbered pages and bulk
actions on the selected rows (批办, 催办, 导出). The same page serves phones with cards (app/web/office.py);
app.css shows the table from 1024 px on and the cards below.

- Sorting: ``?sort=<column>&order=asc|desc`` on any column; the triage queue (only 待批办) opens oldest
  first, a list of late forms (逾期, or a 督办 level) by deadline, the most overdue first, every other list
  newest first. The phone's cards show the same page (app/web/office.py).
- Counting: up to ``forms.TABLE_COUNT_LIMIT``; beyond it the page says "超过 10,000 份" and numbers the
  pages it counted.
- Searching (``q``, issue 19.1): the newest ``forms.SEARCH_COUNT_LIMIT`` matches, by relevance unless another
  order is asked for (``sort=newest``: received, newest first; or any column); the content shows the words
  found marked with ``<mark>`` (``search.snippet``), and a reply or location they were found in.
- Bulk: ``POST /office/forms/bulk`` with the selected ``ids`` and ``op``. Each form is acted on in a
  savepoint of its own through the same workflow as one at a time, so one that cannot be assigned (taken
  meanwhile) is named in the message and the rest are done; then back to the list (redirect after POST).
  Export goes to the API's export of exactly those forms (``ids``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode

from fastapi import Request
from fastapi.responses import Response

from app.errors import AppError, PermissionDenied
from app.http.deps import SessionDep
from app.http.routing import GuardedRouter
from app.models import FormStatus, Role
from app.schemas.common import MAX_ID
from app.schemas.forms import FormQuery
from app.services import disclosure, views, workflow
from app.services import forms as form_service
from app.services import search as search_service
from app.services.auth import Principal
from app.web.render import redirect
from app.web.session import CheckedForm, PagePrincipal, SignedIn, safe_next, set_cookie

router = GuardedRouter()

# About one screen of the table at 1440×900; each row costs the page ~0.2 ms (rendered twice: table, cards).
PER_PAGE = 25
MAX_PAGE_NUMBER = 10_000
MAX_SELECTED = 200
BULK_COOKIE = "minyi_bulk"
COLUMNS = (("number", "编号"), ("received", "收到时间"), ("workroom", "工作室"), ("category", "类别"),
           ("content", "内容"), ("status", "状态"), ("unit", "承办单位"), ("due", "办理期限"), ("supervision", "督办"))
OFFICE_ROLES = (Role.admin, Role.coordinator)


def _is_triage(filters: FormQuery) -> bool:
    return [str(s) for s in filters.status] == [FormStatus.submitted]


async def context(session: Any, principal: Principal, params: Any, filters: FormQuery, *, now: datetime) -> dict[str, Any]:
    """The desk table's part of the list page: one sorted, numbered page of ``filters``' forms."""
    # Opened without a sort: the triage queue oldest first, a list of late forms by deadline, the most
    # overdue first, every other list newest first.
    # A search opens by relevance; "newest" is received time, newest first.
    by_deadline = filters.overdue is True or filters.supervision in ("warning", "overdue", "escalated")
    sort = str(params.get("sort") or "")
    order = str(params.get("order") or "")
    if sort == "newest":
        sort, order = "received", "desc"
    if sort not in dict(COLUMNS) and not (sort == "relevance" and filters.q):
        sort = "relevance" if filters.q else "due" if by_deadline else "received"
    descending = order == "desc" if order in ("asc", "desc") else not (_is_triage(filters) or by_deadline)
    try:
        page = min(max(int(str(params.get("page") or 1)), 1), MAX_PAGE_NUMBER)
    except ValueError:
        page = 1
    asked = sort
    table = await form_service.table_page(session, principal=principal, filters=filters, sort=sort,
                                          descending=descending, page=page, per_page=PER_PAGE, now=now)
    total, limit = table.total, table.limit
    more = total > limit  # counted no further: "more than 10,000" (1,000 found by a search)
    pages = max(1, math.ceil(min(total, limit) / PER_PAGE))
    if page > pages:  # a page past the end (the list shrank): its last page
        page = pages
        table = await form_service.table_page(session, principal=principal, filters=filters, sort=sort,
                                              descending=descending, page=page, per_page=PER_PAGE, now=now)
    rows, sort = table.rows, table.sort
    # A list of more than 10,000 forms sorts only by what an index serves (forms.indexed_sort).
    labels = {**dict(COLUMNS), "relevance": "相关度"}
    sort_note = (f"符合条件的意见超过 {form_service.TABLE_COUNT_LIMIT:,} 份，不能按“{labels[asked]}”排序，"
                 "已按收到时间排列；请先用筛选缩小范围。") if sort != asked else None
    if filters.q and more:
        sort_note = (f"找到的意见超过 {limit:,} 份，只列出最新的 {limit:,} 份；"
                     "可以多写几个关键词（用空格分开）或加筛选条件缩小范围。")
    given = [(name, str(v).lower() if isinstance(v, bool) else str(v))
             for name, value in filters.as_json().items() for v in (value if isinstance(value, list) else [value])]

    def url(**changes: Any) -> str:
        state = {"sort": sort, "order": "desc" if descending else "asc", "page": page, **changes}
        return "/office/forms?" + urlencode([*given, *((k, str(v)) for k, v in state.items())])

    columns = []
    for key, label in COLUMNS:
        if key == sort:  # the sorted column turns round
            state, first = ("descending" if descending else "ascending"), ("asc" if descending else "desc")
        else:  # another column: times newest first, the rest A to Z
            state, first = None, "desc" if key == "received" else "asc"
        columns.append((key, label, url(sort=key, order=first, page=1), state))
    view = disclosure.of(principal)
    reads = [views.form_read(f, now=now, view=view) for f in rows]
    return {
        "rows": reads,
        "total": min(total, limit), "more": more, "page": page, "pages": pages,
        "sort": sort, "descending": descending, "columns": columns, "sort_note": sort_note,
        "sort_label": labels[sort], "here": url(),
        "prev_url": url(page=page - 1) if page > 1 else None, "next_url": url(page=page + 1) if page < pages else None,
        # A search: the words found, marked in each row's content (the table's short excerpt, the cards' longer
        # one), and the two orders it offers.
        "search": bool(filters.q),
        "snippets": {f.id: search_service.snippets(f, filters.q, (40, 80)) for f in reads} if filters.q else {},
        "by_relevance_url": url(sort="relevance", order="desc", page=1),
        "by_newest_url": url(sort="received", order="desc", page=1),
    }


def take_message(request: Request) -> str | None:
    """The last bulk action's outcome, shown once on the list."""
    raw = request.cookies.get(BULK_COOKIE)
    return unquote(raw)[:500] if raw else None


def _selected(form: Any) -> list[int]:
    ids: list[int] = []
    for value in form.getlist("ids"):
        text = str(value).strip()
        if text.isdigit() and 1 <= int(text) <= MAX_ID and int(text) not in ids:
            ids.append(int(text))
    return ids[:MAX_SELECTED]


@router.post("/office/forms/bulk")
async def bulk(request: Request, form: CheckedForm, user: SignedIn, principal: PagePrincipal,
               session: SessionDep) -> Response:
    if user.role not in OFFICE_ROLES:
        raise PermissionDenied("只有办公室工作人员可以批量处理。", code="forbidden")
    next_url = safe_next(str(form.get("next") or ""), "/office/forms")
    op = str(form.get("op") or "")
    ids = _selected(form)

    def back(message: str) -> Response:
        response = redirect(next_url)
        set_cookie(response, request, BULK_COOKIE, quote(message), max_age=60)
        return response

    if not ids:
        return back("请先勾选要处理的意见。")
    if op in ("export-xlsx", "export-csv"):
        extension = op.removeprefix("export-")
        return redirect(f"/api/v1/forms/export.{extension}?" + urlencode([("ids", i) for i in ids]))
    unit_text = str(form.get("unit_id") or "").strip()
    if op == "assign" and not (unit_text.isdigit() and 1 <= int(unit_text) <= MAX_ID):
        return back("批量批办：请先选择承办单位。")
    if op not in ("assign", "urge"):
        return back("没有这项批量操作。")
    settings = request.app.state.settings
    done: list[str] = []
    refused: list[str] = []
    for form_id in ids:
        try:
            async with session.begin_nested():
                if op == "assign":
                    written = await workflow.assign(session, principal=principal, form_id=form_id,
                                                    unit_id=int(unit_text), instructions=None, due_at=None,
                                                    settings=settings)
                else:
                    written = await workflow.urge(session, principal=principal, form_id=form_id, note=None)
            done.append(written.tracking_no)
        except AppError as exc:
            refused.append(f"第 {form_id} 号：{exc.detail}")
    verb = "批办" if op == "assign" else "催办"
    message = f"已{verb} {len(done)} 份。"
    if refused:
        message += f"{len(refused)} 份未能{verb}（" + "；".join(refused[:5]) + ("…" if len(refused) > 5 else "") + "）。"
    return back(message)

