"""Proration: the preview is exactly what the change bills, now or at the next renewal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from stripe_emulator.proration import prorate

from .helpers import advance, customer_with_card, monthly_price

DAY = 86_400


def summary(invoice: Any) -> dict[str, Any]:
    return {
        "lines": [
            (
                line.amount,
                line.description,
                line.period.start,
                line.period.end,
                line.parent.subscription_item_details.proration,
            )
            for line in invoice.lines.data
        ],
        "subtotal": invoice.subtotal,
        "total": invoice.total,
        "amount_due": invoice.amount_due,
    }


async def setup(
    client: stripe.StripeClient, old: int = 3000, new: int = 5000
) -> tuple[Any, Any, Any]:
    customer = await customer_with_card(client)
    old_price = await monthly_price(client, old)
    new_price = await monthly_price(client, new)
    sub = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": old_price.id}]}
    )
    return customer, sub, new_price


def change(sub: Any, price: str, behavior: str, proration_date: int) -> dict[str, Any]:
    return {
        "items": [{"id": sub["items"].data[0].id, "price": price}],
        "proration_behavior": behavior,
        "proration_date": proration_date,
    }


async def test_create_prorations_preview_equals_the_next_renewal_invoice(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer, sub, new_price = await setup(client)
    start = sub["items"].data[0].current_period_start
    end = sub["items"].data[0].current_period_end
    await advance(control, 10 * DAY)
    params = change(sub, new_price.id, "create_prorations", start + 10 * DAY)

    preview = await client.v1.invoices.create_preview_async(
        params={"customer": customer.id, "subscription": sub.id, "subscription_details": params}
    )
    length, remaining = end - start, end - (start + 10 * DAY)
    credit = -round(3000 * remaining / length)
    charge = round(5000 * remaining / length)
    assert [line.amount for line in preview.lines.data] == [credit, charge, 5000]
    assert [line.parent.subscription_item_details.proration for line in preview.lines.data] == [
        True,
        True,
        False,
    ]
    assert preview.id.startswith("upcoming_in_")
    assert preview.total == credit + charge + 5000

    updated = await client.v1.subscriptions.update_async(sub.id, params=params)
    assert updated.latest_invoice == sub.latest_invoice  # nothing billed yet
    pending = await client.v1.invoice_items.list_async(params={"customer": customer.id})
    assert sorted(i.amount for i in pending.data) == sorted([credit, charge])

    await advance(control, end - start)
    renewal = await client.v1.invoices.retrieve_async(
        (await client.v1.subscriptions.retrieve_async(sub.id)).latest_invoice
    )
    assert renewal.billing_reason == "subscription_cycle"
    assert summary(renewal) == summary(preview)
    assert renewal.status == "paid"


async def test_always_invoice_preview_equals_the_immediate_invoice(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer, sub, new_price = await setup(client)
    start = sub["items"].data[0].current_period_start
    await advance(control, 7 * DAY)
    params = change(sub, new_price.id, "always_invoice", start + 7 * DAY + 3600)

    preview = await client.v1.invoices.create_preview_async(
        params={"customer": customer.id, "subscription": sub.id, "subscription_details": params}
    )
    updated = await client.v1.subscriptions.update_async(
        sub.id, params={**params, "expand": ["latest_invoice"]}
    )
    billed = updated.latest_invoice
    assert billed.billing_reason == "subscription_update"
    assert summary(billed) == summary(preview)
    assert len(billed.lines.data) == 2
    assert (billed.status, billed.amount_paid) == ("paid", preview.amount_due)


async def test_interval_change_bills_now_and_restarts_the_period(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(client)
    monthly = await monthly_price(client, 3000)
    yearly = await monthly_price(client, 30000, interval="year")
    sub = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": monthly.id}]}
    )
    start = sub["items"].data[0].current_period_start
    now = (await advance(control, 15 * DAY))["now"]
    params = change(sub, yearly.id, "create_prorations", start + 15 * DAY)

    preview = await client.v1.invoices.create_preview_async(
        params={"customer": customer.id, "subscription": sub.id, "subscription_details": params}
    )
    updated = await client.v1.subscriptions.update_async(
        sub.id, params={**params, "expand": ["latest_invoice"]}
    )
    assert summary(updated.latest_invoice) == summary(preview)
    amounts = [line.amount for line in preview.lines.data]
    assert amounts[0] < 0
    assert amounts[1] == 30000
    item = updated["items"].data[0]
    assert item.current_period_start == now
    assert item.current_period_end - now in (365 * DAY, 366 * DAY)
    assert updated.billing_cycle_anchor == now


async def test_downgrade_credit_goes_to_the_balance_and_pays_the_next_invoice(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer, sub, cheaper = await setup(client, old=5000, new=1000)
    start = sub["items"].data[0].current_period_start
    updated = await client.v1.subscriptions.update_async(
        sub.id,
        params={**change(sub, cheaper.id, "always_invoice", start), "expand": ["latest_invoice"]},
    )
    invoice = updated.latest_invoice
    assert invoice.total == -4000
    assert (invoice.amount_due, invoice.status, invoice.ending_balance) == (0, "paid", -4000)
    assert (await client.v1.customers.retrieve_async(customer.id)).balance == -4000

    await advance(control, 32 * DAY)
    renewal = await client.v1.invoices.retrieve_async(
        (await client.v1.subscriptions.retrieve_async(sub.id)).latest_invoice
    )
    assert (renewal.total, renewal.amount_due, renewal.starting_balance) == (1000, 0, -4000)
    assert renewal.ending_balance == -3000
    assert (await client.v1.customers.retrieve_async(customer.id)).balance == -3000


async def test_proration_date_outside_the_period_is_refused(client: stripe.StripeClient) -> None:
    _, sub, new_price = await setup(client)
    end = sub["items"].data[0].current_period_end
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.subscriptions.update_async(
            sub.id, params=change(sub, new_price.id, "create_prorations", end + DAY)
        )
    assert caught.value.param == "proration_date"


async def test_proration_none_changes_price_without_lines(client: stripe.StripeClient) -> None:
    customer, sub, new_price = await setup(client)
    start = sub["items"].data[0].current_period_start
    preview = await client.v1.invoices.create_preview_async(
        params={
            "customer": customer.id,
            "subscription": sub.id,
            "subscription_details": change(sub, new_price.id, "none", start),
        }
    )
    assert [line.amount for line in preview.lines.data] == [5000]


@pytest.mark.parametrize(
    ("amount", "remaining", "length", "expected"),
    [
        (3000, 20, 30, 2000),
        (1000, 1, 3, 333),
        (1000, 2, 3, 667),
        (5, 1, 2, 3),  # halves round up
        (3000, 0, 30, 0),
        (3000, 30, 30, 3000),
    ],
)
def test_prorate_rounds_half_up(amount: int, remaining: int, length: int, expected: int) -> None:
    assert prorate(amount, remaining, length) == expected
    assert prorate(-amount, remaining, length) == -expected


@given(
    amount=st.integers(min_value=0, max_value=10**8),
    length=st.integers(min_value=1, max_value=366 * DAY),
    data=st.data(),
)
def test_prorate_stays_within_the_amount(amount: int, length: int, data: st.DataObject) -> None:
    remaining = data.draw(st.integers(min_value=0, max_value=length))
    value = prorate(amount, remaining, length)
    assert 0 <= value <= amount
    assert abs(value - amount * remaining / length) <= 0.5


async def test_billing_cycle_anchor_now_restarts_the_period_with_the_same_interval(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    customer, sub, new_price = await setup(client)
    start = sub["items"].data[0].current_period_start
    now = (await advance(control, 10 * DAY))["now"]
    params = {
        **change(sub, new_price.id, "always_invoice", start + 10 * DAY),
        "billing_cycle_anchor": {"type": "now"},
    }
    preview = await client.v1.invoices.create_preview_async(
        params={"customer": customer.id, "subscription": sub.id, "subscription_details": params}
    )
    updated = await client.v1.subscriptions.update_async(
        sub.id, params={**params, "expand": ["latest_invoice"]}
    )
    assert summary(updated.latest_invoice) == summary(preview)
    assert [line.amount for line in preview.lines.data][1:] == [5000]
    assert updated["items"].data[0].current_period_start == now
    assert updated.billing_cycle_anchor == now
