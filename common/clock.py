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


def past_instant(value: datetime, *, field: str, now: datetime | None = None) -> datetime:
    """An instant a request reports (``at``, ``opened_at``…): aware, not in the future; UTC.

    Refusals are ``InvalidRequest`` naming ``field`` (422: well-formed, not acceptable).
    """
    from common.errors import InvalidRequest

    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(f"{field} must carry a timezone offset (RFC 3339)", field=field)
    at = value.astimezone(UTC)
    now = now or utcnow()
    if at > now:
        shown = at.isoformat().replace("+00:00", "Z")
        raise InvalidRequest(f"{field} {shown} is in the future", field=field)
    return at


def window(
    start: datetime, end: datetime, *, start_field: str = "from", end_field: str = "to"
) -> tuple[datetime, datetime]:
    """A half-open interval ``[start, end)`` a request asks about, in UTC.

    ``start`` not before ``end`` is ``InvalidRequest`` (422): each is a well-formed time the
    schema admits, and the pair is refused by a rule the schema cannot state.
    """
    from common.errors import InvalidRequest

    for value, field in ((start, start_field), (end, end_field)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidRequest(f"{field} must carry a timezone offset (RFC 3339)", field=field)
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    if s >= e:
        raise InvalidRequest(f"{start_field} must be before {end_field}", field=start_field)
    return s, e
