"""Credit notes: within the invoice's creditable amount, credited to the balance or refunded."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from .helpers import advance, customer_with_card, event_types, monthly_price

DAY = 86_400


async def paid_invoice(client: stripe.StripeClient, amount: int = 10000) -> tuple[Any, Any, Any]:
    """A customer with a card, a subscription, and its paid first invoice."""
    customer = await customer_with_card(client)
    price = await monthly_price(client, amount)
    sub = await client.v1.subscriptions.create_async(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "expand": ["latest_invoice"],
        }
    )
    return customer, sub, sub.latest_invoice


async def test_credit_to_balance_is_applied_to_the_next_invoice(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer, sub, invoice = await paid_invoice(client)
    note = await client.v1.credit_notes.create_async(
        params={
            "invoice": invoice.id,
            "amount": 2500,
            "credit_amount": 2500,
            "reason": "order_change",
            "memo": "SLA breach",
            "metadata": {"incident": "inc_1"},
        }
    )
    assert (note.status, note.type, note.amount, note.total) == (
        "issued",
        "post_payment",
        2500,
        2500,
    )
    assert note.number == f"{invoice.number}-CN-01"
    txn = await client.v1.customers.balance_transactions.retrieve_async(
        customer.id, note.customer_balance_transaction
    )
    assert (txn.type, txn.amount, txn.ending_balance, txn.credit_note) == (
        "credit_note",
        -2500,
        -2500,
        note.id,
    )
    assert (await client.v1.customers.retrieve_async(customer.id)).balance == -2500
    credited = await client.v1.invoices.retrieve_async(invoice.id)
    assert credited.post_payment_credit_notes_amount == 2500
    assert "credit_note.created" in await event_types(client)

    await advance(control, 32 * DAY)
    renewal = await client.v1.invoices.retrieve_async(
        (await client.v1.subscriptions.retrieve_async(sub.id)).latest_invoice
    )
    assert (renewal.total, renewal.starting_balance, renewal.amount_due, renewal.amount_paid) == (
        10000,
        -2500,
        7500,
        7500,
    )
    assert (await client.v1.customers.retrieve_async(customer.id)).balance == 0


async def test_credit_notes_cannot_exceed_the_invoice(client: stripe.StripeClient) -> None:
    *_, invoice = await paid_invoice(client)
    await client.v1.credit_notes.create_async(
        params={"invoice": invoice.id, "amount": 6000, "credit_amount": 6000}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.credit_notes.create_async(
            params={"invoice": invoice.id, "amount": 4001, "credit_amount": 4001}
        )
    assert (caught.value.http_status, caught.value.param) == (400, "amount")
    last = await client.v1.credit_notes.create_async(
        params={"invoice": invoice.id, "amount": 4000, "credit_amount": 4000}
    )
    assert last.number.endswith("-CN-02")
    listed = await client.v1.credit_notes.list_async(params={"invoice": invoice.id})
    assert [n.amount for n in listed.data] == [4000, 6000]


async def test_allocations_must_add_up(client: stripe.StripeClient) -> None:
    *_, invoice = await paid_invoice(client)
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.credit_notes.create_async(
            params={"invoice": invoice.id, "amount": 3000, "credit_amount": 1000}
        )


async def test_refund_amount_refunds_the_invoice_payment(client: stripe.StripeClient) -> None:
    *_, invoice = await paid_invoice(client)
    note = await client.v1.credit_notes.create_async(
        params={"invoice": invoice.id, "refund_amount": 3000}
    )
    assert note.amount == 3000
    refund = await client.v1.refunds.retrieve_async(note.refunds[0].refund)
    assert (refund.amount, refund.status) == (3000, "succeeded")
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.credit_notes.void_credit_note_async(note.id)


async def test_credit_note_on_an_open_invoice_lowers_the_amount_due(
    client: stripe.StripeClient,
) -> None:
    customer = await client.v1.customers.create_async(params={"email": "ap@bigco.example"})
    price = await monthly_price(client, 50000)
    sub = await client.v1.subscriptions.create_async(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "expand": ["latest_invoice"],
        }
    )
    invoice = sub.latest_invoice
    preview = await client.v1.credit_notes.preview_async(
        params={"invoice": invoice.id, "amount": 10000}
    )
    assert (preview.amount, preview.type) == (10000, "pre_payment")
    note = await client.v1.credit_notes.create_async(
        params={"invoice": invoice.id, "amount": 10000}
    )
    lowered = await client.v1.invoices.retrieve_async(invoice.id)
    assert (
        lowered.amount_due,
        lowered.amount_remaining,
        lowered.pre_payment_credit_notes_amount,
    ) == (40000, 40000, 10000)
    assert (await client.v1.customers.retrieve_async(customer.id)).balance == 0
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.credit_notes.create_async(params={"invoice": invoice.id, "amount": 40001})

    voided = await client.v1.credit_notes.void_credit_note_async(note.id)
    assert voided.status == "void"
    assert (await client.v1.invoices.retrieve_async(invoice.id)).amount_due == 50000


async def test_credit_notes_need_a_finalized_invoice(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    await client.v1.invoice_items.create_async(
        params={"customer": customer.id, "amount": 1000, "currency": "usd"}
    )
    draft = await client.v1.invoices.create_async(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    assert (draft.status, draft.total) == ("draft", 1000)
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.credit_notes.create_async(params={"invoice": draft.id, "amount": 100})
    paid = await client.v1.invoices.pay_async(draft.id)
    assert paid.status == "paid"
    assert paid.number is not None
