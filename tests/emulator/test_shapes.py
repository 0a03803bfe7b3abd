"""Responses and events have the shapes Stripe's own types give for the pinned API version.

Every test in this folder already fails on a shape difference (`conftest.no_shape_differences`);
the tour here makes sure every gateway call and every event type the emulator can send is
among what gets checked.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from billing.stripe_gateway import GatewayConfig, StripeGateway
from stripe_emulator import reference
from stripe_emulator.objects import FIXTURES
from stripe_emulator.testing import RunningEmulator

from .helpers import advance, customer_with_card, monthly_price

EMULATOR = Path(__file__).resolve().parents[2] / "stripe_emulator"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "stripe" / "fixtures3.json"

# The vendored examples as cut from the shared snapshot; a change to them must be deliberate.
VENDORED_SHA256 = "c3c2c84c152b5110f630156e9bdf7b1c8e230f08ea485ddd56e9650ab4578e6b"


def test_vendored_fixtures_are_a_verbatim_subset_of_the_shared_snapshot() -> None:
    assert hashlib.sha256(FIXTURES.read_bytes()).hexdigest() == VENDORED_SHA256
    if SHARED.exists():  # beside the shared folder: compare with the source itself
        shared = json.loads(SHARED.read_text())["resources"]
        vendored = json.loads(FIXTURES.read_text())["resources"]
        assert {name: shared[name] for name in vendored} == vendored


def emitted_event_types() -> set[str]:
    """Every event type the emulator's code can emit (string literals passed to `emit`)."""
    found = set()
    for path in EMULATOR.glob("*.py"):
        found.update(re.findall(r'emit(?:_update)?\(\s*"([a-z_.]+)"', path.read_text()))
    return found


def test_the_emulator_sends_only_real_event_types() -> None:
    types = emitted_event_types()
    assert len(types) > 30
    assert {t for t in types if not reference.is_event_type(t)} == set()
    assert "payment_intent.updated" not in types and "invoiceitem.updated" not in types


def test_the_checker_finds_what_the_old_shapes_had_wrong() -> None:
    """The check itself can fail: the differences issue 11 found, on purpose."""
    schema = reference.endpoint("GET", "/v1/invoices/{}")
    assert schema is not None
    invoice = reference.resolve(schema["response"])
    minimal = {key: None for key in invoice.get("required", [])}
    found = reference.shape_differences(schema["response"], {**minimal, "subscription": "sub_1"})
    assert any(d.startswith("$.subscription: not in Stripe's type") for d in found)
    product = reference.endpoint("GET", "/v1/products/{}")
    assert product is not None
    assert "$.tax_details: missing (Stripe always sends it)" in reference.shape_differences(
        product["response"], {"id": "prod_1", "object": "product"}
    )
    session = reference.endpoint("GET", "/v1/checkout/sessions/{}")
    assert session is not None
    assert any(
        "ui_mode" in d
        for d in reference.shape_differences(session["response"], {"ui_mode": "hosted"})
    )
    event = {"id": "evt_1", "object": "event", "type": "payment_intent.updated", "data": {}}
    assert any("not a Stripe event type" in d for d in reference.event_differences(event))


@pytest.fixture
async def gateway(emulator: RunningEmulator, control: httpx.AsyncClient) -> AsyncIterator[Any]:
    gw = StripeGateway(GatewayConfig(api_key=emulator.api_key, api_base=emulator.url))
    yield gw
    await gw.aclose()


def _gateway_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(StripeGateway, inspect.iscoroutinefunction)
        if not name.startswith("_") and name != "aclose"
    }


