"""One settings object for the whole app, read from the environment (prefix ``MINYI_``) or ``.env``.

Every field here is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET = "dev-secret-change-me"
# Times are stored in UTC and shown in the town's time zone (DESIGN: "Storage and scale").
TZ = ZoneInfo("Asia/Shanghai")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINYI_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = f"sqlite+aiosqlite:///{ROOT / 'data' / 'minyi.db'}"
    db_pool_size: int = Field(10, ge=1, le=200)
    db_echo: bool = False
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
    # How long a process may answer statistics from its cache (0: never cache). See services/read_cache.py.
    stats_cache_seconds: float = Field(1.0, ge=0, le=60)
    # How long a process may trust a bearer token it already checked (0: check every request).
    auth_cache_seconds: float = Field(5.0, ge=0, le=60)
    # Where background exports write their files. With several app processes on several hosts, share it
    # (or send a job's polls and download to the process that ran it): the job row is in the database,
    # the file is on this disk.
    export_dir: Path = ROOT / "data" / "exports"
    # The address residents and phones reach the app at (e.g. https://minyi.example.cn): printed in QR
    # posters and calendar subscriptions. Unset: taken from each request (right behind a proxy only with
    # uvicorn's --proxy-headers).
    public_url: str | None = Field(None, pattern=r"^https?://[^/\s]+(/[^\s]*)?$")

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
