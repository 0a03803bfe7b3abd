"""The one rule for out-of-order Stripe events: an older event never overwrites newer state.

Stripe sends events in any order, several in one second, and again after a failure. Each
mirrored object keeps the key of the event it was last built from; an event applies only
when its key is greater. Keys order by Stripe's ``created`` (seconds), then the object's
lifecycle stage (within one second, ``paid`` follows ``open``), then the event id (a
total order, so two workers agree). An object read straight from Stripe's API (no event)
is the newest thing known at that moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

SUBSCRIPTION_STAGES: Final[Mapping[str, int]] = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "unpaid": 4,
    "paused": 4,
    "incomplete_expired": 5,
    "canceled": 6,
}
INVOICE_STAGES: Final[Mapping[str, int]] = {
    "draft": 0,
    "open": 1,
    "uncollectible": 2,
    "paid": 3,
    "void": 3,
}


def event_key(created: int, stage: int, event_id: str) -> str:
    """The key of one event about one object."""
    return f"{created:012d}:{stage}:{event_id}"


def api_key(stored: str, stage: int, now: datetime) -> str:
    """The key of an object read from Stripe's API now: newer than anything applied."""
    return max(event_key(int(now.timestamp()), stage, "api"), stored + "+")


def applies(key: str, stored: str) -> bool:
    """Whether the event keyed ``key`` is newer than the state built from ``stored``."""
    return not stored or key > stored


def key_time(key: str) -> datetime:
    """The instant (Stripe's ``created``) a key stands for."""
    return datetime.fromtimestamp(int(key.split(":", 1)[0]), UTC)
