"""One settings object for the whole app, read from the environment (prefix ``MINYI_``) or ``.env``.

Every field here is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET = "dev-secret-change-me"
# MINYI_ALLOWED_HOSTS items: a host name or IP (IPv6 with or without brackets), "*.domain", or "*".
_HOST_PATTERN = re.compile(r"\*|(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[?[0-9A-Fa-f:.]+\]?")
# Times are stored in UTC and shown in the town's time zone (DESIGN: "Storage and scale").
TZ = ZoneInfo("Asia/Shanghai")
# The highest per-minute rate a limit may name (an API client's, a setting's): keeps the rate limiter's
# interval at 600 µs or more (services/rate_limit.py).
MAX_LIMIT_PER_MINUTE = 100_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINYI_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = f"sqlite+aiosqlite:///{ROOT / 'data' / 'minyi.db'}"
    db_pool_size: int = Field(10, ge=1, le=200)
    db_echo: bool = False
    # SQLite: how long a transaction waits for another writer's lock before it fails (503 to the caller).
    sqlite_busy_timeout_seconds: float = Field(30, gt=0, le=600)
    secret_key: str = DEFAULT_SECRET
    tracking_prefix: str = Field("LS", pattern=r"^[A-Z]{0,8}$")
    token_ttl_seconds: int = Field(8 * 3600, ge=60)
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=60)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    host: str = "127.0.0.1"
    port: int = 8000
    demo: bool = False
    # How often each app process runs the supervision ladder (minyi supervise); 0 turns it off.
    supervise_interval_seconds: int = Field(3600, ge=0)
    # Each app process moves what its first requests left alive (compiled templates and statements, caches)
    # out of the collector's sight this long after it starts, and again after ten times as long, so that a
    # full collection no longer walks them: 25-40 ms pauses became under 1 ms (docs/performance.md). 0: off.
    gc_refreeze_seconds: float = Field(60.0, ge=0, le=86_400)
    # How long a process may answer statistics from its cache (0: never cache). See services/read_cache.py.
    stats_cache_seconds: float = Field(1.0, ge=0, le=60)
    # How long a process may trust a bearer token it already checked (0: check every request).
    auth_cache_seconds: float = Field(5.0, ge=0, le=60)
    # Open311's public reads (services, request lists by normalised query) are answered from memory this long;
    # anything this process commits drops them at once, another process's writes show within this time.
    open311_cache_seconds: float = Field(5.0, ge=0, le=60)
    # Similar opinions (app/services/similarity.py, docs/similarity.md): the rule that says two forms report
    # the same issue. A pair scoring at least the threshold is the same issue; the factors scale the score
    # when places differ (keep place_conflict under the threshold), are of no common kind, or are unknown.
    similar_threshold: float = Field(0.4, gt=0, le=1)
    similar_topic_weight: float = Field(0.7, ge=0, le=1)
    similar_wording_full: float = Field(0.5, gt=0, le=1)
    similar_place_conflict: float = Field(0.3, ge=0, le=1)
    similar_place_unshared: float = Field(0.75, ge=0, le=1)
    similar_place_unknown: float = Field(0.9, ge=0, le=1)
    # A font with Chinese glyphs for the PDF documents and charts (paper forms, records, briefs): a .ttf,
    # .otf or .ttc file, embedded (subset) in every PDF. Unset: found through fontconfig, then in the usual
    # places of Debian's fonts-noto-cjk and fonts-wqy-zenhei (app/services/documents.py).
    cjk_font: Path | None = None
    # Where background exports write their files. With several app processes on several hosts, share it
    # (or send a job's polls and download to the process that ran it): the job row is in the database,
    # the file is on this disk.
    export_dir: Path = ROOT / "data" / "exports"
    # The address residents and phones reach the app at (e.g. https://minyi.example.cn): printed in QR
    # posters and calendar subscriptions. Unset: taken from each request (right behind a proxy only with
    # uvicorn's --proxy-headers).
    public_url: str | None = Field(None, pattern=r"^https?://[^/\s]+(/[^\s]*)?$")
    # Host names the app answers to, comma separated ("*.example.cn": its subdomains; "*": any). Set: a
    # request naming another host gets 400, and without MINYI_PUBLIC_URL absolute URLs (QR codes, posters,
    # calendar and Open311 links) use the request's host only when listed. Unset: every host is served;
    # absolute URLs come from MINYI_PUBLIC_URL, else (development and test only) from localhost,
    # 127.0.0.1, ::1 or testserver (app/http/hosts.py).
    allowed_hosts: str = Field("", max_length=2000)


    # --- WeChat mini-program (docs/integration.md) ---
    wechat_base_url: str = Field("https://api.weixin.qq.com", pattern=r"^https?://[^\s]+$")
    wechat_app_id: str | None = Field(None, max_length=64)
    wechat_app_secret: str | None = Field(None, max_length=128)
    # How long a resident's token (from POST /api/v1/wechat/login) lasts.
    resident_token_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    # The subscription-message template of the reply notice, and which of its keys carries what (the keys'
    # names, e.g. thing1 or time4, decide WeChat's value rules). Unset template: no notices are sent.
    wechat_reply_template_id: str | None = Field(None, max_length=128)
    wechat_reply_fields: dict[str, str] = {
        "character_string1": "tracking_no", "thing2": "content", "phrase3": "status", "thing4": "reply",
        "time5": "answered_at",
    }
    # The mini-program page a notice opens ({id} and {tracking_no} are filled in).
    wechat_reply_page: str | None = Field("pages/forms/detail?id={id}", max_length=256)
    wechat_miniprogram_state: Literal["developer", "trial", "formal"] = "formal"
    # Put text that comes through WeChat through msgSecCheck v2 before accepting it.
    wechat_content_check: bool = False

    # --- SMS to residents (docs/sms.md) ---
    # Who sends: "aliyun" (Dysmsapi), "tencent" (Tencent Cloud SMS), "log" (written to the log only, for a
    # demo) or unset: no SMS. Set but incomplete (a key, the sign name or a template missing): no SMS either,
    # and the pages do not offer it (services/sms.offered).
    sms_provider: Literal["aliyun", "tencent", "log"] | None = None
    # Where the provider's API is (unset: https://dysmsapi.aliyuncs.com or https://sms.tencentcloudapi.com).
    sms_base_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    # Alibaba Cloud AccessKey ID and secret, or Tencent Cloud SecretId and SecretKey.
    sms_access_key_id: str | None = Field(None, max_length=128, pattern=r"^\S+$")
    sms_access_key_secret: str | None = Field(None, max_length=256, pattern=r"^\S+$")
    # The approved signature (签名) shown as 【…】, e.g. 洛社镇党代表工作室.
    sms_sign_name: str | None = Field(None, min_length=2, max_length=32)
    # Tencent only: the SMS application's SmsSdkAppId and the API region.
    sms_sdk_app_id: str | None = Field(None, max_length=32, pattern=r"^[0-9]+$")
    sms_region: str = Field("ap-guangzhou", max_length=32, pattern=r"^[a-z0-9-]+$")
    # Approved template ids (Aliyun TemplateCode such as SMS_123456789, Tencent TemplateId such as 1234567):
    # the receipt (number and code) and the reply notice (number and status).
    sms_receipt_template_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    sms_reply_template_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    # At most this many SMS to one phone number per day (Asia/Shanghai); more are kept as "capped", unsent.
    sms_daily_cap: int = Field(5, ge=1, le=100)
    sms_timeout_seconds: float = Field(10.0, gt=0, le=60)

    # --- photos ---
    photo_dir: Path = ROOT / "data" / "photos"
    photo_max_bytes: int = Field(8 * 1024 * 1024, ge=1024)

    # --- API clients, rate limits, webhooks ---
    # Shared rate-limit counters across processes (redis://host:6379/0); unset: each process counts alone.
    redis_url: str | None = Field(None, pattern=r"^rediss?://\S+$")
    # Namespace of this deployment's keys in Redis (one Redis may serve several).
    redis_prefix: str = Field("minyi:", min_length=1, max_length=50, pattern=r"^\S+$")
    api_rate_limit_per_minute: int = Field(600, ge=1)
    # Deliver webhooks and notices from each app process; turn off when running `minyi worker` instead.
    worker_in_process: bool = True
    worker_poll_seconds: float = Field(1.0, gt=0, le=60)
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # How long a worker's claim on a delivery lasts: a worker that dies mid-delivery leaves it to another
    # after this (at least the webhook timeout plus 5 s is used).
    webhook_lease_seconds: float = Field(60.0, gt=0, le=3600)

    # --- Open311 GeoReport v2 (docs/open311.md) ---
    # The one jurisdiction this endpoint serves: requests naming another get 404 (absent or empty is fine).
    open311_jurisdiction_id: str = Field("luoshe.minyi.cn", min_length=1, max_length=100, pattern=r"^[^\s,]+$")
    # Discovery's human-readable fields, and whether its endpoint is acted upon ("production") or a trial.
    open311_contact: str = Field("洛社镇党代表工作室联络办公室 · Luoshe Party Representative Workrooms office", max_length=300)
    open311_key_service: str = Field("接口密钥由镇党代表工作室管理员在 Minyi 中创建（范围 forms:write）。"
                                     " API keys are issued by the office's Minyi administrator (scope forms:write).",
                                     max_length=300)
    open311_endpoint_type: Literal["production", "test"] = "production"
    # Where a published request is when neither the form nor its service point or workroom says (a form
    # with no location and no workroom): the town itself, so every request carries an address and lat/long
    # as GeoReport clients expect (docs/open311.md 2.3). WGS84 decimal degrees.
    open311_town_address: str = Field("无锡市惠山区洛社镇", min_length=1, max_length=200)
    open311_town_latitude: float = Field(31.6523, ge=-90, le=90)
    open311_town_longitude: float = Field(120.1921, ge=-180, le=180)

    # --- Hardening (issue 8) ---
    # Keys that encrypt residents' names and phone numbers at rest (app/crypto.py): Fernet keys, comma
    # separated, the first encrypts and all decrypt (rotation: put the new key first, run `minyi
    # rotate-keys`, then drop the old). Unset: one key derived from MINYI_SECRET_KEY.
    personal_data_keys: str = Field("", max_length=2000)
    # Closed (or declined) forms lose their submitter's name and phone this many days after closing, when
    # `minyi retention` runs (content and counts stay). 0: kept.
    personal_data_retention_days: int = Field(730, ge=0, le=36_500)
    # Proxies (IPs or CIDR networks, comma separated) whose X-Forwarded-For / X-Forwarded-Proto are
    # believed. Unset: the direct peer is the client (behind an unlisted proxy every resident would share
    # the proxy's address, and its limits).
    trusted_proxies: str = Field("", max_length=2000)
    # Abuse limits (services/abuse.py). Per client IP, a minute: public submissions (anonymous and WeChat
    # residents; staff and API clients have their own accounts and limits), tracking look-ups, logins.
    public_submit_per_ip_per_minute: int = Field(20, ge=1, le=100_000)
    track_per_ip_per_minute: int = Field(30, ge=1, le=100_000)
    login_per_ip_per_minute: int = Field(20, ge=1, le=100_000)
    # Open311's public reads (services, request lists, one request, discovery): anyone on the internet may
    # ask, so each IP has its share (429 in the spec's error shape, with Retry-After).
    open311_read_per_ip_per_minute: int = Field(300, ge=1, le=10_000_000)
    # Wrong verification codes for one tracking number, or failed logins of one account, within the window
    # lock that number or account for the lock time (an admin can lift it early).
    track_failures_before_lock: int = Field(5, ge=1, le=1000)
    login_failures_before_lock: int = Field(5, ge=1, le=1000)
    lockout_window_seconds: int = Field(900, ge=1, le=86_400)
    track_lock_seconds: int = Field(900, ge=1, le=86_400)
    login_lock_seconds: int = Field(900, ge=1, le=86_400)
    # Strict-Transport-Security max-age, sent only on responses served over HTTPS (0: never sent).
    hsts_seconds: int = Field(31_536_000, ge=0)
    # Logs: one JSON object per line (with the request id), or plain text for a terminal.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # When set, GET /metrics asks for "Authorization: Bearer <this>". Unset: open in development and test;
    # in production 404 unless MINYI_METRICS_OPEN says it is served open (on an internal network).
    metrics_token: str | None = Field(None, min_length=16, max_length=200)
    metrics_open: bool = False

    @field_validator("sms_provider", "sms_base_url", "sms_access_key_id", "sms_access_key_secret", "sms_sign_name",
                     "sms_sdk_app_id", "sms_receipt_template_id", "sms_reply_template_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """``MINYI_SMS_PROVIDER=`` (empty) in a .env means unset, as for the other optional settings."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"MINYI_TRUSTED_PROXIES: {item!r} is not an IP address or network") from exc
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if not _HOST_PATTERN.fullmatch(item):
                raise ValueError(f"MINYI_ALLOWED_HOSTS: {item!r} is not a host name, an IP address, "
                                 "'*.domain' or '*'")
        return value

    @field_validator("personal_data_keys")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        from cryptography.fernet import Fernet

        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                Fernet(item)
            except ValueError as exc:
                raise ValueError("MINYI_PERSONAL_DATA_KEYS: each key must be a Fernet key "
                                 "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')") from exc
        return value

    @property
    def personal_data_key_list(self) -> list[str]:
        return [part.strip() for part in self.personal_data_keys.split(",") if part.strip()]

    @property
    def allowed_host_list(self) -> list[str]:
        """MINYI_ALLOWED_HOSTS as given (lower case, IPv6 without brackets): empty when unset."""
        return [part.strip().lower().strip("[]") for part in self.allowed_hosts.split(",") if part.strip()]

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    @model_validator(mode="after")
    def _place_conflict_keeps_places_apart(self) -> Settings:
        if self.similar_place_conflict >= self.similar_threshold:
            raise ValueError("MINYI_SIMILAR_PLACE_CONFLICT must be below MINYI_SIMILAR_THRESHOLD: else two "
                             "forms naming different places (三组 / 四组) could still be the same issue")
        return self

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEFAULT_SECRET:
            raise ValueError("MINYI_SECRET_KEY must be set to a random value in production")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return TZ

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
