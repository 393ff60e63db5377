"""Deployment settings read once from the environment (DESIGN §3); a bad value is a ConfigurationError."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from idv.errors import ConfigurationError

COMPARE_MODES = ("plain", "aes")


@dataclass(frozen=True, slots=True)
class Settings:
    verifications_table: str
    idempotency_table: str
    provider_secret_id: str
    upload_bucket: str
    event_bus_name: str
    data_key_id: str
    juhe_base_url: str = "https://apis.juhe.cn"
    apetime_base_url: str = "https://api.apetime.cn"
    juhe_compare_mode: str = "plain"
    face_score_threshold: float = 60.0
    retention_days: int = 30
    public_base_url: str = ""
    allowed_redirect_hosts: tuple[str, ...] = ()
    # PROVIDER_READ_TIMEOUT_SECONDS (optional): one read timeout for every provider call instead of the
    # clients' per-API defaults (Juhe 10 s / FaceID 5 s, Apetime 10 s). Unset keeps the defaults.
    provider_read_timeout: float | None = None
    # UPLOAD_QUEUE_URL (upload worker only): where a deferred message or a handed-off result is re-queued.
    upload_queue_url: str = ""

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86400


def _number(name: str, default: str, kind: type, low: float, high: float) -> float | int:
    raw = os.environ.get(name, "").strip() or default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"environment variable {name} must be between {low:g} and {high:g}")
    return float(value) if kind is float else int(value)


def settings_from_env() -> Settings:
    env = os.environ
    mode = env.get("JUHE_COMPARE_MODE", "plain").strip().lower() or "plain"
    if mode not in COMPARE_MODES:
        raise ConfigurationError(f"JUHE_COMPARE_MODE must be 'plain' or 'aes', got {mode!r}")
    hosts = tuple(h.strip().lower() for h in env.get("ALLOWED_REDIRECT_HOSTS", "").split(",") if h.strip())
    return Settings(
        verifications_table=env.get("VERIFICATIONS_TABLE", ""),
        idempotency_table=env.get("IDEMPOTENCY_TABLE", ""),
        provider_secret_id=env.get("PROVIDER_SECRET_ID", ""),
        upload_bucket=env.get("UPLOAD_BUCKET", ""),
        event_bus_name=env.get("EVENT_BUS_NAME", ""),
        data_key_id=env.get("DATA_KEY_ID", ""),
        juhe_base_url=(env.get("JUHE_BASE_URL") or "https://apis.juhe.cn").rstrip("/"),
        apetime_base_url=(env.get("APETIME_BASE_URL") or "https://api.apetime.cn").rstrip("/"),
        juhe_compare_mode=mode,
        face_score_threshold=float(_number("FACE_SCORE_THRESHOLD", "60", float, 0, 100)),
        retention_days=int(_number("RETENTION_DAYS", "30", int, 1, 3650)),
        public_base_url=env.get("PUBLIC_BASE_URL", "").strip().rstrip("/"),
        allowed_redirect_hosts=hosts,
        upload_queue_url=env.get("UPLOAD_QUEUE_URL", "").strip(),
        provider_read_timeout=(
            float(_number("PROVIDER_READ_TIMEOUT_SECONDS", "", float, 0.1, 60))
            if env.get("PROVIDER_READ_TIMEOUT_SECONDS", "").strip()
            else None
        ),
    )


@cache
def get_settings() -> Settings:
    """Settings of this container, read on first use (tests call `get_settings.cache_clear()`)."""
    return settings_from_env()


def require(value: str, name: str) -> str:
    """The setting's value, or a ConfigurationError naming the environment variable to set."""
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value
