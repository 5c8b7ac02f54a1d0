"""The AppError family and its RFC 9457 rendering.

Services raise these; the API renders them as ``application/problem+json``. Messages a person reads are
Chinese first. ``code`` is the stable machine word clients switch on.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_JSON = "application/problem+json"


def problem_type(code: str) -> str:
    return f"urn:minyi:problem:{code}"


class AppError(Exception):
    status: ClassVar[int] = 400
    title: ClassVar[str] = "请求有误 Bad Request"
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.headers = headers or {}
        self.extra = extra or {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.code),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class Unauthorized(AppError):
    status = 401
    title = "未登录或凭证无效 Unauthorized"
    default_code = "unauthorized"

    def __init__(self, detail: str = "请先登录。", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class PermissionDenied(AppError):
    status = 403
    title = "无权操作 Forbidden"
    default_code = "forbidden"


class NotFound(AppError):
    status = 404
    title = "未找到 Not Found"
    default_code = "not_found"


class Conflict(AppError):
    status = 409
    title = "状态冲突 Conflict"
    default_code = "conflict"


class InvalidTransition(Conflict):
    default_code = "invalid_transition"


class Invalid(AppError):
    status = 422
    title = "内容有误 Unprocessable Content"
    default_code = "invalid"


class PayloadTooLarge(AppError):
    status = 413
    title = "内容过大 Content Too Large"
    default_code = "payload_too_large"


class Upstream(AppError):
    status = 502
    title = "外部服务出错 Bad Gateway"
    default_code = "upstream_error"


class Unavailable(AppError):
    status = 503
    title = "服务暂不可用 Service Unavailable"
    default_code = "unavailable"


class TooManyRequests(AppError):
    """Over a rate limit; carries ``Retry-After`` (seconds)."""

    status = 429
    title = "请求过于频繁 Too Many Requests"
    default_code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(max(1, retry_after))},
                         extra={"retry_after": max(1, retry_after)})


class UnsupportedMediaType(AppError):
    status = 415
    title = "不支持的内容类型 Unsupported Media Type"
    default_code = "unsupported_media_type"
