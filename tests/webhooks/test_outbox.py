"""The outbox: events recorded in one batch go out in the order they were announced."""

from __future__ import annotations

import pytest

from webhooks import outbox
from webhooks.tables import OutboundEvent


async def test_a_batch_is_recorded_in_announcement_order(clean_db: None) -> None:
    announced = [
        ("sla.breached", {"n": 0}, "cust_a"),
        ("sla.escalated", {"n": 1}, "cust_a"),
        ("sla.escalated", {"n": 2}, "cust_a"),
        ("sla.breached", {"n": 3}, "cust_b"),
    ] * 50  # 200 events: many share a millisecond, so their ids sort at random
    ids = await outbox.emit_many(announced)
    # The dispatcher's order: (created_at, id).
    rows = (
        await OutboundEvent.select(
            OutboundEvent.id, OutboundEvent.type, OutboundEvent.customer_id, OutboundEvent.data
        )
        .order_by(OutboundEvent.created_at, OutboundEvent.id)
        .output(load_json=True)
    )
    assert [r["id"] for r in rows] == ids
    assert [(r["type"], r["data"], r["customer_id"]) for r in rows] == [
        (t, d, c) for t, d, c in announced
    ]


async def test_an_unknown_type_records_nothing(clean_db: None) -> None:
    with pytest.raises(ValueError, match=r"sla\.nope"):
        await outbox.emit_many([("sla.breached", {}, None), ("sla.nope", {}, None)])
    assert await OutboundEvent.count() == 0
