"""Plans and versions, bad input that writes nothing, and Stripe faults during writes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from billing.tables import Customer, Plan, Subscription
from common.tables import AuditLog
from tests.billing.conftest import Stripe

PROBLEM = "application/problem+json"

_PLAN = {
    "code": "gold",
    "name": "Gold",
    "monthly_price": 29900,
    "annual_price": 299000,
    "targets": {
        p: {"first_response_minutes": m, "coverage": "24x7"}
        for p, m in (("p1", 60), ("p2", 240), ("p3", 480), ("p4", 960))
    },
    "included_incidents": 20,
    "overage_price": 5000,
    "fast_track_price": 9900,
    "fast_track_minutes": 30,
    "credit_percent": 5,
    "credit_cap_percent": 25,
}


async def test_seed_reflects_the_market(
    client: httpx.AsyncClient, helpdesk_headers: dict[str, str], seeded: list[str]
) -> None:
    assert seeded == ["standard", "basic", "business", "premium"]
    plans = {
        p["code"]: p
        for p in (await client.get("/v1/plans", headers=helpdesk_headers)).json()["data"]
    }
    assert plans["standard"]["monthly_price"] == {"amount": 0, "currency": "usd"}
    assert plans["standard"]["targets"]["p1"] == {
        "first_response_minutes": 1440,
        "coverage": "business_hours",
        "update_minutes": None,
    }
    assert plans["business"]["targets"]["p1"]["coverage"] == "24x7"
    assert plans["business"]["included_incidents"] == 10
    assert plans["premium"]["fast_track_included"] is True
    assert plans["premium"]["credit_policy"] == {
        "percent_per_breach": 10,
        "cap_percent_per_period": 30,
    }
    assert set(plans["business"]["stripe_price_ids"]) == {"month", "year"}


async def test_a_plan_edit_makes_a_version_and_keeps_the_old_one(
    client: httpx.AsyncClient, admin_headers: dict[str, str], clean_db: None
) -> None:
    r = await client.post("/v1/plans", headers=admin_headers, json=_PLAN)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    r = await client.patch("/v1/plans/gold", headers=admin_headers, json={"monthly_price": 34900})
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert (v2["version"], v2["monthly_price"]["amount"], v2["name"]) == (2, 34900, "Gold")
    assert v2["targets"]["p1"]["first_response_minutes"] == 60
    old = (await client.get("/v1/plans/gold?version=1", headers=admin_headers)).json()
    assert old["monthly_price"]["amount"] == 29900
    assert old["is_current"] is False
    assert (await client.get("/v1/plans/gold", headers=admin_headers)).json()["version"] == 2
    actions = [a["action"] for a in await AuditLog.select(AuditLog.action)]
    assert actions.count("plan.created") == 1
    assert actions.count("plan.versioned") == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"monthly_price": -1}, "monthly_price"),
        ({"targets": {"p1": {"first_response_minutes": 60, "coverage": "24x7"}}}, "targets"),
        ({"targets": {"p9": {"first_response_minutes": 60, "coverage": "24x7"}}}, "targets"),
        ({"currency": "USD"}, "currency"),
        ({"credit_percent": 150}, "credit_percent"),
        ({"code": "Bad Code"}, "code"),
        ({"fast_track_minutes": None}, "fast_track_minutes"),
    ],
)
async def test_bad_plans_are_refused_and_write_nothing(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    clean_db: None,
    change: dict[str, Any],
    field: str,
) -> None:
    r = await client.post("/v1/plans", headers=admin_headers, json={**_PLAN, **change})
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert field in r.text
    assert await Plan.count() == 0


async def test_bad_subscription_requests_write_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], customer: dict[str, Any]
) -> None:
    cid = customer["id"]
    cases = [
        (f"/v1/customers/{cid}/subscription", {"plan": "platinum"}, 404),
        (f"/v1/customers/{cid}/subscription", {"plan": "business", "interval": "week"}, 400),
        (f"/v1/customers/{cid}/subscription", {"plan": "standard"}, 422),
        (
            f"/v1/customers/{cid}/subscription",
            {"plan": "business", "mode": "charge_saved_method"},
            422,
        ),
        ("/v1/customers/cust_nope/subscription", {"plan": "business"}, 404),
    ]
    for path, body, status in cases:
        r = await client.post(path, headers=admin_headers, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
    assert await Subscription.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"country": "ZZ"}, "country"),
        ({"email": "not-an-email"}, "email"),
        ({"business_hours": {"mon": ["25:00-26:00"]}}, "business_hours"),
        ({"external_id": ""}, "external_id"),
        ({"plan": "x"}, "plan"),
    ],
)
async def test_bad_customers_are_refused_and_write_nothing(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    seeded: list[str],
    body: dict[str, Any],
    field: str,
) -> None:
    base = {"external_id": "org-1", "name": "A", "email": "a@b.test", "timezone": "UTC"}
    r = await client.post("/v1/customers", headers=admin_headers, json={**base, **body})
    assert r.status_code in (400, 422), r.text
    assert field in r.text
    assert await Customer.count() == 0


async def test_customer_lookup_by_external_id_and_duplicates(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
) -> None:
    r = await client.get(
        f"/v1/customers?external_id={customer['external_id']}", headers=helpdesk_headers
    )
    assert [c["id"] for c in r.json()["data"]] == [customer["id"]]
    assert (
        await client.get("/v1/customers?external_id=nobody", headers=helpdesk_headers)
    ).json() == {"data": [], "has_more": False}
    r = await client.post(
        "/v1/customers",
        headers=admin_headers,
        json={"external_id": customer["external_id"], "name": "Again", "email": "x@y.test"},
    )
    assert r.status_code == 409
    assert await Customer.count() == 1
    assert (
        await client.get("/v1/customers/cust_missing", headers=helpdesk_headers)
    ).status_code == 404


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "count": 2, "when": "before"},
        {"status": 500, "count": 1, "when": "after"},
        {"status": 503, "count": 2, "when": "after"},
        {"timeout": 4, "count": 1, "when": "after"},
    ],
    ids=["429", "500-after-write", "503-after-write", "timeout-after-write"],
)
async def test_stripe_faults_during_a_write_never_make_two_objects(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    seeded: list[str],
    stripe_emu: Stripe,
    fault: dict[str, Any],
) -> None:
    await stripe_emu.fault(method="POST", path="/v1/customers", **fault)
    r = await client.post(
        "/v1/customers",
        headers=admin_headers,
        json={"external_id": "org-faulty", "name": "Faulty", "email": "f@x.test"},
    )
    assert r.status_code == 201, r.text
    stripe_id = r.json()["stripe_customer_id"]
    tries = await stripe_emu.requests(
        path="/v1/customers", method="POST", idempotency_key=f"customer-create-{r.json()['id']}"
    )
    assert len(tries) >= 2  # it was retried…
    assert len({t["idempotency_key"] for t in tries}) == 1  # …with one key
    found = await stripe_emu.get(
        "/v1/customers/search", query=f"metadata['customer_id']:'{r.json()['id']}'"
    )
    assert [c["id"] for c in found["data"]] == [stripe_id]  # …and made one customer


async def test_stripe_down_is_503_and_the_retry_makes_one_customer(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    seeded: list[str],
    stripe_emu: Stripe,
) -> None:
    await stripe_emu.fault(method="POST", path="/v1/customers", status=500, count=20, when="before")
    body = {"external_id": "org-down", "name": "Down", "email": "d@x.test"}
    r = await client.post("/v1/customers", headers=admin_headers, json=body)
    assert r.status_code == 503
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.headers["retry-after"]
    # Nothing a reader can see: the reserved row waits for the retry to finish it.
    found = await client.get("/v1/customers?external_id=org-down", headers=admin_headers)
    assert found.json()["data"] == []
    await stripe_emu.http.delete("/_emulator/faults")
    r = await client.post("/v1/customers", headers=admin_headers, json=body)
    assert r.status_code == 201, r.text
    again = await client.post("/v1/customers", headers=admin_headers, json=body)
    assert again.status_code == 409
    assert await Customer.count() == 1
    made = await stripe_emu.get("/v1/customers/search", query="metadata['external_id']:'org-down'")
    assert [c["id"] for c in made["data"]] == [r.json()["stripe_customer_id"]]