async def _tour_of_the_gateway(gw: StripeGateway, raw: httpx.AsyncClient) -> set[str]:
    """Every gateway call, with the gateway's own parameters; returns the methods called."""
    called: set[str] = set()

    async def call(method: str, *args: Any, **kwargs: Any) -> Any:
        called.add(method)
        return await getattr(gw, method)(*args, **kwargs)

    customer = await call(
        "create_customer", customer_id="cust_1", external_id="org-1", name="Acme", email="a@x.test"
    )
    await call("retrieve_customer", customer["id"])
    await call("portal_session", customer["id"], "https://example.test/back")
    product = await call("create_product", plan_id="plan_1", code="business", name="Business")
    month = await call(
        "create_price",
        product=product["id"],
        currency="usd",
        unit_amount=49900,
        interval="month",
        lookup_key="business_v1_month",
        plan_id="plan_1",
    )
    year = await call(
        "create_price",
        product=product["id"],
        currency="usd",
        unit_amount=499000,
        interval="year",
        lookup_key="business_v1_year",
        plan_id="plan_1",
    )
    await call("prices_by_lookup_keys", ["business_v1_month", "business_v1_year"])
    session = await call(
        "checkout_subscription",
        key="subs_1",
        stripe_customer_id=customer["id"],
        price_id=month["id"],
        success_url="https://example.test/ok",
        cancel_url="https://example.test/no",
        metadata={"subscription_id": "subs_1"},
    )
    await raw.post(
        f"/v1/test_helpers/checkout/sessions/{session['id']}/complete", data={"outcome": "paid"}
    )
    completed = await call("retrieve_checkout_session", session["id"])
    sub = await call("retrieve_subscription", completed["subscription"])
    saved = sub["default_payment_method"]
    assert [c["id"] for c in await call("card_payment_methods", customer["id"])] == [saved]
    item = sub["items"]["data"][0]["id"]
    for reset in (False, True):
        await call(
            "preview_change",
            stripe_customer_id=customer["id"],
            stripe_subscription_id=sub["id"],
            item_id=item,
            price_id=year["id"] if reset else month["id"],
            proration_date=sub["items"]["data"][0]["current_period_start"] + 60,
            reset_anchor=reset,
        )
    await call(
        "change_price",
        key="change_1",
        stripe_subscription_id=sub["id"],
        item_id=item,
        price_id=year["id"],
        proration_date=sub["items"]["data"][0]["current_period_start"] + 60,
        metadata={"plan_id": "plan_1"},
        reset_anchor=True,
    )
    invoice = await call("latest_paid_invoice", sub["id"])
    await call(
        "credit_note", key="cn_1", invoice=invoice["id"], amount=500, memo="SLA", metadata={}
    )
    await call(
        "invoice_item",
        key="ii_1",
        stripe_customer_id=customer["id"],
        amount=2500,
        currency="usd",
        description="Overage",
        stripe_subscription_id=sub["id"],
        metadata={},
    )
    await call("cancel_at_period_end", sub["id"], "subs_1")
    await call(
        "checkout_payment",
        key="ftp_1",
        stripe_customer_id=customer["id"],
        name="Fast-track",
        unit_amount=14900,
        currency="usd",
        quantity=1,
        success_url="https://example.test/ok",
        cancel_url="https://example.test/no",
        metadata={"purchase_id": "ftp_1"},
    )
    intent = await call(
        "charge_saved_method",
        key="ftp_2",
        stripe_customer_id=customer["id"],
        payment_method=saved,
        amount=14900,
        currency="usd",
        description="1 fast-track incident",
        metadata={"purchase_id": "ftp_2"},
    )
    await call(
        "refund",
        key="rf_1",
        payment_intent=intent["id"],
        amount=14900,
        metadata={"service_credit_id": "scr_1"},
    )
    found = await call("find_credit", service_credit_id="scr_1", payment_intent=intent["id"])
    assert found is not None and found["object"] == "refund"
    assert await call("find_credit", service_credit_id="scr_x", invoice=invoice["id"]) is None
    sent = await call(
        "create_subscription",
        key="subs_2",
        stripe_customer_id=customer["id"],
        price_id=month["id"],
        metadata={},
        send_invoice=True,
        days_until_due=14,
        payment_method=None,
    )
    await call(
        "create_subscription",
        key="subs_3",
        stripe_customer_id=customer["id"],
        price_id=month["id"],
        metadata={},
        send_invoice=False,
        days_until_due=0,
        payment_method=saved,
    )
    await call("cancel_now", sent["id"], "subs_2")
    assert (await call("find_subscription", customer["id"], "subs_1"))["id"] == sub["id"]
    events = await call(
        "list_events", created_gte=0, created_lt=sub["created"] + 10**6, starting_after=None
    )
    assert events["data"]
    await call(
        "list_events", created_gte=0, created_lt=10**10, starting_after=events["data"][-1]["id"]
    )
    # The reconcile job's paging, and its fetch of one object found different.
    for object_type in ("invoice", "credit_note", "payment_intent", "refund"):
        page = await call("list_page", object_type, created_gte=0)
        assert page["data"], object_type
        await call("list_page", object_type, starting_after=page["data"][0]["id"])
        fetched = await call("retrieve", object_type, page["data"][0]["id"])
        assert fetched["id"] == page["data"][0]["id"]
    lines = await call("invoice_lines", invoice["id"], None)
    assert lines["data"]
    await call("invoice_lines", invoice["id"], lines["data"][0]["id"])
    return called


