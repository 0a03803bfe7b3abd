"""The finance mirror: invoices, credit notes, refunds and one-off payments as Stripe has them.

One mapping per Stripe object type (``*_values``) and one way to write it (``_upsert``),
used by both the event handlers (``billing.inbox``: an older event never overwrites newer
state, ``billing.ordering``) and the reconcile job (``billing.reconcile``: what Stripe
answers now is the newest state known, and a row that differs from it is repaired).
Every change of money seen here goes to the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from piccolo.columns import Column
from piccolo.table import Table

from billing import ordering, schemas
from billing.stripe_gateway import gateway
from billing.tables import (
    CreditNote,
    Customer,
    FastTrackPurchase,
    Invoice,
    Payment,
    Plan,
    Refund,
    ServiceCredit,
    Subscription,
)
from common import audit
from common.clock import utcnow
from common.db import engine
from common.ids import new_id

log = logging.getLogger("billing.mirror")

Outcome = Literal["restored", "repaired", "unchanged", "stale"]

CREDIT_NOTE_STAGES: Final[Mapping[str, int]] = {"issued": 0, "void": 1}
REFUND_STAGES: Final[Mapping[str, int]] = {
    "pending": 0,
    "requires_action": 0,
    "succeeded": 1,
    "failed": 2,
    "canceled": 2,
}
PAYMENT_STAGES: Final[Mapping[str, int]] = {
    "requires_payment_method": 0,
    "requires_confirmation": 0,
    "requires_action": 1,
    "processing": 2,
    "requires_capture": 2,
    "succeeded": 3,
    "canceled": 3,
}


def _ts(value: Any) -> datetime | None:
    return None if value in (None, 0) else datetime.fromtimestamp(int(value), UTC)


def _ref(value: Any) -> str | None:
    """The id of a reference, expanded or not."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


async def _customer_id(stripe_customer: Any) -> str | None:
    stripe_customer = _ref(stripe_customer)
    if not stripe_customer:
        return None
    row = (
        await Customer.select(Customer.id)
        .where(Customer.stripe_customer_id == stripe_customer)
        .first()
    )
    return None if row is None else str(row["id"])


async def lock(stripe_id: str) -> None:
    """Hold the object's lock until the transaction ends: events and reconcile runs about
    one Stripe object apply one at a time."""
    await Customer.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", stripe_id)


@dataclass(frozen=True)
class _Kind:
    """How one Stripe object type is mirrored: its table, its Stripe id column, our prefix,
    and the columns whose change is a change of money (audited)."""

    name: str
    table: type[Table]
    stripe_column: Column
    prefix: str
    audited: tuple[str, ...]


INVOICE = _Kind(
    "invoice",
    Invoice,
    Invoice.stripe_invoice_id,
    "inv",
    ("status", "total", "amount_paid"),
)
CREDIT_NOTE = _Kind(
    "credit_note",
    CreditNote,
    CreditNote.stripe_credit_note_id,
    "cn",
    ("status", "amount", "currency"),
)
REFUND = _Kind("refund", Refund, Refund.stripe_refund_id, "rf", ("status", "amount", "currency"))
PAYMENT = _Kind(
    "payment",
    Payment,
    Payment.stripe_payment_intent_id,
    "pay",
    ("status", "amount", "amount_received", "amount_refunded", "currency"),
)

# Not compared: the raw object (Stripe's list and event copies differ in cosmetics) and
# the ordering key (bookkeeping).
_NOT_COMPARED = frozenset({"stripe_object", "stripe_event_key"})


