"""Finding 4: the worker must survive a Redis restart, and losing Redis must lose nothing.

The worker exited when Redis restarted and nothing brought it back: incidents went
11-92 s past due with no breach until a manual restart. The Redis here is the stack's
own (nothing persisted), so a restart is also a flush: every queued job is gone, and
no deadline may go with it (the workers' deadline clocks read them from PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import OwnRedis, PgServer, Stack, eventually

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
async def stack_and_redis(
    machine_pg: PgServer, faults_root: Path
) -> AsyncIterator[tuple[Stack, OwnRedis]]:
    async with running_stack("f04", machine_pg, faults_root / "f04", workers=2) as pair:
        yield pair


async def _open(stack: Stack, customer_id: str, due_in: float) -> str:
    """Open an incident, retrying while the API itself recovers from the outage."""
    api = stack.apis[0]
    body = flows.incident_body(
        customer_id, flows.unique("ZD"), due_in=due_in, target_minutes=flows.STANDARD_P1
    )
    final, seen = await flows.retry_until_final(lambda: api.http.post("/v1/incidents", json=body))
    assert final.status_code in (200, 201), f"{seen}: {final.text}"
    return str(final.json()["id"])


async def test_workers_survive_a_redis_restart_and_keep_breaching(
    stack_and_redis: tuple[Stack, OwnRedis], report: Callable[..., None]
) -> None:
    stack, redis = stack_and_redis
    customer = await flows.create_customer(stack.apis[0])
    # Due after the restart: their deferred checks are lost with Redis.
    before = [await _open(stack, customer["id"], due_in=6 + n * 0.2) for n in range(10)]
    redis.stop()
    await asyncio.sleep(2)
    redis.start()
    after = [await _open(stack, customer["id"], due_in=3 + n * 0.2) for n in range(10)]
    incidents = before + after
    await eventually(
        lambda: books.breached_count(stack, incidents),
        lambda n: n == len(incidents),
        within=60,
        what="every incident is breached after the Redis restart (no human action)",
        context=lambda: "\n".join(
            f"{w.name} alive={w.alive} rc={w.returncode}" for w in stack.workers
        ),
    )
    late = await books.lateness(stack, incidents)
    report("redis restart (2 s down, data lost)", "20 incidents, 2 workers", late=late)
    dead = [f"{w.name} exited {w.returncode}" for w in stack.workers if not w.alive]
    assert not dead, f"workers exited on a Redis restart: {dead}"
    check = await stack.worker_check()
    assert check.returncode == 0, f"worker --check {check.returncode}: {check.stdout}{check.stderr}"
    assert not late.not_breached and not late.doubled, late.line()


async def test_a_redis_flush_loses_no_deadline(
    stack_and_redis: tuple[Stack, OwnRedis], report: Callable[..., None]
) -> None:
    stack, redis = stack_and_redis
    for worker in stack.workers:
        if not worker.alive:  # the previous test's finding; this one is about the flush
            worker.start()
            await worker.wait_for_log("worker started")
    customer = await flows.create_customer(stack.apis[0])
    incidents = [await _open(stack, customer["id"], due_in=4 + n * 0.1) for n in range(20)]
    await redis.flushall()
    await eventually(
        lambda: books.breached_count(stack, incidents),
        lambda n: n == len(incidents),
        within=60,
        what="every incident is breached after the flush",
    )
    late = await books.lateness(stack, incidents)
    report("redis FLUSHALL (every queued job lost)", "20 incidents, 2 workers", late=late)
    assert all(w.alive for w in stack.workers), [w.tail(20) for w in stack.workers]
    assert not late.not_breached and not late.doubled, late.line()
