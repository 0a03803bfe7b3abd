"""Products, prices with unique lookup keys, customers, search and the balance ledger."""

from __future__ import annotations

import pytest
import stripe

from .helpers import customer_with_card, monthly_price


async def test_lookup_keys_are_unique_unless_transferred(client: stripe.StripeClient) -> None:
    first = await monthly_price(client, 3000, lookup_key="business_v1_month")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await monthly_price(client, 3500, lookup_key="business_v1_month")
    assert caught.value.param == "lookup_key"

    second = await monthly_price(
        client, 3500, lookup_key="business_v1_month", transfer_lookup_key=True
    )
    found = await client.v1.prices.list_async(params={"lookup_keys": ["business_v1_month"]})
    assert [p.id for p in found.data] == [second.id]
    assert (await client.v1.prices.retrieve_async(first.id)).lookup_key is None
    assert "price.updated" in [e.type for e in (await client.v1.events.list_async()).data]


async def test_price_listing_filters(client: stripe.StripeClient) -> None:
    monthly = await monthly_price(client, 3000)
    yearly = await monthly_price(client, 30000, interval="year")
    await client.v1.prices.update_async(monthly.id, params={"active": False})
    active = await client.v1.prices.list_async(params={"active": True})
    assert [p.id for p in active.data] == [yearly.id]
    by_product = await client.v1.prices.list_async(
        params={"product": monthly.product, "expand": ["data.product"]}
    )
    assert by_product.data[0].product.name == "Business month"


async def test_products_with_custom_ids_and_updates(client: stripe.StripeClient) -> None:
    product = await client.v1.products.create_async(
        params={"id": "business", "name": "Business", "metadata": {"tier": "2"}}
    )
    assert product.id == "business"
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.products.create_async(params={"id": "business", "name": "Again"})
    renamed = await client.v1.products.update_async(
        "business", params={"name": "Business+", "metadata": {"tier": ""}}
    )
    assert (renamed.name, renamed.metadata.to_dict()) == ("Business+", {})


async def test_customer_search_by_metadata(client: stripe.StripeClient) -> None:
    wanted = await client.v1.customers.create_async(
        params={"email": "a@example.com", "metadata": {"external_id": "org_1"}}
    )
    await client.v1.customers.create_async(
        params={"email": "b@example.com", "metadata": {"external_id": "org_2"}}
    )
    found = await client.v1.customers.search_async(
        params={"query": "metadata['external_id']:'org_1'"}
    )
    assert [c.id for c in found.data] == [wanted.id]
    both = await client.v1.customers.search_async(params={"query": "email~'example.com'"})
    assert len(both.data) == 2
    by_email = await client.v1.customers.list_async(params={"email": "b@example.com"})
    assert [c.email for c in by_email.data] == ["b@example.com"]


async def test_customer_update_and_pagination(client: stripe.StripeClient) -> None:
    ids = [(await client.v1.customers.create_async(params={"name": f"c{i}"})).id for i in range(3)]
    page = await client.v1.customers.list_async(params={"limit": 2})
    assert [c.id for c in page.data] == ids[:0:-1]
    assert page.has_more is True
    rest = await client.v1.customers.list_async(params={"starting_after": page.data[-1].id})
    assert [c.id for c in rest.data] == [ids[0]]
    updated = await client.v1.customers.update_async(
        ids[0], params={"email": "new@example.com", "metadata": {"k": "v"}}
    )
    assert (updated.email, updated.metadata.to_dict()) == ("new@example.com", {"k": "v"})


async def test_balance_transactions_move_the_balance(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    await client.v1.customers.balance_transactions.create_async(
        customer.id, params={"amount": -1500, "currency": "usd", "description": "goodwill"}
    )
    txn = await client.v1.customers.balance_transactions.create_async(
        customer.id, params={"amount": 500, "currency": "usd"}
    )
    assert (txn.type, txn.ending_balance) == ("adjustment", -1000)
    assert (await client.v1.customers.retrieve_async(customer.id)).balance == -1000
    listed = await client.v1.customers.balance_transactions.list_async(customer.id)
    assert [t.amount for t in listed.data] == [500, -1500]
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.customers.balance_transactions.create_async(
            customer.id, params={"amount": 100, "currency": "eur"}
        )


async def test_billing_portal_session_has_a_url(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    session = await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "return_url": "https://app.example.com/account"}
    )
    assert session.id.startswith("bps_")
    assert session.url.endswith(f"/p/session/{session.id}")
    assert session.return_url == "https://app.example.com/account"
