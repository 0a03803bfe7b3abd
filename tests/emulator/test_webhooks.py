"""Signed webhooks reach a real HTTP receiver, in order, and verify with the Stripe SDK."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe

from stripe_emulator.testing import RunningEmulator
from stripe_emulator.webhooks import RETRY_DELAYS

from .helpers import advance, event_types

SECRET = "whsec_test_receiver"


class Receiver:
    """A tiny webhook endpoint that records what it gets; can fail the first N posts."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                else:
                    receiver.received.append((dict(self.headers), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe/webhook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def events(self) -> list[Any]:
        return [
            stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET)
            for headers, body in self.received
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()
    running.server.server_close()


async def flush(control: httpx.AsyncClient) -> dict[str, Any]:
    result: dict[str, Any] = (await control.post("/webhooks/flush", json={"timeout": 10})).json()
    return result


async def test_events_are_signed_and_delivered_in_order(
    client: stripe.StripeClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    await control.post("/config", json={"webhook_url": receiver.url, "webhook_secret": SECRET})
    try:
        customer = await client.v1.customers.create_async(params={"email": "a@example.com"})
        await client.v1.customers.update_async(customer.id, params={"name": "Acme"})
        result = await flush(control)
    finally:
        await control.post("/config", json={"webhook_url": None})

    assert result["done"] is True
    events = receiver.events()
    assert [e.type for e in events] == ["customer.created", "customer.updated"]
    assert [e.type for e in events] == await event_types(client)
    created, updated = events
    assert created.data.object.id == customer.id
    assert updated.data.previous_attributes.to_dict() == {"name": None}
    assert created.request.idempotency_key is not None
    assert created.livemode is False
    headers = receiver.received[0][0]
    assert headers["Content-Type"].startswith("application/json")


async def test_a_tampered_body_fails_verification(
    client: stripe.StripeClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    await control.post("/config", json={"webhook_url": receiver.url, "webhook_secret": SECRET})
    try:
        await client.v1.customers.create_async(params={"email": "a@example.com"})
        await flush(control)
    finally:
        await control.post("/config", json={"webhook_url": None})
    headers, body = receiver.received[0]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            body.replace(b"a@example", b"b@example"), headers["Stripe-Signature"], SECRET
        )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_other")


async def test_failed_deliveries_are_retried(
    client: stripe.StripeClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    await control.post("/config", json={"webhook_url": receiver.url, "webhook_secret": SECRET})
    try:
        await client.v1.customers.create_async(params={"email": "a@example.com"})
        await flush(control)
    finally:
        await control.post("/config", json={"webhook_url": None})
    assert [e.type for e in receiver.events()] == ["customer.created"]
    deliveries = (await control.get("/webhooks")).json()["data"]
    assert [(d["attempts"], d["delivered"]) for d in deliveries] == [(2, True)]
    event = (await client.v1.events.list_async()).data[0]
    assert event.pending_webhooks == 0


async def test_webhook_endpoints_created_through_the_api_receive_their_events(
    emulator: RunningEmulator,
    client: stripe.StripeClient,
    control: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    endpoint = await client.v1.webhook_endpoints.create_async(
        params={"url": receiver.url, "enabled_events": ["invoice.created", "customer.created"]}
    )
    assert endpoint.secret == emulator.webhook_secret
    await client.v1.customers.create_async(params={"email": "a@example.com"})
    await client.v1.products.create_async(params={"name": "Not delivered"})
    await flush(control)
    types = [
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], endpoint.secret).type
        for headers, body in receiver.received
    ]
    assert types == ["customer.created"]


async def test_events_can_be_listed_and_filtered(client: stripe.StripeClient) -> None:
    customer = await client.v1.customers.create_async(params={"email": "a@example.com"})
    await client.v1.products.create_async(params={"name": "Gold"})
    newest_first = await client.v1.events.list_async()
    assert [e.type for e in newest_first.data] == ["product.created", "customer.created"]
    only = await client.v1.events.list_async(params={"type": "customer.*"})
    assert [e.data.object.id for e in only.data] == [customer.id]
    page = await client.v1.events.list_async(params={"limit": 1})
    assert page.has_more is True
    rest = await client.v1.events.list_async(params={"starting_after": page.data[0].id})
    assert [e.type for e in rest.data] == ["customer.created"]
    one = await client.v1.events.retrieve_async(rest.data[0].id)
    assert json.loads(str(one))["data"]["object"]["email"] == "a@example.com"


async def test_events_list_like_stripe(
    client: stripe.StripeClient, control: httpx.AsyncClient, raw: httpx.AsyncClient
) -> None:
    customer = await client.v1.customers.create_async(params={"email": "a@example.com"})
    await advance(control, 10)
    product = await client.v1.products.create_async(params={"name": "Gold"})
    await client.v1.customers.update_async(customer.id, params={"name": "Acme"})

    async def types(**params: Any) -> list[str]:
        found = await client.v1.events.list_async(params=params)
        return [e.type for e in found.data]

    assert await types(type="*.created") == ["product.created", "customer.created"]
    assert await types(types=["customer.updated", "product.created"]) == [
        "customer.updated",
        "product.created",
    ]
    assert await types(created={"gte": product.created}) == ["customer.updated", "product.created"]
    assert await types(created={"lt": product.created}) == ["customer.created"]
    # Cursors: ending_before pages towards newer events.
    oldest = (await client.v1.events.list_async(params={"type": "customer.created"})).data[0]
    newer = await client.v1.events.list_async(params={"ending_before": oldest.id, "limit": 1})
    assert [e.type for e in newer.data] == ["product.created"] and newer.has_more is True
    # A cursor outside the filter still marks a place in the log.
    after = await types(type="customer.*", starting_after=newer.data[0].id)
    assert after == ["customer.created"]
    for bad in ({"limit": "0"}, {"limit": "101"}, {"type": "x", "types[]": "y"}):
        assert (await raw.get("/v1/events", params=bad)).status_code == 400, bad
    # Kept 30 days, as on Stripe.
    await advance(control, 31 * 86_400)
    assert await types() == []
    gone = await raw.get(f"/v1/events/{oldest.id}")
    assert gone.status_code == 404


def test_the_retry_schedule_is_shaped_like_stripes() -> None:
    delays = RETRY_DELAYS
    assert delays[0] == 60
    assert sum(delays) == 3 * 86_400  # retried for up to 3 days
    assert all(b == min(2 * a, 12 * 3600) for a, b in itertools.pairwise(delays[:-1]))
    assert len(delays) >= 10


async def test_a_dead_endpoint_is_retried_for_three_days_then_given_up(
    client: stripe.StripeClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_first = 10**6
    # 3 days compressed to about a quarter of a second.
    await control.post(
        "/config",
        json={"webhook_url": receiver.url, "webhook_secret": SECRET, "webhook_time_scale": 1e-6},
    )
    try:
        await client.v1.customers.create_async(params={"email": "a@example.com"})
        result = await flush(control)
    finally:
        await control.post("/config", json={"webhook_url": None, "webhook_time_scale": 1e-4})
    assert result["done"] is True
    deliveries = (await control.get("/webhooks")).json()["data"]
    assert [(d["attempts"], d["delivered"]) for d in deliveries] == [(len(RETRY_DELAYS) + 1, False)]


async def test_a_failing_event_does_not_hold_back_the_next(
    client: stripe.StripeClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    # Uncompressed: the failed first event waits a real minute for its retry.
    await control.post(
        "/config",
        json={"webhook_url": receiver.url, "webhook_secret": SECRET, "webhook_time_scale": 1.0},
    )
    try:
        first = await client.v1.customers.create_async(params={"email": "a@example.com"})
        second = await client.v1.customers.create_async(params={"email": "b@example.com"})
        # The emulator records a delivery once the receiver's answer is back, a moment
        # after the receiver has counted it: wait for the emulator's own record.
        for _ in range(400):
            deliveries = (await control.get("/webhooks")).json()
            if receiver.received and any(d["delivered"] for d in deliveries["data"]):
                break
            await asyncio.sleep(0.025)
    finally:
        await control.post("/config", json={"webhook_url": None, "webhook_time_scale": 1e-4})
        await control.post("/reset")  # drop the retry still waiting
    assert [e.data.object.id for e in receiver.events()] == [second.id]
    waiting = [d for d in deliveries["data"] if not d["delivered"]]
    assert [(d["event"], d["attempts"]) for d in waiting] == [(deliveries["data"][0]["event"], 1)]
    assert waiting[0]["next_attempt"] > time.time() + 30
    assert first.id != second.id
