"""Payment intents with Stripe's test cards, and refunds within what was paid."""

from __future__ import annotations

import pytest
import stripe

from .helpers import customer_with_card, event_types


async def charge(
    client: stripe.StripeClient, customer: stripe.Customer, amount: int = 9900, **extra: object
) -> stripe.PaymentIntent:
    params = {
        "amount": amount,
        "currency": "usd",
        "customer": customer.id,
        "payment_method": customer.invoice_settings.default_payment_method,
        "confirm": True,
        "off_session": True,
        "metadata": {"purchase": "ftp_1"},
        **extra,
    }
    return await client.v1.payment_intents.create_async(params=params)


async def test_off_session_payment_succeeds_with_a_charge(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    pi = await charge(client, customer)
    assert (pi.status, pi.amount_received) == ("succeeded", 9900)
    assert pi.metadata.to_dict() == {"purchase": "ftp_1"}
    ch = await client.v1.charges.retrieve_async(pi.latest_charge)
    assert (ch.status, ch.paid, ch.amount_captured, ch.payment_intent) == (
        "succeeded",
        True,
        9900,
        pi.id,
    )
    types = await event_types(client)
    assert types[-3:] == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_insufficientFunds", "insufficient_funds"),
    ],
)
async def test_declines_are_402_card_errors_carrying_the_payment_intent(
    client: stripe.StripeClient, card: str, decline_code: str
) -> None:
    customer = await customer_with_card(client, card)
    with pytest.raises(stripe.CardError) as caught:
        await charge(client, customer)
    error = caught.value
    assert (error.http_status, error.code, error.error.decline_code) == (
        402,
        "card_declined",
        decline_code,
    )
    pi = error.error.payment_intent
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.decline_code == decline_code
    stored = await client.v1.payment_intents.retrieve_async(pi.id)
    assert stored.status == "requires_payment_method"
    assert "payment_intent.payment_failed" in await event_types(client)


async def test_authentication_required_card(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client, "pm_card_authenticationRequired")
    with pytest.raises(stripe.CardError) as caught:
        await charge(client, customer)  # off-session: nobody can authenticate
    assert caught.value.code == "authentication_required"

    pi = await charge(client, customer, off_session=False)
    assert pi.status == "requires_action"
    assert pi.next_action.type == "use_stripe_sdk"
    assert "payment_intent.requires_action" in await event_types(client)


async def test_amount_below_the_minimum_is_refused(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await charge(client, customer, amount=10)
    assert caught.value.code == "amount_too_small"


async def test_attached_clone_keeps_the_test_card_behaviour(client: stripe.StripeClient) -> None:
    customer = await client.v1.customers.create_async(params={"email": "x@example.com"})
    pm = await client.v1.payment_methods.attach_async(
        "pm_card_chargeDeclined", params={"customer": customer.id}
    )
    assert pm.id.startswith("pm_")
    assert pm.id != "pm_card_chargeDeclined"
    assert (pm.customer, pm.card.last4) == (customer.id, "0002")
    listed = await client.v1.customers.payment_methods.list_async(customer.id)
    assert [p.id for p in listed.data] == [pm.id]
    with pytest.raises(stripe.CardError):
        await client.v1.payment_intents.create_async(
            params={
                "amount": 500,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": pm.id,
                "confirm": True,
            }
        )


async def test_refunds_cannot_exceed_what_was_paid(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    pi = await charge(client, customer, amount=10000)

    partial = await client.v1.refunds.create_async(
        params={"payment_intent": pi.id, "amount": 4000, "reason": "requested_by_customer"}
    )
    assert (partial.status, partial.amount, partial.charge) == ("succeeded", 4000, pi.latest_charge)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.refunds.create_async(params={"payment_intent": pi.id, "amount": 6001})
    assert (caught.value.http_status, caught.value.param) == (400, "amount")

    rest = await client.v1.refunds.create_async(params={"payment_intent": pi.id})
    assert rest.amount == 6000
    ch = await client.v1.charges.retrieve_async(pi.latest_charge)
    assert (ch.amount_refunded, ch.refunded) == (10000, True)
    with pytest.raises(stripe.InvalidRequestError) as again:
        await client.v1.refunds.create_async(params={"payment_intent": pi.id})
    assert again.value.code == "charge_already_refunded"
    listed = await client.v1.refunds.list_async(params={"payment_intent": pi.id})
    assert [r.amount for r in listed.data] == [6000, 4000]
    types = await event_types(client)
    assert types.count("refund.created") == 2
    assert types.count("charge.refunded") == 2


async def test_refunding_an_unpaid_intent_is_refused(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client, "pm_card_chargeDeclined")
    with pytest.raises(stripe.CardError) as caught:
        await charge(client, customer)
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.refunds.create_async(
            params={"payment_intent": caught.value.error.payment_intent.id}
        )
