"""Finance views of the Stripe mirror: invoices (also as CSV) and credit notes."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from billing import mirror, schemas
from billing.exceptions import InvoiceNotFound
from billing.tables import CreditNote, Invoice
from common.money import Money


def _invoice(r: dict[str, Any]) -> schemas.InvoiceView:
    c = r["currency"]
    return schemas.InvoiceView(
        id=r["id"],
        stripe_invoice_id=r["stripe_invoice_id"],
        customer_id=r["customer_id"],
        subscription_id=r["subscription_id"],
        number=r["number"],
        status=r["status"],
        billing_reason=r["billing_reason"],
        currency=c,
        subtotal=Money(r["subtotal"], c),
        tax=Money(r["tax"], c),
        total=Money(r["total"], c),
        amount_paid=Money(r["amount_paid"], c),
        amount_due=Money(r["amount_due"], c),
        period_start=r["period_start"],
        period_end=r["period_end"],
        created=r["created"],
        finalized_at=r["finalized_at"],
        paid_at=r["paid_at"],
        hosted_invoice_url=r["hosted_invoice_url"],
        lines=[mirror.line_view(line) for line in (r["lines"] or [])],
    )


_INVOICE_COLUMNS = [c for c in Invoice._meta.columns if c._meta.name != "stripe_object"]


async def list_invoices(
    *,
    customer_id: str | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    starting_after: str | None,
) -> tuple[list[schemas.InvoiceView], bool]:
    query = (
        Invoice.select(*_INVOICE_COLUMNS)
        .order_by(Invoice.id, ascending=False)
        .output(load_json=True)
    )
    if customer_id:
        query = query.where(Invoice.customer_id == customer_id)
    if status:
        query = query.where(Invoice.status == status)
    if created_from:
        query = query.where(Invoice.created >= created_from)
    if created_to:
        query = query.where(Invoice.created < created_to)
    if starting_after:
        query = query.where(Invoice.id < starting_after)
    rows = await query.limit(limit + 1)
    return [_invoice(r) for r in rows[:limit]], len(rows) > limit


async def get_invoice(invoice_id: str) -> schemas.InvoiceView:
    row = (
        await Invoice.select(*_INVOICE_COLUMNS)
        .where((Invoice.id == invoice_id) | (Invoice.stripe_invoice_id == invoice_id))
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise InvoiceNotFound(f"no invoice {invoice_id!r}")
    return _invoice(row)


CSV_FIELDS = (
    "id",
    "stripe_invoice_id",
    "number",
    "customer_id",
    "subscription_id",
    "status",
    "billing_reason",
    "currency",
    "subtotal",
    "tax",
    "total",
    "amount_paid",
    "amount_due",
    "created",
    "finalized_at",
    "paid_at",
    "period_start",
    "period_end",
)


def to_csv(invoices: list[schemas.InvoiceView]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for inv in invoices:
        row = []
        for field in CSV_FIELDS:
            value = getattr(inv, field)
            if isinstance(value, Money):
                value = value.amount
            elif isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            row.append("" if value is None else value)
        writer.writerow(row)
    return out.getvalue()


async def list_credit_notes(
    customer_id: str | None, limit: int, starting_after: str | None
) -> tuple[list[schemas.CreditNoteView], bool]:
    query = CreditNote.objects().order_by(CreditNote.id, ascending=False).limit(limit + 1)
    if customer_id:
        query = query.where(CreditNote.customer_id == customer_id)
    if starting_after:
        query = query.where(CreditNote.id < starting_after)
    rows = await query
    return [
        schemas.CreditNoteView(
            id=r.id,
            stripe_credit_note_id=r.stripe_credit_note_id,
            stripe_invoice_id=r.stripe_invoice_id,
            customer_id=r.customer_id,
            number=r.number,
            status=r.status,
            amount=Money(r.amount, r.currency),
            reason=r.reason,
            memo=r.memo,
            created=r.created,
            incident_id=r.incident_id,
            service_credit_id=r.service_credit_id,
        )
        for r in rows[:limit]
    ], len(rows) > limit
