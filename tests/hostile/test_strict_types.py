"""Strict types: integers are integers, money is never a float, times are RFC 3339 in range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.tables import Customer, FastTrackPurchase, Plan
from common.schemas import MAX_TIME, MIN_TIME, TimeOutOfRange, check_time

PROBLEM = "application/problem+json"


def _bad(r: httpx.Response, field: str) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert field in [e["field"] for e in r.json()["errors"]], r.text


@pytest.fixture
async def customer(
    client: httpx.AsyncClient, admin_headers: dict[str, str], seeded: list[str]
) -> dict[str, Any]:
    r = await client.post(
        "/v1/customers",
        json={"external_id": "org-strict", "name": "Strict", "email": "s@strict.test"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
async def seeded(clean_db: None) -> list[str]:
    from billing import seed

    return await seed.seed_if_empty()


@pytest.mark.parametrize("quantity", ["1", 1.0, 1e2, True, "1e2"])
async def test_a_quantity_must_be_a_json_integer(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    quantity: Any,
) -> None:
    r = await client.post(
        f"/v1/customers/{customer['id']}/fast-track-purchases",
        json={"quantity": quantity, "mode": "checkout"},
        headers=admin_headers,
    )
    _bad(r, "quantity")
    assert await FastTrackPurchase.count() == 0


async def test_money_is_never_a_float_and_currency_is_iso_4217(
    client: httpx.AsyncClient, admin_headers: dict[str, str], seeded: list[str]
) -> None:
    target = {"first_response_minutes": 60, "coverage": "24x7"}
    plan = {
        "code": "gold",
        "name": "Gold",
        "monthly_price": 9900,
        "annual_price": 99000,
        "targets": {p: target for p in ("p1", "p2", "p3", "p4")},
    }
    plans = await Plan.count()
    for field, value in (("monthly_price", 9900.0), ("annual_price", "99000"), ("currency", "xyz")):
        r = await client.post("/v1/plans", json={**plan, field: value}, headers=admin_headers)
        _bad(r, field)
    assert await Plan.count() == plans
    ok = await client.post("/v1/plans", json={**plan, "currency": "eur"}, headers=admin_headers)
    assert ok.status_code == 201, ok.text
    assert ok.json()["monthly_price"] == {"amount": 9900, "currency": "eur"}


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/customers?limit=1e2", "limit"),
        ("/v1/customers?limit=1.0", "limit"),
        ("/v1/customers?limit=20&limit=30", "limit"),
        ("/v1/plans/basic?version=2147483648", "version"),
        ("/v1/plans/basic?version=99999999999999999999999", "version"),
        ("/v1/invoices?from=1767225600", "from"),
        ("/v1/invoices?from=2026-01-01", "from"),
        ("/v1/invoices?from=0001-01-01T00:00:00%2B01:00", "from"),
        ("/v1/invoices?to=9999-12-31T23:59:59-01:00", "to"),
        ("/v1/customers/cust_x/entitlements?at=0001-01-01T00:00:00Z", "at"),
        ("/v1/customers/cust_x/subscription?at_period_end=0", "at_period_end"),
    ],
)
async def test_query_values_are_typed_strictly_and_never_500(
    client: httpx.AsyncClient, admin_headers: dict[str, str], url: str, field: str
) -> None:
    method = "DELETE" if "at_period_end" in url else "GET"
    r = await client.request(method, url, headers=admin_headers)
    _bad(r, field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("first-response", {"at": 1767225600}, "at"),
        ("first-response", {"at": "0001-01-01T00:00:00+01:00"}, "at"),
        ("first-response", {"at": "9999-12-31T23:59:59-01:00"}, "at"),
        ("pause", {"at": "2026-01-01T00:00:00"}, "at"),
        ("resume", {"at": "1969-12-31T23:59:59Z"}, "at"),
    ],
)
async def test_times_in_bodies_are_rfc_3339_with_offset_in_range(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    r = await client.post(f"/v1/incidents/inc_missing/{path}", json=body, headers=admin_headers)
    _bad(r, field)  # 400 before the lookup: the body is refused whatever the incident


@pytest.mark.parametrize("opened_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_year_edges_of_opened_at_are_400(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    opened_at: str,
) -> None:
    r = await client.post(
        "/v1/incidents",
        json={
            "customer_id": customer["id"],
            "external_ref": "T-1",
            "priority": "p1",
            "opened_at": opened_at,
        },
        headers=admin_headers,
    )
    _bad(r, "opened_at")
    quote = await client.get(
        f"/v1/customers/{customer['id']}/entitlements/quote",
        params={"priority": "p1", "opened_at": opened_at},
        headers=admin_headers,
    )
    _bad(quote, "opened_at")
    at = await client.get(
        f"/v1/customers/{customer['id']}/entitlements",
        params={"at": opened_at},
        headers=admin_headers,
    )
    _bad(at, "at")


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", "ftp://example.com/", "https://", "//x.test"]
)
async def test_redirect_urls_must_be_http_or_https(
    client: httpx.AsyncClient, admin_headers: dict[str, str], customer: dict[str, Any], url: str
) -> None:
    cid = customer["id"]
    r = await client.post(
        f"/v1/customers/{cid}/subscription",
        json={"plan": "business", "success_url": url},
        headers=admin_headers,
    )
    _bad(r, "success_url")
    r = await client.post(
        f"/v1/customers/{cid}/portal-session", json={"return_url": url}, headers=admin_headers
    )
    _bad(r, "return_url")


async def test_an_oversized_incident_context_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], customer: dict[str, Any]
) -> None:
    r = await client.post(
        "/v1/incidents",
        json={
            "customer_id": customer["id"],
            "external_ref": "T-big",
            "priority": "p3",
            "context": {"blob": "x" * 20_000},
        },
        headers=admin_headers,
    )
    _bad(r, "context")
    assert await Customer.count() == 1


_offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)


@given(
    # hypothesis takes naive bounds; the offset is drawn separately
    at=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),  # noqa: DTZ001
    tz=_offsets,
)
def test_check_time_accepts_exactly_the_range_and_never_overflows(
    at: datetime, tz: timezone
) -> None:
    value = at.replace(tzinfo=tz)
    inside = MIN_TIME <= value.astimezone(UTC) < MAX_TIME
    try:
        assert check_time(value, "at") is value
    except TimeOutOfRange:
        assert not inside
    else:
        assert inside


async def test_every_bad_field_is_named_in_one_answer(
    client: httpx.AsyncClient, admin_headers: dict[str, str], seeded: list[str]
) -> None:
    r = await client.post(
        "/v1/customers",
        json={"external_id": 5, "name": "", "email": "nope", "bogus": 1},
        headers=admin_headers,
    )
    assert r.status_code == 400, r.text
    named = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert set(named) == {"external_id", "name", "email", "bogus"}, named
    assert "unknown field" in named["bogus"]
    r = await client.post(
        "/v1/plans",
        json={"code": "x", "name": "X", "monthly_price": 1.5, "targets": {"p1": {"coverage": 1}}},
        headers=admin_headers,
    )
    assert r.status_code == 400, r.text
    named = {e["field"] for e in r.json()["errors"]}
    # The bad code, the float price, the missing annual price and the nested target.
    assert {"code", "monthly_price", "annual_price"} <= named, named
    assert any(f.startswith("targets") for f in named), named
    assert await Customer.count() == 0 and await Plan.count() == 4
