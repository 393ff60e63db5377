"""Deployment settings read once from the environment (DESIGN §3); a bad value is a ConfigurationError."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache

from idv.errors import ConfigurationError

COMPARE_MODES = ("plain", "aes")
PRICED_CHECKS = ("compare", "four_factor", "portrait", "faceid")
# Placeholders (CNY per charged call), to be replaced with the prices of the deployment's contract.
PLACEHOLDER_PRICES = '{"compare": "0.60", "four_factor": "1.00", "portrait": "0.50", "faceid": "1.50"}'


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
    # Money controls (DESIGN §3, §8; `idv.controls`). Amounts are integer fen (0.01 CNY), never floats.
    usage_table: str = ""
    usage_report_table: str = ""
    subject_daily_limit: int = 10  # 0: no limit
    dedupe_window_seconds: int = 600  # 0: off
    daily_spend_limit_fen: int | None = None  # None: no cap
    prices_fen: tuple[tuple[str, int], ...] = ()

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86400

    def price_fen(self, check: str) -> int:
        """The price of one charged call of the check, in fen (0 for a check without a price)."""
        return dict(self.prices_fen).get(check, 0)

    @property
    def controls_on(self) -> bool:
        return bool(self.subject_daily_limit or self.dedupe_window_seconds or self.daily_spend_limit_fen is not None)


def _number(name: str, default: str, kind: type, low: float, high: float) -> float | int:
    raw = os.environ.get(name, "").strip() or default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"environment variable {name} must be between {low:g} and {high:g}")
    return float(value) if kind is float else int(value)


def fen(raw: str, name: str) -> int:
    """A decimal string of CNY as integer fen ("1.5" → 150); more than 2 decimals, a sign or junk is an error."""
    try:
        value = Decimal(raw.strip())
    except (InvalidOperation, ValueError):
        raise ConfigurationError(f'{name} must be a decimal amount of CNY such as "0.50", got {raw!r}') from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")) or value > 10**9:
        raise ConfigurationError(f"{name} must be a non-negative amount of CNY with at most 2 decimals, got {raw!r}")
    return int(value * 100)


def prices_from_env(raw: str) -> tuple[tuple[str, int], ...]:
    """PROVIDER_PRICES: a JSON object naming every check with its price as a decimal string."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigurationError("PROVIDER_PRICES must be a JSON object of check → price (decimal string)") from None
    if not isinstance(data, dict) or set(data) != set(PRICED_CHECKS):
        raise ConfigurationError(f"PROVIDER_PRICES must name exactly the checks {', '.join(PRICED_CHECKS)}")
    if not all(isinstance(v, str) for v in data.values()):
        raise ConfigurationError('PROVIDER_PRICES values must be decimal strings such as "0.50" (never floats)')
    return tuple((check, fen(data[check], f"PROVIDER_PRICES[{check}]")) for check in PRICED_CHECKS)


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
        usage_table=env.get("USAGE_TABLE", ""),
        usage_report_table=env.get("USAGE_REPORT_TABLE", ""),
        subject_daily_limit=int(_number("SUBJECT_DAILY_LIMIT", "10", int, 0, 1_000_000)),
        dedupe_window_seconds=int(_number("DEDUPE_WINDOW_SECONDS", "600", int, 0, 86400)),
        daily_spend_limit_fen=(
            fen(env["DAILY_SPEND_LIMIT"], "DAILY_SPEND_LIMIT") if env.get("DAILY_SPEND_LIMIT", "").strip() else None
        ),
        prices_fen=prices_from_env(env.get("PROVIDER_PRICES", "").strip() or PLACEHOLDER_PRICES),
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
