"""Events for helpdesk webhooks, written in the same transaction as the change they announce."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from common.clock import utcnow
from common.ids import new_id
from common.tables import OutboundEvent

EVENT_TYPES: Final = (
    "sla.warning",
    "sla.breached",
    "sla.achieved",
    "sla.escalated",
    "service_credit.issued",
    "entitlement.updated",
    "fast_track.purchased",
)


async def emit(
    event_type: str, data: Mapping[str, Any] | msgspec.Struct, *, customer_id: str | None
) -> str:
    """Record an outbound event; delivery to subscribed endpoints happens in the worker."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown outbound event type {event_type!r}")
    event_id = new_id("evt")
    await OutboundEvent.insert(
        OutboundEvent(
            id=event_id,
            type=event_type,
            created_at=utcnow(),
            customer_id=customer_id,
            data=msgspec.json.decode(msgspec.json.encode(data)),
        )
    )
    return event_id
