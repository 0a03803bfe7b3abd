"""Finding 10: Stripe events missed during an outage are fetched from ``/v1/events``.

The service relied on delivery alone. Here the emulator's webhook URL points nowhere,
so nothing is delivered: the worker must pull ``GET /v1/events`` on start and every
``STRIPE_CATCHUP_SECONDS`` into the same idempotent inbox, and a late delivery of the
same events must change nothing. The catch-up reads events once they are a minute old
(``billing.catchup.SETTLE``: Stripe lists an event a moment after its ``created``), so
these tests wait that minute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import Api, PgServer, Stack, eventually

pytestmark = pytest.mark.faults

# How old an event must be before the catch-up reads it (billing.catchup.SETTLE).
SETTLE = 60


@pytest.fixture(scope="module")
async def stack(machine_pg: PgServer, faults_root: Path) -> AsyncIterator[Stack]:
    env = {"STRIPE_CATCHUP_SECONDS": "5"}
    async with running_stack("f10", machine_pg, faults_root / "f10", env=env, webhooks=False) as (
        stack,
        _,
    ):
        yield stack


def _session(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


async def _checkout_subscription(stack: Stack, api: Api) -> dict[str, Any]:
    assert stack.emulator is not None
    customer = await flows.create_customer(api)
    r = await api.http.post(
        f"/v1/customers/{customer['id']}/subscription",
        json={"plan": "business", "interval": "month", "mode": "checkout"},
    )
    assert r.status_code == 201, r.text
    await stack.emulator.post(
        f"/v1/test_helpers/checkout/sessions/{_session(r.json()['checkout_url'])}/complete",
        outcome="paid",
    )
    return customer


async def _checkout_fast_track(stack: Stack, api: Api) -> dict[str, Any]:
    assert stack.emulator is not None
    customer = await flows.create_customer(api)
    r = await api.http.post(
        f"/v1/customers/{customer['id']}/fast-track-purchases",
        json={"quantity": 1, "mode": "checkout"},
    )
    assert r.status_code == 201, r.text
    await stack.emulator.post(
        f"/v1/test_helpers/checkout/sessions/{_session(r.json()['checkout_url'])}/complete",
        outcome="paid",
    )
    return customer


async def _applied(stack: Stack, subscriber: dict[str, Any], buyer: dict[str, Any]) -> books.Tally:
    tally = books.Tally()
    sub = await books.local_side(stack, subscriber["id"])
    ft = await books.local_side(stack, buyer["id"])
    tally.expect("db.subs_live", 1, sub["db.subs_live"])
    tally.expect("db.invoices_paid", 1, sub["db.invoices_paid"])
    tally.expect("db.purchases_paid", 1, ft["db.purchases_paid"])
    tally.expect("db.ledger_purchases", 1, ft["db.ledger_purchases"])
    tally.expect("db.balance", 1, ft["db.balance"])
    return tally


async def test_events_never_delivered_are_fetched_and_applied_once(
    stack: Stack,
    missed_while_down: tuple[Stack, dict[str, Any], float],
    report: Callable[..., None],
) -> None:
    assert stack.emulator is not None
    api = stack.apis[0]
    subscriber = await _checkout_subscription(stack, api)
    buyer = await _checkout_fast_track(stack, api)
    try:
        await eventually(
            lambda: _applied(stack, subscriber, buyer),
            lambda t: not t.mismatches(),
            within=SETTLE + 90,
            what="the worker fetched and applied the events Stripe never delivered",
        )
    finally:
        tally = await _applied(stack, subscriber, buyer)
        report(
            "webhooks never delivered (URL points nowhere)", "1 subscription + 1 purchase", tally
        )
    events = await stack.emulator.all("/v1/events")
    stored = await stack.fetchval(
        "SELECT count(*) FROM stripe_event WHERE id = ANY($1)", [e["id"] for e in events]
    )
    assert stored == len(events), f"{stored} of {len(events)} Stripe events are in the inbox"
    # The same events, delivered late (Stripe retries for days): nothing changes.
    answers = [await flows.deliver(api, event) for event in events]
    assert all(a.status_code == 200 and a.json()["duplicate"] for a in answers), [
        a.text for a in answers if a.status_code != 200 or not a.json()["duplicate"]
    ]
    await flows.settle(stack)
    late = await _applied(stack, subscriber, buyer)
    granted = await books.audit_count(
        stack,
        "fast_track.granted",
        await stack.fetchval(
            "SELECT id FROM fast_track_purchase WHERE customer_id = $1", buyer["id"]
        ),
    )
    late.expect("db.audit_fast_track_granted", 1, granted)
    late.check()


@pytest.fixture(scope="module")
async def missed_while_down(
    machine_pg: PgServer, faults_root: Path
) -> AsyncIterator[tuple[Stack, dict[str, Any], float]]:
    """A stack whose only worker is not running while a purchase is paid (webhooks lost):
    made first, so that the minute the catch-up waits passes during the other test."""
    async with running_stack(
        "f10-start", machine_pg, faults_root / "f10-start", workers=0, webhooks=False
    ) as (stack, _):
        buyer = await _checkout_fast_track(stack, stack.apis[0])
        yield stack, buyer, time.monotonic()


async def test_a_worker_catches_up_on_start(
    missed_while_down: tuple[Stack, dict[str, Any], float], report: Callable[..., None]
) -> None:
    stack, buyer, paid_at = missed_while_down
    # No worker ran for longer than the catch-up's settle time.
    await asyncio.sleep(max(0.0, SETTLE + 3 - (time.monotonic() - paid_at)))
    # Only the catch-up at start can find this purchase in time: the periodic one is an hour.
    await stack.start_worker(STRIPE_CATCHUP_SECONDS="3600")

    async def balance() -> int:
        return (await books.local_side(stack, buyer["id"]))["db.balance"]

    try:
        await eventually(
            balance,
            lambda n: n == 1,
            within=45,
            what="a starting worker applies the events it missed while stopped",
        )
    finally:
        tally = books.Tally()
        tally.expect("db.balance", 1, await balance())
        report("no worker while Stripe sent events; webhooks lost", "1 purchase", tally)
