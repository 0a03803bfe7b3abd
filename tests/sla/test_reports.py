"""SLA attainment and "is premium worth it" on hand-built incidents."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from billing.tables import ServiceCredit
from sla.reports import percentile
from sla.tables import Incident

HOURS = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
CALENDAR = {"timezone": "Europe/Berlin", "business_hours": HOURS, "country": None}
JANUARY = {"from": "2026-01-01T00:00:00+01:00", "to": "2026-02-01T00:00:00+01:00"}


def _incident(
    n: int,
    tier: str,
    priority: str,
    opened: datetime,
    responded_after: timedelta | None,
    status: str,
    *,
    coverage: str = "24x7",
    pauses: list[list[str]] | None = None,
    credited: bool = False,
) -> Incident:
    return Incident(
        id=f"inc_{n:03d}",
        customer_id="cust_r",
        external_ref=f"T-{n}",
        priority=priority,
        opened_at=opened,
        entitlement={"tier": tier, "calendar": CALENDAR},
        tier=tier,
        target_minutes=30,
        coverage=coverage,
        due_at=opened + timedelta(minutes=30),
        first_response_at=None if responded_after is None else opened + responded_after,
        sla_status=status,
        pauses=pauses or [],
        credit_status="issued" if credited else None,
    )


def test_percentile_is_postgres_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert percentile([40.0, 10.0, 30.0, 20.0], 0.95) == 38.5


async def test_attainment_and_first_response_per_tier_and_priority(
    client: httpx.AsyncClient,
    finance_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    clean_db: None,
) -> None:
    t = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    await Incident.insert(
        _incident(1, "business", "p1", t, 10 * minute, "achieved"),
        _incident(2, "business", "p1", t, 20 * minute, "achieved"),
        _incident(3, "business", "p1", t, 30 * minute, "achieved"),
        # 40 wall minutes, 10 of them paused: 30 business minutes; breached and credited.
        _incident(
            4,
            "business",
            "p1",
            t,
            40 * minute,
            "breached",
            pauses=[["2026-01-05T10:05:00Z", "2026-01-05T10:15:00Z"]],
            credited=True,
        ),
        _incident(5, "business", "p1", t, None, "active"),
        # Business hours, Berlin: Fri 16:00 → Mon 10:00 is 66 h wall, 2 business hours.
        _incident(
            6,
            "standard",
            "p2",
            datetime(2026, 1, 9, 15, 0, tzinfo=UTC),
            timedelta(hours=66),
            "achieved",
            coverage="business_hours",
        ),
        _incident(
            7,
            "standard",
            "p2",
            datetime(2026, 1, 13, 9, 0, tzinfo=UTC),
            90 * minute,
            "breached",
            coverage="business_hours",
        ),
        # Outside the window: not counted.
        _incident(8, "business", "p1", datetime(2026, 2, 3, tzinfo=UTC), minute, "breached"),
    )
    await ServiceCredit.insert(
        ServiceCredit(
            id="scr_1",
            incident_id="inc_004",
            customer_id="cust_r",
            kind="credit_note",
            amount=2495,
            currency="usd",
            reason="breach",
            status="issued",
            issued_at=t,
        )
    )
    r = await client.get("/v1/reports/sla", headers=helpdesk_headers, params=JANUARY)
    assert r.status_code == 200, r.text
    rows: dict[tuple[str, str], dict[str, Any]] = {
        (x["tier"], x["priority"]): x for x in r.json()["rows"]
    }
    assert set(rows) == {("business", "p1"), ("standard", "p2")}
    b = rows[("business", "p1")]
    assert (b["incidents"], b["achieved"], b["breached"], b["open"], b["responded"]) == (
        5,
        3,
        1,
        1,
        4,
    )
    assert b["attainment_percent"] == 75.0
    assert (b["median_first_response_minutes"], b["p95_first_response_minutes"]) == (25.0, 38.5)
    assert (
        b["median_first_response_business_minutes"],
        b["p95_first_response_business_minutes"],
    ) == (25.0, 30.0)
    assert b["credits_paid"] == [{"amount": 2495, "currency": "usd"}]
    s = rows[("standard", "p2")]
    assert (s["incidents"], s["attainment_percent"]) == (2, 50.0)
    assert s["median_first_response_minutes"] == (66 * 60 + 90) / 2
    assert s["median_first_response_business_minutes"] == (120 + 90) / 2
    assert s["credits_paid"] == []

    exported = await client.get(
        "/v1/reports/sla/export.csv", headers=finance_headers, params=JANUARY
    )
    lines = {(x["tier"], x["priority"]): x for x in csv.DictReader(io.StringIO(exported.text))}
    assert lines[("business", "p1")]["attainment_percent"] == "75.0"
    assert lines[("business", "p1")]["credits_paid"] == "usd 24.95"

    worth = await client.get("/v1/reports/worth-it", headers=finance_headers, params=JANUARY)
    assert worth.status_code == 200, worth.text
    tiers = {x["tier"]: x for x in worth.json()["rows"]}
    assert set(tiers) == {"business", "standard"}
    assert tiers["business"]["attainment_vs_standard_points"] == 25.0
    assert tiers["business"]["median_first_response_minutes"] == 25.0
    # standard's median over business's: 2025 / 25
    assert tiers["business"]["first_response_speedup_vs_standard"] == 81.0
    assert tiers["business"]["credits_paid"] == [{"amount": 2495, "currency": "usd"}]
    assert tiers["standard"]["attainment_vs_standard_points"] == 0.0
    assert (
        await client.get("/v1/reports/worth-it", headers=helpdesk_headers, params=JANUARY)
    ).status_code == 403
