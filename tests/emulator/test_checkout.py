"""Checkout Sessions completed (or declined) the way a customer would."""

from __future__ import annotations

import httpx
import pytest
import stripe

from .helpers import event_types, monthly_price


async def complete(client: stripe.StripeClient, session_id: str, outcome: str = "paid") -> None:
    await client.raw_request_async(
        "post", f"/v1/test_helpers/checkout/sessions/{session_id}/complete", outcome=outcome
    )


async def subscription_session(client: stripe.StripeClient) -> stripe.checkout.Session:
    customer = await client.v1.customers.create_async(params={"email": "buyer@example.com"})
    price = await monthly_price(client, 4900)
    return await client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://app.example.com/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example.com/cancel",
            "client_reference_id": "org_42",
            "metadata": {"purpose": "plan"},
            "subscription_data": {"metadata": {"plan": "business", "plan_version": "3"}},
        }
    )


async def test_session_starts_open_with_a_url(client: stripe.StripeClient) -> None:
    session = await subscription_session(client)
    assert session.status == "open"
    assert session.payment_status == "unpaid"
    assert session.url.endswith(f"/c/pay/{session.id}")
    assert session.id.startswith("cs_test_")
    assert session.amount_total == 4900
    assert session.client_reference_id == "org_42"


async def test_paid_subscription_checkout_creates_an_active_paid_subscription(
    client: stripe.StripeClient,
) -> None:
    session = await subscription_session(client)
    await complete(client, session.id)

    done = await client.v1.checkout.sessions.retrieve_async(
        session.id, params={"expand": ["subscription", "invoice"]}
    )
    assert (done.status, done.payment_status) == ("complete", "paid")
    sub = done.subscription
    assert sub.status == "active"
    assert sub.metadata.to_dict() == {"plan": "business", "plan_version": "3"}
    assert done.invoice.id == sub.latest_invoice
    assert done.invoice.status == "paid"
    assert done.invoice.billing_reason == "subscription_create"
    assert done.invoice.amount_paid == 4900
    # As on Stripe: the card is the subscription's default, attached to the customer, and
    # not the customer's invoice default (nor announced by a customer.updated).
    customer = await client.v1.customers.retrieve_async(done.customer)
    assert customer.invoice_settings.default_payment_method is None
    pm = sub.default_payment_method
    assert pm.startswith("pm_")
    assert (await client.v1.payment_methods.retrieve_async(pm)).customer == customer.id
    assert "customer.updated" not in await event_types(client)
    assert "payment_method.attached" in await event_types(client)

    types = await event_types(client)
    order = [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ]
    positions = [types.index(t) for t in order]
    assert positions == sorted(positions)
    assert "payment_intent.succeeded" in types
    completed = await client.v1.events.list_async(params={"type": "checkout.session.completed"})
    payload = completed.data[0].data.object
    assert payload.subscription == sub.id
    assert payload.metadata.to_dict() == {"purpose": "plan"}


async def test_paid_payment_checkout_creates_a_succeeded_payment_intent(
    client: stripe.StripeClient,
) -> None:
    customer = await client.v1.customers.create_async(params={"email": "buyer@example.com"})
    session = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "payment",
            "customer": customer.id,
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 9900,
                        "product_data": {"name": "Fast-track incident"},
                    },
                    "quantity": 2,
                }
            ],
            "success_url": "https://app.example.com/done",
            "payment_intent_data": {"metadata": {"purchase": "ftp_1"}},
        }
    )
    assert session.amount_total == 19800
    await complete(client, session.id)

    done = await client.v1.checkout.sessions.retrieve_async(
        session.id, params={"expand": ["payment_intent"]}
    )
    assert (done.status, done.payment_status) == ("complete", "paid")
    pi = done.payment_intent
    assert (pi.status, pi.amount, pi.amount_received) == ("succeeded", 19800, 19800)
    assert pi.metadata.to_dict() == {"purchase": "ftp_1"}
    assert pi.customer == customer.id
    assert pi.latest_charge.startswith("ch_")


