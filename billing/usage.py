"""Incidents counted against the allowance: fast-track use, overage billed once."""

from __future__ import annotations

import logging
from datetime import datetime

import msgspec

from billing import entitlement_cache, entitlements, fasttrack, schemas
from billing.stripe_gateway import gateway
from billing.tables import Customer, IncidentUsage, Subscription
from common import audit
from common.clock import utcnow
from common.db import engine
from common.ids import new_id
from common.money import Money

log = logging.getLogger("billing.usage")


async def claim_incident(
    customer_id: str, incident_id: str, opened_at: datetime, *, fast_track: bool
) -> schemas.IncidentClaim:
    """Count an incident once; spend a fast-track credit when asked; flag overage."""
    async with engine().transaction():
        existing = (
            await IncidentUsage.objects()
            .where(IncidentUsage.incident_id == incident_id)
            .output(load_json=True)
            .first()
        )
        if existing is not None:
            return msgspec.convert(existing.claim, schemas.IncidentClaim)
        # Serialise claims per customer: allowance and credits are counted, then spent.
        await Customer.raw("SELECT id FROM customer WHERE id = {} FOR UPDATE", customer_id)
        entitlement_cache.cache.forget(customer_id)  # the count changes with this claim
        now = utcnow()
        ent = await entitlements.entitlement(customer_id, min(opened_at, now))
        purchase_id = None
        used_fast_track = False
        if fast_track:
            used_fast_track = True
            if not ent.fast_track.included:
                if ent.fast_track.price is None:
                    from billing.exceptions import FastTrackUnavailable

                    raise FastTrackUnavailable(f"fast-track is not sold on the {ent.tier} plan")
                purchase_id = await fasttrack.use_credit(customer_id, incident_id, now)
        included = ent.incidents.included
        overage = (
            included is not None
            and ent.incidents.used >= included
            and ent.overage_price is not None
            and ent.overage_price.amount > 0
        )
        claim = schemas.IncidentClaim(
            incident_id=incident_id,
            entitlement=ent,
            fast_track_used=used_fast_track,
            fast_track_purchase_id=purchase_id,
            overage=overage,
            overage_amount=ent.overage_price if overage else None,
        )
        await IncidentUsage.insert(
            IncidentUsage(
                id=new_id("use"),
                incident_id=incident_id,
                customer_id=customer_id,
                opened_at=opened_at,
                subscription_id=ent.subscription_id,
                period_start=ent.period_start,
                fast_track=used_fast_track,
                fast_track_purchase_id=purchase_id,
                overage=overage,
                overage_amount=ent.overage_price.amount if overage and ent.overage_price else 0,
                currency=ent.overage_price.currency if overage and ent.overage_price else None,
                claim=msgspec.to_builtins(claim),
            )
        )
        if overage or purchase_id:
            await audit.record(
                "incident.claimed",
                "incident",
                incident_id,
                after={
                    "fast_track_purchase_id": purchase_id,
                    "overage": overage,
                    "overage_amount": claim.overage_amount,
                },
            )
    return claim


async def bill_pending_overages(limit: int = 100) -> int:
    """Add each overage incident to the customer's next Stripe invoice, once."""
    rows = (
        await IncidentUsage.objects()
        .where(
            (IncidentUsage.overage == True)  # noqa: E712 - SQL comparison
            & IncidentUsage.stripe_invoice_item_id.is_null()
        )
        .limit(limit)
    )
    billed = 0
    for usage in rows:
        cust = await Customer.objects().where(Customer.id == usage.customer_id).first()
        if cust is None or cust.stripe_customer_id is None:
            continue
        sub = None
        if usage.subscription_id:
            sub = (
                await Subscription.objects().where(Subscription.id == usage.subscription_id).first()
            )
        item = await gateway().invoice_item(
            key=usage.incident_id,
            stripe_customer_id=cust.stripe_customer_id,
            amount=usage.overage_amount,
            currency=usage.currency or "usd",
            description=f"Incident beyond the plan's allowance ({usage.incident_id})",
            stripe_subscription_id=sub.stripe_subscription_id if sub else None,
            metadata={"incident_id": usage.incident_id, "customer_id": usage.customer_id},
        )
        updated = (
            await IncidentUsage.update({IncidentUsage.stripe_invoice_item_id: item["id"]})
            .where((IncidentUsage.id == usage.id) & IncidentUsage.stripe_invoice_item_id.is_null())
            .returning(IncidentUsage.id)
        )
        if updated:
            billed += 1
            await audit.record(
                "incident.overage_billed",
                "incident",
                usage.incident_id,
                after={
                    "invoice_item": item["id"],
                    "amount": Money(usage.overage_amount, usage.currency or "usd"),
                },
            )
    return billed
