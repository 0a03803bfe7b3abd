"""The outbound event vocabulary: its types, the wildcard, and which endpoints an event reaches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, get_args

from webhooks.exceptions import InvalidEndpoint

EventType = Literal[
    "sla.warning",
    "sla.breached",
    "sla.achieved",
    "sla.escalated",
    "service_credit.issued",
    "entitlement.updated",
    "fast_track.purchased",
]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)

WILDCARD: Final = "*"
# What an endpoint subscribes to: event types, or the wildcard alone for every type.
EventSelector = Literal["*", EventType]


def normalize_events(events: Sequence[str]) -> list[str]:
    """Known event types, deduplicated in the given order; ``*`` alone stands for every type."""
    unknown = sorted({e for e in events if e != WILDCARD and e not in EVENT_TYPES})
    if unknown:
        raise InvalidEndpoint(
            f"unknown event types: {', '.join(unknown)}; "
            f"known: {', '.join(EVENT_TYPES)} (or {WILDCARD!r} for all)",
            field="events",
        )
    if not events:
        raise InvalidEndpoint("events must name at least one event type", field="events")
    if WILDCARD in events:
        return [WILDCARD]
    return list(dict.fromkeys(events))


def subscribed(events: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``events`` receives an event of ``event_type``."""
    return WILDCARD in events or event_type in events
