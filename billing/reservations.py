"""Housekeeping of reservations whose Stripe create never finished.

A create reserves its row before asking Stripe (see ``customers.create_customer``,
``subscriptions.create``, ``fasttrack.purchase``). When the answer was lost and no
retry came, Stripe's own event finishes the row if Stripe made the object (the
webhook or the catch-up). A reservation still unfinished after ``ABANDONED_AFTER``
made nothing in Stripe that we will ever hear of (Stripe forgets idempotency keys
after 24 hours and has delivered or listed every event by then): it is dropped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from billing.tables import Customer, FastTrackPurchase, Subscription
from common import audit
from common.clock import utcnow
from common.db import engine

ABANDONED_AFTER: Final = timedelta(days=3)


async def expire_abandoned() -> int:
    """Drop reservations unfinished for ``ABANDONED_AFTER``; returns how many."""
    cutoff = utcnow() - ABANDONED_AFTER
    async with engine().transaction():
        customers = (
            await Customer.delete()
            .where(
                Customer.stripe_customer_id.is_null()
                & Customer.stripe_lease_until.is_not_null()
                & (Customer.created_at < cutoff)
            )
            .returning(Customer.id)
        )
        subscriptions = (
            await Subscription.delete()
            .where(
                Subscription.stripe_lease_until.is_not_null()
                & Subscription.stripe_subscription_id.is_null()
                & Subscription.stripe_checkout_session_id.is_null()
                & (Subscription.created_at < cutoff)
            )
            .returning(Subscription.id)
        )
        purchases = (
            await FastTrackPurchase.update(
                {
                    FastTrackPurchase.status: "failed",
                    FastTrackPurchase.stripe_lease_until: None,
                    FastTrackPurchase.failure_reason: "abandoned: Stripe never confirmed it",
                }
            )
            .where(
                FastTrackPurchase.stripe_lease_until.is_not_null()
                & FastTrackPurchase.stripe_payment_intent_id.is_null()
                & FastTrackPurchase.stripe_checkout_session_id.is_null()
                & (FastTrackPurchase.created_at < cutoff)
            )
            .returning(FastTrackPurchase.id)
        )
        for kind, rows in (
            ("customer", customers),
            ("subscription", subscriptions),
            ("fast_track_purchase", purchases),
        ):
            for row in rows:
                await audit.record(f"{kind}.reservation_abandoned", kind, str(row["id"]))
    return len(customers) + len(subscriptions) + len(purchases)
