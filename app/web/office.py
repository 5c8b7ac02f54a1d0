"""Pages of the office (办公室) and of the handling units (承办单位).

- ``/office``: the dashboard (admin, coordinator): counts and simple bars, rendered on the server;
  ``dashboard.js`` then polls ``/api/v1/stats/summary`` with ``If-None-Match`` and updates the numbers.
- ``/office/forms``: the triage queue and list, filtered by a plain GET form (htmx refreshes only the
  list block); each submitted form can be assigned inline.
- ``/office/forms/{id}``: one form, its whole timeline, and exactly the actions this user may take.
- ``/office/unit``: a handler's list of the forms its unit holds.

Forms WeChat's content check flagged (``review_flag``: the check said "review", or WeChat could not be
asked) carry a badge in the lists and a notice on their page; ``?review=true`` lists only them.

Every action is a real form POST (CSRF checked) that calls the workflow service and redirects (303);
bad input re-renders the page with 422 and the message next to the field; an ``AppError`` becomes an
error page or, for htmx, a toast (web/errors.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import Response
from markupsafe import Markup, escape
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

from app.http import abuse
from app.http.deps import IdPath, SessionDep
from app.config import TZ
from app.errors import AppError, Conflict, Invalid, NotFound, PermissionDenied
from app.http.routing import GuardedRouter
from app.models import FormStatus, Role, Satisfaction, User, utcnow
from app.schemas import dates
from app.schemas.common import MAX_ID
from app.schemas.photos import PhotoRead
from app.schemas.forms import (
    COLUMN_FILTERS,
    AssignBody,
    CloseBody,
    DecisionBody,
    ExtensionBody,
    FormQuery,
    FormRead,
    NoteBody,
    ReasonBody,
    ReassignBody,
    ReopenBody,
    ReplyBody,
    SpotAnswerBody,
    UrgeBody,
    max_length,
)
from app.services import activities as activity_service
from app.services import forms as form_service
from app.services import merging
from app.services import photos as photo_service
from app.services import search as search_service
from app.services import similar_forms
from app.services import disclosure, personal_data, reference
from app.services import stats as stats_service
from app.services import views, workflow, working_calendar
from app.services.auth import Principal
from app.services.content_check import REVIEW, UNAVAILABLE
from app.models import Supervision
from app.web import desk
from app.web import similar as similar_pages
from app.web.render import is_htmx, redirect, render, templates
from app.web.session import CheckedForm, PagePrincipal, SignedIn, safe_next, set_cookie

router = GuardedRouter()

OFFICE_ROLES = (Role.admin, Role.coordinator)
LIST_TARGET = "form-list"  # the id of the list block htmx refreshes
PAGE_SIZE = 50

SUPERVISION_LABELS = {
    Supervision.none: "正常", Supervision.warning: "预警", Supervision.overdue: "逾期", Supervision.escalated: "督办",
}
SATISFACTION_LABELS = {
    Satisfaction.satisfied: "满意", Satisfaction.basically_satisfied: "基本满意", Satisfaction.unsatisfied: "不满意",
}
ACTION_LABELS = {
    "assign": "批办", "reassign": "改派", "decline": "不予受理", "answer-on-spot": "当场答复", "reply": "答复",
    "return": "退回办公室", "extension": "申请延期", "extension-approve": "批准延期", "extension-refuse": "不批准延期",
    "urge": "催办", "close": "办结", "reopen": "重办", "note": "内部备注", "clear-review": "内容已核实，取消标记",
}
# The badge of a form WeChat's content check flagged: its text and the tooltip explaining it.
REVIEW_FLAGS = {
    REVIEW: {"label": "待人工审核", "title": "微信内容安全检测建议人工复核"},
    UNAVAILABLE: {"label": "未能内容检测", "title": "提交时未能连接微信内容安全检测"},
}
UNKNOWN_REVIEW_FLAG = {"label": "待人工审核", "title": "提交时的内容检测要求人工复核"}
# msgSecCheck v2 ``result.label``.
WECHAT_LABELS = {
    100: "正常", 10001: "广告", 20001: "时政", 20002: "色情", 20003: "辱骂", 20006: "违法犯罪", 20008: "欺诈",
    20012: "低俗", 21000: "其他",
}
# What a person reads next to a field when its value is missing or wrong.
FIELD_MESSAGES = {
    "unit_id": "请选择承办单位。", "reply": "请填写答复内容。", "reason": "请填写理由。",
    "due_at": "请选择一个有效的日期。", "note": "请填写备注内容。", "satisfaction": "请选择满意度。",
}


def percent(value: float | None) -> str:
    """A rate (0–1) as the dashboard shows it: ``87.5%``; dashboard.js formats the same way."""
    return f"{round((value or 0) * 1000) / 10:g}%"


def local_time(value: datetime | None) -> str:
    return value.astimezone(TZ).strftime("%Y-%m-%d %H:%M") if value else ""


templates.env.filters.setdefault("percent", percent)
templates.env.filters.setdefault("local_time", local_time)
templates.env.globals.setdefault("REVIEW_FLAGS", REVIEW_FLAGS)
templates.env.globals.setdefault("UNKNOWN_REVIEW_FLAG", UNKNOWN_REVIEW_FLAG)


def review_notice(flag: str | None, check: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the form page says about a flagged form: why it was flagged and WeChat's answer (None: not flagged)."""
    if not flag:
        return None
    check = check if isinstance(check, Mapping) else {}
    badge = REVIEW_FLAGS.get(flag, UNKNOWN_REVIEW_FLAG)
    if flag == UNAVAILABLE:
        reason = "居民提交时未能连接微信内容安全检测，这条意见的内容没有经过检测。请先人工核实内容，再批办或公开。"
    else:
        reason = "微信内容安全检测建议人工复核这条意见的内容。请先人工核实内容，再批办或公开。"
    label = check.get("label")
    label_text = None
    if label is not None:
        try:
            name = WECHAT_LABELS.get(int(label), "未知类别")
        except (TypeError, ValueError):
            name = "未知类别"
        label_text = f"{name}（{label}）"
    error = check.get("error")
    if error == "unavailable":
        error_text = "无法连接微信服务器"
    elif error is not None:
        error_text = f"微信拒绝检测：错误码 {error}" + (f"，{check['errmsg']}" if check.get("errmsg") else "")
    else:
        error_text = None
    return {
        "flag": flag, "label": badge["label"], "title": badge["title"], "reason": reason,
        "wechat_label": label_text, "trace_id": str(check["trace_id"]) if check.get("trace_id") else None,
        "error": error_text,
    }


