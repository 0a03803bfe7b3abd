"""Subscription lifecycle: creation outcomes, renewals on the emulator clock, cancellation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import stripe

from .helpers import advance, customer_with_card, event_types, monthly_price

DAY = 86_400


# Invoices lost `payment_intent` in 2025; the payment is under `payments` (expandable).
INTENT = "latest_invoice.payments.data.payment.payment_intent"


def intent_of(sub: Any) -> Any:
    return sub.latest_invoice["payments"]["data"][0]["payment"]["payment_intent"]


def ts(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


async def subscribe(
    client: stripe.StripeClient, customer: str, price: str, **params: object
) -> stripe.Subscription:
    return await client.v1.subscriptions.create_async(
        params={"customer": customer, "items": [{"price": price}], **params}
    )


async def test_card_subscription_starts_active_with_a_paid_invoice(
    client: stripe.StripeClient,
) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client, 3000)
    sub = await subscribe(
        client,
        customer.id,
        price.id,
        metadata={"org": "acme"},
        expand=[INTENT],
    )
    assert sub.status == "active"
    invoice = sub.latest_invoice
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        3000,
        "subscription_create",
    )
    assert invoice.number.endswith("-0001")
    assert intent_of(sub)["status"] == "succeeded"
    item = sub["items"].data[0]
    assert item.current_period_start == sub.start_date
    line = invoice.lines.data[0]
    assert (line.period.start, line.period.end) == (
        item.current_period_start,
        item.current_period_end,
    )
    assert invoice.parent.subscription_details.metadata.to_dict() == {"org": "acme"}


async def test_periods_roll_over_calendar_correctly_and_bill_each_cycle(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    await control.post("/clock", json={"frozen_time": ts(2030, 1, 31, 12)})
    customer = await customer_with_card(client)
    price = await monthly_price(client, 3000)
    sub = await subscribe(client, customer.id, price.id)
    assert sub["items"].data[0].current_period_end == ts(2030, 2, 28, 12)

    await advance(control, 60 * DAY)  # to 1 April: two renewals (28 Feb, 31 Mar)

    sub = await client.v1.subscriptions.retrieve_async(sub.id)
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (
        ts(2030, 3, 31, 12),
        ts(2030, 4, 30, 12),
    )
    invoices = await client.v1.invoices.list_async(params={"subscription": sub.id})
    cycles = [i for i in invoices.data if i.billing_reason == "subscription_cycle"]
    assert [(i.status, i.amount_paid) for i in cycles] == [("paid", 3000), ("paid", 3000)]
    assert sorted(i.created for i in cycles) == [ts(2030, 2, 28, 12), ts(2030, 3, 31, 12)]
    newest = cycles[0].lines.data[0]
    assert (newest.period.start, newest.period.end) == (ts(2030, 3, 31, 12), ts(2030, 4, 30, 12))
    updated = await client.v1.events.list_async(params={"type": "customer.subscription.updated"})
    # Events live 30 days, as on Stripe: the 28 Feb renewal's is gone by 1 April.
    assert [e.created for e in updated.data] == [ts(2030, 3, 31, 12)]


async def test_yearly_price_renews_after_a_year(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client, 30000, interval="year")
    sub = await subscribe(client, customer.id, price.id)
    await advance(control, 200 * DAY)
    assert len((await client.v1.invoices.list_async(params={"subscription": sub.id})).data) == 1
    await advance(control, 170 * DAY)
    assert len((await client.v1.invoices.list_async(params={"subscription": sub.id})).data) == 2


async def test_declined_renewal_makes_the_subscription_past_due_until_paid(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client, 3000)
    sub = await subscribe(client, customer.id, price.id)
    await client.v1.customers.update_async(
        customer.id,
        params={"invoice_settings": {"default_payment_method": "pm_card_chargeDeclined"}},
    )
    await advance(control, 31 * DAY)

    sub = await client.v1.subscriptions.retrieve_async(
        sub.id, params={"expand": ["latest_invoice"]}
    )
    assert sub.status == "past_due"
    invoice = sub.latest_invoice
    assert (invoice.status, invoice.attempt_count, invoice.amount_remaining) == ("open", 1, 3000)
    types = await event_types(client)
    assert "invoice.payment_failed" in types

    paid = await client.v1.invoices.pay_async(invoice.id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "paid"
    assert (await client.v1.subscriptions.retrieve_async(sub.id)).status == "active"


async def test_cancel_at_period_end_ends_the_subscription_at_rollover(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client)
    sub = await subscribe(client, customer.id, price.id)
    end = sub["items"].data[0].current_period_end
    updated = await client.v1.subscriptions.update_async(
        sub.id, params={"cancel_at_period_end": True}
    )
    assert (updated.cancel_at_period_end, updated.cancel_at, updated.status) == (
        True,
        end,
        "active",
    )

    await advance(control, 40 * DAY)

    ended = await client.v1.subscriptions.retrieve_async(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", end)
    assert ended.cancellation_details.reason == "cancellation_requested"
    deleted = await client.v1.events.list_async(params={"type": "customer.subscription.deleted"})
    assert deleted.data[0].created == end
    assert len((await client.v1.invoices.list_async(params={"subscription": sub.id})).data) == 1
    assert (await client.v1.subscriptions.list_async(params={"customer": customer.id})).data == []


async def test_cancel_now(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client)
    sub = await subscribe(client, customer.id, price.id)
    canceled = await client.v1.subscriptions.cancel_async(sub.id)
    assert canceled.status == "canceled"
    assert canceled.ended_at is not None
    assert "customer.subscription.deleted" in await event_types(client)
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.subscriptions.cancel_async(sub.id)


async def test_send_invoice_subscription_leaves_invoices_open_with_a_due_date(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer = await client.v1.customers.create_async(params={"email": "ap@bigco.example"})
    price = await monthly_price(client, 50000)
    sub = await subscribe(
        client,
        customer.id,
        price.id,
        collection_method="send_invoice",
        days_until_due=30,
        expand=["latest_invoice"],
    )
    invoice = sub.latest_invoice
    assert sub.status == "active"
    assert invoice.status == "open"
    assert invoice.due_date == invoice.status_transitions.finalized_at + 30 * DAY
    assert invoice.hosted_invoice_url
    await advance(control, 31 * DAY)
    invoices = await client.v1.invoices.list_async(
        params={"subscription": sub.id, "status": "open"}
    )
    assert len(invoices.data) == 2


async def test_error_if_incomplete_refuses_a_declined_card_and_creates_nothing(
    client: stripe.StripeClient,
) -> None:
    customer = await customer_with_card(client, "pm_card_chargeDeclined")
    price = await monthly_price(client)
    with pytest.raises(stripe.CardError) as caught:
        await subscribe(client, customer.id, price.id, payment_behavior="error_if_incomplete")
    assert caught.value.code == "card_declined"
    assert (await client.v1.subscriptions.list_async(params={"status": "all"})).data == []


async def test_allow_incomplete_decline_leaves_it_incomplete_then_expired(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(client, "pm_card_insufficientFunds")
    price = await monthly_price(client)
    sub = await subscribe(client, customer.id, price.id, expand=[INTENT])
    assert sub.status == "incomplete"
    assert sub.latest_invoice.status == "open"
    error = intent_of(sub)["last_payment_error"]
    assert error["decline_code"] == "insufficient_funds"
    await advance(control, DAY)
    expired = await client.v1.subscriptions.retrieve_async(
        sub.id, params={"expand": ["latest_invoice"]}
    )
    assert expired.status == "incomplete_expired"
    assert expired.latest_invoice.status == "void"


async def test_authentication_required_then_completed_activates(
    client: stripe.StripeClient,
) -> None:
    customer = await customer_with_card(client, "pm_card_authenticationRequired")
    price = await monthly_price(client)
    sub = await subscribe(client, customer.id, price.id, expand=[INTENT])
    pi = intent_of(sub)
    assert (sub.status, pi["status"]) == ("incomplete", "requires_action")
    assert pi["next_action"]["type"] == "use_stripe_sdk"
    await client.raw_request_async(
        "post", f"/v1/test_helpers/payment_intents/{pi['id']}/authenticate"
    )
    assert (await client.v1.subscriptions.retrieve_async(sub.id)).status == "active"
    assert "invoice.payment_action_required" in await event_types(client)


async def test_no_payment_method_is_refused(client: stripe.StripeClient) -> None:
    customer = await client.v1.customers.create_async(params={"email": "x@example.com"})
    price = await monthly_price(client)
    with pytest.raises(stripe.InvalidRequestError, match="no attached payment source"):
        await subscribe(client, customer.id, price.id)


async def test_default_incomplete_waits_for_the_customer(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client)
    sub = await subscribe(
        client,
        customer.id,
        price.id,
        payment_behavior="default_incomplete",
        expand=["latest_invoice.payments"],
    )
    assert sub.status == "incomplete"
    payment = sub.latest_invoice["payments"]["data"][0]
    pi = await client.v1.payment_intents.confirm_async(
        payment["payment"]["payment_intent"],
        params={"payment_method": customer.invoice_settings.default_payment_method},
    )
    assert pi.status == "succeeded"
    assert (await client.v1.subscriptions.retrieve_async(sub.id)).status == "active"


async def test_paused_collection_voids_renewal_invoices(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client)
    sub = await subscribe(client, customer.id, price.id)
    await client.v1.subscriptions.update_async(
        sub.id, params={"pause_collection": {"behavior": "void"}}
    )
    await advance(control, 31 * DAY)
    latest = await client.v1.invoices.retrieve_async(
        (await client.v1.subscriptions.retrieve_async(sub.id)).latest_invoice
    )
    assert latest.status == "void"
    resumed = await client.v1.subscriptions.update_async(sub.id, params={"pause_collection": ""})
    assert resumed.pause_collection is None


async def test_trial_without_card_pauses_then_resumes(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer = await client.v1.customers.create_async(params={"email": "trial@example.com"})
    price = await monthly_price(client, 3000)
    sub = await subscribe(
        client,
        customer.id,
        price.id,
        trial_period_days=14,
        trial_settings={"end_behavior": {"missing_payment_method": "pause"}},
        expand=["latest_invoice"],
    )
    assert (sub.status, sub.latest_invoice.amount_due) == ("trialing", 0)
    await advance(control, 15 * DAY)
    assert (await client.v1.subscriptions.retrieve_async(sub.id)).status == "paused"

    await client.v1.customers.update_async(
        customer.id, params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    resumed = await client.v1.subscriptions.resume_async(
        sub.id, params={"expand": ["latest_invoice"]}
    )
    assert resumed.status == "active"
    assert (resumed.latest_invoice.status, resumed.latest_invoice.amount_paid) == ("paid", 3000)
    types = await event_types(client)
    assert types.index("customer.subscription.paused") < types.index(
        "customer.subscription.resumed"
    )
