"""Finance views of the one-off payments mirror (fast-track PaymentIntents) and their refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing import schemas
from billing.exceptions import PaymentNotFound
from billing.finance import mirror_filters
from billing.tables import Payment, Refund
from common.money import Money
from common.pagination import keyset_page

_COLUMNS = [c for c in Payment._meta.columns if c._meta.name != "stripe_object"]


def _refund(r: dict[str, Any]) -> schemas.RefundView:
    return schemas.RefundView(
        id=r["id"],
        stripe_refund_id=r["stripe_refund_id"],
        stripe_payment_intent_id=r["stripe_payment_intent_id"],
        customer_id=r["customer_id"],
        amount=Money(r["amount"], r["currency"]),
        status=r["status"],
        reason=r["reason"],
        created=r["created"],
        fast_track_purchase_id=r["fast_track_purchase_id"],
        incident_id=r["incident_id"],
        service_credit_id=r["service_credit_id"],
    )


def _payment(r: dict[str, Any], refunds: list[schemas.RefundView]) -> schemas.PaymentView:
    c = r["currency"]
    return schemas.PaymentView(
        id=r["id"],
        stripe_payment_intent_id=r["stripe_payment_intent_id"],
        stripe_charge_id=r["stripe_charge_id"],
        customer_id=r["customer_id"],
        fast_track_purchase_id=r["fast_track_purchase_id"],
        amount=Money(r["amount"], c),
        amount_received=Money(r["amount_received"], c),
        amount_refunded=Money(r["amount_refunded"], c),
        currency=c,
        status=r["status"],
        description=r["description"],
        created=r["created"],
        paid_at=r["paid_at"],
        refunds=refunds,
    )


async def _refunds_of(intents: list[str]) -> dict[str, list[schemas.RefundView]]:
    found: dict[str, list[schemas.RefundView]] = {i: [] for i in intents}
    if not intents:
        return found
    rows = await (
        Refund.select(*[c for c in Refund._meta.columns if c._meta.name != "stripe_object"])
        .where(Refund.stripe_payment_intent_id.is_in(intents))
        .order_by(Refund.created)
    )
    for r in rows:
        found[r["stripe_payment_intent_id"]].append(_refund(r))
    return found


async def list_payments(
    *,
    customer_id: str | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    starting_after: str | None,
) -> tuple[list[schemas.PaymentView], bool]:
    """One-off payments, newest first, with their refunds."""
    query = mirror_filters(
        Payment.select(*_COLUMNS),
        Payment,
        customer_id=customer_id,
        status=status,
        created_from=created_from,
        created_to=created_to,
    )
    rows, more = await keyset_page(query, Payment.id, limit=limit, starting_after=starting_after)
    refunds = await _refunds_of([r["stripe_payment_intent_id"] for r in rows])
    return [_payment(r, refunds[r["stripe_payment_intent_id"]]) for r in rows], more


async def get_payment(payment_id: str) -> schemas.PaymentView:
    """One payment by our id or its PaymentIntent's id."""
    row = (
        await Payment.select(*_COLUMNS)
        .where((Payment.id == payment_id) | (Payment.stripe_payment_intent_id == payment_id))
        .first()
    )
    if row is None:
        raise PaymentNotFound(f"no payment {payment_id!r}")
    refunds = await _refunds_of([row["stripe_payment_intent_id"]])
    return _payment(row, refunds[row["stripe_payment_intent_id"]])
