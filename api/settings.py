"""Settings from the environment (PHOTOSTREAM_*) or a .env file: embedded by default."""
from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSTREAM_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="where the embedded stores and the secret live")
    event_store: str = Field("", description="sqlite:///path or kafka://host:port")
    read_store: str = Field("", description="sqlite:///path or cassandra://host:port/keyspace")
    media_store: str = Field("", description="file:///path or s3://ACCESS:SECRET@host:port/bucket")
    secret_key: str = Field("", description="signs bearer tokens; generated into the data dir when empty")
    celebrity_threshold: int = Field(10_000, ge=1, description="followers from which an author's posts are pulled, not pushed")
    celebrity_hysteresis: float = Field(
        0.1, ge=0, lt=1, description="a celebrity is pushed again only below threshold x (1 - this)"
    )
    feed_read: Literal["hybrid", "naive"] = Field(
        "hybrid", description="naive: the feed joins follows and posts per request (fan-out on read), the benchmark's baseline"
    )
    celebrity_sources: int = Field(50, ge=1, le=1000, description="most celebrities one feed read merges")
    timeline_max: int = Field(800, ge=10, le=100_000)
    inactive_days: int = Field(30, ge=1)
    token_ttl_days: int = Field(30, ge=1, le=365)
    max_upload_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    max_upload_pixels: int = Field(50_000_000, ge=1)
    notification_group_hours: float = Field(12, gt=0, le=24 * 365, description="likes of a post within this window are one notification")
    stream_heartbeat_seconds: float = Field(20, gt=0, le=300, description="how often /v1/stream sends a heartbeat")
    stream_queue_max: int = Field(256, ge=1, le=100_000, description="frames a slow /v1/stream client may lag by before it is dropped")
    consistency_wait_seconds: float = Field(5.0, ge=0, le=60)
    worker_id: int | None = Field(None, ge=0, le=1023, description="snowflake worker bits; random when unset")
    log_level: str = Field("info")
    # Token buckets per action: "<burst>/<seconds>" = at most <burst> at once, refilled at
    # <burst> per <seconds>; one limit per account and one per client address
    # (api/ratelimit.py). PHOTOSTREAM_RATE_LIMITS='{"sign_in": {"address": "5/60"}}'
    # overrides single entries; "0/1" switches one off.
    rate_limits: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Multiplies every burst (tests that sign up many accounts from one address set it).
    rate_limit_scale: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        data = self.data_dir.expanduser().resolve()
        self.data_dir = data
        if not self.event_store:
            self.event_store = f"sqlite:///{data / 'events.db'}"
        if not self.read_store:
            self.read_store = f"sqlite:///{data / 'views.db'}"
        if not self.media_store:
            self.media_store = f"file://{data / 'media'}"
        return self

    @field_validator("event_store")
    @classmethod
    def _event_store_scheme(cls, url: str) -> str:
        return _check_scheme("PHOTOSTREAM_EVENT_STORE", url, ("sqlite", "kafka"))

    @field_validator("read_store")
    @classmethod
    def _read_store_scheme(cls, url: str) -> str:
        return _check_scheme("PHOTOSTREAM_READ_STORE", url, ("sqlite", "cassandra"))

    @field_validator("media_store")
    @classmethod
    def _media_store_scheme(cls, url: str) -> str:
        return _check_scheme("PHOTOSTREAM_MEDIA_STORE", url, ("file", "s3", "s3+https"))

    @field_validator("log_level")
    @classmethod
    def _level(cls, level: str) -> str:
        if level.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("PHOTOSTREAM_LOG_LEVEL must be debug, info, warning or error")
        return level.lower()

    @property
    def embedded(self) -> bool:
        return self.event_store.startswith("sqlite:") and self.read_store.startswith("sqlite:")


def _check_scheme(name: str, url: str, allowed: tuple[str, ...]) -> str:
    if not url:
        return url
    scheme = urlsplit(url).scheme
    if scheme not in allowed:
        raise ValueError(f"{name}={url!r}: the scheme must be one of {', '.join(allowed)}")
    return url
