"""Webhooks, their deliveries and attempts, and the changes feed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from app.models import WebhookAttempt
from app.schemas.common import InputModel, LocalDateTime

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
EventName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Events = Annotated[list[EventName], Field(min_length=1, max_length=50, examples=[["form.submitted", "form.answered"]])]


class WebhookCreate(InputModel):
    url: Url = Field(examples=["https://example.cn/minyi/webhook"])
    events: Events


class WebhookUpdate(InputModel):
    url: Url | None = None
    events: Events | None = None
    active: bool | None = None


class WebhookRead(BaseModel):
    id: int
    client_id: int | None = Field(description="拥有它的接口客户端；管理员建的为 null")
    url: str
    events: list[str]
    active: bool
    created_at: LocalDateTime
    failing_since: LocalDateTime | None = Field(
        None, description="自上次送达以来第一次失败的时间；正常时为 null / first failure since the last delivery")
    paused_at: LocalDateTime | None = Field(
        None, description="投递进程暂停它的时间（此时 active 为 false）；用 POST …/resume 恢复 / when the worker paused it")
    paused_reason: Literal["failing", "gone"] | None = Field(
        None, description="failing：约一天没有一次送达；gone：接收方返回 410 / why it was paused")


class WebhookCreated(WebhookRead):
    secret: str = Field(description="签名密钥（whsec_…），只在此显示一次 / shown once")

DeliveryStatusName = Literal["pending", "delivered", "failed"]


class DeliveryRead(BaseModel):
    id: int
    webhook_id: int
    change_id: int
    message_id: str = Field(description="webhook-id 请求头与投递正文的 id（chg_<change_id>），重试和重投不变")
    type: str
    status: DeliveryStatusName
    attempts: int = Field(description="本轮投递已尝试次数（重投后从 0 计起）")
    next_attempt_at: LocalDateTime | None = Field(description="待投递时下次尝试的时间")
    last_status_code: int | None
    last_error: str | None
    created_at: LocalDateTime
    delivered_at: LocalDateTime | None


class AttemptRead(BaseModel):
    id: int
    at: LocalDateTime
    worker: str
    status_code: int | None
    error: str | None
    duration_ms: int | None

    @classmethod
    def build(cls, attempt: WebhookAttempt) -> AttemptRead:
        return cls(id=attempt.id, at=attempt.at, worker=attempt.worker, status_code=attempt.status_code,
                   error=attempt.error, duration_ms=attempt.duration_ms)


class DeliveryDetail(DeliveryRead):
    payload: dict[str, Any] = Field(description="投递的正文 / the body sent")
    attempt_log: list[AttemptRead] = Field(description="每次尝试，最早的在前 / every attempt, oldest first")


class PingRead(BaseModel):
    message_id: str
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int


class ChangeRead(BaseModel):
    """One item of ``GET /api/v1/changes``: a webhook body plus ``form_id``."""

    id: str = Field(description="chg_<n>：与 webhook-id 相同 / the same id as the webhook delivery's")
    type: str
    at: str = Field(description="ISO 8601, +08:00")
    form_id: int
    data: dict[str, Any]
