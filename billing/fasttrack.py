"""Fast-track purchases and the append-only credit ledger."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from billing import customers, entitlements, reservations, schemas
from billing.exceptions import (
    FastTrackUnavailable,
    PaymentDeclined,
    PurchaseNotFound,
    StripeRejected,
)
from billing.stripe_gateway import gateway
from billing.tables import FastTrackLedger, FastTrackPurchase
from common import audit, leases
from common.clock import utcnow
from common.config import get_settings
from common.db import engine
from common.errors import Busy, Conflict, InvalidRequest, UpstreamUnavailable
from common.ids import new_id
from common.money import Money
from webhooks import outbox

log = logging.getLogger("billing.fasttrack")


def to_schema(row: FastTrackPurchase) -> schemas.FastTrackPurchase:
    return schemas.FastTrackPurchase(
        id=row.id,
        customer_id=row.customer_id,
        quantity=row.quantity,
        unit_price=Money(row.unit_amount, row.currency),
        total=Money(row.unit_amount * row.quantity, row.currency),
        mode=row.mode,
        status=row.status,
        checkout_url=row.checkout_url,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
        paid_at=row.paid_at,
        refunded_quantity=row.refunded_quantity,
    )


def _unsent(row: FastTrackPurchase) -> bool:
    """A reserved purchase whose PaymentIntent or Checkout Session is not known yet.

    ``stripe_lease_until`` is set from the reservation until the Stripe call is known to
    have finished; its value says until when the current attempt holds it.
    """
    return (
        row.stripe_lease_until is not None
        and row.stripe_payment_intent_id is None
        and row.stripe_checkout_session_id is None
    )


async def purchase(
    customer_id: str, data: schemas.FastTrackPurchaseCreate, request_key: str | None = None
) -> schemas.FastTrackPurchase:
    """Buy fast-track credits: a Checkout Session, or an off-session charge of the saved card.

    The purchase row is reserved before Stripe is asked, under a key derived from its
    id. With an ``Idempotency-Key`` (``request_key``), a retry after an unknown outcome
    finds that row and asks again under the same key, so Stripe answers with the
    PaymentIntent it already made: one charge, one grant. Without one, every request is
    a purchase of its own.
    """
    cust = await customers.get_row(customer_id)
    if cust.stripe_customer_id is None:
        raise InvalidRequest("the customer has no Stripe customer")
    row = await _resumable(customer_id, request_key)
    if row is not None and not _unsent(row):
        return to_schema(row)
    minutes = None
    price: Money | None = None
    if row is None:
        ent = await entitlements.entitlement(customer_id)
        if ent.fast_track.included:
            raise InvalidRequest(
                f"the {ent.tier} plan fast-tracks every incident; nothing to buy", field="quantity"
            )
        price = ent.fast_track.price
        if price is None:
            raise FastTrackUnavailable(f"fast-track is not sold on the {ent.tier} plan")
        minutes = ent.fast_track.first_response_minutes
    method = None
    if data.mode == "charge_saved_method":
        method = await customers.require_saved_payment_method(cust)
    if row is None:
        assert price is not None
        row = FastTrackPurchase(
            id=new_id("ftp"),
            customer_id=customer_id,
            quantity=data.quantity,
            unit_amount=price.amount,
            currency=price.currency,
            mode=data.mode,
            status="pending",
            stripe_lease_until=leases.until(),
            request_key=request_key,
            created_at=utcnow(),
        )
        async with engine().transaction():
            await row.save()
            await audit.record(
                "fast_track.purchase_started", "fast_track_purchase", row.id, after=to_schema(row)
            )
    metadata = {"purchase_id": row.id, "customer_id": customer_id, "kind": "fast_track"}
    gw = gateway()
    async with reservations.held(FastTrackPurchase, row.id):
        try:
            if row.mode == "checkout":
                session = await gw.checkout_payment(
                    key=row.id,
                    stripe_customer_id=cust.stripe_customer_id,
                    name=_product_name(minutes),
                    unit_amount=row.unit_amount,
                    currency=row.currency,
                    quantity=row.quantity,
                    success_url=data.success_url or _default_url("fast-track/success"),
                    cancel_url=data.cancel_url or _default_url("fast-track/cancel"),
                    metadata=metadata,
                )
            else:
                assert method is not None
                intent = await gw.charge_saved_method(
                    key=row.id,
                    stripe_customer_id=cust.stripe_customer_id,
                    payment_method=method,
                    amount=row.unit_amount * row.quantity,
                    currency=row.currency,
                    description=f"{row.quantity} fast-track incident(s)",
                    metadata=metadata,
                )
        except PaymentDeclined as e:
            return await _declined(row, e)
        except StripeRejected as e:
            await _fail(row.id, e.detail)  # Stripe made nothing
            raise
        except UpstreamUnavailable:
            # Unknown outcome: the next identical request finishes it.
            await reservations.lapse(FastTrackPurchase, row.id)
            raise
    if row.mode == "checkout":
        await FastTrackPurchase.update(
            {
                FastTrackPurchase.checkout_url: session.get("url"),
                FastTrackPurchase.stripe_checkout_session_id: session["id"],
                FastTrackPurchase.stripe_lease_until: None,
            }
        ).where(FastTrackPurchase.id == row.id)
    else:
        await FastTrackPurchase.update(
            {
                FastTrackPurchase.stripe_payment_intent_id: intent["id"],
                FastTrackPurchase.stripe_lease_until: None,
            }
        ).where(FastTrackPurchase.id == row.id)
        await apply_payment_intent(intent)
    fresh = await FastTrackPurchase.objects().where(FastTrackPurchase.id == row.id).first()
    assert fresh is not None
    return to_schema(fresh)


def _product_name(minutes: int | None) -> str:
    return f"Fast-track incident ({minutes} min response)" if minutes else "Fast-track incident"


def _default_url(path: str) -> str:
    base = get_settings().public_base_url or "https://example.invalid"
    return f"{base.rstrip('/')}/{path}"


async def _resumable(customer_id: str, request_key: str | None) -> FastTrackPurchase | None:
    """The purchase an earlier attempt of this very request reserved, leased to this one."""
    if request_key is None:
        return None
    now = utcnow()
    row = (
        await FastTrackPurchase.objects()
        .where(
            (FastTrackPurchase.request_key == request_key)
            & (FastTrackPurchase.customer_id == customer_id)
        )
        .first()
    )
    if row is None or not _unsent(row):
        return row
    if not await reservations.take(FastTrackPurchase, row.id, now):
        raise Busy(
            f"fast-track purchase {row.id} is being made",
            retry_after=leases.retry_after(row.stripe_lease_until, now),
        )
    return row


async def _fail(purchase_id: str, reason: str) -> None:
    await FastTrackPurchase.update(
        {
            FastTrackPurchase.status: "failed",
            FastTrackPurchase.failure_reason: reason,
            FastTrackPurchase.stripe_lease_until: None,
        }
    ).where(FastTrackPurchase.id == purchase_id)
    await audit.record(
        "fast_track.purchase_failed", "fast_track_purchase", purchase_id, after={"reason": reason}
    )


async def _declined(row: FastTrackPurchase, e: PaymentDeclined) -> schemas.FastTrackPurchase:
    if e.decline_code == "authentication_required":
        # Off-session charges cannot ask for 3-D Secure: the customer must pay in
        # Checkout. The purchase stays visible as needing that action.
        await FastTrackPurchase.update(
            {
                FastTrackPurchase.status: "requires_action",
                FastTrackPurchase.stripe_lease_until: None,
                FastTrackPurchase.failure_reason: (
                    "the card needs the customer's authentication; buy with mode=checkout"
                ),
            }
        ).where(FastTrackPurchase.id == row.id)
        fresh = await FastTrackPurchase.objects().where(FastTrackPurchase.id == row.id).first()
        assert fresh is not None
        return to_schema(fresh)
    await _fail(row.id, e.detail)
    raise PaymentDeclined(f"{e.detail} (purchase {row.id})", decline_code=e.decline_code) from e


async def apply_payment_intent(intent: dict[str, Any]) -> None:
    """Follow a PaymentIntent of a purchase: grant on success, record the other outcomes."""
    purchase_id = (intent.get("metadata") or {}).get("purchase_id")
    if not purchase_id:
        return
    status = intent.get("status")
    if status == "succeeded":
        await grant(purchase_id, payment_intent=intent["id"])
    elif status == "requires_action":
        await FastTrackPurchase.update(
            {
                FastTrackPurchase.status: "requires_action",
                FastTrackPurchase.stripe_payment_intent_id: intent["id"],
                FastTrackPurchase.failure_reason: "the card needs the customer's authentication",
            }
        ).where((FastTrackPurchase.id == purchase_id) & (FastTrackPurchase.status == "pending"))
    elif status in ("requires_payment_method", "canceled"):
        error = (intent.get("last_payment_error") or {}).get("message") or status
        await FastTrackPurchase.update(
            {
                FastTrackPurchase.status: "failed",
                FastTrackPurchase.stripe_payment_intent_id: intent["id"],
                FastTrackPurchase.failure_reason: error,
            }
        ).where((FastTrackPurchase.id == purchase_id) & (FastTrackPurchase.status == "pending"))


async def grant(purchase_id: str, *, payment_intent: str | None) -> bool:
    """Credit a paid purchase exactly once; returns whether this call granted it."""
    async with engine().transaction():
        row = (
            await FastTrackPurchase.objects()
            .where(FastTrackPurchase.id == purchase_id)
            .lock_rows()
            .first()
        )
        if row is None:
            log.warning("payment for unknown fast-track purchase %s", purchase_id)
            return False
        if row.paid_at is not None:
            if payment_intent and not row.stripe_payment_intent_id:
                row.stripe_payment_intent_id = payment_intent
                await row.save([FastTrackPurchase.stripe_payment_intent_id])
            return False
        now = utcnow()
        row.status = "paid"
        row.paid_at = now
        row.expires_at = now + timedelta(days=get_settings().fast_track_expiry_days)
        row.failure_reason = None
        row.stripe_lease_until = None
        row.stripe_payment_intent_id = payment_intent or row.stripe_payment_intent_id
        await row.save()
        await FastTrackLedger.insert(
            FastTrackLedger(
                id=new_id("ftl"),
                customer_id=row.customer_id,
                delta=row.quantity,
                reason="purchase",
                purchase_id=row.id,
                dedupe_key=f"purchase:{row.id}",
                expires_at=row.expires_at,
                created_at=now,
            )
        )
        await audit.record(
            "fast_track.granted",
            "fast_track_purchase",
            row.id,
            after={"quantity": row.quantity, "expires_at": row.expires_at},
        )
        await outbox.emit(
            "fast_track.purchased",
            {
                "customer_id": row.customer_id,
                "purchase_id": row.id,
                "quantity": row.quantity,
                "amount": row.unit_amount * row.quantity,
                "currency": row.currency,
                "expires_at": row.expires_at,
            },
            customer_id=row.customer_id,
        )
        await entitlements.announce(row.customer_id, "fast_track_purchased", purchase_id=row.id)
    return True


async def complete_checkout(session: dict[str, Any]) -> None:
    purchase_id = (session.get("metadata") or {}).get("purchase_id")
    if not purchase_id or session.get("payment_status") != "paid":
        return
    intent = session.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    await grant(purchase_id, payment_intent=intent)


async def refresh(customer_id: str, purchase_id: str) -> schemas.FastTrackPurchase:
    """Ask Stripe how a purchase stands (the storefront's success page calls this)."""
    row = (
        await FastTrackPurchase.objects()
        .where(
            (FastTrackPurchase.id == purchase_id) & (FastTrackPurchase.customer_id == customer_id)
        )
        .first()
    )
    if row is None:
        raise PurchaseNotFound(f"no fast-track purchase {purchase_id!r} for this customer")
    if row.stripe_checkout_session_id and row.paid_at is None:
        await complete_checkout(
            await gateway().retrieve_checkout_session(row.stripe_checkout_session_id)
        )
    fresh = await FastTrackPurchase.objects().where(FastTrackPurchase.id == purchase_id).first()
    assert fresh is not None
    return to_schema(fresh)


async def _remaining_by_purchase(customer_id: str, at: datetime) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await FastTrackLedger.raw(
        "SELECT p.id, p.unit_amount, p.currency, p.stripe_payment_intent_id, p.expires_at,"
        "       coalesce(sum(l.delta), 0) AS remaining"
        " FROM fast_track_purchase p JOIN fast_track_ledger l ON l.purchase_id = p.id"
        " WHERE p.customer_id = {} AND p.expires_at > {}"
        " GROUP BY p.id ORDER BY p.expires_at, p.id",
        customer_id,
        at,
    )
    return [r for r in rows if int(r["remaining"]) > 0]


async def use_credit(customer_id: str, incident_id: str, at: datetime) -> str:
    """Spend one credit (earliest expiry first) for an incident; caller holds the customer lock."""
    existing = (
        await FastTrackLedger.objects()
        .where(FastTrackLedger.dedupe_key == f"use:{incident_id}")
        .first()
    )
    if existing is not None:
        assert existing.purchase_id is not None
        return existing.purchase_id
    available = await _remaining_by_purchase(customer_id, at)
    if not available:
        raise FastTrackUnavailable("the customer has no fast-track credit; buy one first")
    purchase_id = str(available[0]["id"])
    await FastTrackLedger.insert(
        FastTrackLedger(
            id=new_id("ftl"),
            customer_id=customer_id,
            delta=-1,
            reason="use",
            purchase_id=purchase_id,
            incident_id=incident_id,
            dedupe_key=f"use:{incident_id}",
            created_at=at,
        )
    )
    return purchase_id


async def expire_due() -> int:
    """Write the -n expiry movements of purchases past their expiry (bookkeeping)."""
    now = utcnow()
    rows: list[dict[str, Any]] = await FastTrackLedger.raw(
        "SELECT p.id, p.customer_id, p.expires_at, coalesce(sum(l.delta), 0) AS remaining"
        " FROM fast_track_purchase p JOIN fast_track_ledger l ON l.purchase_id = p.id"
        " WHERE p.expires_at <= {} GROUP BY p.id HAVING coalesce(sum(l.delta), 0) > 0",
        now,
    )
    for r in rows:
        async with engine().transaction():
            written = await FastTrackLedger.raw(
                "INSERT INTO fast_track_ledger (id, customer_id, delta, reason, purchase_id,"
                " dedupe_key, created_at) VALUES ({}, {}, {}, 'expiry', {}, {}, {})"
                " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
                new_id("ftl"),
                r["customer_id"],
                -int(r["remaining"]),
                r["id"],
                f"expiry:{r['id']}",
                r["expires_at"],
            )
            if written:
                await entitlements.announce(
                    r["customer_id"],
                    "fast_track_expired",
                    purchase_id=r["id"],
                    expired_credits=int(r["remaining"]),
                )
    return len(rows)


async def list_purchases(customer_id: str) -> list[schemas.FastTrackPurchase]:
    await customers.get_row(customer_id)
    rows = (
        await FastTrackPurchase.objects()
        .where(FastTrackPurchase.customer_id == customer_id)
        .order_by(FastTrackPurchase.created_at, ascending=False)
    )
    # A reservation whose Stripe call has no known outcome is nobody's purchase yet.
    return [to_schema(r) for r in rows if not _unsent(r)]


async def refund_unused(
    customer_id: str, purchase_id: str, quantity: int | None
) -> schemas.FastTrackPurchase:
    """Refund unused credits of one purchase through Stripe (admin)."""
    async with engine().transaction():
        row = (
            await FastTrackPurchase.objects()
            .where(
                (FastTrackPurchase.id == purchase_id)
                & (FastTrackPurchase.customer_id == customer_id)
            )
            .lock_rows()
            .first()
        )
        if row is None:
            raise PurchaseNotFound(f"no fast-track purchase {purchase_id!r} for this customer")
        if row.paid_at is None or row.stripe_payment_intent_id is None:
            raise Conflict("only a paid purchase can be refunded")
        remaining_rows = await _remaining_by_purchase(customer_id, utcnow())
        remaining = next((int(r["remaining"]) for r in remaining_rows if r["id"] == row.id), 0)
        qty = remaining if quantity is None else quantity
        if qty < 1 or qty > remaining:
            raise InvalidRequest(
                f"{remaining} unused credit(s) can be refunded on this purchase", field="quantity"
            )
        seq = row.refunded_quantity
        refund = await gateway().refund(
            key=f"{row.id}-unused-{seq}-{qty}",
            payment_intent=row.stripe_payment_intent_id,
            amount=qty * row.unit_amount,
            metadata={"purchase_id": row.id, "customer_id": customer_id, "kind": "unused"},
        )
        assert row.stripe_payment_intent_id is not None
        row.refunded_quantity = seq + qty
        row.status = "refunded" if row.refunded_quantity >= row.quantity else row.status
        await row.save()
        await FastTrackLedger.insert(
            FastTrackLedger(
                id=new_id("ftl"),
                customer_id=customer_id,
                delta=-qty,
                reason="refund",
                purchase_id=row.id,
                dedupe_key=f"refund:{refund['id']}",
                created_at=utcnow(),
            )
        )
        await audit.record(
            "fast_track.refunded",
            "fast_track_purchase",
            row.id,
            after={"quantity": qty, "refund": refund["id"], "amount": qty * row.unit_amount},
        )
        await entitlements.announce(
            customer_id, "fast_track_refunded", purchase_id=row.id, refunded_credits=qty
        )
    assert row is not None
    return to_schema(row)
