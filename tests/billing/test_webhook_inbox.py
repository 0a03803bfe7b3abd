"""The Stripe webhook inbox: signatures, exactly-once, order independence, replay."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import catalog, inbox
from billing.tables import Customer, Invoice, StripeEvent, Subscription, SubscriptionHistory
from stripe_emulator.objects import fixtures
from tests.billing.conftest import sign

# Stripe's official example objects, as vendored for the emulator (a clean clone has them).
FIXTURES = fixtures()


def _event(event_type: str, obj: dict[str, Any], created: int, event_id: str) -> dict[str, Any]:
    event = copy.deepcopy(FIXTURES["event"])
    event.update(id=event_id, type=event_type, created=created)
    event["data"] = {"object": obj}
    return event


def _subscription(
    stripe_customer: str,
    price: str,
    status: str,
    period: tuple[int, int],
    cancel_at_period_end: bool = False,
) -> dict[str, Any]:
    sub = copy.deepcopy(FIXTURES["subscription"])
    sub.update(
        id="sub_fixture1",
        customer=stripe_customer,
        status=status,
        cancel_at_period_end=cancel_at_period_end,
        metadata={},
    )
    item = sub["items"]["data"][0]
    item.update(current_period_start=period[0], current_period_end=period[1])
    item["price"] = {**item["price"], "id": price, "recurring": {"interval": "month"}}
    sub["items"]["data"] = [item]
    return sub


async def _post(
    client: httpx.AsyncClient, event: dict[str, Any], secret: str, at: int | None = None
) -> httpx.Response:
    body = json.dumps(event).encode()
    return await client.post(
        "/v1/stripe/webhook",
        content=body,
        headers={"Stripe-Signature": sign(body, secret, at), "Content-Type": "application/json"},
    )


async def _stripe_customer(seeded: list[str]) -> tuple[Customer, str]:
    row = Customer(
        id="cust_fixture",
        external_id="org-fixture",
        name="F",
        email="f@x.test",
        timezone="UTC",
        stripe_customer_id="cus_fixture",
    )
    await row.save()
    plan = await catalog.get_plan("business")
    return row, plan.stripe_price_ids["month"]


async def test_bad_or_stale_signature_is_400_and_stores_nothing(
    client: httpx.AsyncClient, services: Any
) -> None:
    secret = services.emulator.webhook_secret
    event = _event("invoice.paid", copy.deepcopy(FIXTURES["invoice"]), 1, "evt_bad1")
    for headers in (
        {"Stripe-Signature": sign(json.dumps(event).encode(), "whsec_wrong")},
        {"Stripe-Signature": "t=1,v1=deadbeef"},
        {},
    ):
        r = await client.post(
            "/v1/stripe/webhook", content=json.dumps(event).encode(), headers=headers
        )
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    stale = await _post(client, event, secret, at=int(time.time()) - 301)
    assert stale.status_code == 400
    assert "signature" in stale.json()["detail"].lower()
    tampered = json.dumps(event).encode()
    r = await client.post(
        "/v1/stripe/webhook",
        content=tampered.replace(b"evt_bad1", b"evt_bad2"),
        headers={"Stripe-Signature": sign(tampered, secret)},
    )
    assert r.status_code == 400
    assert await StripeEvent.count() == 0


async def test_duplicate_delivery_is_stored_and_processed_once(
    client: httpx.AsyncClient,
    services: Any,
    seeded: list[str],
    run_worker: Callable[[], Awaitable[int]],
) -> None:
    _, price = await _stripe_customer(seeded)
    now = int(time.time())
    event = _event(
        "customer.subscription.created",
        _subscription("cus_fixture", price, "active", (now, now + 30 * 86400)),
        now,
        "evt_dup1",
    )
    first = await _post(client, event, services.emulator.webhook_secret)
    second = await _post(client, event, services.emulator.webhook_secret)
    assert first.json() == {"received": True, "duplicate": False, "id": "evt_dup1", "dead": False}
    assert second.json() == {"received": True, "duplicate": True, "id": "evt_dup1", "dead": False}
    assert await run_worker() == 1
    assert await StripeEvent.count() == 1
    assert await Subscription.count() == 1
    assert await SubscriptionHistory.count() == 1
    # Processing it again (a redelivered job) changes nothing.
    assert await inbox.process("evt_dup1") == "already-processed"
    assert await SubscriptionHistory.count() == 1


_LIFECYCLE = [
    # (type, status, cancel_at_period_end, created offset)
    ("customer.subscription.created", "incomplete", False, 0),
    ("customer.subscription.updated", "active", False, 0),
    ("customer.subscription.updated", "past_due", False, 40),
    ("customer.subscription.updated", "active", False, 80),
    ("customer.subscription.updated", "active", True, 120),
    ("customer.subscription.deleted", "canceled", True, 160),
]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(len(_LIFECYCLE))),
    dupes=st.lists(st.integers(0, len(_LIFECYCLE) - 1), max_size=3),
)
async def test_any_order_of_a_subscriptions_events_converges(
    order: list[int], dupes: list[int], seeded: list[str]
) -> None:
    await Subscription.delete(force=True)
    await SubscriptionHistory.delete(force=True)
    await StripeEvent.delete(force=True)
    if not await Customer.exists().where(Customer.id == "cust_fixture"):
        await _stripe_customer(seeded)
    price = (await catalog.get_plan("business")).stripe_price_ids["month"]
    base = 1_790_000_000
    built = [
        _event(
            kind,
            _subscription("cus_fixture", price, status, (base, base + 2_592_000), cape),
            base + offset,
            f"evt_perm{i}",
        )
        for i, (kind, status, cape, offset) in enumerate(_LIFECYCLE)
    ]
    for i in [*order, *dupes]:
        if await inbox.store(built[i]):
            pass
        await inbox.process(built[i]["id"])
    row = await Subscription.objects().first()
    assert row is not None
    assert (row.status, row.cancel_at_period_end) == ("canceled", True)
    assert row.stripe_event_key.endswith("evt_perm5")


async def test_replay_reapplies_failed_events(
    services: Any, seeded: list[str], clean_db: None
) -> None:
    # An event for a customer we do not know yet fails... no: unknown customers are skipped.
    # A malformed payload is dead at once (no retry can help), and is replayed once fixed.
    now = int(time.time())
    broken = _event(
        "customer.subscription.updated", {"id": "sub_x", "status": "active"}, now, "evt_broken"
    )
    broken["data"]["object"]["items"] = "not-a-list"
    assert await inbox.store(broken)
    assert await inbox.process("evt_broken") == "dead"
    row = await StripeEvent.objects().where(StripeEvent.id == "evt_broken").first()
    assert row is not None and row.processed_at is None and row.last_error
    assert row.attempts == 1 and row.dead_at is not None
    assert await inbox.process("evt_broken") == "dead"  # a second job changes nothing
    assert await inbox.pending(min_age_seconds=0) == []  # and the sweep leaves it alone
    await StripeEvent.update(
        {
            StripeEvent.payload: json.dumps(
                _event(
                    "invoice.created",
                    {**copy.deepcopy(FIXTURES["invoice"]), "customer": None},
                    now,
                    "evt_broken",
                )
            )
        }
    ).where(StripeEvent.id == "evt_broken")
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "stripe", "replay", "--failed"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "evt_broken: invoice" in done.stdout
    row = await StripeEvent.objects().where(StripeEvent.id == "evt_broken").first()
    assert row is not None and row.processed_at is not None and row.last_error is None
    assert row.dead_at is None


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
async def test_invoice_events_of_one_second_converge_in_any_order(
    order: tuple[int, int, int], seeded: list[str]
) -> None:
    await _stripe_customer(seeded)
    stages = [("invoice.created", "draft"), ("invoice.finalized", "open"), ("invoice.paid", "paid")]
    built = []
    for i, (kind, status) in enumerate(stages):
        inv = copy.deepcopy(FIXTURES["invoice"])
        inv.update(id="in_same_second", customer="cus_fixture", status=status, subscription=None)
        built.append(_event(kind, inv, 1_790_000_000, f"evt_inv{i}"))
    for i in order:
        await inbox.store(built[i])
        await inbox.process(built[i]["id"])
    row = await Invoice.objects().where(Invoice.stripe_invoice_id == "in_same_second").first()
    assert row is not None
    assert row.status == "paid"
    assert row.customer_id == "cust_fixture"


async def test_concurrent_events_about_one_invoice_of_an_unknown_customer_mirror_it_once(
    clean_db: None,
) -> None:
    """No customer row to lock: the object's own lock keeps the two jobs from racing."""
    import asyncio

    from billing.tables import Invoice

    invoice = {**copy.deepcopy(FIXTURES["invoice"]), "id": "in_race1", "customer": "cus_nobody"}
    now = int(time.time())
    events = [
        _event("invoice.finalized", {**invoice, "status": "open"}, now, "evt_race_open"),
        _event("invoice.paid", {**invoice, "status": "paid"}, now, "evt_race_paid"),
    ]
    for event in events:
        assert await inbox.store(event)
    outcomes = await asyncio.gather(*(inbox.process(e["id"]) for e in events))
    assert outcomes == ["invoice", "invoice"]
    rows = await Invoice.select(Invoice.status).where(Invoice.stripe_invoice_id == "in_race1")
    assert [r["status"] for r in rows] == ["paid"]
