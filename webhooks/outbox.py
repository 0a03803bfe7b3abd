"""Events for helpdesk webhooks, written in the same transaction as the change they announce."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from common.clock import utcnow
from common.ids import new_id
from webhooks.events import EVENT_TYPES
from webhooks.tables import OutboundEvent


def _once_id(event_type: str, once: str) -> str:
    return "evt_" + hashlib.sha256(f"{event_type}:{once}".encode()).hexdigest()[:32]


async def recorded(event_type: str, once_keys: Iterable[str]) -> set[str]:
    """Which of ``once_keys`` already have their event recorded."""
    by_id = {_once_id(event_type, key): key for key in once_keys}
    if not by_id:
        return set()
    rows = await OutboundEvent.select(OutboundEvent.id).where(OutboundEvent.id.is_in(list(by_id)))
    return {by_id[r["id"]] for r in rows}


async def emit(
    event_type: str,
    data: Mapping[str, Any] | msgspec.Struct,
    *,
    customer_id: str | None,
    once: str | None = None,
) -> str:
    """Record an outbound event; delivery to subscribed endpoints happens in the worker.

    With ``once``, the event's id derives from that key and a second emit with the same
    key records nothing (for announcements a periodic job may make more than once).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown outbound event type {event_type!r}")
    event_id = new_id("evt") if once is None else _once_id(event_type, once)
    query = OutboundEvent.insert(
        OutboundEvent(
            id=event_id,
            type=event_type,
            created_at=utcnow(),
            customer_id=customer_id,
            data=msgspec.json.decode(msgspec.json.encode(data)),
        )
    )
    if once is not None:
        query = query.on_conflict(target=OutboundEvent.id, action="DO NOTHING")
    await query
    return event_id


Announcement = tuple[str, Mapping[str, Any] | msgspec.Struct, str | None]  # type, data, customer


async def emit_many(events: Sequence[Announcement]) -> list[str]:
    """Record many outbound events in one statement (a batch of breaches announces each).

    Each gets its own ``created_at``, a microsecond after the one before: the dispatcher
    delivers by (``created_at``, ``id``), and ids made in one millisecond sort at random,
    so a breach and its escalation would otherwise go out in either order.
    """
    for event_type, _, _ in events:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown outbound event type {event_type!r}")
    if not events:
        return []
    ids = [new_id("evt") for _ in events]
    await OutboundEvent.raw(
        "INSERT INTO outbound_event (id, type, created_at, customer_id, data)"
        " SELECT e.id, e.type, {}::timestamptz + e.n * interval '1 microsecond',"
        " e.customer_id, e.data::jsonb"
        " FROM unnest({}::text[], {}::text[], {}::text[], {}::text[])"
        " WITH ORDINALITY AS e(id, type, customer_id, data, n) ORDER BY e.n",
        utcnow(),
        ids,
        [t for t, _, _ in events],
        [c for _, _, c in events],
        [msgspec.json.encode(d).decode() for _, d, _ in events],
    )
    return ids
