"""Shared helpers for the emulator tests: SDK client, clock, common fixtures' setup."""

from __future__ import annotations

from typing import Any

import httpx
import stripe

from stripe_emulator.testing import RunningEmulator


def make_client(
    emulator: RunningEmulator, *, retries: int = 0, timeout: float = 10
) -> tuple[stripe.StripeClient, stripe.HTTPXClient]:
    http = stripe.HTTPXClient(timeout=timeout)
    client = stripe.StripeClient(
        emulator.api_key,
        base_addresses={"api": emulator.url},
        http_client=http,
        max_network_retries=retries,
    )
    return client, http


async def advance(control: httpx.AsyncClient, seconds: int) -> dict[str, Any]:
    response = await control.post("/clock", json={"advance_seconds": seconds})
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


async def event_types(client: stripe.StripeClient, **filters: Any) -> list[str]:
    """Event types, oldest first."""
    events = await client.v1.events.list_async(params={"limit": 100, **filters})
    return [e.type for e in reversed(events.data)]


async def customer_with_card(client: stripe.StripeClient, card: str = "pm_card_visa") -> Any:
    return await client.v1.customers.create_async(
        params={
            "email": "ops@example.com",
            "name": "Example Ltd",
            "payment_method": card,
            "invoice_settings": {"default_payment_method": card},
        }
    )


async def monthly_price(
    client: stripe.StripeClient, amount: int = 3000, interval: str = "month", **extra: Any
) -> Any:
    product = await client.v1.products.create_async(params={"name": f"Business {interval}"})
    return await client.v1.prices.create_async(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": interval},
            **extra,
        }
    )
