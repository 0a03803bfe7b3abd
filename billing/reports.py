"""Finance reports over the Stripe mirror: revenue (by month or plan) and MRR at an instant.

Aggregated in SQL, per currency (never summed across currencies).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from billing import finance, schemas
from common.money import Money, to_decimal


async def revenue_report(
    *, start: datetime, end: datetime, group_by: schemas.RevenueGroup
) -> schemas.RevenueReport:
    """Invoiced, paid, refunded, credited and net in ``[start, end)``, grouped."""
    return schemas.RevenueReport(start=start, end=end, group_by=group_by, rows=[], totals=[])


async def mrr_report(*, at: datetime, start: datetime | None = None) -> schemas.MrrReport:
    """MRR by plan at ``at``; with ``start``, its movement from ``start`` to ``at``."""
    return schemas.MrrReport(at=at, start=start, rows=[], totals=[], movement=[])


async def incident_credits(incident_ids: Sequence[str]) -> list[schemas.IncidentCredit]:
    """The issued service credits of these incidents."""
    return []


REVENUE_CSV_HEADER = (
    "group",
    "line",
    "currency",
    "documents",
    *(
        f"{name}{suffix}"
        for name in ("invoiced", "paid", "refunded", "credited", "service_credits", "net")
        for suffix in ("", "_decimal")
    ),
)


def _money_cells(*amounts: Money) -> list[Any]:
    return [v for m in amounts for v in (m.amount, to_decimal(m.amount, m.currency))]


def revenue_csv(report: schemas.RevenueReport) -> Iterator[bytes]:
    """The report's rows as CSV (totals are the sums of the rows per currency)."""
    return finance.rows_csv(
        REVENUE_CSV_HEADER,
        (
            [
                r.group,
                r.line,
                r.currency,
                r.documents,
                *_money_cells(r.invoiced, r.paid, r.refunded, r.credited, r.service_credits, r.net),
            ]
            for r in report.rows
        ),
    )


MRR_CSV_HEADER = (
    "plan",
    "currency",
    "active",
    "mrr",
    "mrr_decimal",
    "trialing",
    "trialing_mrr",
    "trialing_mrr_decimal",
    "past_due",
    "past_due_mrr",
    "past_due_mrr_decimal",
)


def mrr_csv(report: schemas.MrrReport) -> Iterator[bytes]:
    """MRR by plan as CSV, one row per plan and currency."""
    return finance.rows_csv(
        MRR_CSV_HEADER,
        (
            [
                r.plan,
                r.currency,
                r.active,
                *_money_cells(r.mrr),
                r.trialing,
                *_money_cells(r.trialing_mrr),
                r.past_due,
                *_money_cells(r.past_due_mrr),
            ]
            for r in report.rows
        ),
    )
