"""Fan-out of recorded events into deliveries (once per endpoint), and the sweep of due ones."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from common import db
from common.clock import utcnow
from common.ids import new_id
from webhooks.events import subscribed
from webhooks.schemas import PENDING, WAITING, DueDelivery
from webhooks.tables import OutboundEvent, WebhookDelivery, WebhookEndpoint

DISPATCH_BATCH: Final = 500
INSERT_CHUNK: Final = 500
SWEEP_LIMIT: Final = 1000


def event_body(event_id: str, event_type: str, created: datetime, data: Any) -> bytes:
    """The JSON body every attempt of every delivery of this event sends."""
    return msgspec.json.encode(
        {"id": event_id, "type": event_type, "created": int(created.timestamp()), "data": data}
    )


async def _dispatch_batch(retry_window: timedelta, batch_size: int) -> int:
    async with db.engine().transaction():
        # SKIP LOCKED: concurrent dispatchers take disjoint events, none waits on another.
        events = (
            await OutboundEvent.select(
                OutboundEvent.id, OutboundEvent.type, OutboundEvent.created_at, OutboundEvent.data
            )
            .where(OutboundEvent.dispatched_at.is_null())
            .order_by(OutboundEvent.created_at, OutboundEvent.id)
            .limit(batch_size)
            .lock_rows(skip_locked=True)
            .output(load_json=True)
        )
        if not events:
            return 0
        endpoints = await WebhookEndpoint.select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.disabled_at.is_null()
        )
        now = utcnow()
        pairs = [
            (event, endpoint)
            for event in events
            for endpoint in endpoints
            if subscribed(endpoint["events"], event["type"])
        ]
        # Ids minted in one millisecond do not sort by creation; sorted and handed out in
        # event order, they keep the delivery log (ordered by id) in the events' order.
        ids = sorted(new_id("whdl") for _ in pairs)
        rows = [
            WebhookDelivery(
                id=delivery_id,
                endpoint_id=endpoint["id"],
                event_id=event["id"],
                event_type=event["type"],
                payload=event_body(
                    event["id"], event["type"], event["created_at"], event["data"]
                ).decode(),
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                retry_until=event["created_at"] + retry_window,
                history=[],
                created_at=now,
            )
            for delivery_id, (event, endpoint) in zip(ids, pairs, strict=True)
        ]
        # Chunked: one statement carries every value as a parameter, and PostgreSQL takes
        # at most 32767 of them.
        for start in range(0, len(rows), INSERT_CHUNK):
            # The unique (event_id, endpoint_id) index makes a second fan-out a no-op.
            await WebhookDelivery.insert(*rows[start : start + INSERT_CHUNK]).on_conflict(
                target=(WebhookDelivery.event_id, WebhookDelivery.endpoint_id),
                action="DO NOTHING",
            )
        await OutboundEvent.update({OutboundEvent.dispatched_at: now}).where(
            OutboundEvent.id.is_in([event["id"] for event in events])
        )
    return len(events)


async def dispatch_pending(
    *, retry_hours: int, batch_size: int = DISPATCH_BATCH, max_batches: int = 20
) -> int:
    """Fan undispatched outbound events out into one delivery per subscribed enabled endpoint.

    Returns the number of events dispatched. Each event is dispatched exactly once, even with
    several dispatchers running; its deliveries are then due now (see ``due_deliveries``).
    """
    window = timedelta(hours=retry_hours)
    total = 0
    for _ in range(max_batches):
        count = await _dispatch_batch(window, batch_size)
        total += count
        if count < batch_size:
            break
    return total


async def due_deliveries(limit: int = SWEEP_LIMIT) -> list[DueDelivery]:
    """Deliveries whose next attempt is due, including attempts abandoned by a dead worker."""
    rows = (
        await WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
        .where(
            WebhookDelivery.status.is_in(list(WAITING))
            & (WebhookDelivery.next_attempt_at <= utcnow())
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    return [DueDelivery(id=r["id"], due_at=r["next_attempt_at"]) for r in rows]
