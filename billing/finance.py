"""Finance views of the Stripe mirror: invoices (also as CSV) and credit notes."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from billing import mirror, schemas
from billing.exceptions import InvoiceNotFound
from billing.tables import CreditNote, Invoice, Payment
from common.db import connection
from common.money import Money, to_decimal
from common.pagination import keyset_page


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


def mirror_filters(
    query: Any,
    table: type[Invoice] | type[Payment],
    *,
    customer_id: str | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> Any:
    """The finance lists' filters on a mirror table: one customer, one Stripe status, and
    Stripe's ``created`` in ``[created_from, created_to)`` (as the CSV export filters)."""
    if customer_id:
        query = query.where(table.customer_id == customer_id)
    if status:
        query = query.where(table.status == status)
    if created_from:
        query = query.where(table.created >= created_from)
    if created_to:
        query = query.where(table.created < created_to)
    return query


async def list_invoices(
    *,
    customer_id: str | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    starting_after: str | None,
) -> tuple[list[schemas.InvoiceView], bool]:
    query = mirror_filters(
        Invoice.select(*_INVOICE_COLUMNS).output(load_json=True),
        Invoice,
        customer_id=customer_id,
        status=status,
        created_from=created_from,
        created_to=created_to,
    )
    rows, more = await keyset_page(query, Invoice.id, limit=limit, starting_after=starting_after)
    return [_invoice(r) for r in rows], more


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


# The post-payment credit notes of an invoice split into what went back to the card
# (``refunds``) and what was credited (to the balance, or settled out of band).
# Pre-payment credit notes lowered what was due and are already in ``amount_paid``.
CREDIT_NOTE_SPLIT = """
    SELECT COALESCE(sum(r.refunded), 0)::bigint AS refunded,
           COALESCE(sum(c.amount - r.refunded), 0)::bigint AS credited
      FROM credit_note c
     CROSS JOIN LATERAL (
           SELECT COALESCE(sum((x ->> 'amount_refunded')::bigint), 0) AS refunded
             FROM jsonb_array_elements(
                  CASE WHEN jsonb_typeof(c.stripe_object -> 'refunds') = 'array'
                       THEN c.stripe_object -> 'refunds' ELSE '[]'::jsonb END) AS x) r
     WHERE c.stripe_invoice_id = i.stripe_invoice_id
       AND c.status <> 'void'
       AND COALESCE(c.stripe_object ->> 'type', 'post_payment') <> 'pre_payment'
"""

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
    "refunded",
    "credited",
    "net",
)
MONEY_FIELDS = (
    "subtotal",
    "tax",
    "total",
    "amount_paid",
    "amount_due",
    "refunded",
    "credited",
    "net",
)
# Each amount again as a decimal in major units of the row's currency ("123.45").
CSV_HEADER = (*CSV_FIELDS, *(f"{f}_decimal" for f in MONEY_FIELDS))

_EXPORT_SQL = """
SELECT i.id, i.stripe_invoice_id, i.number, i.customer_id, i.subscription_id, i.status,
       i.billing_reason, i.currency, i.subtotal, i.tax, i.total, i.amount_paid, i.amount_due,
       i.created, i.finalized_at, i.paid_at, i.period_start, i.period_end,
       cn.refunded, cn.credited, i.amount_paid - cn.refunded - cn.credited AS net
  FROM invoice i
 CROSS JOIN LATERAL (%s) cn
 WHERE ($1::text IS NULL OR i.customer_id = $1)
   AND ($2::text IS NULL OR i.status = $2)
   AND ($3::timestamptz IS NULL OR i.created >= $3)
   AND ($4::timestamptz IS NULL OR i.created < $4)
 ORDER BY i.id DESC
""".replace("%s", CREDIT_NOTE_SPLIT)  # constants only: every request value is a $n argument

# Rows fetched per round trip from the server-side cursor, and written per chunk sent.
EXPORT_PREFETCH = 1000


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


async def invoices_csv(
    *,
    customer_id: str | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> AsyncIterator[bytes]:
    """The invoices the list would show, as CSV chunks, read from a server-side cursor.

    One row per invoice, newest first; never more than ``EXPORT_PREFETCH`` rows in memory.
    The first chunk (the header and the first rows) comes only once the connection, the
    snapshot (one read-only repeatable-read transaction) and the first fetch succeeded:
    a caller that awaits it before answering turns an outage into a 503, not a cut file.
    The connection is held until the last row is sent (or the client goes away).
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    args = (customer_id, status, created_from, created_to)
    async with connection() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        cursor = await conn.cursor(_EXPORT_SQL, *args)
        while True:
            rows = await cursor.fetch(EXPORT_PREFETCH)
            for r in rows:
                c = r["currency"]
                writer.writerow(
                    [_cell(r[f]) for f in CSV_FIELDS] + [to_decimal(r[f], c) for f in MONEY_FIELDS]
                )
            chunk = out.getvalue()
            if chunk:
                yield chunk.encode()
                out.seek(0)
                out.truncate()
            if len(rows) < EXPORT_PREFETCH:
                return


def rows_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """A small table (a report) as CSV chunks: the header, then one chunk per 500 rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for n, row in enumerate(rows, 1):
        writer.writerow([_cell(v) for v in row])
        if n % 500 == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


async def list_credit_notes(
    customer_id: str | None, limit: int, starting_after: str | None
) -> tuple[list[schemas.CreditNoteView], bool]:
    query = CreditNote.objects()
    if customer_id:
        query = query.where(CreditNote.customer_id == customer_id)
    rows, more = await keyset_page(query, CreditNote.id, limit=limit, starting_after=starting_after)
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
        for r in rows
    ], more
