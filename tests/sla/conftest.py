"""SLA fixtures: the seeded catalog, customers whose calendar counts every minute, helpers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from billing import service as billing
from billing.schemas import CustomerCreate
from sla.tables import SlaEvent
from tests.billing import conftest as billing_fixtures
from webhooks.tables import OutboundEvent

# The billing fixtures this folder reuses: the seeded catalog and the Stripe emulator's events.
seeded = billing_fixtures.seeded
stripe_emu = billing_fixtures.stripe_emu
deliver = billing_fixtures.deliver
subscribed = billing_fixtures.subscribed
bought_by_checkout = billing_fixtures.bought_by_checkout

ALL_WEEK = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

# The seeded "standard" tier: business-hours targets (P1 24 h ... P4 72 h); on a calendar
# open all week every minute counts, so deadlines are plain arithmetic on opened_at.
P1_MINUTES = 24 * 60
P2_MINUTES = 36 * 60


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


@pytest.fixture
async def customer(seeded: list[str]) -> dict[str, Any]:
    """A standard-tier customer whose business hours are the whole week (UTC)."""
    created = await billing.create_customer(
        CustomerCreate(
            external_id=f"org-{time.time_ns()}",
            name="Acme",
            email="ops@acme.test",
            timezone="UTC",
            business_hours=ALL_WEEK,
        )
    )
    return {"id": created.id}


Open = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def open_incident(client: httpx.AsyncClient, helpdesk_headers: dict[str, str]) -> Open:
    async def call(customer_id: str, ref: str, priority: str = "p1", **body: Any) -> httpx.Response:
        payload = {"customer_id": customer_id, "external_ref": ref, "priority": priority, **body}
        if isinstance(payload.get("opened_at"), datetime):
            payload["opened_at"] = iso(payload["opened_at"])
        return await client.post("/v1/incidents", headers=helpdesk_headers, json=payload)

    return call


async def ledger(incident_id: str) -> list[str]:
    rows = (
        await SlaEvent.select(SlaEvent.type)
        .where(SlaEvent.incident_id == incident_id)
        .order_by(SlaEvent.seq)
    )
    return [r["type"] for r in rows]


async def outbound(incident_id: str) -> list[str]:
    rows = await OutboundEvent.select(OutboundEvent.type, OutboundEvent.data).order_by(
        OutboundEvent.created_at
    )
    return [r["type"] for r in rows if incident_id in str(r["data"])]
