"""The finance mirror: invoices, credit notes and refunds as Stripe last described them.

Built from Stripe's events (``billing.inbox``); an older event never overwrites newer
state (``billing.ordering``). Every change of money seen here goes to the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from billing import ordering
from billing.tables import CreditNote, Customer, FastTrackPurchase, Invoice, Refund, Subscription
from common import audit
from common.clock import utcnow
from common.ids import new_id


def _ts(value: Any) -> datetime | None:
    return None if value in (None, 0) else datetime.fromtimestamp(int(value), UTC)


async def _customer_id(stripe_customer: Any) -> str | None:
    if isinstance(stripe_customer, dict):
        stripe_customer = stripe_customer.get("id")
    if not stripe_customer:
        return None
    row = (
        await Customer.select(Customer.id)
        .where(Customer.stripe_customer_id == stripe_customer)
        .first()
    )
    return None if row is None else str(row["id"])


async def invoice(obj: dict[str, Any], created: int, event_id: str) -> None:
    """Mirror an invoice from the event ``event_id`` (created at ``created``)."""
    stripe_id = obj.get("id")
    if not stripe_id:
        return
    existing = (
        await Invoice.objects().where(Invoice.stripe_invoice_id == stripe_id).lock_rows().first()
    )
    stage = ordering.INVOICE_STAGES.get(obj.get("status") or "draft", 0)
    key = ordering.event_key(created, stage, event_id)
    if existing is not None and not ordering.applies(key, existing.stripe_event_key):
        return
    sub_ref = obj.get("subscription") or (
        ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    )
    sub_id = None
    if sub_ref:
        sub = (
            await Subscription.select(Subscription.id)
            .where(Subscription.stripe_subscription_id == sub_ref)
            .first()
        )
        sub_id = sub["id"] if sub else None
    transitions = obj.get("status_transitions") or {}
    lines = [
        {
            "description": line.get("description"),
            "amount": line.get("amount"),
            "period": line.get("period"),
        }
        for line in (obj.get("lines") or {}).get("data", [])
    ]
    values = {
        "customer_id": await _customer_id(obj.get("customer")),
        "subscription_id": sub_id,
        "number": obj.get("number"),
        "status": obj.get("status") or "draft",
        "billing_reason": obj.get("billing_reason"),
        "currency": obj.get("currency") or "usd",
        "subtotal": int(obj.get("subtotal") or 0),
        "tax": int(sum(t.get("amount", 0) for t in obj.get("total_taxes") or [])),
        "total": int(obj.get("total") or 0),
        "amount_paid": int(obj.get("amount_paid") or 0),
        "amount_due": int(obj.get("amount_due") or 0),
        "period_start": _ts(obj.get("period_start")),
        "period_end": _ts(obj.get("period_end")),
        "created": _ts(obj.get("created")) or utcnow(),
        "finalized_at": _ts(transitions.get("finalized_at")),
        "paid_at": _ts(transitions.get("paid_at")),
        "hosted_invoice_url": obj.get("hosted_invoice_url"),
        "lines": lines,
        "stripe_object": obj,
        "stripe_event_key": key,
    }
    before = (
        None
        if existing is None
        else {
            "status": existing.status,
            "total": existing.total,
            "amount_paid": existing.amount_paid,
        }
    )
    if existing is None:
        row = Invoice(id=new_id("inv"), stripe_invoice_id=stripe_id, **cast(Any, values))
        await Invoice.insert(row)
        invoice_id = row.id
    else:
        for name, value in values.items():
            setattr(existing, name, value)
        await existing.save()
        invoice_id = existing.id
    after = {
        "status": values["status"],
        "total": values["total"],
        "amount_paid": values["amount_paid"],
    }
    if before != after:
        await audit.record("invoice.mirrored", "invoice", invoice_id, before=before, after=after)


async def credit_note(obj: dict[str, Any]) -> None:
    invoice_ref = obj.get("invoice")
    if isinstance(invoice_ref, dict):
        invoice_ref = invoice_ref.get("id")
    values = {
        "stripe_invoice_id": invoice_ref or "",
        "customer_id": await _customer_id(obj.get("customer")),
        "number": obj.get("number"),
        "status": obj.get("status") or "issued",
        "currency": obj.get("currency") or "usd",
        "amount": int(obj.get("total") or obj.get("amount") or 0),
        "reason": obj.get("reason"),
        "memo": obj.get("memo"),
        "created": _ts(obj.get("created")) or utcnow(),
        "stripe_object": obj,
    }
    existing = (
        await CreditNote.objects().where(CreditNote.stripe_credit_note_id == obj["id"]).first()
    )
    if existing is None:
        await CreditNote.insert(
            CreditNote(id=new_id("cn"), stripe_credit_note_id=obj["id"], **cast(Any, values))
        )
        await audit.record(
            "credit_note.mirrored",
            "credit_note",
            obj["id"],
            after={
                "amount": values["amount"],
                "currency": values["currency"],
                "invoice": invoice_ref,
            },
        )
    else:
        for name, value in values.items():
            setattr(existing, name, value)
        await existing.save()


async def refund(obj: dict[str, Any]) -> None:
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    customer_id = None
    purchase_id = (obj.get("metadata") or {}).get("purchase_id")
    if purchase_id:
        p = (
            await FastTrackPurchase.select(FastTrackPurchase.customer_id)
            .where(FastTrackPurchase.id == purchase_id)
            .first()
        )
        customer_id = p["customer_id"] if p else None
    customer_id = customer_id or (obj.get("metadata") or {}).get("customer_id")
    inserted = await Refund.raw(
        "INSERT INTO refund (id, stripe_refund_id, stripe_payment_intent_id, customer_id,"
        " amount, currency, status, reason, created) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})"
        " ON CONFLICT (stripe_refund_id) DO UPDATE SET status = EXCLUDED.status"
        " RETURNING (xmax = 0) AS created_now",
        new_id("rf"),
        obj["id"],
        intent,
        customer_id,
        int(obj.get("amount") or 0),
        obj.get("currency") or "usd",
        obj.get("status") or "succeeded",
        obj.get("reason"),
        _ts(obj.get("created")) or utcnow(),
    )
    if inserted and inserted[0]["created_now"]:
        await audit.record(
            "refund.mirrored",
            "refund",
            obj["id"],
            after={
                "amount": int(obj.get("amount") or 0),
                "currency": obj.get("currency") or "usd",
                "payment_intent": intent,
            },
        )
