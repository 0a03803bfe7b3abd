"""The one injectable clock: every 'now' in the service comes from here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731 - swappable in tests


def utcnow() -> datetime:
    """The current instant, aware UTC."""
    return _now()


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Pin the clock to ``at`` (tests and replays of history)."""
    global _now
    if at.tzinfo is None:
        raise ValueError("the clock only holds aware datetimes")
    previous = _now
    _now = lambda: at  # noqa: E731
    try:
        yield
    finally:
        _now = previous


def ensure_utc(value: datetime, *, field: str = "time") -> datetime:
    """Reject naive datetimes and normalise aware ones to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must carry a timezone offset")
    return value.astimezone(UTC)
