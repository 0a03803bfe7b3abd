"""Issue 3's story through the REST API alone, against the Stripe emulator."""

from __future__ import annotations

from typing import Any

import httpx

from billing.tables import Subscription, SubscriptionHistory
from common.tables import AuditLog
from tests.billing.conftest import Deliver, Stripe


async def test_checkout_subscribe_upgrade_with_matching_proration_then_cancel(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    cid = customer["id"]
    r = await client.post(
        f"/v1/customers/{cid}/subscription",
        headers=admin_headers,
        json={"plan": "business", "interval": "month", "mode": "checkout"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["checkout_url"]
    assert created["subscription"]["status"] == "incomplete"
    row = await Subscription.objects().first()
    assert row is not None and row.stripe_checkout_session_id

    await stripe_emu.complete_checkout(row.stripe_checkout_session_id)
    events = await deliver()
    assert "checkout.session.completed" in {e["type"] for e in events}

    r = await client.get(f"/v1/customers/{cid}/subscription", headers=admin_headers)
    sub = r.json()
    assert sub["status"] == "active"
    assert sub["plan"] == "business"
    assert sub["id"] == created["subscription"]["id"]
    assert sub["current_period_end"] > sub["current_period_start"]

    r = await client.post(
        f"/v1/customers/{cid}/subscription/preview",
        headers=admin_headers,
        json={"plan": "premium", "interval": "month"},
    )
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["prorations"]["amount"] > 0
    # Upgrading a 499.00 plan to 1,999.00 for (almost) the whole period: the difference.
    assert preview["prorations"]["amount"] <= 199900 - 49900

    r = await client.patch(
        f"/v1/customers/{cid}/subscription",
        headers=admin_headers,
        json={
            "plan": "premium",
            "interval": "month",
            "proration_date": preview["proration_date"],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["plan"] == "premium"
    row = await Subscription.objects().first()
    assert row is not None
    remote_sub = await stripe_emu.get(f"/v1/subscriptions/{row.stripe_subscription_id}")
    invoices = await stripe_emu.get("/v1/invoices", subscription=remote_sub["id"])
    upgrade = next(i for i in invoices["data"] if i["billing_reason"] != "subscription_create")
    billed_prorations = sum(
        line["amount"]
        for line in upgrade["lines"]["data"]
        if (line.get("parent") or {}).get("subscription_item_details", {}).get("proration")
    )
    assert billed_prorations == preview["prorations"]["amount"]

    await deliver()
    r = await client.delete(f"/v1/customers/{cid}/subscription", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["cancel_at_period_end"] is True
    assert r.json()["status"] == "active"
    await deliver()
    final = await client.get(f"/v1/customers/{cid}/subscription", headers=admin_headers)
    assert final.json()["plan"] == "premium"
    assert final.json()["cancel_at_period_end"] is True

    history = await SubscriptionHistory.select(SubscriptionHistory.status).order_by(
        SubscriptionHistory.effective_at
    )
    assert [h["status"] for h in history][:1] == ["active"]
    actions = {a["action"] for a in await AuditLog.select(AuditLog.action)}
    assert {"customer.created", "subscription.created", "subscription.updated"} <= actions
