"""The Stripe webhook inbox: verify, store once, then apply each event in a job."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import stripe

from billing import customers, fasttrack, subscriptions
from billing.exceptions import InvalidEvent
from billing.stripe_gateway import gateway
from billing.tables import CreditNote, Customer, FastTrackPurchase, Invoice, Refund, StripeEvent
from common import audit
from common.audit import acting_as
from common.clock import utcnow
from common.db import engine
from common.ids import new_id

log = logging.getLogger("billing.events")

TOLERANCE_SECONDS = 300
MAX_AUTOMATIC_ATTEMPTS = 10


def verify(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event in ``payload`` if Stripe signed it with ``secret`` within the tolerance."""
    if not signature:
        raise InvalidEvent("missing Stripe-Signature header", field="Stripe-Signature")
    try:
        # Only the signature check: building SDK objects for every delivery costs more
        # than the rest of the ingest together.
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, secret, TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as e:
        raise InvalidEvent(
            f"bad Stripe signature: {e.user_message or e}", field="Stripe-Signature"
        ) from e
    except UnicodeDecodeError as e:
        raise InvalidEvent("the body is not UTF-8 JSON") from e
    try:
        event = msgspec.json.decode(payload)
    except msgspec.DecodeError as e:
        raise InvalidEvent("the body is not JSON") from e
    if (
        not isinstance(event, dict)
        or not str(event.get("id", "")).startswith("evt_")
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
        or "type" not in event
    ):
        raise InvalidEvent("the body is not a Stripe event")
    return event


async def store(event: dict[str, Any], raw: bytes | None = None) -> bool:
    """Keep the raw event; False when this id was already received (a duplicate)."""
    inserted = await StripeEvent.raw(
        "INSERT INTO stripe_event (id, type, created, payload, received_at, attempts)"
        " VALUES ({}, {}, {}, {}::jsonb, {}, 0) ON CONFLICT (id) DO NOTHING RETURNING id",
        event["id"],
        event["type"],
        int(event.get("created", 0)),
        raw.decode() if raw is not None else json.dumps(event),
        utcnow(),
    )
    return bool(inserted)


def _ts(value: Any) -> datetime | None:
    return None if value in (None, 0) else datetime.fromtimestamp(int(value), UTC)


async def process(event_id: str) -> str:
    """Apply one stored event; safe to run twice and in any order."""
    outcome: str
    try:
        async with engine().transaction():
            row = (
                await StripeEvent.objects()
                .where(StripeEvent.id == event_id)
                .lock_rows(skip_locked=True)
                .output(load_json=True)
                .first()
            )
            if row is None:
                return "missing-or-busy"
            if row.processed_at is not None:
                return "already-processed"
            with acting_as(f"stripe:{event_id}"):
                outcome = await _apply(row.payload)
            await StripeEvent.update(
                {
                    StripeEvent.attempts: row.attempts + 1,
                    StripeEvent.processed_at: utcnow(),
                    StripeEvent.last_error: None,
                }
            ).where(StripeEvent.id == event_id)
    except Exception as e:
        # The transaction rolled back; the failure is recorded on its own for replay.
        log.exception("stripe event %s failed", event_id)
        await StripeEvent.update(
            {
                StripeEvent.attempts: StripeEvent.attempts + 1,
                StripeEvent.last_error: repr(e)[:2000],
            }
        ).where(StripeEvent.id == event_id)
        raise
    return outcome


async def _apply(event: dict[str, Any]) -> str:
    kind: str = event["type"]
    obj: dict[str, Any] = event["data"]["object"]
    stripe_customer = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
    if isinstance(stripe_customer, dict):
        stripe_customer = stripe_customer.get("id")
    if stripe_customer:
        # Events about one customer's objects apply one at a time (concurrent jobs would
        # otherwise race to insert the same mirror row).
        await Customer.raw(
            "SELECT id FROM customer WHERE stripe_customer_id = {} FOR UPDATE", stripe_customer
        )
    key = subscriptions.event_key(int(event.get("created", 0)), obj.get("status", ""), event["id"])
    if kind.startswith("customer.subscription."):
        await subscriptions.apply_remote(obj, event_key=key)
        await _remember_saved_card(obj, "default_payment_method")
        return "subscription"
    if kind == "checkout.session.completed":
        return await _checkout_completed(obj, key)
    if kind.startswith("invoice."):
        await _mirror_invoice(obj, int(event.get("created", 0)))
        return "invoice"
    if kind.startswith("payment_intent."):
        await fasttrack.apply_payment_intent(obj)
        if obj.get("status") == "succeeded" and obj.get("setup_future_usage"):
            # Paid with `setup_future_usage`: Stripe attached the card for later use.
            await _remember_saved_card(obj, "payment_method")
        return "payment_intent"
    if kind == "credit_note.created" or kind == "credit_note.voided":
        await _mirror_credit_note(obj)
        return "credit_note"
    if kind in ("refund.created", "refund.updated"):
        await _mirror_refund(obj)
        return "refund"
    if kind == "customer.created":
        # Ours, when its create answered nothing we could read (a reservation left
        # waiting for a retry that never came): the reservation is finished here.
        adopted = await customers.adopt_stripe_customer(obj)
        return "customer" if adopted else "ignored"
    if kind == "customer.updated":
        method = (obj.get("invoice_settings") or {}).get("default_payment_method")
        if isinstance(method, str):
            await customers.remember_payment_method(obj["id"], method, utcnow())
        return "customer"
    return "ignored"