def _require_office(user: User) -> None:
    if user.role not in OFFICE_ROLES:
        raise PermissionDenied("只有办公室工作人员可以打开此页面。", code="forbidden")


def _require_staff_page(user: User) -> None:
    if user.role not in (*OFFICE_ROLES, Role.handler):
        raise PermissionDenied("只有办公室和承办单位的工作人员可以打开此页面。", code="forbidden")


def _targets_list(request: Request) -> bool:
    return is_htmx(request) and request.headers.get("hx-target") == LIST_TARGET


# --- the dashboard -----------------------------------------------------------------------------------


# The dashboard's tiles of forms in a state now: (key in the summary, label, what it means, tone). Each
# opens the office's list under the filter that gives exactly those forms (stats.CURRENT_FILTERS).
CURRENT_TILES: tuple[tuple[str, str, str, str], ...] = (
    ("pending_triage", "待批办", "已收到、等待批办", ""),
    ("in_progress", "办理中", "已批办、承办单位正在办理", ""),
    ("awaiting_followup", "待办结", "已答复、等待回访办结", ""),
    ("extension_requested", "延期待审批", "承办单位申请延期、等待审批", ""),
    ("warning", "预警", "2 个工作日内到期", "sup-warning"),
    ("overdue", "逾期", "已过期限、不满 5 个工作日", "sup-overdue"),
    ("escalated", "督办", "逾期 5 个工作日及以上", "sup-escalated"),
)
TILE_FILTERS: dict[str, dict[str, Any]] = {**stats_service.CURRENT_FILTERS, "warning": {"supervision": "warning"}}


def _current_tiles(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    current = summary["current"]
    return [
        {"key": key, "label": label, "hint": hint, "tone": tone,
         "stat": f"current.{key}" if key in current else key,
         "value": current[key] if key in current else summary[key],
         "href": "/office/forms?" + _list_query(TILE_FILTERS[key])}
        for key, label, hint, tone in CURRENT_TILES
    ]


def _list_query(filters: Mapping[str, Any]) -> str:
    """A ``FormQuery`` filter as the list's query string: ``{"status": ["submitted"]}`` → ``status=submitted``."""
    pairs = []
    for name, value in filters.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, "true" if item is True else "false" if item is False else str(item)))
    return urlencode(pairs)