async def _upsert(
    kind: _Kind,
    stripe_id: str,
    values: dict[str, Any],
    stage: int,
    *,
    event_key: str | None,
    dry_run: bool = False,
) -> tuple[Outcome, str]:
    """Write ``values`` onto the mirror row of ``stripe_id``; the caller holds its lock.

    ``event_key`` is the key of the event the values come from; None means they are what
    Stripe's API answers now (reconcile), written only when the row differs from them.
    ``dry_run`` only says what would happen.
    """
    table = kind.table
    existing = (
        await table.select().where(kind.stripe_column == stripe_id).first().output(load_json=True)
    )
    stored = "" if existing is None else str(existing["stripe_event_key"])
    if event_key is None:
        key = ordering.api_key(stored, stage, utcnow())
    else:
        if existing is not None and not ordering.applies(event_key, stored):
            return "stale", str(existing["id"])
        key = event_key
    row_values = {**values, "stripe_event_key": key}
    if existing is None:
        if dry_run:
            return "restored", ""
        row_id = new_id(kind.prefix)
        await table.insert(
            table(**{"id": row_id, kind.stripe_column._meta.name: stripe_id, **row_values})
        )
        await _audit(kind, row_id, None, values, reconciled=event_key is None)
        return "restored", row_id
    row_id = str(existing["id"])
    differs = [k for k, v in values.items() if k not in _NOT_COMPARED and existing.get(k) != v]
    if not differs and event_key is None:
        return "unchanged", row_id
    if dry_run:
        return ("repaired" if differs else "unchanged"), row_id
    await table.update({getattr(table, k): v for k, v in row_values.items()}).where(
        table._meta.primary_key == row_id
    )
    if differs:
        if event_key is None:
            log.info("%s %s differed from Stripe in %s", kind.name, stripe_id, ", ".join(differs))
        await _audit(kind, row_id, existing, values, reconciled=event_key is None)
    return ("repaired" if differs else "unchanged"), row_id


async def _audit(
    kind: _Kind,
    row_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    *,
    reconciled: bool,
) -> None:
    old = None if before is None else {k: before.get(k) for k in kind.audited}
    new = {k: after.get(k) for k in kind.audited}
    if old == new:
        return
    action = f"{kind.name}.{'reconciled' if reconciled else 'mirrored'}"
    await audit.record(action, kind.name, row_id, before=old, after=new)


# ---------------------------------------------------------------- invoices and their lines


async def _plans_by_price() -> dict[str, tuple[str, int]]:
    rows = await Plan.select(
        Plan.code, Plan.version, Plan.stripe_price_month_id, Plan.stripe_price_year_id
    )
    found: dict[str, tuple[str, int]] = {}
    for r in rows:
        for price in (r["stripe_price_month_id"], r["stripe_price_year_id"]):
            if price:
                found[price] = (r["code"], int(r["version"]))
    return found


def line_source(line: Mapping[str, Any]) -> dict[str, Any]:
    """What produced an invoice line, from Stripe's ``parent`` (pinned version) and our
    invoice-item metadata: ``source``, ``proration`` and the ids behind it."""
    parent = line.get("parent") or {}
    sub_item = parent.get("subscription_item_details") or {}
    inv_item = parent.get("invoice_item_details") or {}
    details = sub_item or inv_item
    proration = bool(details.get("proration") or line.get("proration"))
    meta = line.get("metadata") or {}
    source: schemas.LineSource
    if sub_item:
        source = "proration" if proration else "subscription"
    elif meta.get("purchase_id") or meta.get("kind") == "fast_track":
        source = "fast_track"
    elif proration:
        source = "proration"
    elif inv_item and meta.get("incident_id"):
        source = "overage"
    else:
        source = "other"
    price = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
    return {
        "source": source,
        "proration": proration,
        "incident_id": meta.get("incident_id") if source == "overage" else None,
        "fast_track_purchase_id": meta.get("purchase_id") if source == "fast_track" else None,
        "stripe_price_id": _ref(price),
        "stripe_invoice_item_id": _ref(details.get("invoice_item")),
    }


