"""The connection pool serves waiting tasks first come, first served, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from common.db import FairPool, _no_session_state, engine
from common.embedded import Services


@pytest.fixture
async def pool(services: Services) -> AsyncIterator[FairPool]:
    raw = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=1, max_size=1, reset=_no_session_state
    )
    try:
        yield FairPool(raw, 1)
    finally:
        await raw.close()


async def test_waiters_get_the_connection_in_arrival_order(pool: FairPool) -> None:
    order: list[str] = []

    async def use(name: str) -> None:
        async with pool.acquire() as conn:
            order.append(name)
            assert await conn.fetchval("SELECT 1") == 1

    holder = await pool.acquire()
    waiters = []
    for name in ("w1", "w2", "w3"):
        waiters.append(asyncio.create_task(use(name)))
        await asyncio.sleep(0.01)  # each is queued before the next arrives
    # A request that arrives while the connection is being put back runs before the woken
    # first waiter; it must not take the connection (asyncpg's own queue lets it, and the
    # woken waiter then queues again at the back).
    releasing = asyncio.create_task(pool.release(holder))
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(use("newcomer")))
    await releasing
    await asyncio.gather(*waiters)
    assert order == ["w1", "w2", "w3", "newcomer"]


async def test_a_timed_out_waiter_leaves_no_slot_behind(pool: FairPool) -> None:
    holder = await pool.acquire()
    with pytest.raises(TimeoutError):
        await pool.acquire(timeout=0.05)
    await pool.release(holder)
    async with pool.acquire(timeout=1) as conn:
        assert await conn.fetchval("SELECT 2") == 2
    assert not pool.gate.locked()


async def test_a_cancelled_waiter_does_not_take_a_slot(pool: FairPool) -> None:
    holder = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire()._acquire())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await pool.release(holder)
    async with pool.acquire(timeout=1) as conn:
        assert await conn.fetchval("SELECT 3") == 3
    assert not pool.gate.locked()


async def test_piccolo_queries_and_transactions_run_through_the_gate(database: None) -> None:
    db = engine()
    assert isinstance(db.pool, FairPool)
    async with db.transaction():
        rows = await db.run_ddl("SELECT 41 + 1 AS answer")
    assert rows[0]["answer"] == 42
    assert db.pool.gate._value == 20  # every slot is back