async def _checkout_completed(session: dict[str, Any], key: str) -> str:
    meta = session.get("metadata") or {}
    if session.get("mode") == "payment" or meta.get("kind") == "fast_track":
        await fasttrack.complete_checkout(session)
        return "fast_track"
    sub_ref = session.get("subscription")
    if isinstance(sub_ref, dict):
        await subscriptions.apply_remote(sub_ref, event_key=key)
        await _remember_saved_card(sub_ref, "default_payment_method")
    elif isinstance(sub_ref, str):
        # The session carries only the id; Stripe's object is the truth right now.
        remote = await gateway().retrieve_subscription(sub_ref)
        await subscriptions.apply_remote(remote, event_key=None)
        # Checkout leaves the card as the subscription's default, not the customer's.
        await _remember_saved_card(remote, "default_payment_method")
    return "subscription"


async def _remember_saved_card(obj: dict[str, Any], field: str) -> None:
    method = obj.get(field)
    if isinstance(method, dict):
        method = method.get("id")
    stripe_customer = obj.get("customer")
    if isinstance(stripe_customer, dict):
        stripe_customer = stripe_customer.get("id")
    if isinstance(method, str) and isinstance(stripe_customer, str):
        await customers.remember_payment_method_if_unset(stripe_customer, method, utcnow())


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


async def _mirror_invoice(obj: dict[str, Any], created: int) -> None:
    stripe_id = obj.get("id")
    if not stripe_id:
        return
    existing = (
        await Invoice.objects().where(Invoice.stripe_invoice_id == stripe_id).lock_rows().first()
    )
    # Events of one second arrive in any order: within a second, later lifecycle wins.
    order = created * 10 + _INVOICE_RANK.get(obj.get("status") or "draft", 0)
    if existing is not None and existing.stripe_event_created > order:
        return
    sub_ref = obj.get("subscription") or (
        ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    )
    sub_id = None
    if sub_ref:
        from billing.tables import Subscription

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
        "stripe_event_created": order,
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


_INVOICE_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}


async def _mirror_credit_note(obj: dict[str, Any]) -> None:
    invoice = obj.get("invoice")
    if isinstance(invoice, dict):
        invoice = invoice.get("id")
    values = {
        "stripe_invoice_id": invoice or "",
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
            after={"amount": values["amount"], "currency": values["currency"], "invoice": invoice},
        )
    else:
        for name, value in values.items():
            setattr(existing, name, value)
        await existing.save()


async def _mirror_refund(obj: dict[str, Any]) -> None:
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


async def pending(limit: int = 500, min_age_seconds: int = 10) -> list[tuple[str, int]]:
    """Events received a while ago and still not applied, with their attempt counts."""
    from datetime import timedelta

    rows = (
        await StripeEvent.select(StripeEvent.id, StripeEvent.attempts)
        .where(
            StripeEvent.processed_at.is_null()
            & (StripeEvent.received_at < utcnow() - timedelta(seconds=min_age_seconds))
            # After this many failures an event waits for `support-billing stripe replay`.
            & (StripeEvent.attempts < MAX_AUTOMATIC_ATTEMPTS)
        )
        .order_by(StripeEvent.created)
        .limit(limit)
    )
    return [(str(r["id"]), int(r["attempts"])) for r in rows]


async def mark_for_replay(event_ids: list[str] | None, failed_only: bool) -> list[str]:
    """Reset chosen (or all failed) events so their jobs apply them again."""
    query = StripeEvent.update({StripeEvent.processed_at: None})
    if event_ids:
        query = query.where(StripeEvent.id.is_in(event_ids))
    elif failed_only:
        query = query.where(StripeEvent.last_error.is_not_null())
    else:
        raise ValueError("name events or ask for the failed ones")
    rows = await query.returning(StripeEvent.id)
    return [str(r["id"]) for r in rows]
