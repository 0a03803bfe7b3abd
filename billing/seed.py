"""The default catalog a new installation starts with (``support-billing seed``)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from billing import catalog, schemas
from billing.catalog import STANDARD
from billing.tables import Plan

log = logging.getLogger("billing.seed")


def _t(minutes: int, coverage: str) -> dict[str, Any]:
    return {"first_response_minutes": minutes, "coverage": coverage}


BH, H24 = "business_hours", "24x7"

SEED: tuple[schemas.PlanCreate, ...] = tuple(
    msgspec.convert(p, schemas.PlanCreate)
    for p in (
        {
            "code": STANDARD,
            "name": "Standard",
            "description": "Free fallback: business-hours support, no guarantees beyond these.",
            "monthly_price": 0,
            "annual_price": 0,
            "targets": {
                "p1": _t(24 * 60, BH),
                "p2": _t(36 * 60, BH),
                "p3": _t(48 * 60, BH),
                "p4": _t(72 * 60, BH),
            },
            "included_incidents": None,
            "fast_track_price": 14900,
            "fast_track_minutes": 240,
        },
        {
            "code": "basic",
            "name": "Basic",
            "description": "Business-hours support with an 8-hour P1 response.",
            "monthly_price": 9900,
            "annual_price": 99000,
            "targets": {
                "p1": _t(8 * 60, BH),
                "p2": _t(16 * 60, BH),
                "p3": _t(24 * 60, BH),
                "p4": _t(48 * 60, BH),
            },
            "included_incidents": 5,
            "overage_price": 4900,
            "fast_track_price": 9900,
            "fast_track_minutes": 120,
            "credit_percent": 5,
            "credit_cap_percent": 15,
        },
        {
            "code": "business",
            "name": "Business",
            "description": "P1 answered within 2 hours around the clock; 10 incidents a month.",
            "monthly_price": 49900,
            "annual_price": 499000,
            "targets": {
                "p1": _t(120, H24),
                "p2": _t(8 * 60, BH),
                "p3": _t(16 * 60, BH),
                "p4": _t(24 * 60, BH),
            },
            "included_incidents": 10,
            "overage_price": 7900,
            "fast_track_price": 7900,
            "fast_track_minutes": 60,
            "credit_percent": 5,
            "credit_cap_percent": 20,
        },
        {
            "code": "premium",
            "name": "Premium",
            "description": "P1 in 30 minutes, P2 in 2 hours, 24x7; every incident fast-tracked.",
            "monthly_price": 199900,
            "annual_price": 1999000,
            "targets": {
                "p1": _t(30, H24),
                "p2": _t(120, H24),
                "p3": _t(8 * 60, BH),
                "p4": _t(16 * 60, BH),
            },
            "included_incidents": None,
            "fast_track_price": 0,
            "fast_track_minutes": 30,
            "credit_percent": 10,
            "credit_cap_percent": 30,
        },
    )
)


async def seed_if_empty() -> list[str]:
    """Seed the default catalog when no plan exists; returns the codes created."""
    if await Plan.exists():
        return []
    created = [(await catalog.create_plan(p)).code for p in SEED]
    log.info("seeded the plan catalog", extra={"plans": ",".join(created)})
    return created
