"""A restarted emulator keeps every object, event, idempotency key, clock and webhook queue."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from stripe_emulator.app import create_app
from stripe_emulator.store import FILE_NAME
from stripe_emulator.testing import start_emulator

from .helpers import customer_with_card, make_client, monthly_price
from .test_webhooks import SECRET, Receiver


async def _everything(client: stripe.StripeClient) -> dict[str, Any]:
    """Objects of every kind the service keeps ids of, made through the SDK."""
    customer = await customer_with_card(client)
    price = await monthly_price(client, 4900, lookup_key="business_v1_month")
    sub = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": price.id}]},
        options={"idempotency_key": "sub-create-1"},
    )
    invoice = await client.v1.invoices.retrieve_async(sub.latest_invoice)
    note = await client.v1.credit_notes.create_async(
        params={"invoice": invoice.id, "amount": 900, "credit_amount": 900}
    )
    session = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://example.test/ok",
        }
    )
    return {
        "customer": customer.id,
        "product": price.product,
        "price": price.id,
        "subscription": sub.id,
        "invoice": invoice.id,
        "credit_note": note.id,
        "session": session.id,
        "payment_method": customer.invoice_settings.default_payment_method,
    }


async def _read_back(client: stripe.StripeClient, ids: dict[str, Any]) -> dict[str, Any]:
    v1 = client.v1
    return {
        "customer": (await v1.customers.retrieve_async(ids["customer"])).to_dict(),
        "product": (await v1.products.retrieve_async(ids["product"])).to_dict(),
        "price": (await v1.prices.retrieve_async(ids["price"])).to_dict(),
        "subscription": (await v1.subscriptions.retrieve_async(ids["subscription"])).to_dict(),
        "invoice": (await v1.invoices.retrieve_async(ids["invoice"])).to_dict(),
        "credit_note": (await v1.credit_notes.retrieve_async(ids["credit_note"])).to_dict(),
        "session": (await v1.checkout.sessions.retrieve_async(ids["session"])).to_dict(),
        "events": [e.id for e in (await v1.events.list_async(params={"limit": 100})).data],
        "by_lookup_key": [
            p.id
            for p in (
                await v1.prices.list_async(params={"lookup_keys": ["business_v1_month"]})
            ).data
        ],
    }


async def test_a_restarted_emulator_keeps_every_object(tmp_path: Path) -> None:
    first = start_emulator(data_dir=tmp_path)
    client, http = make_client(first)
    try:
        async with httpx.AsyncClient(base_url=f"{first.url}/_emulator") as control:
            await control.post("/clock", json={"frozen_time": int(time.time()) + 10})
        ids = await _everything(client)
        before = await _read_back(client, ids)
        clock = first.emulator.state.now()
    finally:
        await http.close_async()
        first.stop()
    assert (tmp_path / FILE_NAME).exists()

    second = start_emulator(data_dir=tmp_path)
    client, http = make_client(second)
    try:
        assert await _read_back(client, ids) == before
        assert second.emulator.state.now() == clock  # a frozen clock stays where it was
        # An idempotency key used before the restart still replays its first response.
        price = ids["price"]
        replay = await client.v1.subscriptions.create_async(
            params={"customer": ids["customer"], "items": [{"price": price}]},
            options={"idempotency_key": "sub-create-1"},
        )
        assert replay.id == ids["subscription"]
        # New objects continue after the old ones: lists stay newest first.
        newer = await client.v1.customers.create_async(params={"email": "b@example.test"})
        listed = await client.v1.customers.list_async()
        assert [c.id for c in listed.data] == [newer.id, ids["customer"]]
        # Lookup keys stay unique across the restart.
        with pytest.raises(stripe.InvalidRequestError, match="already uses that lookup key"):
            await second_price_with_the_same_key(client, ids["product"])
        # The subscription keeps billing: its renewal runs after the restart.
        async with httpx.AsyncClient(base_url=f"{second.url}/_emulator") as control:
            await control.post("/clock", json={"advance_seconds": 32 * 86_400})
        invoices = await client.v1.invoices.list_async(params={"subscription": ids["subscription"]})
        assert [i.billing_reason for i in invoices.data] == [
            "subscription_cycle",
            "subscription_create",
        ]
    finally:
        await http.close_async()
        second.stop()


async def second_price_with_the_same_key(client: stripe.StripeClient, product: str) -> Any:
    return await client.raw_request_async(
        "post",
        "/v1/prices",
        product=product,
        currency="usd",
        unit_amount=100,
        lookup_key="business_v1_month",
    )


async def test_reset_forgets_the_kept_state(tmp_path: Path) -> None:
    first = start_emulator(data_dir=tmp_path)
    client, http = make_client(first)
    try:
        customer = await client.v1.customers.create_async(params={"email": "a@example.test"})
        async with httpx.AsyncClient(base_url=f"{first.url}/_emulator") as control:
            assert (await control.post("/reset")).status_code == 200
    finally:
        await http.close_async()
        first.stop()
    second = start_emulator(data_dir=tmp_path)
    client, http = make_client(second)
    try:
        with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
            await client.v1.customers.retrieve_async(customer.id)
    finally:
        await http.close_async()
        second.stop()


def _serve(data_dir: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m stripe_emulator --data-dir …` as `make run` starts it, on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "stripe_emulator", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--data-dir", str(data_dir), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(f"{url}/_emulator/health", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the emulator did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


def test_the_command_line_keeps_state_in_the_data_dir_until_reset(tmp_path: Path) -> None:
    headers = {"Authorization": "Bearer sk_test_emulator"}
    process, url = _serve(tmp_path)
    try:
        made = httpx.post(f"{url}/v1/products", data={"name": "Business"}, headers=headers)
        product = made.json()["id"]
    finally:
        _stop(process)
    process, url = _serve(tmp_path)  # the second `make run`: no "No such product"
    try:
        found = httpx.get(f"{url}/v1/products/{product}", headers=headers)
        assert found.status_code == 200, found.text
    finally:
        _stop(process)
    # `--reset` is `create_app(reset=True)`: the kept state is gone.
    app = create_app(data_dir=tmp_path, reset=True)
    assert app.emulator.state.find(product) is None
    assert app.emulator.state.store is not None
    app.emulator.state.store.close()


async def test_queued_webhooks_survive_a_restart(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.fail_first = 10**6  # the service is down
    first = start_emulator(
        data_dir=tmp_path, webhook_url=receiver.url, webhook_secret=SECRET, webhook_time_scale=1e-3
    )
    client, http = make_client(first)
    try:
        customer = await client.v1.customers.create_async(params={"email": "a@example.test"})
        async with httpx.AsyncClient(base_url=f"{first.url}/_emulator") as control:
            deliveries = (await control.get("/webhooks")).json()
    finally:
        await http.close_async()
        first.stop()
    assert deliveries["pending"] == 1
    receiver.fail_first = 0  # the service is back; so is the emulator
    second = start_emulator(
        data_dir=tmp_path, webhook_url=receiver.url, webhook_secret=SECRET, webhook_time_scale=1e-3
    )
    try:
        async with httpx.AsyncClient(base_url=f"{second.url}/_emulator") as control:
            flushed = (await control.post("/webhooks/flush", json={"timeout": 30})).json()
        assert flushed["done"] is True
        assert [e.data.object.id for e in receiver.events()] == [customer.id]
    finally:
        second.stop()
        receiver.server.shutdown()
        receiver.server.server_close()
