"""Service settings read from the environment, validated once at start."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

import msgspec

PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
# Only lets tooling import piccolo_conf before a database is known; never connected to.
UNCONFIGURED_DATABASE_URL: Final = "postgresql://localhost:5432/support_billing"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
ENVIRONMENTS: Final = ("development", "test", "production")
# The dev-only Stripe emulator's key and webhook secret: public by design, refused in
# production (APP_ENV=production requires a real key and secret).
EMULATOR_API_KEY: Final = "sk_test_emulator"
EMULATOR_WEBHOOK_SECRET: Final = "whsec_emulator_dev_secret"  # noqa: S105 - public, dev only


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the API and the worker read from the environment."""

    environment: str = "development"
    database_url: str | None = None
    redis_url: str | None = None
    database_pool_size: int = 20
    worker_database_pool_size: int = 12
    database_acquire_timeout_seconds: float = 5.0
    data_dir: Path = PROJECT_ROOT / ".data"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_json: bool = False
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_emulator_port: int = 12111
    stripe_max_retries: int = 3
    stripe_timeout_seconds: float = 20.0
    public_base_url: str | None = None
    rate_limit_per_minute: int = 600
    idempotency_ttl_hours: int = 24
    lease_seconds: float = 30.0
    past_due_grace_days: int = 7
    fast_track_expiry_days: int = 365
    sla_warning_fractions: tuple[float, ...] = (0.5, 0.75, 0.9)
    sla_sweep_seconds: int = 5
    sla_escalation_minutes: tuple[int, ...] = (0, 60, 240)
    webhook_retry_hours: int = 24
    stripe_catchup_seconds: int = 300

    @property
    def redis(self) -> str:
        """The Redis URL in use (the launcher exports the embedded one when none is set)."""
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def uses_stripe_emulator(self) -> bool:
        return self.stripe_api_key in (None, EMULATOR_API_KEY)

    @property
    def webhook_secret(self) -> str:
        """The secret inbound Stripe webhooks are signed with."""
        return self.stripe_webhook_secret or EMULATOR_WEBHOOK_SECRET


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value < 86_400:
        raise ConfigError(f"{name} must be more than 0 and less than a day, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not (parsed.hostname or parsed.path):
        raise ConfigError(f"{name} must be a URL with scheme {' or '.join(schemes)}, got {raw!r}")
    return raw


def _fractions(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = tuple(sorted({float(part) for part in raw.split(",") if part.strip()}))
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated fractions, got {raw!r}") from None
    if not all(0 < v < 1 for v in values):
        raise ConfigError(f"{name} fractions must lie strictly between 0 and 1, got {raw!r}")
    return values


def _minutes_list(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated minutes, got {raw!r}") from None
    if any(v < 0 for v in values) or list(values) != sorted(values):
        raise ConfigError(f"{name} must be ascending non-negative minutes, got {raw!r}")
    return values


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    environment = env.get("APP_ENV", "development").strip().lower() or "development"
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    stripe_key = env.get("STRIPE_API_KEY") or None
    if stripe_key is not None and not stripe_key.startswith(("sk_", "rk_")):
        raise ConfigError("STRIPE_API_KEY must be a Stripe secret or restricted key (sk_… / rk_…)")
    webhook_secret = env.get("STRIPE_WEBHOOK_SECRET") or None
    if environment == "production":
        if stripe_key is None or stripe_key == EMULATOR_API_KEY:
            raise ConfigError(
                "STRIPE_API_KEY (a real Stripe key) is required when APP_ENV=production"
            )
        if webhook_secret is None:
            raise ConfigError("STRIPE_WEBHOOK_SECRET is required when APP_ENV=production")
        for required in ("DATABASE_URL", "REDIS_URL"):
            if not env.get(required):
                raise ConfigError(f"{required} is required when APP_ENV=production")
    data_dir = Path(env.get("DATA_DIR") or PROJECT_ROOT / ".data")
    return Settings(
        environment=environment,
        database_url=_url(env, "DATABASE_URL", ("postgres", "postgresql")),
        redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
        database_pool_size=_int(env, "DATABASE_POOL_SIZE", 20, minimum=1),
        worker_database_pool_size=_int(env, "WORKER_DATABASE_POOL_SIZE", 12, minimum=2),
        database_acquire_timeout_seconds=_seconds(env, "DATABASE_ACQUIRE_TIMEOUT_SECONDS", 5.0),
        data_dir=data_dir,
        host=env.get("HOST", "127.0.0.1"),
        port=_int(env, "PORT", 8000, minimum=1),
        log_level=log_level,
        log_json=_bool(env, "LOG_JSON", environment == "production"),
        stripe_api_key=stripe_key,
        stripe_api_base=_url(env, "STRIPE_API_BASE", ("http", "https")),
        stripe_webhook_secret=webhook_secret,
        stripe_emulator_port=_int(env, "STRIPE_EMULATOR_PORT", 12111, minimum=1),
        stripe_max_retries=_int(env, "STRIPE_MAX_RETRIES", 3),
        stripe_timeout_seconds=float(_int(env, "STRIPE_TIMEOUT_SECONDS", 20, minimum=1)),
        public_base_url=_url(env, "PUBLIC_BASE_URL", ("http", "https")),
        rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 600),
        idempotency_ttl_hours=_int(env, "IDEMPOTENCY_TTL_HOURS", 24, minimum=1),
        lease_seconds=_seconds(env, "LEASE_SECONDS", 30.0),
        past_due_grace_days=_int(env, "PAST_DUE_GRACE_DAYS", 7),
        fast_track_expiry_days=_int(env, "FAST_TRACK_EXPIRY_DAYS", 365, minimum=1),
        sla_warning_fractions=_fractions(env, "SLA_WARNING_FRACTIONS", (0.5, 0.75, 0.9)),
        sla_sweep_seconds=_int(env, "SLA_SWEEP_SECONDS", 5, minimum=1),
        sla_escalation_minutes=_minutes_list(env, "SLA_ESCALATION_MINUTES", (0, 60, 240)),
        webhook_retry_hours=_int(env, "WEBHOOK_RETRY_HOURS", 24, minimum=1),
        stripe_catchup_seconds=_int(env, "STRIPE_CATCHUP_SECONDS", 300, minimum=5),
    )


def engine_dsn() -> str:
    """DATABASE_URL for piccolo_conf's engine, read when the engine is built.

    The launcher exports the embedded server's URL before any table is used; the
    fallback only lets tooling import piccolo_conf without a database.
    """
    return os.environ.get("DATABASE_URL") or UNCONFIGURED_DATABASE_URL


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def configure_logging(settings: Settings) -> None:
    """Structured logging: key=value lines in development, JSON lines in production."""
    from common.logging import setup

    setup(level=logging.getLevelName(settings.log_level), json_lines=settings.log_json)