async def _all_lines(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every line of the invoice: Stripe embeds the first ones only (``has_more``)."""
    embedded = obj.get("lines") or {}
    lines: list[Mapping[str, Any]] = list(embedded.get("data", []))
    if embedded.get("has_more") and obj.get("id"):
        lines, after = [], None
        while True:
            page = await gateway().invoice_lines(obj["id"], after)
            data = page.get("data", [])
            lines.extend(data)
            if not page.get("has_more") or not data:
                break
            after = data[-1]["id"]
    return lines


def _lines(
    all_lines: list[Mapping[str, Any]], plans: Mapping[str, tuple[str, int]]
) -> list[dict[str, Any]]:
    lines = []
    for line in all_lines:
        found = line_source(line)
        plan = plans.get(found["stripe_price_id"] or "")
        lines.append(
            {
                "id": line.get("id"),
                "description": line.get("description"),
                "amount": line.get("amount"),
                "period": line.get("period"),
                **found,
                "plan_code": plan[0] if plan else None,
                "plan_version": plan[1] if plan else None,
            }
        )
    return lines


def line_view(line: Mapping[str, Any]) -> schemas.InvoiceLine:
    """A stored line as the API shows it (rows mirrored before lines had sources: other)."""
    period = line.get("period") or {}
    source = line.get("source")
    return schemas.InvoiceLine(
        line.get("description"),
        int(line.get("amount") or 0),
        stripe_line_id=line.get("id"),
        source=source if source in schemas.LINE_SOURCES else "other",
        proration=bool(line.get("proration")),
        plan_code=line.get("plan_code"),
        plan_version=line.get("plan_version"),
        incident_id=line.get("incident_id"),
        fast_track_purchase_id=line.get("fast_track_purchase_id"),
        stripe_price_id=line.get("stripe_price_id"),
        stripe_invoice_item_id=line.get("stripe_invoice_item_id"),
        period_start=_ts(period.get("start")),
        period_end=_ts(period.get("end")),
    )


async def invoice_values(obj: Mapping[str, Any]) -> dict[str, Any]:
    sub_ref = obj.get("subscription") or (
        ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    )
    sub_id = None
    if sub_ref:
        sub = (
            await Subscription.select(Subscription.id)
            .where(Subscription.stripe_subscription_id == _ref(sub_ref))
            .first()
        )
        sub_id = sub["id"] if sub else None
    transitions = obj.get("status_transitions") or {}
    return {
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
        "lines": _lines(await _all_lines(obj), await _plans_by_price()),
        "stripe_object": dict(obj),
    }


async def upsert_invoice(
    obj: Mapping[str, Any], *, event_key: str | None, dry_run: bool = False
) -> tuple[Outcome, str]:
    stage = ordering.INVOICE_STAGES.get(obj.get("status") or "draft", 0)
    values = await invoice_values(obj)
    return await _upsert(INVOICE, obj["id"], values, stage, event_key=event_key, dry_run=dry_run)


async def invoice(obj: dict[str, Any], created: int, event_id: str) -> None:
    """Mirror an invoice from the event ``event_id`` (created at ``created``)."""
    if not obj.get("id"):
        return
    stage = ordering.INVOICE_STAGES.get(obj.get("status") or "draft", 0)
    await upsert_invoice(obj, event_key=ordering.event_key(created, stage, event_id))


async def link_subscription(stripe_subscription_id: Any) -> None:
    """Give invoices mirrored before their subscription was known here its id (events come
    in any order; the invoice's mapping would name it now)."""
    stripe_subscription_id = _ref(stripe_subscription_id)
    if stripe_subscription_id is None:
        return
    await Invoice.raw(
        "UPDATE invoice SET subscription_id = s.id FROM subscription s"
        " WHERE s.stripe_subscription_id = {} AND invoice.subscription_id IS NULL"
        " AND invoice.stripe_object -> 'parent' -> 'subscription_details' ->> 'subscription' = {}",
        stripe_subscription_id,
        stripe_subscription_id,
    )


# ---------------------------------------------------------------- credit notes


async def _incident_of_credit(meta: Mapping[str, Any], stripe_id: str) -> tuple[Any, Any]:
    """The breached incident and service credit a credit note or refund pays: our metadata,
    else the service credit that names the Stripe object."""
    incident_id, credit_id = meta.get("incident_id"), meta.get("service_credit_id")
    if incident_id is None:
        row = (
            await ServiceCredit.select(ServiceCredit.id, ServiceCredit.incident_id)
            .where(ServiceCredit.stripe_object_id == stripe_id)
            .first()
        )
        if row is not None:
            incident_id, credit_id = row["incident_id"], row["id"]
    return incident_id, credit_id


async def credit_note_values(obj: Mapping[str, Any]) -> dict[str, Any]:
    incident_id, credit_id = await _incident_of_credit(obj.get("metadata") or {}, obj["id"])
    return {
        "stripe_invoice_id": _ref(obj.get("invoice")) or "",
        "customer_id": await _customer_id(obj.get("customer")),
        "number": obj.get("number"),
        "status": obj.get("status") or "issued",
        "currency": obj.get("currency") or "usd",
        "amount": int(obj.get("total") or obj.get("amount") or 0),
        "reason": obj.get("reason"),
        "memo": obj.get("memo"),
        "created": _ts(obj.get("created")) or utcnow(),
        "incident_id": incident_id,
        "service_credit_id": credit_id,
        "stripe_object": dict(obj),
    }


async def upsert_credit_note(
    obj: Mapping[str, Any], *, event_key: str | None, dry_run: bool = False
) -> tuple[Outcome, str]:
    stage = CREDIT_NOTE_STAGES.get(obj.get("status") or "issued", 0)
    values = await credit_note_values(obj)
    return await _upsert(
        CREDIT_NOTE, obj["id"], values, stage, event_key=event_key, dry_run=dry_run
    )


async def credit_note(obj: dict[str, Any], created: int = 0, event_id: str = "") -> None:
    stage = CREDIT_NOTE_STAGES.get(obj.get("status") or "issued", 0)
    await upsert_credit_note(obj, event_key=ordering.event_key(created, stage, event_id))


# ---------------------------------------------------------------- refunds


async def refund_values(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    purchase_id = meta.get("purchase_id")
    customer_id = None
    if purchase_id:
        p = (
            await FastTrackPurchase.select(FastTrackPurchase.customer_id)
            .where(FastTrackPurchase.id == purchase_id)
            .first()
        )
        customer_id = p["customer_id"] if p else None
    customer_id = customer_id or meta.get("customer_id") or await _customer_id(obj.get("customer"))
    incident_id, credit_id = await _incident_of_credit(meta, obj["id"])
    return {
        "stripe_payment_intent_id": _ref(obj.get("payment_intent")),
        "stripe_charge_id": _ref(obj.get("charge")),
        "customer_id": customer_id,
        "amount": int(obj.get("amount") or 0),
        "currency": obj.get("currency") or "usd",
        "status": obj.get("status") or "succeeded",
        "reason": obj.get("reason"),
        "created": _ts(obj.get("created")) or utcnow(),
        "fast_track_purchase_id": purchase_id,
        "incident_id": incident_id,
        "service_credit_id": credit_id,
        "stripe_object": dict(obj),
    }


async def upsert_refund(
    obj: Mapping[str, Any], *, event_key: str | None, dry_run: bool = False
) -> tuple[Outcome, str]:
    stage = REFUND_STAGES.get(obj.get("status") or "succeeded", 1)
    values = await refund_values(obj)
    return await _upsert(REFUND, obj["id"], values, stage, event_key=event_key, dry_run=dry_run)


async def refund(obj: dict[str, Any], created: int = 0, event_id: str = "") -> None:
    stage = REFUND_STAGES.get(obj.get("status") or "succeeded", 1)
    await upsert_refund(obj, event_key=ordering.event_key(created, stage, event_id))


# ---------------------------------------------------------------- one-off payments


def is_one_off(obj: Mapping[str, Any]) -> bool:
    """A PaymentIntent (or charge) of ours that no invoice made: a fast-track purchase."""
    meta = obj.get("metadata") or {}
    return bool(meta.get("purchase_id")) or meta.get("kind") == "fast_track"


async def payment_values(pi: Mapping[str, Any]) -> dict[str, Any]:
    meta = pi.get("metadata") or {}
    return {
        "customer_id": await _customer_id(pi.get("customer")) or meta.get("customer_id"),
        "fast_track_purchase_id": meta.get("purchase_id"),
        "amount": int(pi.get("amount") or 0),
        "amount_received": int(pi.get("amount_received") or 0),
        "currency": pi.get("currency") or "usd",
        "status": pi.get("status") or "requires_payment_method",
        "description": pi.get("description"),
        "created": _ts(pi.get("created")) or utcnow(),
        "stripe_object": dict(pi),
    }


def charge_values(charge: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the PaymentIntent's latest charge adds: when it was paid, how much came back."""
    if not charge or charge.get("status") != "succeeded":
        return {"stripe_charge_id": None, "paid_at": None, "amount_refunded": 0}
    return {
        "stripe_charge_id": charge.get("id"),
        "paid_at": _ts(charge.get("created")),
        "amount_refunded": int(charge.get("amount_refunded") or 0),
    }


async def upsert_payment(
    pi: Mapping[str, Any],
    *,
    event_key: str | None,
    charge: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> tuple[Outcome, str]:
    """From an event, the intent alone (its charge's events bring the rest); from Stripe's
    API (reconcile), the intent with its latest charge expanded."""
    values = await payment_values(pi)
    if event_key is None:
        values.update(charge_values(charge))
    stage = PAYMENT_STAGES.get(pi.get("status") or "", 0)
    return await _upsert(PAYMENT, pi["id"], values, stage, event_key=event_key, dry_run=dry_run)


async def payment_intent(obj: dict[str, Any], created: int, event_id: str) -> None:
    if not obj.get("id") or not is_one_off(obj):
        return
    stage = PAYMENT_STAGES.get(obj.get("status") or "", 0)
    await upsert_payment(obj, event_key=ordering.event_key(created, stage, event_id))


async def charge(obj: dict[str, Any]) -> None:
    """A succeeded or refunded charge: the payment's paid time and refunded amount.

    Charges only ever gain refunds, so the larger amount refunded is the newer one.
    """
    intent = _ref(obj.get("payment_intent"))
    if intent is None or not is_one_off(obj) or obj.get("status") != "succeeded":
        return
    found = charge_values(obj)
    await lock(intent)
    existing = (
        await Payment.select(Payment.id).where(Payment.stripe_payment_intent_id == intent).first()
    )
    if existing is None:
        # The charge came before any event of its intent: a row the intent's events
        # complete (an empty ordering key, so any of them applies).
        meta = obj.get("metadata") or {}
        await Payment.insert(
            Payment(
                id=new_id("pay"),
                stripe_payment_intent_id=intent,
                customer_id=await _customer_id(obj.get("customer")) or meta.get("customer_id"),
                fast_track_purchase_id=meta.get("purchase_id"),
                amount=int(obj.get("amount") or 0),
                amount_received=int(obj.get("amount_captured") or 0),
                currency=obj.get("currency") or "usd",
                status="succeeded",
                description=obj.get("description"),
                created=_ts(obj.get("created")) or utcnow(),
                stripe_event_key="",
                **found,
            )
        )
        return
    await Payment.raw(
        "UPDATE payment SET stripe_charge_id = {}, paid_at = coalesce(paid_at, {}),"
        " amount_refunded = greatest(amount_refunded, {}) WHERE stripe_payment_intent_id = {}",
        found["stripe_charge_id"],
        found["paid_at"],
        found["amount_refunded"],
        intent,
    )


async def in_transaction(
    stripe_id: str, write: Callable[[], Awaitable[tuple[Outcome, str]]]
) -> tuple[Outcome, str]:
    """Run ``write()`` (an upsert) under the object's lock in a transaction of its own."""
    async with engine().transaction():
        await lock(stripe_id)
        result: tuple[Outcome, str] = await write()
    return result
