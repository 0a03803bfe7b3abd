"""The control plane and test helpers: reset, clock, state, hosted invoice page."""

from __future__ import annotations

import time

import httpx
import stripe

from stripe_emulator.testing import start_emulator

from .helpers import customer_with_card, monthly_price


def test_start_is_fast_and_stops_cleanly() -> None:
    started = time.monotonic()
    with start_emulator(webhook_secret="whsec_x") as running:
        assert time.monotonic() - started < 1
        assert running.url.startswith("http://127.0.0.1:")
        assert running.webhook_secret == "whsec_x"
        assert running.api_key.startswith("sk_test_")
        response = httpx.get(f"{running.url}/_emulator/health")
        assert response.json() == {"ok": True}
    assert not running.thread.is_alive()


async def test_reset_forgets_everything(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    await client.v1.customers.create_async(params={"email": "a@example.com"})
    counts = (await control.get("/state")).json()["counts"]
    assert counts == {"customer": 1, "event": 1}
    await control.post("/reset")
    assert (await control.get("/state")).json()["counts"] == {}
    assert (await control.get("/requests")).json()["data"] == []


async def test_advance_clock_test_helper_takes_form_params(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    before = (await control.get("/clock")).json()["now"]
    response = await client.raw_request_async(
        "post", "/v1/test_helpers/advance_clock", seconds=3600
    )
    assert client.deserialize(response, api_mode="V1")["now"] == before + 3600
    response = await client.raw_request_async(
        "post", "/v1/test_helpers/advance_clock", frozen_time=before + 7200
    )
    assert client.deserialize(response, api_mode="V1")["now"] == before + 7200
    backwards = await control.post("/clock", json={"frozen_time": before})
    assert backwards.status_code == 400


async def test_events_carry_the_emulator_clock(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    moved = (await control.post("/clock", json={"advance_seconds": 86_400})).json()["now"]
    customer = await client.v1.customers.create_async(params={"email": "a@example.com"})
    assert customer.created == moved
    event = (await client.v1.events.list_async()).data[0]
    assert event.created == moved


async def test_hosted_invoice_page_pays_an_open_invoice(client: stripe.StripeClient) -> None:
    customer = await customer_with_card(client)
    price = await monthly_price(client, 7000)
    sub = await client.v1.subscriptions.create_async(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "collection_method": "send_invoice",
            "days_until_due": 14,
            "expand": ["latest_invoice"],
        }
    )
    url = sub.latest_invoice.hosted_invoice_url
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert "Amount due" in page.text
        await browser.post(url, data={"outcome": "paid"})
    paid = await client.v1.invoices.retrieve_async(sub.latest_invoice.id)
    assert (paid.status, paid.amount_paid) == ("paid", 7000)
