"""Billing fixtures: the seeded catalog, customers, and Stripe events pumped from the emulator."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from billing import seed, stripe_catalog
from common.embedded import Services


def sign(payload: bytes, secret: str, at: int | None = None) -> str:
    """A Stripe-Signature header, computed as Stripe documents it."""
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


class Stripe:
    """The emulator seen from a test: its REST API, control plane and event feed."""

    def __init__(self, url: str, api_key: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.http = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
        )
        self._seen: set[str] = set()

    async def get(self, url: str, **params: Any) -> Any:
        r = await self.http.get(url, params=params)
        r.raise_for_status()
        return r.json()

    async def post(self, path: str, json_body: Any = None, **form: Any) -> Any:
        r = await (
            self.http.post(path, json=json_body)
            if json_body is not None
            else self.http.post(path, data=form)
        )
        r.raise_for_status()
        return r.json()

    async def complete_checkout(self, session_id: str, outcome: str = "paid") -> Any:
        return await self.post(
            f"/v1/test_helpers/checkout/sessions/{session_id}/complete", {"outcome": outcome}
        )

    async def new_events(self) -> list[dict[str, Any]]:
        """Events not yet pumped, oldest first."""
        found: list[dict[str, Any]] = []
        starting_after = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if starting_after:
                params["starting_after"] = starting_after
            page = await self.get("/v1/events", **params)
            fresh = [e for e in page["data"] if e["id"] not in self._seen]
            found.extend(fresh)
            if not page["has_more"] or len(fresh) < len(page["data"]):
                break
            starting_after = page["data"][-1]["id"]
        found.sort(key=lambda e: (e["created"], e["id"]))
        return found

    async def fault(self, **spec: Any) -> None:
        (await self.http.post("/_emulator/faults", json=spec)).raise_for_status()

    async def requests(self, **filters: str) -> list[dict[str, Any]]:
        return list((await self.get("/_emulator/requests", **filters))["data"])

    def mark_seen(self, events: list[dict[str, Any]]) -> None:
        self._seen.update(e["id"] for e in events)


@pytest.fixture
async def stripe_emu(services: Services) -> AsyncIterator[Stripe]:
    emulator = services.emulator  # type: ignore[attr-defined]
    emu = Stripe(emulator.url, emulator.api_key, emulator.webhook_secret)
    # Events of earlier tests are not this test's business.
    emu.mark_seen(await emu.new_events())
    await emu.http.delete("/_emulator/faults")
    yield emu
    await emu.http.delete("/_emulator/faults")
    await emu.http.aclose()


Deliver = Callable[[], Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def deliver(
    client: httpx.AsyncClient, stripe_emu: Stripe, run_worker: Callable[[], Awaitable[int]]
) -> Deliver:
    """Send the emulator's new events to /v1/stripe/webhook, signed, then run the worker."""

    async def pump() -> list[dict[str, Any]]:
        fresh = await stripe_emu.new_events()
        for event in fresh:
            body = json.dumps(event).encode()
            r = await client.post(
                "/v1/stripe/webhook",
                content=body,
                headers={
                    "Stripe-Signature": sign(body, stripe_emu.secret),
                    "Content-Type": "application/json",
                },
            )
            assert r.status_code == 200, r.text
        stripe_emu.mark_seen(fresh)
        await run_worker()
        return fresh

    return pump


Subscribed = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def subscribed(
    client: httpx.AsyncClient, admin_headers: dict[str, str], stripe_emu: Stripe, deliver: Deliver
) -> Subscribed:
    """``await subscribed(customer_id, "business")``: subscribed through Checkout, paid.

    Returns the Stripe subscription; with ``deliver=False`` its events are left undelivered
    (for tests of what happens when webhooks never come).
    """

    async def subscribe(
        customer_id: str, plan: str = "business", interval: str = "month", *, deliver: bool = True
    ) -> dict[str, Any]:
        r = await client.post(
            f"/v1/customers/{customer_id}/subscription",
            headers=admin_headers,
            json={"plan": plan, "interval": interval, "mode": "checkout"},
        )
        assert r.status_code == 201, r.text
        session_id = r.json()["checkout_url"].rstrip("/").rsplit("/", 1)[-1]
        await stripe_emu.complete_checkout(session_id)
        session = await stripe_emu.get(f"/v1/checkout/sessions/{session_id}")
        if deliver:
            await deliver_events()
        return dict(await stripe_emu.get(f"/v1/subscriptions/{session['subscription']}"))

    deliver_events = deliver
    return subscribe


BoughtByCheckout = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def bought_by_checkout(
    client: httpx.AsyncClient, admin_headers: dict[str, str], stripe_emu: Stripe, deliver: Deliver
) -> BoughtByCheckout:
    """``await bought_by_checkout(customer_id, quantity)``: fast-track paid in Checkout."""

    async def buy(customer_id: str, quantity: int = 1, *, deliver: bool = True) -> dict[str, Any]:
        r = await client.post(
            f"/v1/customers/{customer_id}/fast-track-purchases",
            headers=admin_headers,
            json={"quantity": quantity, "mode": "checkout"},
        )
        assert r.status_code == 201, r.text
        await stripe_emu.complete_checkout(r.json()["checkout_url"].rstrip("/").rsplit("/", 1)[-1])
        if deliver:
            await deliver_events()
        return dict(r.json())

    deliver_events = deliver
    return buy


@pytest.fixture
async def seeded(clean_db: None) -> list[str]:
    created = await seed.seed_if_empty()
    await stripe_catalog.sync_to_stripe()
    return created


@pytest.fixture
async def customer(
    client: httpx.AsyncClient, admin_headers: dict[str, str], seeded: list[str]
) -> dict[str, Any]:
    r = await client.post(
        "/v1/customers",
        headers=admin_headers,
        json={
            "external_id": f"org-{time.time_ns()}",
            "name": "Acme GmbH",
            "email": "ops@acme.test",
            "timezone": "Europe/Berlin",
            "country": "DE",
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())
