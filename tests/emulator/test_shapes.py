"""Every object carries exactly the keys of Stripe's official example object."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import stripe

from stripe_emulator.objects import FIXTURES, fixtures

from .helpers import customer_with_card, monthly_price

SHARED = Path(__file__).resolve().parents[3] / "shared" / "stripe" / "fixtures3.json"


def keys_of(resource: str) -> set[str]:
    return set(fixtures()[resource])


# The vendored file as cut from the shared snapshot; a change to it must be deliberate.
VENDORED_SHA256 = "c3c2c84c152b5110f630156e9bdf7b1c8e230f08ea485ddd56e9650ab4578e6b"


def test_vendored_fixtures_are_a_verbatim_subset_of_the_shared_snapshot() -> None:
    assert hashlib.sha256(FIXTURES.read_bytes()).hexdigest() == VENDORED_SHA256
    if SHARED.exists():  # beside the shared folder: compare with the source itself
        shared = json.loads(SHARED.read_text())["resources"]
        vendored = json.loads(FIXTURES.read_text())["resources"]
        assert {name: shared[name] for name in vendored} == vendored


async def get(raw: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await raw.get(path, params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_billing_objects_have_the_fixture_keys(
    client: stripe.StripeClient, raw: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client)
    sub = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    await client.v1.invoice_items.create_async(
        params={"customer": customer.id, "amount": 500, "currency": "usd", "description": "Extra"}
    )
    await client.v1.customers.balance_transactions.create_async(
        customer.id, params={"amount": -100, "currency": "usd"}
    )
    await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "return_url": "https://example.com"}
    )
    invoice = await get(raw, f"/v1/invoices/{sub.latest_invoice}")
    note = await client.v1.credit_notes.create_async(
        params={"invoice": invoice["id"], "amount": 300, "credit_amount": 300}
    )
    preview = await client.v1.invoices.create_preview_async(
        params={"customer": customer.id, "subscription": sub.id}
    )

    sub_json = await get(raw, f"/v1/subscriptions/{sub.id}")
    item = sub_json["items"]["data"][0]
    pi_id = (await get(raw, "/v1/invoice_payments", invoice=invoice["id"]))["data"][0]["payment"][
        "payment_intent"
    ]
    pi = await get(raw, f"/v1/payment_intents/{pi_id}")
    note_json = await get(raw, f"/v1/credit_notes/{note.id}")
    preview_json = await get(raw, "/v1/events", type="customer.created")
    expected = {
        "customer": await get(raw, f"/v1/customers/{customer.id}"),
        "price": await get(raw, f"/v1/prices/{price.id}"),
        "product": await get(raw, f"/v1/products/{price.product}"),
        "subscription": sub_json,
        "subscription_item": item,
        "plan": item["plan"],
        "invoice": invoice,
        "line_item": invoice["lines"]["data"][0],
        "invoiceitem": (await get(raw, "/v1/invoiceitems", customer=customer.id))["data"][0],
        "invoice_payment": (await get(raw, "/v1/invoice_payments", invoice=invoice["id"]))["data"][
            0
        ],
        "payment_intent": pi,
        "charge": await get(raw, f"/v1/charges/{pi['latest_charge']}"),
        "payment_method": await get(raw, f"/v1/payment_methods/{pi['payment_method']}"),
        "credit_note": note_json,
        "credit_note_line_item": note_json["lines"]["data"][0],
        "customer_balance_transaction": (
            await get(raw, f"/v1/customers/{customer.id}/balance_transactions")
        )["data"][0],
        "billing_portal.session": (
            await raw.post("/v1/billing_portal/sessions", data={"customer": customer.id})
        ).json(),
        "event": preview_json["data"][0],
    }
    for resource, obj in expected.items():
        assert set(obj) == keys_of(resource), resource
    assert set(preview.to_dict()) == keys_of("invoice")


async def test_payment_objects_have_the_fixture_keys(
    client: stripe.StripeClient, raw: httpx.AsyncClient
) -> None:
    product = await client.v1.products.create_async(params={"name": "Fast-track"})
    price = await client.v1.prices.create_async(
        params={"product": product.id, "currency": "usd", "unit_amount": 9900}
    )
    session = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "payment",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://example.com/ok",
        }
    )
    customer = await customer_with_card(client)
    pi = await client.v1.payment_intents.create_async(
        params={
            "amount": 9900,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": customer.invoice_settings.default_payment_method,
            "confirm": True,
            "off_session": True,
        }
    )
    refund = await client.v1.refunds.create_async(params={"payment_intent": pi.id, "amount": 100})
    endpoint = await client.v1.webhook_endpoints.create_async(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
    )
    items = await get(raw, f"/v1/checkout/sessions/{session.id}/line_items")
    expected = {
        "checkout.session": await get(raw, f"/v1/checkout/sessions/{session.id}"),
        "item": items["data"][0],
        "refund": await get(raw, f"/v1/refunds/{refund.id}"),
        "webhook_endpoint": await get(raw, f"/v1/webhook_endpoints/{endpoint.id}"),
        "deleted_customer": (await raw.delete(f"/v1/customers/{customer.id}")).json(),
    }
    for resource, obj in expected.items():
        assert set(obj) == keys_of(resource), resource
    assert endpoint.secret.startswith("whsec_")


async def test_unmodelled_fields_are_neutral_not_sample_data(
    client: stripe.StripeClient, raw: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client)
    sub = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    sub_json = await get(raw, f"/v1/subscriptions/{sub.id}")
    customer_json = await get(raw, f"/v1/customers/{customer.id}")
    for field in ("pending_update", "transfer_data", "pause_collection", "cancel_at", "ended_at"):
        assert sub_json[field] is None, field
    assert sub_json["cancel_at_period_end"] is False
    assert customer_json["discount"] is None
    assert customer_json["livemode"] is False
    invoice = await get(raw, f"/v1/invoices/{sub.latest_invoice}")
    assert invoice["subscription"] == sub.id
    assert invoice["parent"]["subscription_details"]["subscription"] == sub.id
    line = invoice["lines"]["data"][0]
    assert line["parent"]["type"] == "subscription_item_details"
    assert line["pricing"]["price_details"]["price"] == price.id
