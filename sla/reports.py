"""SLA reports: attainment per tier and priority, and whether premium is worth it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from billing import service as billing
from common.money import Money, to_decimal
from sla.schemas import SlaReport, WorthItReport


async def sla_report(*, start: datetime, end: datetime) -> SlaReport:
    """Incidents opened in ``[start, end)`` per tier and priority."""
    return SlaReport(start=start, end=end, rows=[])


async def worth_it_report(*, start: datetime, end: datetime) -> WorthItReport:
    """Per tier: revenue vs credits paid vs attainment vs median first response."""
    return WorthItReport(start=start, end=end, rows=[])


def _minutes(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _credits(amounts: list[Money]) -> str:
    # One cell: "usd 123.45; eur 10.00" (currencies are never summed together).
    return "; ".join(f"{m.currency} {to_decimal(m.amount, m.currency)}" for m in amounts)


SLA_CSV_HEADER = (
    "tier",
    "priority",
    "incidents",
    "achieved",
    "breached",
    "open",
    "attainment_percent",
    "responded",
    "median_first_response_minutes",
    "p95_first_response_minutes",
    "median_first_response_business_minutes",
    "p95_first_response_business_minutes",
    "credits_paid",
)


def sla_csv(report: SlaReport) -> Iterator[bytes]:
    """The SLA report as CSV, one row per tier and priority."""
    return billing.rows_csv(
        SLA_CSV_HEADER,
        (
            [
                r.tier,
                r.priority,
                r.incidents,
                r.achieved,
                r.breached,
                r.open,
                _minutes(r.attainment_percent),
                r.responded,
                _minutes(r.median_first_response_minutes),
                _minutes(r.p95_first_response_minutes),
                _minutes(r.median_first_response_business_minutes),
                _minutes(r.p95_first_response_business_minutes),
                _credits(r.credits_paid),
            ]
            for r in report.rows
        ),
    )


WORTH_IT_CSV_HEADER = (
    "tier",
    "revenue",
    "credits_paid",
    "incidents",
    "achieved",
    "breached",
    "attainment_percent",
    "median_first_response_minutes",
    "median_first_response_business_minutes",
    "attainment_vs_standard_points",
    "first_response_speedup_vs_standard",
)


def worth_it_csv(report: WorthItReport) -> Iterator[bytes]:
    """The worth-it table as CSV, one row per tier (standard included)."""
    return billing.rows_csv(
        WORTH_IT_CSV_HEADER,
        (
            [
                r.tier,
                _credits(r.revenue),
                _credits(r.credits_paid),
                r.incidents,
                r.achieved,
                r.breached,
                _minutes(r.attainment_percent),
                _minutes(r.median_first_response_minutes),
                _minutes(r.median_first_response_business_minutes),
                _minutes(r.attainment_vs_standard_points),
                ""
                if r.first_response_speedup_vs_standard is None
                else f"{r.first_response_speedup_vs_standard:.2f}",
            ]
            for r in report.rows
        ),
    )
