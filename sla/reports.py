"""SLA reports: attainment per tier and priority, and whether premium is worth it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec

from billing import service as billing
from common.db import connection
from common.money import Money, to_decimal
from sla import terms
from sla.calendar import TWENTY_FOUR_SEVEN, Pause, Schedule, business_time_between
from sla.exceptions import InvalidCalendar
from sla.schemas import (
    CalendarSpec,
    SlaReport,
    SlaReportRow,
    WorthItReport,
    WorthItRow,
)

STANDARD = "standard"


# Counts and wall-clock first-response percentiles per (tier, priority) and per tier.
_COUNTS_SQL = """
SELECT tier, priority,
       count(*) AS incidents,
       count(*) FILTER (WHERE sla_status = 'achieved') AS achieved,
       count(*) FILTER (WHERE sla_status = 'breached') AS breached,
       count(*) FILTER (WHERE sla_status IN ('active', 'paused')) AS open,
       count(first_response_at) AS responded,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM first_response_at - opened_at) / 60) AS median,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM first_response_at - opened_at) / 60) AS p95
  FROM incident
 WHERE opened_at >= $1 AND opened_at < $2
 GROUP BY GROUPING SETS ((tier, priority), (tier))
 ORDER BY tier, priority NULLS FIRST
"""

# What business time to first response needs: the calendar counts it, SQL cannot.
_RESPONSES_SQL = """
SELECT tier, priority, coverage, (entitlement -> 'calendar')::text AS calendar,
       opened_at, first_response_at, pauses::text AS pauses,
       extract(epoch FROM first_response_at - opened_at) / 60 AS wall
  FROM incident
 WHERE opened_at >= $1 AND opened_at < $2 AND first_response_at IS NOT NULL
"""

_CREDITED_SQL = """
SELECT id, tier, priority FROM incident
 WHERE opened_at >= $1 AND opened_at < $2 AND credit_status = 'issued'
"""


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks: PostgreSQL's ``percentile_cont``."""
    if not values:
        return None
    ordered = sorted(values)
    at = fraction * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _pauses(raw: Any) -> list[Pause]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    out: list[Pause] = []
    for start, end in raw or []:
        out.append((datetime.fromisoformat(start), datetime.fromisoformat(end) if end else None))
    return out


