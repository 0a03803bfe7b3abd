"""Hammering: two API processes and two workers under duplicates, races, kills and faults.

Every assertion counts both sides: our rows and the emulator's objects, exactly one of
each expected effect, nothing lost.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import Api, PgServer, Stack, eventually

pytestmark = pytest.mark.faults


def _session(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


# ---------------------------------------------------------------- duplicates and races


async def test_duplicate_stripe_deliveries_to_both_apis_apply_once(
    stack: Stack, report: Callable[..., None]
) -> None:
    emu = stack.emulator
    assert emu is not None
    api = stack.apis[0]
    seen = {e["id"] for e in await emu.all("/v1/events")}
    subscribers, buyers = [], []
    for _ in range(4):
        customer = await flows.create_customer(api)
        r = await api.http.post(
            f"/v1/customers/{customer['id']}/subscription",
            json={"plan": "business", "interval": "month", "mode": "checkout"},
        )
        assert r.status_code == 201, r.text
        await emu.post(
            f"/v1/test_helpers/checkout/sessions/{_session(r.json()['checkout_url'])}/complete",
            outcome="paid",
        )
        subscribers.append(customer)
        buyer = await flows.create_customer(api)
        r = await api.http.post(
            f"/v1/customers/{buyer['id']}/fast-track-purchases",
            json={"quantity": 2, "mode": "checkout"},
        )
        assert r.status_code == 201, r.text
        await emu.post(
            f"/v1/test_helpers/checkout/sessions/{_session(r.json()['checkout_url'])}/complete",
            outcome="paid",
        )
        buyers.append(buyer)
    events = [e for e in await emu.all("/v1/events") if e["id"] not in seen]
    # Stripe delivers each event once to API 0; here every event goes twice more to each API.
    copies = [(api, e) for e in events for api in stack.apis for _ in range(2)]
    random.Random(9).shuffle(copies)
    sem = asyncio.Semaphore(16)

    async def send(target: Api, event: dict[str, Any]) -> int:
        async with sem:
            return (await flows.deliver(target, event)).status_code

    statuses = await asyncio.gather(*(send(a, e) for a, e in copies))
    await flows.settle(stack)
    tally = books.Tally()
    for customer in subscribers:
        local = await books.local_side(stack, customer["id"])
        remote = await books.stripe_side(stack, customer["stripe_customer_id"])
        tally.expect("stripe.subscriptions_active", 1, remote["stripe.subscriptions_active"])
        tally.expect("db.subs_live", 1, local["db.subs_live"])
        tally.expect("stripe.invoices_paid", 1, remote["stripe.invoices_paid"])
        tally.expect("db.invoices_paid", 1, local["db.invoices_paid"])
    for customer in buyers:
        local = await books.local_side(stack, customer["id"])
        tally.expect("db.purchases_paid", 1, local["db.purchases_paid"])
        tally.expect("db.ledger_purchases", 1, local["db.ledger_purchases"])
        tally.expect("db.balance", 2, local["db.balance"])
        purchase = await stack.fetchval(
            "SELECT id FROM fast_track_purchase WHERE customer_id = $1", customer["id"]
        )
        tally.expect(
            "db.audit_fast_track_granted",
            1,
            await books.audit_count(stack, "fast_track.granted", purchase),
        )
        tally.expect(
            "db.outbound_fast_track_purchased",
            1,
            await stack.fetchval(
                "SELECT count(*) FROM outbound_event WHERE type = 'fast_track.purchased'"
                " AND customer_id = $1",
                customer["id"],
            ),
        )
    tally.expect(
        "db.inbox_rows",
        len(events),
        await stack.fetchval(
            "SELECT count(*) FROM stripe_event WHERE id = ANY($1)", [e["id"] for e in events]
        ),
    )
    report(
        "every Stripe event delivered 5x (1 + 2 per API), shuffled",
        f"{len(events)} events of 4 subscriptions + 4 purchases, 2 APIs, 2 workers",
        tally,
    )
    assert set(statuses) == {200}, sorted(set(statuses))
    tally.check()


async def test_the_same_external_ref_from_both_apis_opens_one_incident(
    stack: Stack, report: Callable[..., None]
) -> None:
    customer = await flows.create_customer(stack.apis[0])
    refs = [flows.unique("ZD") for _ in range(20)]
    bodies = {
        ref: flows.incident_body(customer["id"], ref, due_in=3600, target_minutes=flows.STANDARD_P1)
        for ref in refs
    }

    async def post(api: Api, ref: str) -> httpx.Response:
        return await api.http.post("/v1/incidents", json=bodies[ref])

    answers = await asyncio.gather(
        *(post(api, ref) for ref in refs for api in stack.apis for _ in range(2))
    )
    tally = books.Tally()
    bad = []
    for ref in refs:
        rows = await stack.fetch(
            "SELECT id FROM incident WHERE customer_id = $1 AND external_ref = $2",
            customer["id"],
            ref,
        )
        tally.expect("db.incidents", 1, len(rows))
        if rows:
            tally.expect(
                "db.opened_events",
                1,
                await stack.fetchval(
                    "SELECT count(*) FROM sla_event WHERE incident_id = $1 AND type = 'opened'",
                    rows[0]["id"],
                ),
            )
    by_ref: dict[str, list[httpx.Response]] = {}
    for r in answers:
        if r.status_code in (200, 201):
            by_ref.setdefault(r.json()["external_ref"], []).append(r)
    for ref in refs:
        got = by_ref.get(ref, [])
        codes = sorted(r.status_code for r in got)
        if codes != [200, 200, 200, 201] or len({r.json()["id"] for r in got}) != 1:
            bad.append((ref, codes))
    report("the same external_ref posted 4x at once", "20 refs x 2 APIs x 2", tally)
    tally.check()
    assert not bad, f"not one 201 and three 200 for the same incident: {bad}"


# ---------------------------------------------------------------- gateway faults, retried

FAULTS: dict[str, dict[str, Any]] = {
    "429-before": {"status": 429, "when": "before", "count": 2},
    "500-before": {"status": 500, "when": "before", "count": 2},
    "500-after": {"status": 500, "when": "after", "count": 2},
    "timeout-after": {"stall": 3.0, "when": "after", "count": 2},
}
CALLS = ("customer", "subscription", "fast_track")
CASES = [(c, f, True) for c in CALLS for f in FAULTS] + [
    (c, f, False) for c in CALLS for f in ("500-after", "timeout-after")
]


@pytest.fixture(scope="module")
async def gateway_stack(machine_pg: PgServer, faults_root: Path) -> AsyncIterator[Stack]:
    """Gateway timeout 2 s, one SDK retry: a fault with count 2 reaches the client."""
    env = {"STRIPE_TIMEOUT_SECONDS": "2", "STRIPE_MAX_RETRIES": "1"}
    async with running_stack("hammer-gw", machine_pg, faults_root / "gw", env=env) as (stack, _):
        yield stack


@pytest.mark.parametrize(
    ("call", "fault", "with_key"),
    CASES,
    ids=[f"{c}-{f}-{'key' if k else 'nokey'}" for c, f, k in CASES],
)
async def test_gateway_faults_with_the_client_retrying_converge_on_one_of_each(
    gateway_stack: Stack,
    report: Callable[..., None],
    call: str,
    fault: str,
    with_key: bool,
) -> None:
    stack = gateway_stack
    emu = stack.emulator
    assert emu is not None
    api = stack.apis[0]
    headers = {"Idempotency-Key": flows.unique("idem")} if with_key else {}
    external_id = flows.unique("org")
    customer: dict[str, Any] = {}
    if call != "customer":
        customer = await flows.customer_with_card(stack)
    path = {
        "customer": "/v1/customers",
        "subscription": "/v1/subscriptions",
        "fast_track": "/v1/payment_intents",
    }[call]
    spec = dict(FAULTS[fault])
    await emu.fault(path, method="POST", **spec)

    async def attempt() -> httpx.Response:
        if call == "customer":
            return await api.http.post(
                "/v1/customers", json=flows.customer_body(external_id), headers=headers
            )
        if call == "subscription":
            return await api.http.post(
                f"/v1/customers/{customer['id']}/subscription",
                json={"plan": "business", "interval": "month", "mode": "charge_saved_method"},
                headers=headers,
            )
        return await flows.buy_fast_track(api, customer["id"], 1, **headers)

    try:
        final, seen = await flows.retry_until_final(attempt, attempts=40)
    finally:
        await emu.clear_faults()
    await flows.settle(stack)
    tally = books.Tally()
    if call == "customer":
        remote = await books.stripe_customers(stack, external_id)
        local = await books.local_customers(stack, external_id)
        tally.expect("stripe.customers", 1, len(remote))
        tally.expect("db.customers", 1, len(local))
        ok = final.status_code in ((201,) if with_key else (201, 409))
    elif call == "subscription":
        remote_side = await books.stripe_side(stack, customer["stripe_customer_id"])
        local_side = await books.local_side(stack, customer["id"])
        tally.expect("stripe.subscriptions_active", 1, remote_side["stripe.subscriptions_active"])
        tally.expect("stripe.invoices_paid", 1, remote_side["stripe.invoices_paid"])
        tally.expect("db.subs_live", 1, local_side["db.subs_live"])
        ok = final.status_code in ((201,) if with_key else (201, 409))
    else:
        remote_side = await books.stripe_side(stack, customer["stripe_customer_id"])
        local_side = await books.local_side(stack, customer["id"])
        charges = remote_side["stripe.fast_track_charges"]
        if with_key:
            tally.expect("stripe.fast_track_charges", 1, charges)
            tally.expect("db.purchases_paid", 1, local_side["db.purchases_paid"])
            tally.expect("db.balance", 1, local_side["db.balance"])
        else:
            # Without a key each retry is a new purchase: the books must agree, charge for
            # charge (no money taken without a credit, no credit without money).
            tally.expect("db.purchases_paid", charges, local_side["db.purchases_paid"])
            tally.expect("db.balance", charges, local_side["db.balance"])
            tally.expect("stripe.fast_track_charges(at least one)", 1, min(charges, 1))
        ok = final.status_code == 201
    report(
        f"POST {path} {fault} x{spec['count']}",
        f"1 {call} create, client retries {'with' if with_key else 'without'} Idempotency-Key",
        tally,
    )
    tally.check()
    assert ok, f"answers: {seen}; last: {final.text}"


# ---------------------------------------------------------------- workers killed under load


@pytest.fixture(scope="module")
async def kill_stack(machine_pg: PgServer, faults_root: Path) -> AsyncIterator[Stack]:
    env = {"STRIPE_TIMEOUT_SECONDS": "20"}
    async with running_stack(
        "hammer-kill", machine_pg, faults_root / "kill", apis=2, workers=2, env=env
    ) as (stack, _):
        yield stack


async def test_300_breaches_with_two_workers_one_killed_mid_batch(
    kill_stack: Stack, report: Callable[..., None]
) -> None:
    stack = kill_stack
    customers = [str((await flows.create_customer(stack.apis[0]))["id"]) for _ in range(10)]
    incidents = await flows.open_many(stack.apis, customers, 300, due_in=12, spread=10)
    await eventually(
        lambda: books.breached_count(stack, incidents),
        lambda n: n >= 60,
        within=90,
        what="the first breaches",
    )
    stack.workers[0].kill()
    await asyncio.sleep(2)
    stack.workers[0].start()
    await eventually(
        lambda: books.breached_count(stack, incidents),
        lambda n: n == len(incidents),
        within=90,
        what="all 300 incidents breached",
    )
    late = await books.lateness(stack, incidents)
    announced = await stack.fetchval(
        "SELECT count(*) FROM outbound_event WHERE type = 'sla.breached'"
        " AND data->>'incident_id' = ANY($1)",
        incidents,
    )
    report(
        "worker SIGKILLed after 60 breaches, back 2 s later", "300 incidents, 2 workers", late=late
    )
    assert not late.not_breached and not late.doubled, late.line()
    assert announced == len(incidents), f"{announced} sla.breached events for {len(incidents)}"


async def test_breach_credits_with_a_worker_killed_mid_credit_are_paid_once(
    kill_stack: Stack, report: Callable[..., None]
) -> None:
    stack = kill_stack
    emu = stack.emulator
    assert emu is not None
    api = stack.apis[0]
    for worker in stack.workers:
        if not worker.alive:
            worker.start()
            await worker.wait_for_log("worker started")
    await flows.ensure_minute_plan(api)
    planned = [await flows.subscribed_customer(stack, flows.MINUTE_PLAN) for _ in range(6)]
    # Plan incidents: the one-minute target counts from now (the plan starts now).
    plan_incidents = [
        str((await flows.open_incident(api, c["id"], due_in=60, target_minutes=1))["id"])
        for c in planned
    ]
    fast = [await flows.fast_tracked_incident(stack, due_in=55) for _ in range(6)]
    # Stripe is slow on every credit: each credit job is mid-call for 3 s.
    await emu.fault("/v1/credit_notes", stall=3, when="after", count=6)
    await emu.fault("/v1/refunds", stall=3, when="after", count=6)
    await eventually(
        lambda: emu.requests(method="POST"),
        lambda found: (
            sum(1 for r in found if r["path"] in ("/v1/credit_notes", "/v1/refunds")) >= 3
        ),
        within=150,
        what="credits reached Stripe",
    )
    stack.workers[0].kill()
    stack.workers[0].start()
    incidents = plan_incidents + [str(i["id"]) for _, i in fast]
    await eventually(
        lambda: stack.fetchval(
            "SELECT count(*) FROM incident WHERE id = ANY($1) AND credit_status = 'issued'",
            incidents,
        ),
        lambda n: n == len(incidents),
        within=60,
        what="every breach credit is paid within a minute of the kill",
    )
    await flows.settle(stack)
    tally = books.Tally()
    for customer in planned:
        remote = await books.stripe_side(stack, customer["stripe_customer_id"])
        local = await books.local_side(stack, customer["id"])
        tally.expect("stripe.credit_notes", 1, remote["stripe.credit_notes"])
        tally.expect("db.credit_notes", 1, local["db.credit_notes"])
        tally.expect("db.credits_issued", 1, local["db.credits_issued"])
    for customer, _ in fast:
        remote = await books.stripe_side(stack, customer["stripe_customer_id"])
        local = await books.local_side(stack, customer["id"])
        tally.expect("stripe.refunds", 1, remote["stripe.refunds"])
        tally.expect("db.refunds", 1, local["db.refunds"])
        tally.expect("db.credits_issued", 1, local["db.credits_issued"])
    late = await books.lateness(stack, incidents)
    report(
        "slow Stripe (3 s) on every credit, a worker SIGKILLed mid-credit",
        "6 credit notes + 6 refunds, 2 workers",
        tally,
        late,
    )
    tally.check()