def _chart(
    rows: list[dict[str, Any]], *, chart_id: str, title: str, heading: str, src: str, label_key: str,
    series: tuple[tuple[str, str], ...], query: str = "",
) -> dict[str, Any]:
    """One bar chart of the dashboard: a table whose rows carry SVG bars (the first series the bar, the
    second, if any, drawn inside it). dashboard.js rebuilds the rows the same way from ``src``."""
    first = series[0][0]
    top = max((row[first] for row in rows), default=0) or 1
    return {
        "id": chart_id, "title": title, "heading": heading, "src": src + query, "label_key": label_key,
        "series": series, "depends": " ".join(name for name, _ in series),
        "rows": [
            {"label": row.get(label_key) or "（未指定）", "values": [row[name] for name, _ in series],
             "widths": [round(row[name] * 100 / top, 1) for name, _ in series]}
            for row in rows
        ],
    }


@router.get("/office")
async def dashboard(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    if user.role == Role.handler:
        return redirect("/office/unit")
    _require_office(user)
    now = utcnow()
    flt = await stats_service.resolve_filter(session)
    summary = await stats_service.summary(session, flt, now=now)
    progress = (("collected", "收集"), ("assigned", "已批办"))
    context = {
        "summary": summary,
        "etag": stats_service.etag_for(summary),  # the same ETag the stats API gives for these counts
        "as_of": now,
        "tiles": _current_tiles(summary),
        "charts": [
            _chart(await stats_service.by_workroom(session, flt, now=now), chart_id="by-workroom",
                   title="各工作室收集量", heading="工作室", src="/api/v1/stats/by-workroom", label_key="name",
                   series=progress),
            _chart(await stats_service.by_category(session, flt, now=now), chart_id="by-category",
                   title="各类别收集量", heading="类别", src="/api/v1/stats/by-category", label_key="name",
                   series=progress),
            _chart(await stats_service.monthly(session, flt, now=now), chart_id="monthly",
                   title="每月收集与答复", heading="月份", src="/api/v1/stats/monthly", label_key="month",
                   series=(("collected", "收集"), ("answered", "已答复"))),
            _chart(await stats_service.answer_days(session, flt, now=now), chart_id="answer-days",
                   title="答复用时（工作日）", heading="首次答复用时", src="/api/v1/stats/answer-days",
                   label_key="label", series=(("answered", "意见数"),)),
        ],
        # Waiting forms WeChat's content check flagged: counted on each load (the polled counts do not carry it).
        "flagged_waiting": await form_service.count_forms(
            session, principal=principal, now=now,
            filters=form_service.FormQuery(status=(FormStatus.submitted,), review=True)),
        # From 1 November, until next year's holiday notice is entered (issue 15).
        "calendar_notice": await working_calendar.notice_reminder(session, today=now.astimezone(TZ).date()),
        # Groups of similar forms (issue 19.4): read on each load, not polled.
        "hot_topics": await similar_pages.hot_topics(session),
        "hot_topic_periods": similar_pages.PERIOD_LABELS, "trend_labels": similar_pages.TREND_LABELS,
        # The register of activities (issue 20.2), this year so far: read on each load, not polled.
        "activity_year": now.astimezone(TZ).date().replace(month=1, day=1),
        "activity_counts": await activity_service.activity_counts(
            session, date_from=now.astimezone(TZ).date().replace(month=1, day=1), date_to=now.astimezone(TZ).date()),
        "activity_kind_labels": activity_service.ACTIVITY_KIND_LABELS,
    }
    return render(request, "office/dashboard.html", context)


# --- the queue and list ------------------------------------------------------------------------------


def _choices(values: list[str], allowed: Mapping[str, str]) -> list[str]:
    return [v for v in values if v in allowed]


async def _list_context(
    request: Request, session: Any, principal: Principal, params: Any, *, errors: dict[int, dict[str, str]] | None = None,
    values: dict[int, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The queue page's context from its query parameters (the API's one filter, ``FormQuery``); unknown
    values are ignored, not errors."""
    workrooms, _ = await reference.list_workrooms(session)
    categories, _ = await reference.list_categories(session)
    raw: dict[str, Any] = {name: params.get(name) for name in FormQuery.model_fields}
    raw["status"] = params.getlist("status") if hasattr(params, "getlist") else list(params.get("status", []))
    if raw.get("review") is not None:  # the page's switch: only the flagged forms, or all of them
        raw["review"] = True if str(raw["review"]).lower() in ("true", "1", "on") else None
    filters = FormQuery.lenient(raw)
    if filters.q and len(search_service.words_of(filters.q)) > search_service.MAX_WORDS:
        filters.q = " ".join(search_service.words_of(filters.q)[:search_service.MAX_WORDS])  # the first ten words
    if filters.workroom not in {w.code for w in workrooms}:
        filters.workroom = None
    if filters.category not in {c.code for c in categories}:
        filters.category = None
    now = utcnow()
    given = filters.as_json()
    query = [(name, str(v).lower() if isinstance(v, bool) else str(v))
             for name, value in given.items() for v in (value if isinstance(value, list) else [value])]
    here = "/office/forms" + (f"?{urlencode(query)}" if query else "")
    # One list, two layouts: the desk's table (≥ 1024 px) and the phone's cards show the same sorted,
    # numbered page (app/web/desk.py), read once (issue 18.5: at 10,000,000 forms a second query and a
    # second set of rows per page was half of the page's cost).
    desk_table = await desk.context(session, principal, params, filters, now=now)
    forms = desk_table["rows"]
    firsts = await photo_service.first_photos(session, [f.id for f in forms])
    units = (await reference.list_units(session))[0]
    return {
        "desk": desk_table, "bulk_message": desk.take_message(request),
        "forms": forms,
        "thumbs": {form_id: (PhotoRead.model_validate(photo), n) for form_id, (photo, n) in firsts.items()},
        "next_url": desk_table["next_url"], "prev_url": desk_table["prev_url"],
        # The same choice of unit under every form waiting for triage: written once per page.
        "unit_options": Markup("".join(f'<option value="{u.id}">{escape(u.name)}</option>' for u in units)),
        "here": here,
        "export_query": urlencode(query),  # the same filters for /api/v1/forms/export.{xlsx,csv} (issue 17.3)
        "column_filters": {name: {"label": FormQuery.model_fields[name].title or name,
                                  "max_length": max_length(FormQuery, name)} for name in COLUMN_FILTERS},
        "selected": {**{name: getattr(filters, name) for name in COLUMN_FILTERS},
                     "status": [str(s) for s in filters.status], "workroom": filters.workroom,
                     "category": filters.category, "supervision": filters.supervision, "q": filters.q or "",
                     "review": bool(filters.review)},
        "workrooms": workrooms, "categories": categories, "units": units,
        "statuses": [s.value for s in FormStatus],
        "supervision_labels": SUPERVISION_LABELS,
        "row_errors": errors or {}, "row_values": values or {},
        "list_target": LIST_TARGET,
    }


@router.get("/office/forms")
async def form_list(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    _require_office(user)
    context = await _list_context(request, session, principal, request.query_params)
    return render(request, "office/forms.html", context, block="list" if _targets_list(request) else None)


# --- one form ----------------------------------------------------------------------------------------


def allowed_actions(user: User, form: FormRead) -> list[str]:
    """Exactly the actions the workflow service would let ``user`` take on ``form`` now."""
    actions: list[str] = []
    if form.merged_into is not None:  # a follower is handled through its lead (services/merging.py)
        office = user.role in OFFICE_ROLES
        its_unit = user.role == Role.handler and user.unit_id is not None and form.unit_id == user.unit_id
        return (["clear-review"] if office and form.review_flag is not None else []) + (
            ["note"] if office or its_unit else [])
    if user.role in OFFICE_ROLES:
        if form.status == FormStatus.submitted:
            actions += ["assign", "answer-on-spot", "decline"]
        elif form.status == FormStatus.assigned:
            actions += ["reply", "reassign", "urge"]
            if form.extension_due_at is not None:
                actions += ["extension-approve", "extension-refuse"]
        elif form.status == FormStatus.answered:
            actions += ["close", "reopen"]
        if form.review_flag is not None:
            actions.append("clear-review")
        actions.append("note")
    elif user.role == Role.handler and user.unit_id is not None and form.unit_id == user.unit_id:
        if form.status == FormStatus.assigned:
            actions += ["reply", "return"]
            if form.extension_due_at is None:
                actions.append("extension")
        actions.append("note")
    return actions


async def _form_page(
    request: Request, session: Any, user: User, principal: Principal, form_id: int, *,
    failed: str | None = None, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
    status_code: int = 200, contact: personal_data.Contact | None = None, new_code: str | None = None,
    merge_error: str | None = None, merge_value: str = "",
) -> Response:
    form = await form_service.get_visible(session, principal, form_id)
    view = disclosure.of(principal)
    detail = views.form_detail(form, now=utcnow(), view=view)
    actions = allowed_actions(user, detail)
    units = (await reference.list_units(session))[0] if {"assign", "reassign", "reopen"} & set(actions) else []
    similar = await similar_forms.similar_to(
        session, form, visible=await form_service.visibility_condition(session, principal),
        settings=request.app.state.settings, limit=10)
    context = {
        "similar": similar,
        "form": detail, "actions": actions, "action_labels": ACTION_LABELS, "units": units,
        "review": review_notice(form.review_flag, form.content_check),
        "supervision_labels": SUPERVISION_LABELS, "satisfaction_labels": SATISFACTION_LABELS,
        "failed": failed, "errors": errors or {}, "values": values or {},
        "back": "/office/unit" if user.role == Role.handler else "/office/forms",
        "contact": contact, "can_reveal": not view.personal, "new_code": new_code,
        "can_reissue": user.role in OFFICE_ROLES,
        # 合并办理 (services/merging.py): the office merges open forms into this one, or unmerges.
        "can_merge": user.role in OFFICE_ROLES and detail.merged_into is None
                     and detail.status not in (FormStatus.closed, FormStatus.declined),
        "can_unmerge": user.role in OFFICE_ROLES, "merge_error": merge_error, "merge_value": merge_value,
    }
    headers = {"Cache-Control": "no-store"} if contact or new_code else None
    block = "contact" if contact and request.headers.get("hx-target") == "contact" else None
    return render(request, "office/form.html", context, status_code=status_code, block=block, headers=headers)


@router.get("/office/forms/{form_id}")
async def form_page(form_id: IdPath, request: Request, user: SignedIn, principal: PagePrincipal,
                    session: SessionDep) -> Response:
    _require_staff_page(user)
    kept = request.cookies.get(NEW_CODE_COOKIE, "")
    shown_for, _, code = kept.partition(".")
    new_code = code if shown_for == str(form_id) and user.role in OFFICE_ROLES else None
    response = await _form_page(request, session, user, principal, form_id, new_code=new_code)
    if kept:
        response.delete_cookie(NEW_CODE_COOKIE, path="/")
    return response


@router.post("/office/forms/{form_id}/contact")
async def reveal_contact(form_id: IdPath, request: Request, form: CheckedForm, user: SignedIn,
                         principal: PagePrincipal, session: SessionDep) -> Response:
    """查看完整联系方式: the audited reveal of the API (services/personal_data.reveal_contact), shown in place."""
    _require_staff_page(user)
    contact = await abuse.reveal_contact(request, session, principal, form_id)
    return await _form_page(request, session, user, principal, form_id, contact=contact)


NEW_CODE_COOKIE = "minyi_new_code"


@router.post("/office/forms/{form_id}/verification-code")
async def reissue_code(form_id: IdPath, request: Request, form: CheckedForm, user: SignedIn,
                       principal: PagePrincipal, session: SessionDep) -> Response:
    """补发查询码: the new code shown once on the form's page (never cached); the old one stops working."""
    _require_office(user)
    _written, code = await abuse.reissue_code(request, session, principal, form_id)
    # Redirect after POST: a reload shows the form, never issues another code. The new code rides in a
    # short-lived cookie that the form's page reads once.
    response = redirect(f"/office/forms/{form_id}")
    set_cookie(response, request, NEW_CODE_COOKIE, f"{form_id}.{code}", max_age=300)
    return response


# --- 合并办理 ----------------------------------------------------------------------------------------------


@router.post("/office/forms/{form_id}/merge")
async def merge_forms(form_id: IdPath, request: Request, form: CheckedForm, user: SignedIn,
                      principal: PagePrincipal, session: SessionDep) -> Response:
    """合并办理: the forms whose tracking numbers were written (``tracking_nos``), or whose ids were ticked
    (``form_ids``), follow this one. A refusal (409, 422) shows on the form's page beside the field, nothing
    merged; then back to the form (redirect after POST)."""
    _require_office(user)
    typed = str(form.get("tracking_nos") or "")[:4000]
    try:
        ids = [int(v) for v in form.getlist("form_ids") if str(v).isdigit() and 1 <= int(v) <= MAX_ID]
        if typed.strip() or not ids:
            ids += await merging.ids_of_numbers(session, typed)
        await merging.merge(session, principal=principal, lead_id=form_id, form_ids=ids)
    except (Conflict, Invalid) as refusal:
        await session.rollback()
        return await _form_page(request, session, user, principal, form_id, merge_error=refusal.detail,
                                merge_value=typed, status_code=refusal.status)
    return redirect(safe_next(str(form.get("next") or ""), f"/office/forms/{form_id}"))


@router.post("/office/forms/{form_id}/unmerge")
async def unmerge_form(form_id: IdPath, request: Request, form: CheckedForm, user: SignedIn,
                       principal: PagePrincipal, session: SessionDep) -> Response:
    """取消合并: a follower goes back to where it was when merged; on a lead, every follower does."""
    _require_office(user)
    await merging.unmerge(session, principal=principal, form_id=form_id)
    return redirect(safe_next(str(form.get("next") or ""), f"/office/forms/{form_id}"))


# Each page action: the body model that validates it, and its form fields.
ACTION_BODIES: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "assign": (AssignBody, ("unit_id", "instructions", "due_at")),
    "reassign": (ReassignBody, ("unit_id", "instructions")),
    "decline": (ReasonBody, ("reason",)),
    "answer-on-spot": (SpotAnswerBody, ("reply",)),
    "reply": (ReplyBody, ("reply", "internal_note")),
    "return": (ReasonBody, ("reason",)),
    "extension": (ExtensionBody, ("due_at", "reason")),
    "extension-approve": (DecisionBody, ("note",)),
    "extension-refuse": (DecisionBody, ("note",)),
    "urge": (UrgeBody, ("note",)),
    "close": (CloseBody, ("satisfaction", "note")),
    "reopen": (ReopenBody, ("reason", "unit_id")),
    "note": (NoteBody, ("note",)),
    "clear-review": (DecisionBody, ("note",)),
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DUE_AT_CODES = {"invalid_due_at", "due_at_out_of_range"}  # the workflow's refusals of a chosen deadline


def _parse(action: str, form: Mapping[str, Any]) -> tuple[BaseModel | None, dict[str, str], dict[str, str]]:
    """(body, errors by field, typed values) for one action's form fields."""
    model, fields = ACTION_BODIES[action]
    values = {name: str(form.get(name) or "") for name in fields}
    data: dict[str, Any] = {}
    for name, value in values.items():
        value = value.strip() if name != "reply" else value
        if not value.strip():
            continue  # an empty optional field is "not given"; an empty required one is reported as missing
        if name == "due_at" and _DATE.match(value):
            value = f"{value}T23:59:59"  # a day chosen on a date input: the end of that day, local time
        data[name] = value
    try:
        return model.model_validate(data), {}, values
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "form"
            if error["type"] in dates.ERROR_TYPES:  # a date outside the window says so (app/schemas/dates.py)
                errors.setdefault(name, f"{error['msg']}。")
            errors.setdefault(name, FIELD_MESSAGES.get(name, str(error["msg"])))
        return None, errors, values


async def _perform(action: str, body: Any, session: Any, principal: Principal, form_id: int, settings: Any) -> None:
    common = {"principal": principal, "form_id": form_id}
    if action == "assign":
        await workflow.assign(session, **common, unit_id=body.unit_id, instructions=body.instructions,
                              due_at=body.due_at, settings=settings)
    elif action == "reassign":
        await workflow.reassign(session, **common, unit_id=body.unit_id, instructions=body.instructions)
    elif action == "decline":
        await workflow.decline(session, **common, reason=body.reason)
    elif action == "answer-on-spot":
        await workflow.answer_on_spot(session, **common, reply_text=body.reply)
    elif action == "reply":
        await workflow.reply(session, **common, reply_text=body.reply, internal_note=body.internal_note)
    elif action == "return":
        await workflow.return_to_office(session, **common, reason=body.reason)
    elif action == "extension":
        await workflow.request_extension(session, **common, due_at=body.due_at, reason=body.reason)
    elif action in ("extension-approve", "extension-refuse"):
        await workflow.decide_extension(session, **common, approve=action == "extension-approve", note=body.note)
    elif action == "urge":
        await workflow.urge(session, **common, note=body.note)
    elif action == "close":
        await workflow.close(session, **common, satisfaction=body.satisfaction, note=body.note)
    elif action == "reopen":
        await workflow.reopen(session, **common, reason=body.reason, unit_id=body.unit_id, settings=settings)
    elif action == "note":
        await workflow.add_note(session, **common, note=body.note)
    elif action == "clear-review":
        await workflow.clear_review(session, **common, note=body.note)


def _list_params(next_url: str) -> QueryParams:
    return QueryParams(parse_qsl(urlsplit(next_url).query, keep_blank_values=True))


@router.post("/office/forms/{form_id}/{action}")
async def form_action(form_id: IdPath, action: str, request: Request, form: CheckedForm, user: SignedIn,
                      principal: PagePrincipal, session: SessionDep) -> Response:
    if action not in ACTION_BODIES:
        raise NotFound("没有这项操作。", code="unknown_action")
    _require_staff_page(user)
    next_url = safe_next(str(form.get("next") or ""), f"/office/forms/{form_id}")
    from_list = next_url.startswith("/office/forms") and not next_url.startswith(f"/office/forms/{form_id}")
    body, errors, values = _parse(action, form)

    async def refused(errors: dict[str, str]) -> Response:
        if from_list:  # the inline assign of the queue: the queue again, the message on that row
            context = await _list_context(request, session, principal, _list_params(next_url),
                                          errors={form_id: errors}, values={form_id: values})
            return render(request, "office/forms.html", context, status_code=422,
                          block="list" if _targets_list(request) else None)
        return await _form_page(request, session, user, principal, form_id, failed=action, errors=errors,
                                values=values, status_code=422)

    if body is None:
        return await refused(errors)
    try:
        await _perform(action, body, session, principal, form_id, request.app.state.settings)
    except Invalid as refusal:
        if refusal.code not in DUE_AT_CODES:
            raise
        # A deadline in the past or beyond the two-year window: the message next to the date field, nothing
        # of the half-done action kept (the rollback drops what the workflow changed before it refused).
        await session.rollback()
        return await refused({"due_at": refusal.detail})
    if from_list and _targets_list(request):
        await session.flush()
        context = await _list_context(request, session, principal, _list_params(next_url))
        return render(request, "office/forms.html", context, block="list")
    return redirect(next_url)


# --- the handling unit -------------------------------------------------------------------------------


@router.get("/office/unit")
async def unit_forms(request: Request, user: SignedIn, principal: PagePrincipal, session: SessionDep) -> Response:
    if user.role in OFFICE_ROLES:
        return redirect("/office/forms")
    if user.role != Role.handler or user.unit_id is None:
        raise PermissionDenied("只有承办单位的工作人员可以打开此页面。", code="forbidden")
    statuses = _choices(request.query_params.getlist("status"), {s.value: s for s in FormStatus})
    filters = form_service.FormQuery(status=tuple(statuses), unit_id=user.unit_id)
    try:
        forms, next_cursor = await form_service.list_forms(
            session, principal=principal, filters=filters, limit=PAGE_SIZE, cursor=request.query_params.get("cursor"),
        )
    except AppError:  # a cursor tampered with: start from the top
        forms, next_cursor = await form_service.list_forms(session, principal=principal, filters=filters,
                                                           limit=PAGE_SIZE)
    now = utcnow()
    view = disclosure.of(principal)
    items = [views.form_read(f, now=now, view=view) for f in forms]
    items.sort(key=lambda f: (f.status != FormStatus.assigned, f.due_at is None, f.due_at or now))
    unit_name = await form_service.unit_name(session, user.unit_id)
    query = [("status", s) for s in statuses]
    return render(request, "office/unit.html", {
        "forms": items, "unit_name": unit_name, "selected": statuses, "supervision_labels": SUPERVISION_LABELS,
        "next_url": "/office/unit?" + urlencode([*query, ("cursor", next_cursor)]) if next_cursor else None,
    })
