"""The deadline quote: the same arithmetic as opening an incident, and its bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from billing import service as billing
from billing.schemas import CustomerCreate
from tests.sla.conftest import Open, ago, iso, parse


@pytest.fixture
async def berlin_customer(seeded: list[str]) -> dict[str, Any]:
    """Mon-Fri 09:00-17:00 Europe/Berlin with German holidays (the default hours)."""
    created = await billing.create_customer(
        CustomerCreate(
            external_id=f"org-{time.time_ns()}",
            name="Berlin GmbH",
            email="ops@berlin.test",
            timezone="Europe/Berlin",
            country="DE",
        )
    )
    return {"id": created.id}


async def test_the_quote_equals_the_due_at_an_incident_opened_then_gets(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    berlin_customer: dict[str, Any],
) -> None:
    cid = berlin_customer["id"]
    url = f"/v1/customers/{cid}/entitlements/quote"
    for i, opened_at in enumerate([ago(minutes=3), ago(days=2, hours=5), ago(days=9, minutes=7)]):
        for priority in ("p1", "p4"):
            r = await client.get(
                url,
                headers=helpdesk_headers,
                params={"priority": priority, "opened_at": iso(opened_at)},
            )
            assert r.status_code == 200, r.text
            quote = r.json()
            incident = await open_incident(cid, f"Q-{i}-{priority}", priority, opened_at=opened_at)
            assert incident.status_code == 201, incident.text
            assert incident.json()["due_at"] == quote["due_at"]
            assert parse(quote["opened_at"]) == opened_at
            assert quote["tier"] == "standard"
            assert quote["target"]["coverage"] == "business_hours"


async def test_the_quote_prices_fast_track_without_spending_it(
    client: httpx.AsyncClient, helpdesk_headers: dict[str, str], berlin_customer: dict[str, Any]
) -> None:
    # Friday 16:00 Berlin (15:00 UTC): 24 business hours end three working days later,
    # the 4-hour fast-track (24x7) at 20:00 that evening.
    opened_at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    r = await client.get(
        f"/v1/customers/{berlin_customer['id']}/entitlements/quote",
        headers=helpdesk_headers,
        params={"priority": "p1", "opened_at": iso(opened_at)},
    )
    assert r.status_code == 200, r.text
    quote = r.json()
    assert parse(quote["due_at"]) == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    assert quote["fast_track"] == {
        "due_at": iso(opened_at + timedelta(hours=4)),
        "price": {"amount": 14900, "currency": "usd"},
        "credits": 0,
        "included": False,
        "faster": True,
        "first_response_minutes": 240,
        "available": True,
    }


async def test_the_quote_refuses_bad_input_with_problem_json(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    finance_headers: dict[str, str],
    berlin_customer: dict[str, Any],
) -> None:
    url = f"/v1/customers/{berlin_customer['id']}/entitlements/quote"
    cases: list[tuple[dict[str, str], int]] = [
        ({"priority": "p7"}, 400),
        ({}, 400),
        ({"priority": "p1", "opened_at": "yesterday"}, 400),
        ({"priority": "p1", "opened_at": iso(ago(minutes=-30))}, 422),
        ({"priority": "p1", "opened_at": "2026-01-05T10:00:00"}, 400),
        ({"priority": "p1", "opened_at": "0001-01-01T00:00:00+01:00"}, 400),
        ({"priority": "p1", "opened_at": "9999-12-31T23:59:59-01:00"}, 400),
    ]
    for params, status in cases:
        r = await client.get(url, headers=helpdesk_headers, params=params)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == status
    r = await client.get(
        "/v1/customers/cust_nope/entitlements/quote",
        headers=helpdesk_headers,
        params={"priority": "p1"},
    )
    assert r.status_code == 404
    r = await client.get(url, headers=finance_headers, params={"priority": "p1"})
    assert r.status_code == 403
