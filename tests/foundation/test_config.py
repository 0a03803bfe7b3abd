"""Configuration is read from the environment and refused with a clear message when bad."""

from __future__ import annotations

import pytest

from common.config import ConfigError, load_settings


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings.port == 8000
    assert settings.database_url is None
    assert settings.uses_stripe_emulator
    assert settings.rate_limit_per_minute == 600
    assert settings.database_pool_size == 20
    assert settings.sla_warning_fractions == (0.5, 0.75, 0.9)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"PORT": "0"}, "PORT must be >= 1"),
        ({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE must be >= 1"),
        ({"FAST_TRACK_EXPIRY_DAYS": "0"}, "FAST_TRACK_EXPIRY_DAYS must be >= 1"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must be a URL with scheme postgres"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must be a URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of"),
        ({"RATE_LIMIT_PER_MINUTE": "-1"}, "RATE_LIMIT_PER_MINUTE must be >= 0"),
        ({"STRIPE_API_KEY": "pk_test_123"}, "STRIPE_API_KEY must be a Stripe secret"),
        ({"SLA_WARNING_FRACTIONS": "0.5,1.5"}, "strictly between 0 and 1"),
        ({"SLA_ESCALATION_MINUTES": "60,0"}, "ascending"),
        ({"APP_ENV": "staging"}, "APP_ENV must be one of"),
        ({"APP_ENV": "production"}, r"STRIPE_API_KEY \(a real Stripe key\) is required"),
        (
            {"APP_ENV": "production", "STRIPE_API_KEY": "sk_test_emulator"},
            r"STRIPE_API_KEY \(a real Stripe key\) is required",
        ),
        ({"LOG_JSON": "maybe"}, "LOG_JSON must be true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "PORT": "9000",
            "DATABASE_URL": "postgresql://u@h/db",
            "REDIS_URL": "redis://h:6379/1",
            "STRIPE_API_KEY": "sk_test_abc",
            "RATE_LIMIT_PER_MINUTE": "0",
            "SLA_WARNING_FRACTIONS": "0.8, 0.5",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.port == 9000
    assert settings.rate_limit_per_minute == 0
    assert settings.sla_warning_fractions == (0.5, 0.8)
    assert settings.log_level == "DEBUG"
    assert not settings.uses_stripe_emulator
