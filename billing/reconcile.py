"""Reconcile the finance mirror with Stripe: page through Stripe's objects, repair the drift.

Events can be lost (a webhook never delivered and past the catch-up's reach) and rows can
be deleted or edited by hand; Stripe's objects are the truth. Each listed object goes
through the same mapping and upsert as its events (``billing.mirror``), under the same
per-object lock, and is written only when the row is missing (``restored``) or differs
(``repaired``), after fetching it once more (the page may be older than an event applied
since): a second run, or two at once, write nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from billing import mirror, schemas
from billing.stripe_gateway import gateway
from common.audit import acting_as
from common.clock import utcnow

log = logging.getLogger("billing.reconcile")

Upsert = Callable[..., Awaitable[tuple[mirror.Outcome, str]]]


async def _invoice(obj: Mapping[str, Any], dry_run: bool) -> tuple[mirror.Outcome, str]:
    return await mirror.upsert_invoice(obj, event_key=None, dry_run=dry_run)


async def _credit_note(obj: Mapping[str, Any], dry_run: bool) -> tuple[mirror.Outcome, str]:
    return await mirror.upsert_credit_note(obj, event_key=None, dry_run=dry_run)


async def _refund(obj: Mapping[str, Any], dry_run: bool) -> tuple[mirror.Outcome, str]:
    return await mirror.upsert_refund(obj, event_key=None, dry_run=dry_run)


async def _payment(obj: Mapping[str, Any], dry_run: bool) -> tuple[mirror.Outcome, str]:
    charge = obj.get("latest_charge")
    # Kept as an event carries it: the charge by id.
    intent = {**obj, "latest_charge": charge.get("id") if isinstance(charge, dict) else charge}
    return await mirror.upsert_payment(
        intent,
        event_key=None,
        charge=charge if isinstance(charge, dict) else None,
        dry_run=dry_run,
    )


# Stripe object type, the mirror's upsert, and whether a listed object is ours to mirror.
_TYPES: tuple[tuple[str, Upsert, Callable[[Mapping[str, Any]], bool]], ...] = (
    ("invoice", _invoice, lambda _: True),
    ("credit_note", _credit_note, lambda _: True),
    ("payment_intent", _payment, mirror.is_one_off),
    ("refund", _refund, lambda _: True),
)


async def _reconcile_one(
    object_type: str, upsert: Upsert, listed: Mapping[str, Any]
) -> mirror.Outcome:
    """Compare the listed object with its row; when they differ, fetch the object again
    (an event may have been applied since the page was listed) and write that."""
    stripe_id = listed["id"]
    outcome, _ = await mirror.in_transaction(stripe_id, partial(upsert, listed, True))
    if outcome not in ("restored", "repaired"):
        return outcome
    fresh = await gateway().retrieve(object_type, stripe_id)
    outcome, _ = await mirror.in_transaction(stripe_id, partial(upsert, fresh, False))
    return outcome


async def _one_type(
    object_type: str,
    upsert: Upsert,
    ours: Callable[[Mapping[str, Any]], bool],
    since: datetime | None,
) -> schemas.ReconcileCounts:
    checked = 0
    restored: list[str] = []
    repaired: list[str] = []
    starting_after: str | None = None
    created_gte = None if since is None else int(since.timestamp())
    while True:
        page = await gateway().list_page(
            object_type, starting_after=starting_after, created_gte=created_gte
        )
        data: list[dict[str, Any]] = page.get("data", [])
        for obj in data:
            if not ours(obj):
                continue
            checked += 1
            outcome = await _reconcile_one(object_type, upsert, obj)
            if outcome == "restored":
                restored.append(obj["id"])
            elif outcome == "repaired":
                repaired.append(obj["id"])
        if not page.get("has_more") or not data:
            break
        starting_after = data[-1]["id"]
    return schemas.ReconcileCounts(
        checked=checked,
        restored=len(restored),
        repaired=len(repaired),
        restored_ids=restored,
        repaired_ids=repaired,
    )


async def reconcile(since: datetime | None = None) -> schemas.ReconcileReport:
    """Page through Stripe's invoices, credit notes, one-off PaymentIntents and refunds
    (created at ``since`` or later, or all) and make the mirror equal to them.

    Safe to run twice and concurrently: a row equal to Stripe's object is not written.
    """
    started = utcnow()
    counts: dict[str, schemas.ReconcileCounts] = {}
    with acting_as("stripe:reconcile"):
        for object_type, upsert, ours in _TYPES:
            counts[object_type] = await _one_type(object_type, upsert, ours, since)
    report = schemas.ReconcileReport(
        started_at=started,
        finished_at=utcnow(),
        since=since,
        invoices=counts["invoice"],
        credit_notes=counts["credit_note"],
        payments=counts["payment_intent"],
        refunds=counts["refund"],
    )
    if report.total_fixed:
        log.warning(
            "reconcile repaired the mirror: %s",
            {
                name: (c.restored, c.repaired)
                for name, c in counts.items()
                if c.restored or c.repaired
            },
        )
    return report