class _Schedules:
    """One schedule per distinct calendar (and coverage) among the incidents read."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], Schedule] = {}

    def get(self, coverage: str, calendar: str | None) -> Schedule:
        key = (coverage, calendar or "")
        found = self._found.get(key)
        if found is None:
            if coverage == "24x7" or not calendar:
                found = TWENTY_FOUR_SEVEN
            else:
                spec = msgspec.json.decode(calendar.encode(), type=CalendarSpec)
                found = terms.schedule_of(spec)
            self._found[key] = found
        return found


async def _business_minutes(
    conn: Any, start: datetime, end: datetime
) -> dict[tuple[str, str | None], list[float]]:
    """Business minutes to first response per (tier, priority) and per (tier, None)."""
    schedules = _Schedules()
    out: dict[tuple[str, str | None], list[float]] = {}
    async with conn.transaction(readonly=True):
        async for r in conn.cursor(_RESPONSES_SQL, start, end, prefetch=2000):
            pauses = r["pauses"]
            if r["coverage"] == "24x7" and pauses == "[]":
                minutes = float(r["wall"])  # every minute counts and none was paused
            else:
                try:
                    schedule = schedules.get(r["coverage"], r["calendar"])
                except (InvalidCalendar, msgspec.ValidationError, msgspec.DecodeError):
                    continue  # a calendar that no longer builds: wall time still counts it
                counted = business_time_between(
                    r["opened_at"],
                    r["first_response_at"],
                    schedule,
                    _pauses(pauses) if pauses != "[]" else (),
                )
                minutes = counted.total_seconds() / 60
            out.setdefault((r["tier"], r["priority"]), []).append(minutes)
            out.setdefault((r["tier"], None), []).append(minutes)
    return out


def _money(by_currency: dict[str, int]) -> list[Money]:
    return [Money(amount, c) for c, amount in sorted(by_currency.items())]


class _Figures(msgspec.Struct):
    counts: list[Any]
    business: dict[tuple[str, str | None], list[float]]
    credits: dict[tuple[str, str | None], dict[str, int]]


async def _figures(start: datetime, end: datetime) -> _Figures:
    async with connection() as conn:
        counts = await conn.fetch(_COUNTS_SQL, start, end)
        business = await _business_minutes(conn, start, end)
        credited = await conn.fetch(_CREDITED_SQL, start, end)
    where = {r["id"]: (r["tier"], r["priority"]) for r in credited}
    credits: dict[tuple[str, str | None], dict[str, int]] = {}
    for credit in await billing.incident_credits(list(where)):
        tier, priority = where[credit.incident_id]
        for key in ((tier, priority), (tier, None)):
            per = credits.setdefault(key, {})
            per[credit.amount.currency] = per.get(credit.amount.currency, 0) + credit.amount.amount
    return _Figures(counts=counts, business=business, credits=credits)


def _attainment(achieved: int, breached: int) -> float | None:
    decided = achieved + breached
    return None if decided == 0 else round(100 * achieved / decided, 2)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


async def sla_report(*, start: datetime, end: datetime) -> SlaReport:
    """Incidents opened in ``[start, end)`` per tier and priority."""
    f = await _figures(start, end)
    rows = []
    for r in f.counts:
        if r["priority"] is None:
            continue
        key = (r["tier"], r["priority"])
        business = f.business.get(key, [])
        rows.append(
            SlaReportRow(
                tier=r["tier"],
                priority=r["priority"],
                incidents=r["incidents"],
                achieved=r["achieved"],
                breached=r["breached"],
                open=r["open"],
                attainment_percent=_attainment(r["achieved"], r["breached"]),
                responded=r["responded"],
                median_first_response_minutes=_round(r["median"]),
                p95_first_response_minutes=_round(r["p95"]),
                median_first_response_business_minutes=_round(percentile(business, 0.5)),
                p95_first_response_business_minutes=_round(percentile(business, 0.95)),
                credits_paid=_money(f.credits.get(key, {})),
            )
        )
    return SlaReport(start=start, end=end, rows=rows)


async def worth_it_report(*, start: datetime, end: datetime) -> WorthItReport:
    """Per tier: net revenue vs credits paid vs attainment vs median first response, with
    the same figures' difference from ``standard``."""
    f = await _figures(start, end)
    revenue = await billing.revenue_report(start=start, end=end, group_by="plan")
    earned: dict[str, dict[str, int]] = {}
    for row in revenue.rows:
        if row.line == "subscriptions":
            per = earned.setdefault(row.group, {})
            per[row.currency] = per.get(row.currency, 0) + row.net.amount
    tiers = {r["tier"]: r for r in f.counts if r["priority"] is None}
    names = sorted(set(tiers) | set(earned) - {"none"} | {STANDARD})
    base = tiers.get(STANDARD)
    base_attainment = None if base is None else _attainment(base["achieved"], base["breached"])
    base_median = None if base is None else base["median"]
    rows = []
    for tier in names:
        r = tiers.get(tier)
        achieved, breached = (0, 0) if r is None else (r["achieved"], r["breached"])
        attainment = _attainment(achieved, breached)
        median = None if r is None else r["median"]
        rows.append(
            WorthItRow(
                tier=tier,
                revenue=_money(earned.get(tier, {})),
                credits_paid=_money(f.credits.get((tier, None), {})),
                incidents=0 if r is None else r["incidents"],
                achieved=achieved,
                breached=breached,
                attainment_percent=attainment,
                median_first_response_minutes=_round(median),
                median_first_response_business_minutes=_round(
                    percentile(f.business.get((tier, None), []), 0.5)
                ),
                attainment_vs_standard_points=(
                    None
                    if attainment is None or base_attainment is None
                    else round(attainment - base_attainment, 2)
                ),
                first_response_speedup_vs_standard=(
                    None
                    if not median or base_median is None
                    else round(float(base_median) / float(median), 2)
                ),
            )
        )
    return WorthItReport(start=start, end=end, rows=rows)


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
