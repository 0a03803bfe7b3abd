"""Service credits for broken promises: decided once (``credit_policy``), paid in Stripe."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Final

import msgspec

from billing import catalog, credit_policy, entitlements, schemas
from billing.exceptions import ServiceCreditNotFound, StripeIdempotencyConflict, StripeRejected
from billing.stripe_gateway import StripeDict, gateway
from billing.tables import (
    FastTrackLedger,
    FastTrackPurchase,
    IncidentUsage,
    ServiceCredit,
    Subscription,
)
from common import audit
from common.clock import utcnow
from common.db import engine
from common.errors import Conflict, NotFound, UpstreamUnavailable
from common.ids import new_id
from common.money import Money

log = logging.getLogger("billing.credits")


# The retry policy. Stripe not answering (or the database away) is retried with this
# backoff, indefinitely, under the same idempotency key: the attempt may have written.
TRANSIENT_BACKOFF: Final = (30, 60, 120, 300, 600, 1800, 3600)
# A definitive refusal (a 4xx) made nothing in Stripe; the credit is asked for again
# after these delays, each time under a new key (a refused key replays its refusal),
# then it is left ``failed`` for an operator to re-issue.
REFUSAL_BACKOFF: Final = (300, 1800, 7200)


def _outcome(row: ServiceCredit) -> schemas.ServiceCreditOutcome:
    return schemas.ServiceCreditOutcome(
        id=row.id,
        incident_id=row.incident_id,
        customer_id=row.customer_id,
        kind=row.kind,
        amount=Money(row.amount, row.currency),
        status=row.status,
        reason=row.reason,
        stripe_object_id=row.stripe_object_id,
        created_at=row.created_at,
        issued_at=row.issued_at,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
    )


def _stripe_key(row: ServiceCredit) -> str:
    """The idempotency key of the current attempt: a new one after each refusal."""
    base = f"breach-{row.incident_id}"
    return base if row.refusals == 0 else f"{base}-r{row.refusals}"


async def _decide(usage: IncidentUsage, claim: schemas.IncidentClaim) -> ServiceCredit:
    """The credit (not yet issued), from the snapshot the incident was opened under."""
    ent = claim.entitlement
    payment = None
    if claim.fast_track_used and claim.fast_track_purchase_id:
        purchase = (
            await FastTrackPurchase.objects()
            .where(FastTrackPurchase.id == claim.fast_track_purchase_id)
            .first()
        )
        if purchase is not None and purchase.stripe_payment_intent_id:
            payment = credit_policy.FastTrackPayment(purchase.unit_amount, purchase.currency)
    terms = None
    already = 0
    if payment is None and ent.subscription_id and ent.credit_policy and ent.plan_id:
        plan = await catalog.plan_by_id(ent.plan_id)
        sub = await Subscription.objects().where(Subscription.id == ent.subscription_id).first()
        terms = credit_policy.PlanTerms(
            name=plan.name,
            monthly_fee=entitlements.monthly_fee(plan, sub.interval if sub else "month"),
            percent_per_breach=plan.credit_policy.percent_per_breach,
            cap_percent_per_period=plan.credit_policy.cap_percent_per_period,
        )
        already = await _credited_in_period(usage.customer_id, ent.period_start)
    decision = credit_policy.decide(
        tier=ent.tier, fast_track=payment, plan=terms, credited_this_period=already
    )
    return ServiceCredit(
        id=new_id("scr"),
        incident_id=usage.incident_id,
        customer_id=usage.customer_id,
        kind=decision.kind,
        amount=decision.amount,
        currency=decision.currency,
        status="skipped" if decision.kind == "none" else "pending",
        reason=decision.reason,
        created_at=utcnow(),
        period_start=ent.period_start,
    )


async def _credited_in_period(customer_id: str, period_start: datetime | None) -> int:
    rows = await ServiceCredit.select(ServiceCredit.amount).where(
        (ServiceCredit.customer_id == customer_id)
        & (ServiceCredit.kind == "credit_note")
        & (ServiceCredit.status.is_in(["issued", "pending"]))
        & (ServiceCredit.period_start == period_start)
    )
    return sum(int(r["amount"]) for r in rows)


async def issue_breach_credit(incident_id: str) -> schemas.ServiceCreditOutcome:
    """Decide and pay the credit for a breached incident, exactly once."""
    async with engine().transaction():
        usage = (
            await IncidentUsage.objects()
            .where(IncidentUsage.incident_id == incident_id)
            .output(load_json=True)
            .first()
        )
        if usage is None:
            raise NotFound(f"no billing record of incident {incident_id!r}")
        # The customer lock serialises the per-period cap across concurrent breaches.
        await IncidentUsage.raw(
            "SELECT id FROM customer WHERE id = {} FOR UPDATE", usage.customer_id
        )
        row = await ServiceCredit.objects().where(ServiceCredit.incident_id == incident_id).first()
        if row is None:
            claim = msgspec.convert(usage.claim, schemas.IncidentClaim)
            row = await _decide(usage, claim)
            await row.save()
            await audit.record(
                "service_credit.decided", "service_credit", row.id, after=_outcome(row)
            )
    assert row is not None
    if row.status != "pending":
        return _outcome(row)
    if row.next_attempt_at is not None and row.next_attempt_at > utcnow():
        return _outcome(row)  # backing off: the caller comes back at next_attempt_at
    return await _pay(row)


async def _pay(row: ServiceCredit) -> schemas.ServiceCreditOutcome:
    gw = gateway()
    metadata = {
        "incident_id": row.incident_id,
        "customer_id": row.customer_id,
        "service_credit_id": row.id,
    }
    try:
        if row.kind == "refund":
            usage = (
                await IncidentUsage.objects()
                .where(IncidentUsage.incident_id == row.incident_id)
                .first()
            )
            assert usage is not None and usage.fast_track_purchase_id
            purchase = (
                await FastTrackPurchase.objects()
                .where(FastTrackPurchase.id == usage.fast_track_purchase_id)
                .first()
            )
            assert purchase is not None and purchase.stripe_payment_intent_id
            found = await _already_made(row, payment_intent=purchase.stripe_payment_intent_id)
            if found is not None:
                return await _finish(row, "issued", found["id"], None, None)
            stripe_obj = await gw.refund(
                key=_stripe_key(row),
                payment_intent=purchase.stripe_payment_intent_id,
                amount=row.amount,
                metadata=metadata,
            )
        else:
            usage = (
                await IncidentUsage.objects()
                .where(IncidentUsage.incident_id == row.incident_id)
                .first()
            )
            sub = (
                await Subscription.objects()
                .where(Subscription.id == (usage.subscription_id if usage else None))
                .first()
            )
            if sub is None or not sub.stripe_subscription_id:
                return await _finish(row, "skipped", None, None, "no Stripe subscription to credit")
            invoice = await gw.latest_paid_invoice(sub.stripe_subscription_id)
            if invoice is None:
                return await _finish(row, "skipped", None, None, "no paid invoice to credit")
            amount = min(
                row.amount,
                int(invoice.get("total", 0))
                - int(invoice.get("post_payment_credit_notes_amount", 0) or 0),
            )
            if amount <= 0:
                return await _finish(
                    row, "skipped", None, invoice["id"], "the latest paid invoice is fully credited"
                )
            row.amount = amount
            found = await _already_made(row, invoice=invoice["id"])
            if found is not None:
                return await _finish(row, "issued", found["id"], invoice["id"], None)
            stripe_obj = await gw.credit_note(
                key=_stripe_key(row),
                invoice=invoice["id"],
                amount=amount,
                memo=row.reason,
                metadata=metadata,
            )
            row.stripe_invoice_id = invoice["id"]
    except (UpstreamUnavailable, StripeIdempotencyConflict) as e:
        # A reused key with other parameters (the invoice's creditable amount moved after
        # an attempt whose outcome we never heard): its object may exist, so this is no
        # refusal; the next attempt looks for it first (``_already_made``).
        return await _attempt_failed(row, e.detail, refused=False)
    except StripeRejected as e:
        return await _attempt_failed(row, e.detail, refused=True)
    return await _finish(row, "issued", stripe_obj["id"], row.stripe_invoice_id, None)


async def _attempt_failed(
    row: ServiceCredit, error: str, *, refused: bool
) -> schemas.ServiceCreditOutcome:
    """Schedule the next attempt by the policy above, or give the credit up to an operator."""
    now = utcnow()
    row.attempts += 1
    row.last_error = error[:2000]
    if refused:
        row.refusals += 1
        if row.refusals > len(REFUSAL_BACKOFF):
            row.status, row.next_attempt_at = "failed", None
        else:
            delay = REFUSAL_BACKOFF[row.refusals - 1]
            row.next_attempt_at = now + timedelta(seconds=delay)
    else:
        delay = TRANSIENT_BACKOFF[min(row.attempts, len(TRANSIENT_BACKOFF)) - 1]
        row.next_attempt_at = now + timedelta(seconds=delay)
    async with engine().transaction():
        await row.save(
            [
                ServiceCredit.attempts,
                ServiceCredit.last_error,
                ServiceCredit.refusals,
                ServiceCredit.status,
                ServiceCredit.next_attempt_at,
            ]
        )
        await audit.record(
            "service_credit.failed" if row.status == "failed" else "service_credit.retrying",
            "service_credit",
            row.id,
            after=_outcome(row),
        )
    log.warning(
        "service credit attempt failed",
        extra={
            "service_credit_id": row.id,
            "refused": refused,
            "attempts": row.attempts,
            "status": row.status,
            "error": row.last_error,
        },
    )
    return _outcome(row)


async def reissue(credit_id: str) -> schemas.ServiceCreditOutcome:
    """Ask for a ``failed`` credit again (an operator fixed the cause): back to pending.

    The next attempt is made under a new idempotency key (the last one was refused),
    after looking in Stripe for an object already made for this credit.
    """
    async with engine().transaction():
        row = await ServiceCredit.objects().where(ServiceCredit.id == credit_id).lock_rows().first()
        if row is None:
            raise ServiceCreditNotFound(f"no service credit {credit_id!r}")
        if row.status != "failed":
            raise Conflict(
                f"service credit {credit_id} is {row.status}; only a failed one is re-issued"
            )
        row.status, row.next_attempt_at = "pending", None
        await row.save([ServiceCredit.status, ServiceCredit.next_attempt_at])
        await audit.record("service_credit.reissued", "service_credit", row.id, after=_outcome(row))
    assert row is not None
    return _outcome(row)


async def failed_ids() -> list[str]:
    rows = await ServiceCredit.select(ServiceCredit.id).where(ServiceCredit.status == "failed")
    return [str(r["id"]) for r in rows]


async def get_credit(credit_id: str) -> schemas.ServiceCreditOutcome:
    row = await ServiceCredit.objects().where(ServiceCredit.id == credit_id).first()
    if row is None:
        raise ServiceCreditNotFound(f"no service credit {credit_id!r}")
    return _outcome(row)


async def _already_made(
    row: ServiceCredit, *, invoice: str | None = None, payment_intent: str | None = None
) -> StripeDict | None:
    """Before asking under a new key: the object an earlier attempt may have made.

    Only after a refusal does the key change; a refused request made nothing, but
    Stripe is asked rather than trusted to have behaved.
    """
    if row.refusals == 0:
        return None
    return await gateway().find_credit(
        service_credit_id=row.id, invoice=invoice, payment_intent=payment_intent
    )


async def _finish(
    row: ServiceCredit,
    status: str,
    stripe_id: str | None,
    invoice_id: str | None,
    note: str | None,
) -> schemas.ServiceCreditOutcome:
    async with engine().transaction():
        row.status = status
        row.stripe_object_id = stripe_id
        row.stripe_invoice_id = invoice_id
        row.issued_at = utcnow() if status == "issued" else None
        row.next_attempt_at = None
        if status == "skipped":
            row.kind = "none"
            row.reason = note or row.reason
        await row.save()
        if status == "issued" and row.kind == "refund":
            usage = (
                await IncidentUsage.objects()
                .where(IncidentUsage.incident_id == row.incident_id)
                .first()
            )
            if usage is not None and usage.fast_track_purchase_id:
                # The used credit comes back and goes out again as refunded: the
                # ledger keeps both movements, the balance does not change.
                for delta, reason in ((1, "return"), (-1, "refund")):
                    await FastTrackLedger.raw(
                        "INSERT INTO fast_track_ledger (id, customer_id, delta, reason,"
                        " purchase_id, incident_id, dedupe_key, created_at)"
                        " VALUES ({}, {}, {}, {}, {}, {}, {}, {})"
                        " ON CONFLICT (dedupe_key) DO NOTHING",
                        new_id("ftl"),
                        row.customer_id,
                        delta,
                        reason,
                        usage.fast_track_purchase_id,
                        row.incident_id,
                        f"{reason}:{row.incident_id}",
                        utcnow(),
                    )
        await audit.record(
            f"service_credit.{status}", "service_credit", row.id, after=_outcome(row)
        )
    return _outcome(row)


async def list_credits(
    customer_id: str | None, limit: int, starting_after: str | None, status: str | None = None
) -> tuple[list[schemas.ServiceCreditOutcome], bool]:
    query = ServiceCredit.objects().order_by(ServiceCredit.id, ascending=False).limit(limit + 1)
    if customer_id:
        query = query.where(ServiceCredit.customer_id == customer_id)
    if status:
        query = query.where(ServiceCredit.status == status)
    if starting_after:
        query = query.where(ServiceCredit.id < starting_after)
    rows = await query
    return [_outcome(r) for r in rows[:limit]], len(rows) > limit
