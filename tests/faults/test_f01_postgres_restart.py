"""Finding 1: a PostgreSQL restart must not wedge the pool, the worker or its health check.

When a restart (or ``pg_terminate_backend``) kills a connection inside a transaction,
Piccolo's transaction exit awaits ``rollback()`` before releasing the connection; the
rollback raises and the fair pool's gate slot is never returned. Once every slot has
leaked, every query waits forever.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import OwnPostgres, PgServer, Proc, Stack, eventually, service_env

pytestmark = pytest.mark.faults

POOL = 6


async def _probe_count(proc: Proc) -> int:
    found = re.findall(r"^ok (\d+)$", proc.text(), flags=re.MULTILINE)
    return int(found[-1]) if found else 0


async def test_the_pool_comes_back_after_a_restart_killed_every_transaction(
    own_pg: OwnPostgres, faults_root: Path, report: Callable[..., None]
) -> None:
    """A pool of 6, 6 looping transactions, one restart: the loops go on afterwards."""
    database = await own_pg.new_database()
    probe = Proc(
        "pool-probe",
        [sys.executable, "-m", "tests.faults.probes.pool_probe", str(POOL)],
        service_env({"DATABASE_URL": own_pg.url(database)}),
        faults_root / "pool_probe.log",
    ).start()
    try:
        await probe.wait_for_log("ready")
        await eventually(
            lambda: _probe_count(probe),
            lambda n: n >= 2 * POOL,
            within=30,
            what="the probe's transactions commit",
        )
        await asyncio.to_thread(own_pg.restart, "fast")
        before = await _probe_count(probe)
        after = await eventually(
            lambda: _probe_count(probe),
            lambda n: n >= before + 4 * POOL,
            within=45,
            what=(
                f"transactions commit again after the restart (pool of {POOL}; "
                "a leaked gate slot per killed transaction wedges it)"
            ),
            context=lambda: probe.tail(15),
        )
        assert probe.alive, probe.tail()
        report("postgres restart (fast) under 6 open transactions", "pool of 6", lost=0)
        assert after > before
    finally:
        await probe.stop()
        await own_pg.drop_database(database)


async def _hold_worker_transactions(stack: Stack, customers: int) -> None:
    """Keep the worker's connections inside transactions: each checkout completion it applies
    asks Stripe for the subscription inside its transaction, and Stripe is slow to answer."""
    emu = stack.emulator
    assert emu is not None
    await emu.fault("/v1/subscriptions/", method="GET", stall=12, when="after", count=100)
    api = stack.apis[0]
    sessions = []
    for _ in range(customers):
        customer = await flows.create_customer(api)
        r = await api.http.post(
            f"/v1/customers/{customer['id']}/subscription",
            json={"plan": "business", "interval": "month", "mode": "checkout"},
        )
        assert r.status_code == 201, r.text
        sessions.append(r.json()["checkout_url"].rstrip("/").rsplit("/", 1)[-1])
    for session in sessions:
        await emu.post(f"/v1/test_helpers/checkout/sessions/{session}/complete", outcome="paid")


async def _worker_survives(
    stack: Stack,
    inject: Callable[[], Awaitable[object]],
    fault: str,
    report: Callable[..., None],
) -> None:
    assert stack.emulator is not None
    await _hold_worker_transactions(stack, customers=12)
    # WORKER_DATABASE_POOL_SIZE=8: wait until Stripe-event jobs hold 4 of them (bulk work
    # may hold half the pool) inside transactions, where a restart kills them.
    await eventually(
        lambda: stack.pg.open_transactions(stack.database),
        lambda n: n >= 4,
        within=60,
        what="4 worker connections inside transactions",
        context=lambda: stack.logs(20),
    )
    await inject()
    await stack.emulator.clear_faults()
    api = stack.apis[0]

    # The API's idle connections died too: its first queries may fail, then it answers.
    answer, seen = await flows.retry_until_final(lambda: api.http.get("/v1/plans"), attempts=60)
    assert answer.status_code == 200, f"the API did not recover: {seen}"
    standard = await flows.create_customer(api)
    incidents = [
        str((await flows.open_incident(api, standard["id"], due_in=2))["id"]) for _ in range(5)
    ]
    await eventually(
        lambda: books.breached_count(stack, incidents),
        lambda n: n == len(incidents),
        within=60,
        what="the worker breaches incidents that fell due after the fault",
    )
    late = await books.lateness(stack, incidents)
    report(fault, "12 checkout events in flight, 4+ open transactions", late=late)
    worker = stack.workers[0]
    assert worker.alive, worker.tail()
    check = await stack.worker_check(worker)
    assert check.returncode == 0, f"worker --check {check.returncode}: {check.stdout}{check.stderr}"
    exited = await worker.terminate(20)
    assert exited is not None, f"the worker did not exit within 20 s of SIGTERM:\n{worker.tail()}"
    assert not late.not_breached and not late.doubled, late.line()


async def test_the_worker_keeps_breaching_after_postgres_restarts_under_its_transactions(
    own_pg: OwnPostgres, faults_root: Path, report: Callable[..., None]
) -> None:
    env = {"STRIPE_TIMEOUT_SECONDS": "30"}
    async with running_stack("f01-restart", own_pg, faults_root / "f01a", env=env) as (stack, _):

        async def restart() -> None:
            await asyncio.to_thread(own_pg.restart, "fast")

        await _worker_survives(stack, restart, "postgres restart (fast)", report)


async def test_the_worker_keeps_breaching_after_its_backends_are_terminated(
    machine_pg: PgServer, faults_root: Path, report: Callable[..., None]
) -> None:
    env = {"STRIPE_TIMEOUT_SECONDS": "30"}
    async with running_stack("f01-kill", machine_pg, faults_root / "f01b", env=env) as (stack, _):

        async def terminate() -> None:
            killed = await stack.pg.terminate_backends(stack.database, in_transaction_only=True)
            assert killed >= 4

        await _worker_survives(stack, terminate, "pg_terminate_backend mid-transaction", report)
