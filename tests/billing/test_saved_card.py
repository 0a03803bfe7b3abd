"""The saved card is found where Stripe keeps it, so a Checkout subscriber can buy off-session."""

from __future__ import annotations

from typing import Any

import httpx

from billing.tables import Customer, FastTrackPurchase
from tests.billing.conftest import Deliver, Stripe, Subscribed


async def _buy_off_session(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str
) -> httpx.Response:
    return await client.post(
        f"/v1/customers/{cid}/fast-track-purchases",
        headers=headers,
        json={"quantity": 1, "mode": "charge_saved_method"},
    )


async def _charged_card(stripe_emu: Stripe, stripe_customer: str) -> str:
    intents = await stripe_emu.get("/v1/payment_intents", customer=stripe_customer, limit=1)
    return str(intents["data"][0]["payment_method"])


async def test_a_checkout_subscriber_buys_fast_track_off_session(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
    subscribed: Subscribed,
) -> None:
    cid = customer["id"]
    sub = await subscribed(cid, deliver=False)
    remote = await stripe_emu.get(f"/v1/customers/{customer['stripe_customer_id']}")
    # Where Stripe keeps it: on the subscription, not as the customer's invoice default.
    assert remote["invoice_settings"]["default_payment_method"] is None
    assert sub["default_payment_method"].startswith("pm_")
    events = await deliver()
    assert "customer.updated" not in {e["type"] for e in events}
    row = await Customer.objects().where(Customer.id == cid).first()
    assert row is not None and row.default_payment_method == sub["default_payment_method"]

    r = await _buy_off_session(client, admin_headers, cid)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "paid"
    charged = await _charged_card(stripe_emu, customer["stripe_customer_id"])
    assert charged == sub["default_payment_method"]


async def test_the_card_is_found_at_stripe_when_no_event_told_us(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
) -> None:
    """No webhook applied yet (or lost): the customer's attached cards at Stripe are asked."""
    cid = customer["id"]
    sub = await subscribed(cid, deliver=False)
    row = await Customer.objects().where(Customer.id == cid).first()
    assert row is not None and row.default_payment_method is None
    r = await _buy_off_session(client, admin_headers, cid)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "paid"
    assert (
        await _charged_card(stripe_emu, customer["stripe_customer_id"])
        == (sub["default_payment_method"])
    )
    row = await Customer.objects().where(Customer.id == cid).first()
    assert row is not None and row.default_payment_method == sub["default_payment_method"]


async def test_a_one_off_checkout_payment_saves_no_card(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    """Without `setup_future_usage` Stripe keeps no card, so there is nothing to charge."""
    cid = customer["id"]
    r = await client.post(
        f"/v1/customers/{cid}/fast-track-purchases",
        headers=helpdesk_headers,
        json={"quantity": 1, "mode": "checkout"},
    )
    assert r.status_code == 201, r.text
    purchase = await FastTrackPurchase.objects().first()
    assert purchase is not None and purchase.stripe_checkout_session_id
    await stripe_emu.complete_checkout(purchase.stripe_checkout_session_id)
    await deliver()
    r = await _buy_off_session(client, helpdesk_headers, cid)
    assert r.status_code == 422, r.text
    assert "no saved payment method" in r.json()["detail"]


async def test_an_explicit_customer_default_wins_over_the_subscriptions_card(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
    subscribed: Subscribed,
) -> None:
    cid = customer["id"]
    sub = await subscribed(cid, deliver=False)
    await deliver()
    other = await stripe_emu.post(
        "/v1/payment_methods/pm_card_mastercard/attach", customer=customer["stripe_customer_id"]
    )
    await stripe_emu.post(
        f"/v1/customers/{customer['stripe_customer_id']}",
        **{"invoice_settings[default_payment_method]": other["id"]},
    )
    await deliver()
    # A later subscription event, still carrying its own card, does not take it back.
    await stripe_emu.post(f"/v1/subscriptions/{sub['id']}", **{"metadata[note]": "later"})
    events = await deliver()
    assert "customer.subscription.updated" in {e["type"] for e in events}
    row = await Customer.objects().where(Customer.id == cid).first()
    assert row is not None and row.default_payment_method == other["id"]
