"""Subscription modes beyond Checkout, fast-track refunds, and service credits in Stripe."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from billing import credits, usage
from billing.tables import FastTrackLedger, ServiceCredit
from common.clock import utcnow
from common.tables import AuditLog
from tests.billing.conftest import Deliver, Stripe
from tests.billing.test_fast_track_and_entitlements import (
    _buy_saved,
    _ent,
    _save_card,
    entitlement_updates,
)


async def _subscribe(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    cid: str,
    plan: str,
    mode: str = "charge_saved_method",
    interval: str = "month",
) -> dict[str, Any]:
    r = await client.post(
        f"/v1/customers/{cid}/subscription",
        headers=headers,
        json={"plan": plan, "interval": interval, "mode": mode},
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["subscription"])


async def test_saved_card_subscription_is_active_at_once_and_changes_interval(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    sub = await _subscribe(client, admin_headers, customer["id"], "basic")
    assert (sub["status"], sub["plan"], sub["collection_method"]) == (
        "active",
        "basic",
        "charge_automatically",
    )
    r = await client.post(
        f"/v1/customers/{customer['id']}/subscription",
        headers=admin_headers,
        json={"plan": "business", "mode": "charge_saved_method"},
    )
    assert r.status_code == 409  # one live subscription per customer
    r = await client.patch(
        f"/v1/customers/{customer['id']}/subscription",
        headers=admin_headers,
        json={"plan": "basic", "interval": "year"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["interval"] == "year"
    await deliver()
    ent = await _ent(client, admin_headers, customer["id"])
    assert (ent["tier"], ent["subscription_status"]) == ("basic", "active")
    r = await client.delete(
        f"/v1/customers/{customer['id']}/subscription?at_period_end=false", headers=admin_headers
    )
    assert r.json()["status"] == "canceled"
    await deliver()
    assert (await _ent(client, admin_headers, customer["id"]))["tier"] == "standard"


async def test_declined_saved_card_subscription_is_402_and_not_entitled(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_chargeDeclined")
    r = await client.post(
        f"/v1/customers/{customer['id']}/subscription",
        headers=admin_headers,
        json={"plan": "basic", "mode": "charge_saved_method"},
    )
    assert r.status_code == 402, r.text
    assert (await _ent(client, admin_headers, customer["id"]))["tier"] == "standard"


async def test_invoiced_customer_is_active_with_an_open_invoice(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    sub = await _subscribe(client, admin_headers, customer["id"], "business", "send_invoice")
    assert (sub["status"], sub["collection_method"]) == ("active", "send_invoice")
    invoices = await stripe_emu.get("/v1/invoices", customer=customer["stripe_customer_id"])
    assert [i["status"] for i in invoices["data"]] == ["open"]
    r = await client.post(
        f"/v1/customers/{customer['id']}/portal-session", headers=admin_headers, json={}
    )
    assert r.status_code == 201
    assert r.json()["url"].startswith("http")


async def test_unused_fast_track_credits_are_refunded_through_stripe(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    cid = customer["id"]
    await _save_card(stripe_emu, customer, "pm_card_visa")
    r = await _buy_saved(client, admin_headers, cid, 3)
    purchase = r.json()
    await usage.claim_incident(cid, "inc_ft1", utcnow(), fast_track=True)
    refund_url = f"/v1/customers/{cid}/fast-track-purchases/{purchase['id']}/refund"
    r = await client.post(refund_url, headers=admin_headers, json={"quantity": 3})
    assert r.status_code == 422  # only 2 are unused
    r = await client.post(refund_url, headers=admin_headers, json={})
    assert r.status_code == 200, r.text
    assert r.json()["refunded_quantity"] == 2
    refunds = (await stripe_emu.get("/v1/refunds", limit=100))["data"]
    mine = [x for x in refunds if x["metadata"].get("purchase_id") == purchase["id"]]
    assert [x["amount"] for x in mine] == [2 * 14900]
    assert (await _ent(client, admin_headers, cid))["fast_track"]["credits"] == 0
    [update] = await entitlement_updates("fast_track_refunded")
    assert (update["purchase_id"], update["refunded_credits"]) == (purchase["id"], 2)
    assert update["entitlement"]["fast_track"]["credits"] == 0


async def test_premium_includes_fast_track_so_nothing_is_sold(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    await _subscribe(client, admin_headers, customer["id"], "premium")
    r = await client.post(
        f"/v1/customers/{customer['id']}/fast-track-purchases",
        headers=admin_headers,
        json={"quantity": 1},
    )
    assert r.status_code == 422
    claim = await usage.claim_incident(customer["id"], "inc_p1", utcnow(), fast_track=True)
    assert claim.fast_track_used
    assert claim.fast_track_purchase_id is None  # included: no credit spent
    assert await FastTrackLedger.count() == 0


async def test_breach_credit_note_is_issued_once_and_capped_per_period(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    finance_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    await _subscribe(client, admin_headers, customer["id"], "business")  # 5 % capped at 20 %
    for n in range(5):
        await usage.claim_incident(customer["id"], f"inc_b{n}", utcnow(), fast_track=False)
    first = await asyncio.gather(*(credits.issue_breach_credit("inc_b0") for _ in range(3)))
    assert len({o.id for o in first}) == 1
    assert (first[0].kind, first[0].amount.amount, first[0].status) == (
        "credit_note",
        2495,
        "issued",
    )
    outcomes = [await credits.issue_breach_credit(f"inc_b{n}") for n in range(1, 5)]
    assert [o.amount.amount for o in outcomes] == [2495, 2495, 2495, 0]
    assert outcomes[-1].kind == "none"
    assert "cap" in outcomes[-1].reason
    notes = await stripe_emu.get("/v1/credit_notes", customer=customer["stripe_customer_id"])
    assert sorted(n["total"] for n in notes["data"]) == [2495] * 4
    remote = await stripe_emu.get(f"/v1/customers/{customer['stripe_customer_id']}")
    assert remote["balance"] == -4 * 2495  # credited to the customer balance
    r = await client.get("/v1/service-credits", headers=finance_headers)
    assert len(r.json()["data"]) == 5
    assert await ServiceCredit.count() == 5


async def test_breached_fast_track_incident_is_refunded_and_standard_gets_nothing(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    cid = customer["id"]
    await _save_card(stripe_emu, customer, "pm_card_visa")
    await _buy_saved(client, admin_headers, cid, 2)
    await usage.claim_incident(cid, "inc_f1", utcnow() - timedelta(minutes=5), fast_track=True)
    await usage.claim_incident(cid, "inc_s1", utcnow(), fast_track=False)
    refund = await credits.issue_breach_credit("inc_f1")
    again = await credits.issue_breach_credit("inc_f1")
    assert (refund.kind, refund.amount.amount, refund.status) == ("refund", 14900, "issued")
    assert again == refund
    refunds = (await stripe_emu.get("/v1/refunds", limit=100))["data"]
    mine = [x for x in refunds if x["metadata"].get("incident_id") == "inc_f1"]
    assert [x["amount"] for x in mine] == [14900]
    none = await credits.issue_breach_credit("inc_s1")
    assert (none.kind, none.status) == ("none", "skipped")
    # The refunded unit is not handed back as a free credit.
    assert (await _ent(client, admin_headers, cid))["fast_track"]["credits"] == 1


async def test_finance_sees_invoices_csv_and_credit_notes(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    finance_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    await _subscribe(client, admin_headers, customer["id"], "business")
    await usage.claim_incident(customer["id"], "inc_fin", utcnow(), fast_track=False)
    await credits.issue_breach_credit("inc_fin")
    await deliver()
    r = await client.get(
        f"/v1/invoices?customer_id={customer['id']}&status=paid", headers=finance_headers
    )
    assert r.status_code == 200, r.text
    invoices = r.json()["data"]
    assert [i["total"] for i in invoices] == [{"amount": 49900, "currency": "usd"}]
    one = await client.get(f"/v1/invoices/{invoices[0]['id']}", headers=finance_headers)
    assert one.json()["number"] == invoices[0]["number"]
    csv_text = (
        await client.get(
            f"/v1/invoices/export.csv?customer_id={customer['id']}", headers=finance_headers
        )
    ).text
    header, *rows = csv_text.strip().splitlines()
    assert header.startswith("id,stripe_invoice_id,number")
    assert len(rows) == 1
    assert ",49900," in rows[0]
    notes = (await client.get("/v1/credit-notes", headers=finance_headers)).json()["data"]
    assert [n["amount"]["amount"] for n in notes] == [2495]
    assert (await client.get("/v1/invoices", headers=helpdesk_headers)).status_code == 403
    # Money mirrored from Stripe is in the audit trail too.
    actions = {a["action"] for a in await AuditLog.select(AuditLog.action)}
    assert {"invoice.mirrored", "credit_note.mirrored", "service_credit.issued"} <= actions
    # No offset: not RFC 3339, so the request does not match the schema (400).
    bad = await client.get("/v1/invoices?from=2026-01-01T00:00:00", headers=finance_headers)
    assert bad.status_code == 400


async def test_overage_is_billed_once_as_an_invoice_item(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    await _subscribe(client, admin_headers, customer["id"], "basic")  # 5 included, $49 over
    for n in range(7):
        await usage.claim_incident(customer["id"], f"inc_o{n}", utcnow(), fast_track=False)
    assert await usage.bill_pending_overages() == 2
    assert await usage.bill_pending_overages() == 0
    items = await stripe_emu.get("/v1/invoiceitems", customer=customer["stripe_customer_id"])
    mine = sorted(i["metadata"]["incident_id"] for i in items["data"])
    assert mine == ["inc_o5", "inc_o6"]
    assert {i["amount"] for i in items["data"]} == {4900}


async def test_requests_that_look_alike_each_reach_stripe(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    """basic → business → premium → business at one proration instant (the preview's, as the
    API invites), then cancel → change (which un-cancels) → cancel: each answer is what Stripe
    then holds, and each change was invoiced. A key derived from the request's content made the
    second business and the second cancel replays of the first: answered done, never done."""
    await _save_card(stripe_emu, customer, "pm_card_visa")
    sub = await _subscribe(client, admin_headers, customer["id"], "basic")
    url = f"/v1/customers/{customer['id']}/subscription"
    preview = await client.post(f"{url}/preview", headers=admin_headers, json={"plan": "business"})
    at = preview.json()["proration_date"]

    async def in_stripe() -> dict[str, Any]:
        return dict(await stripe_emu.get(f"/v1/subscriptions/{sub['stripe_subscription_id']}"))

    for plan in ("business", "premium", "business"):
        r = await client.patch(
            url, headers=admin_headers, json={"plan": plan, "proration_date": at}
        )
        assert (r.status_code, r.json()["plan"]) == (200, plan), r.text
        remote = await in_stripe()
        assert remote["items"]["data"][0]["price"]["lookup_key"].startswith(f"{plan}_")
    invoices = await stripe_emu.get(
        "/v1/invoices", subscription=sub["stripe_subscription_id"], limit=100
    )
    assert len(invoices["data"]) == 1 + 3  # the first period, then one proration per change

    for step in ("cancel", "change", "cancel"):
        if step == "cancel":
            r = await client.delete(url, headers=admin_headers)
        else:
            r = await client.patch(url, headers=admin_headers, json={"plan": "premium"})
        assert r.status_code == 200, r.text
        assert r.json()["cancel_at_period_end"] is (step == "cancel")
        assert (await in_stripe())["cancel_at_period_end"] is (step == "cancel")


async def test_a_key_reused_with_other_parameters_is_a_conflict_not_an_outage(
    customer: dict[str, Any], stripe_emu: Stripe
) -> None:
    """Stripe's idempotency_error is final for that key: 409, never a 503 to retry forever."""
    from billing.exceptions import StripeIdempotencyConflict
    from billing.stripe_gateway import gateway

    made = await gateway().create_customer(
        customer_id=f"{customer['id']}-x", external_id="x", name="A", email="a@b.test"
    )
    assert made["id"].startswith("cus_")
    with pytest.raises(StripeIdempotencyConflict, match="idempotency key"):
        await gateway().create_customer(
            customer_id=f"{customer['id']}-x", external_id="x", name="B", email="a@b.test"
        )
    found = await stripe_emu.get("/v1/customers", email="a@b.test", limit=100)
    assert [c["id"] for c in found["data"]] == [made["id"]]


