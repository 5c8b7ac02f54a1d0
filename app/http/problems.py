"""Render every error as RFC 9457 problem+json: our AppErrors, FastAPI's validation errors and
Starlette's HTTP errors (404 for unknown paths, 405, ...). Nothing a client sends may produce a bare 500."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import asyncpg

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import PROBLEM_JSON, AppError, problem_type
from app.schemas import dates

log = logging.getLogger("minyi")

HTTP_TITLES = {
    400: ("请求有误 Bad Request", "bad_request"),
    401: ("未登录或凭证无效 Unauthorized", "unauthorized"),
    403: ("无权操作 Forbidden", "forbidden"),
    404: ("未找到 Not Found", "not_found"),
    405: ("不支持该方法 Method Not Allowed", "method_not_allowed"),
    406: ("无法提供该格式 Not Acceptable", "not_acceptable"),
    413: ("内容过大 Content Too Large", "payload_too_large"),
    415: ("不支持的内容类型 Unsupported Media Type", "unsupported_media_type"),
    422: ("内容有误 Unprocessable Content", "invalid"),
    429: ("请求过于频繁 Too Many Requests", "rate_limited"),
    503: ("服务暂不可用 Service Unavailable", "unavailable"),
}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], headers=headers, media_type=PROBLEM_JSON)


def _respond(request: Request, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """problem+json for the API; for the HTML pages, whatever the page layer renders (an error page, a toast
    for htmx, a redirect to /login), hooked in as ``app.state.page_problem``; for Open311, the spec's error
    shape (``app.state.open311_problem``)."""
    open311_problem = getattr(request.app.state, "open311_problem", None)
    if open311_problem is not None and (request.url.path + "/").startswith("/open311/"):
        return open311_problem(request, body, headers)  # type: ignore[no-any-return]
    page_problem = getattr(request.app.state, "page_problem", None)
    if page_problem is not None and not request.url.path.startswith(("/api/", "/healthz", "/readyz", "/docs", "/openapi")):
        return page_problem(request, body, headers)  # type: ignore[no-any-return]
    return problem_response(body, headers)


def http_problem(status: int, detail: str, *, code: str | None = None) -> dict[str, Any]:
    title, default_code = HTTP_TITLES.get(status, ("错误 Error", "error"))
    code = code or default_code
    return {"type": problem_type(code), "title": title, "status": status, "detail": detail, "code": code}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


async def app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return _respond(request, exc.to_problem(), exc.headers)


def _field_name(loc: list[Any]) -> str:
    """The field as the client named it: ``("query", "from")`` → ``from``, ``("body", "filters", "to")`` →
    ``filters.to``."""
    parts = loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else loc
    return ".".join(str(part) for part in parts) or "body"


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    named = []  # the date errors (app/schemas/dates.py), each naming its field: read by people, not programs
    for e in exc.errors():
        loc, msg, kind = _jsonable(list(e.get("loc", ()))), str(e.get("msg", "")), str(e.get("type", ""))
        if kind in dates.ERROR_TYPES:
            msg = f"{_field_name(loc)}：{msg}"
            named.append(msg)
        errors.append({"loc": loc, "msg": msg, "type": kind})
    detail = "提交的内容未通过校验，请检查各字段。" + "".join(f"{msg}。" for msg in named)
    body = {
        "type": problem_type("validation_error"),
        "title": "内容有误 Unprocessable Content",
        "status": 422,
        "detail": detail,
        "code": "validation_error",
        "errors": errors,
    }
    return _respond(request, body)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "请求有误。"
    chinese = {404: "请求的资源不存在。", 405: "该路径不支持此请求方法。"}
    body = http_problem(exc.status_code, chinese.get(exc.status_code, detail))
    return _respond(request, body, getattr(exc, "headers", None))


def _is_data_error(exc: DBAPIError) -> bool:
    """A value the database refused (text with NUL, a number out of range): the client's input."""
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return isinstance(cause, (asyncpg.exceptions.DataError, asyncpg.exceptions._base.DataError)) or isinstance(
        exc.orig, (sqlite3.DataError, OverflowError)
    )


def _is_unavailable(exc: DBAPIError) -> bool:
    """A database that cannot serve now (retry later), as opposed to a statement it refused. Besides a lost
    or refused connection: PostgreSQL closed to connections (``ALTER DATABASE ... ALLOW_CONNECTIONS false``
    answers 55000 "not currently accepting connections", which no statement of ours raises), and SQLite
    still locked by another process when the busy timeout runs out (SQLITE_BUSY)."""
    cause = exc.orig.__cause__ if exc.orig is not None else None
    sqlite_busy = isinstance(exc.orig, sqlite3.OperationalError) and (
        getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY  # extended codes included
    )
    return exc.connection_invalidated or sqlite_busy or isinstance(
        cause, (OSError, asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.ObjectNotInPrerequisiteStateError)
    )


async def database_error_handler(request: Request, exc: Exception) -> Response:
    # A safety net: inputs are validated before they reach the database, but if a value slips through
    # the driver's refusal must still read as the client's error, never as a 500.
    assert isinstance(exc, DBAPIError)
    if _is_data_error(exc):
        return _respond(request, http_problem(422, "提交的数据无法保存，请检查内容。", code="invalid_data"))
    if _is_unavailable(exc):
        log.warning("database unavailable: %s", exc)
        return _respond(request, http_problem(503, "数据库暂不可用，请稍后重试。", code="database_unavailable"),
                        {"Retry-After": "5"})
    return await unhandled_error_handler(request, exc)


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {
        "type": problem_type("internal_error"),
        "title": "服务器内部错误 Internal Server Error",
        "status": 500,
        "detail": "服务器出错，请稍后重试；已保存的内容不受影响。",
        "code": "internal_error",
    }
    return _respond(request, body)


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