async def _the_rest_of_the_lifecycle(
    client: stripe.StripeClient, raw: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    """What the gateway never asks for but the emulator still sends: every other event."""
    customer = await customer_with_card(client)
    price = await monthly_price(client)
    await client.v1.products.update_async(price.product, params={"name": "Renamed"})
    await client.v1.prices.update_async(price.id, params={"nickname": "monthly"})
    spare = await client.v1.products.create_async(params={"name": "Spare"})
    await client.v1.products.delete_async(spare.id)
    # A declined card, then a 3DS card, on subscriptions.
    declined = await customer_with_card(client, "pm_card_chargeDeclined")
    await client.v1.subscriptions.create_async(
        params={"customer": declined.id, "items": [{"price": price.id}]}
    )
    secure = await customer_with_card(client, "pm_card_authenticationRequired")
    await client.v1.subscriptions.create_async(
        params={"customer": secure.id, "items": [{"price": price.id}]}
    )
    # A trial that pauses without a payment method, then resumes.
    bare = await client.v1.customers.create_async(params={"email": "t@example.test"})
    trial = await client.v1.subscriptions.create_async(
        params={
            "customer": bare.id,
            "items": [{"price": price.id}],
            "trial_period_days": 1,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        }
    )
    await advance(control, 2 * 86_400)
    await client.v1.customers.update_async(
        bare.id, params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    await client.v1.subscriptions.resume_async(trial.id)
    # Invoices: a draft deleted, one sent, one voided, one uncollectible; an item deleted.
    for action in ("delete", "send", "void", "mark_uncollectible"):
        invoice = await client.v1.invoices.create_async(
            params={
                "customer": customer.id,
                "collection_method": "send_invoice",
                "days_until_due": 7,
            }
        )
        await client.v1.invoice_items.create_async(
            params={
                "customer": customer.id,
                "amount": 1000,
                "currency": "usd",
                "invoice": invoice.id,
            }
        )
        if action == "delete":
            await client.v1.invoices.delete_async(invoice.id)
            continue
        await client.v1.invoices.finalize_invoice_async(invoice.id)
        await raw.post(f"/v1/invoices/{invoice.id}/{action}")
    item = await client.v1.invoice_items.create_async(
        params={"customer": customer.id, "amount": 700, "currency": "usd"}
    )
    await client.v1.invoice_items.delete_async(item.id)
    # Credit notes updated and voided; a refund updated; an intent canceled; a card detached.
    paid = (await client.v1.invoices.list_async(params={"status": "paid", "limit": 1})).data[0]
    note = await client.v1.credit_notes.create_async(
        params={"invoice": paid.id, "amount": 100, "credit_amount": 100}
    )
    await client.v1.credit_notes.update_async(note.id, params={"memo": "Thanks"})
    await client.v1.credit_notes.void_credit_note_async(note.id)
    pi = await client.v1.payment_intents.create_async(
        params={
            "amount": 5000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": customer.invoice_settings.default_payment_method,
            "confirm": True,
            "off_session": True,
        }
    )
    refund = await client.v1.refunds.create_async(params={"payment_intent": pi.id})
    await client.v1.refunds.update_async(refund.id, params={"metadata": {"why": "test"}})
    open_pi = await client.v1.payment_intents.create_async(
        params={"amount": 5000, "currency": "usd"}
    )
    await client.v1.payment_intents.cancel_async(open_pi.id)
    await client.v1.payment_methods.detach_async(customer.invoice_settings.default_payment_method)
    session = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 900,
                        "product_data": {"name": "X"},
                    },
                    "quantity": 1,
                }
            ],
            "success_url": "https://example.test/ok",
        }
    )
    await client.v1.checkout.sessions.expire_async(session.id)
    await client.v1.customers.delete_async(declined.id)


async def test_every_gateway_call_and_every_event_type_has_stripes_shape(
    emulator: RunningEmulator,
    gateway: StripeGateway,
    client: stripe.StripeClient,
    raw: httpx.AsyncClient,
    control: httpx.AsyncClient,
) -> None:
    called = await _tour_of_the_gateway(gateway, raw)
    assert called == _gateway_methods()
    await _the_rest_of_the_lifecycle(client, raw, control)
    # Read back through the endpoints the service's catch-up and tests use.
    events = await raw.get("/v1/events", params={"limit": 100})
    assert events.status_code == 200
    report = (await control.get("/shapes")).json()
    assert report["differences"] == []
    assert emitted_event_types() <= set(report["events"])
    for key in (
        "POST /v1/customers",
        "GET /v1/customers/{}",
        "POST /v1/billing_portal/sessions",
        "GET /v1/prices",
        "POST /v1/products",
        "POST /v1/prices",
        "POST /v1/checkout/sessions",
        "GET /v1/checkout/sessions/{}",
        "POST /v1/subscriptions",
        "GET /v1/subscriptions/{}",
        "POST /v1/invoices/create_preview",
        "POST /v1/subscriptions/{}",
        "DELETE /v1/subscriptions/{}",
        "POST /v1/payment_intents",
        "POST /v1/refunds",
        "GET /v1/invoices",
        "POST /v1/credit_notes",
        "POST /v1/invoiceitems",
        "GET /v1/events",
    ):
        assert report["responses"].get(key), key
