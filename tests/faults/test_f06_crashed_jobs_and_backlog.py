"""Finding 6: a job that was running when its worker crashed resumes within seconds, and
deadline checks never queue behind bulk work.

arq keeps a running job locked for its in-progress timeout (the longest job timeout
+ 10 s = 310 s), and the sweep cannot replace it under the same job id: credits were
paid 5+ minutes after their breach. After downtime, thousands of queued Stripe events
ran before the deadline checks: breaches were 29 s late.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import PgServer, Stack, eventually

pytestmark = pytest.mark.faults

BACKLOG = 1_000


async def test_a_credit_running_when_its_worker_was_killed_is_paid_by_another_within_seconds(
    machine_pg: PgServer, faults_root: Path, report: Callable[..., None]
) -> None:
    env = {"STRIPE_TIMEOUT_SECONDS": "40"}
    async with running_stack("f06a", machine_pg, faults_root / "f06a", env=env) as (stack, _):
        emulator = stack.emulator
        assert emulator is not None
        # Stripe writes the refund, then is slow to answer: the credit job is mid-call.
        await emulator.fault("/v1/refunds", stall=20, when="after", count=1)
        customer, incident = await flows.fast_tracked_incident(stack, due_in=2)
        await eventually(
            lambda: emulator.requests(path="/v1/refunds", method="POST"),
            lambda found: bool(found),
            within=60,
            what="the breach credit (a refund) reached Stripe",
        )
        stack.workers[0].kill()
        killed_at = time.time()
        await stack.start_worker()

        async def issued_at() -> float | None:
            return await stack.fetchval(  # type: ignore[no-any-return]
                "SELECT extract(epoch FROM issued_at)::float8 FROM service_credit"
                " WHERE incident_id = $1 AND status = 'issued'",
                incident["id"],
            )

        issued = await eventually(
            issued_at,
            lambda at: at is not None,
            within=45,
            what="another worker pays the credit the killed worker was paying",
        )
        assert issued is not None
        await flows.settle(stack)
        tally = books.Tally()
        stripe = await books.stripe_side(stack, customer["stripe_customer_id"])
        local = await books.local_side(stack, customer["id"])
        tally.expect("stripe.refunds", 1, stripe["stripe.refunds"])
        tally.expect("db.credits_issued", 1, local["db.credits_issued"])
        tally.expect("db.refunds", 1, local["db.refunds"])
        report(
            f"worker SIGKILLed mid-refund; paid {issued - killed_at:.1f}s after the kill",
            "1 breach credit, a 2nd worker",
            tally,
        )
        tally.check()


@pytest.fixture
async def idle_stack(machine_pg: PgServer, faults_root: Path) -> AsyncIterator[Stack]:
    async with running_stack("f06b", machine_pg, faults_root / "f06b", workers=0) as (stack, _):
        yield stack


async def _queue_backlog(stack: Stack, count: int) -> list[str]:
    """``count`` Stripe events received while no worker ran, each with its queued job."""
    from workers import queue

    ids = [f"evt_backlog_{n:05d}_{time.time_ns()}" for n in range(count)]
    rows = [
        (
            event_id,
            "customer.updated",
            int(time.time()),
            json.dumps(
                {
                    "id": event_id,
                    "object": "event",
                    "type": "customer.updated",
                    "created": int(time.time()),
                    "data": {
                        "object": {
                            "id": f"cus_elsewhere_{n}",
                            "object": "customer",
                            "invoice_settings": {},
                        }
                    },
                }
            ),
        )
        for n, event_id in enumerate(ids)
    ]
    async with stack.db() as conn:
        await conn.executemany(
            "INSERT INTO stripe_event (id, type, created, payload, received_at, attempts)"
            " VALUES ($1, $2, $3, $4::jsonb, now(), 0)",
            rows,
        )
    redis = await queue.connect(stack.redis_url)
    try:
        for event_id in ids:
            await queue.enqueue_stripe_event(redis, event_id)
    finally:
        await redis.aclose()
    return ids


async def test_deadline_checks_do_not_wait_behind_a_backlog_of_stripe_events(
    idle_stack: Stack, report: Callable[..., None]
) -> None:
    stack = idle_stack
    customer = await flows.create_customer(stack.apis[0])
    backlog = await _queue_backlog(stack, BACKLOG)
    incidents = [
        str((await flows.open_incident(stack.apis[0], customer["id"], due_in=6))["id"])
        for _ in range(10)
    ]
    await stack.start_worker()
    await eventually(
        lambda: books.breached_count(stack, incidents),
        lambda n: n == len(incidents),
        within=180,
        what="every incident is breached",
    )
    await eventually(
        lambda: stack.fetchval(
            "SELECT count(*) FROM stripe_event WHERE processed_at IS NULL AND id = ANY($1)",
            backlog,
        ),
        lambda n: n == 0,
        within=240,
        what="the backlog drains",
    )
    late = await books.lateness(stack, incidents)
    row = (
        await stack.fetch(
            "SELECT max(e.processed_at) > (SELECT max(due_at) FROM incident"
            "   WHERE id = ANY($2)) + interval '2 seconds' AS outlasted,"
            " (SELECT min(c) FROM (SELECT count(*) FILTER (WHERE e2.processed_at > i.breached_at)"
            "   AS c FROM incident i CROSS JOIN stripe_event e2"
            "   WHERE i.id = ANY($2) AND e2.id = ANY($1) GROUP BY i.id) per) AS behind"
            " FROM stripe_event e WHERE e.id = ANY($1)",
            backlog,
            incidents,
        )
    )[0]
    report(
        "worker down, then 1,000 queued Stripe events", "10 deadlines due in the drain", late=late
    )
    assert row["outlasted"], "the backlog drained before the deadlines: it cannot delay them here"
    # Breached while at least a tenth of the backlog still waited: checks did not queue behind it.
    assert row["behind"] >= BACKLOG // 10, (
        f"a breach was recorded with only {row['behind']} of {BACKLOG} events still queued; "
        + late.line()
    )