@pytest.mark.parametrize("future_usage", [None, "off_session"])
async def test_payment_checkout_keeps_the_card_only_with_setup_future_usage(
    client: stripe.StripeClient, future_usage: str | None
) -> None:
    customer = await client.v1.customers.create_async(params={"email": "buyer@example.com"})
    intent_data = {"setup_future_usage": future_usage} if future_usage else {}
    session = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "payment",
            "customer": customer.id,
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 9900,
                        "product_data": {"name": "Fast-track incident"},
                    },
                    "quantity": 1,
                }
            ],
            "success_url": "https://app.example.com/done",
            "payment_intent_data": intent_data,
        }
    )
    await complete(client, session.id)
    done = await client.v1.checkout.sessions.retrieve_async(
        session.id, params={"expand": ["payment_intent"]}
    )
    pi = done.payment_intent
    assert pi.setup_future_usage == future_usage
    saved = await client.v1.payment_methods.list_async(params={"customer": customer.id})
    after = await client.v1.customers.retrieve_async(customer.id)
    assert after.invoice_settings.default_payment_method is None  # never a default
    if future_usage is None:
        assert saved.data == []
        assert (await client.v1.payment_methods.retrieve_async(pi.payment_method)).customer is None
        return
    assert [m.id for m in saved.data] == [pi.payment_method]
    # The saved card pays off-session later.
    again = await client.v1.payment_intents.create_async(
        params={
            "amount": 9900,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": pi.payment_method,
            "off_session": True,
            "confirm": True,
        }
    )
    assert again.status == "succeeded"


async def test_declined_checkout_stays_open_and_reports_the_failed_payment(
    client: stripe.StripeClient,
) -> None:
    price = await client.v1.prices.create_async(
        params={"currency": "usd", "unit_amount": 9900, "product_data": {"name": "Fast-track"}}
    )
    session = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "payment",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://app.example.com/done",
        }
    )
    await complete(client, session.id, "declined")

    after = await client.v1.checkout.sessions.retrieve_async(session.id)
    assert (after.status, after.payment_status) == ("open", "unpaid")
    types = await event_types(client)
    assert "payment_intent.payment_failed" in types
    assert "checkout.session.completed" not in types

    await complete(client, session.id, "paid")  # the customer tries another card
    paid = await client.v1.checkout.sessions.retrieve_async(session.id)
    assert paid.status == "complete"
    assert paid.payment_intent == after.payment_intent


async def test_declined_subscription_checkout_creates_nothing(client: stripe.StripeClient) -> None:
    session = await subscription_session(client)
    await complete(client, session.id, "declined")
    assert (await client.v1.checkout.sessions.retrieve_async(session.id)).status == "open"
    subs = await client.v1.subscriptions.list_async(params={"status": "all"})
    assert subs.data == []


async def test_completed_or_expired_sessions_cannot_be_completed(
    client: stripe.StripeClient,
) -> None:
    first = await subscription_session(client)
    await complete(client, first.id)
    with pytest.raises(stripe.InvalidRequestError):
        await complete(client, first.id)

    second = await subscription_session(client)
    expired = await client.v1.checkout.sessions.expire_async(second.id)
    assert expired.status == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        await complete(client, second.id)
    assert "checkout.session.expired" in await event_types(client)


async def test_hosted_page_pays_and_redirects(client: stripe.StripeClient) -> None:
    session = await subscription_session(client)
    async with httpx.AsyncClient() as browser:
        page = await browser.get(session.url)
        assert page.status_code == 200
        assert "Business month" in page.text
        paid = await browser.post(session.url, data={"outcome": "paid"})
    assert paid.status_code == 303
    assert paid.headers["location"] == f"https://app.example.com/done?session={session.id}"
    assert (await client.v1.checkout.sessions.retrieve_async(session.id)).status == "complete"
