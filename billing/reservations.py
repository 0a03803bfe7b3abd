"""Reservations: a row claimed before Stripe is asked to make its object.

A create (``customers.create_customer``, ``subscriptions.create``,
``fasttrack.purchase``) inserts its row first with ``stripe_lease_until`` set: while
that column is set the Stripe create is unfinished, and its value says until when the
attempt in progress holds it (renewed while the request runs). Finishing clears it.
An attempt whose outcome is unknown lets the lease lapse; the next identical request
takes it over and asks Stripe again under the same idempotency key.

When the answer was lost and no retry came, Stripe's own event finishes the row if
Stripe made the object (the webhook or the catch-up). A reservation still unfinished
after ``ABANDONED_AFTER`` made nothing in Stripe that we will ever hear of (Stripe
forgets idempotency keys after 24 hours and has delivered or listed every event by
then): it is dropped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Final

from billing.tables import Customer, FastTrackPurchase, Subscription
from common import audit, leases
from common.clock import utcnow
from common.db import engine

log = logging.getLogger("billing.reservations")

Reserved = type[Customer] | type[Subscription] | type[FastTrackPurchase]


async def take(table: Reserved, row_id: str, now: datetime) -> bool:
    """Take over an unfinished reservation whose lease lapsed; False while it is held."""
    taken = await table.raw(
        f"UPDATE {table._meta.tablename} SET stripe_lease_until = {{}}"  # noqa: S608 - own table
        " WHERE id = {} AND stripe_lease_until IS NOT NULL AND stripe_lease_until <= {}"
        " RETURNING id",
        leases.until(now),
        row_id,
        now,
    )
    return bool(taken)


@contextlib.asynccontextmanager
async def held(table: Reserved, row_id: str) -> AsyncIterator[None]:
    """Renew the reservation's lease while the block (the Stripe call) runs."""
    column = table.stripe_lease_until

    async def renew() -> None:
        await table.update({column: leases.until()}).where(
            (table.id == row_id) & column.is_not_null()
        )

    async with leases.renewing(renew):
        yield


async def lapse(table: Reserved, row_id: str) -> None:
    """Let the next identical request finish the create at once (this outcome is unknown)."""
    column = table.stripe_lease_until
    try:
        await table.update({column: utcnow()}).where((table.id == row_id) & column.is_not_null())
    except Exception as e:  # the database is away too: the lease lapses by itself
        log.warning("could not lapse the reservation of %s: %r", row_id, e)


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