async def test_a_change_retried_after_a_5xx_or_raced_charges_each_proration_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    """A change whose answer was lost after Stripe made it, retried; then the same change sent
    twice at once. Each request has its own Stripe key, so the retry reaches Stripe again:
    the subscription is already on that price there, and nothing more is charged."""
    from tests.billing.test_retries_and_races import _OUTLASTS_THE_SDK

    await _save_card(stripe_emu, customer, "pm_card_visa")
    sub = await _subscribe(client, admin_headers, customer["id"], "basic")
    url = f"/v1/customers/{customer['id']}/subscription"
    await stripe_emu.fault(
        method="POST",
        path=f"/v1/subscriptions/{sub['stripe_subscription_id']}",
        status=500,
        when="after",
        count=_OUTLASTS_THE_SDK,
    )
    lost = await client.patch(url, headers=admin_headers, json={"plan": "business"})
    assert lost.status_code == 503, lost.text
    retried = await client.patch(url, headers=admin_headers, json={"plan": "business"})
    assert (retried.status_code, retried.json()["plan"]) == (200, "business"), retried.text
    raced = await asyncio.gather(
        *(client.patch(url, headers=admin_headers, json={"plan": "premium"}) for _ in range(2))
    )
    assert all(r.status_code in (200, 422) for r in raced), [r.text for r in raced]
    assert any(r.status_code == 200 and r.json()["plan"] == "premium" for r in raced)

    remote = await stripe_emu.get(f"/v1/subscriptions/{sub['stripe_subscription_id']}")
    assert remote["items"]["data"][0]["price"]["lookup_key"].startswith("premium_")
    invoices = await stripe_emu.get(
        "/v1/invoices", subscription=sub["stripe_subscription_id"], limit=100
    )
    charged = [i for i in invoices["data"] if i["total"] != 0]
    # The first period, one proration to business, one to premium: never one twice.
    assert len(charged) == 3, [(i["billing_reason"], i["total"]) for i in invoices["data"]]
    intents = await stripe_emu.get(
        "/v1/payment_intents", customer=customer["stripe_customer_id"], limit=100
    )
    assert len([p for p in intents["data"] if p["status"] == "succeeded"]) == len(charged)
