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
    from common.db import DatabaseUnavailable

    holder = await pool.acquire()
    with pytest.raises(DatabaseUnavailable):
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


async def _terminate_our_backends(application_name: str) -> int:
    """``pg_terminate_backend`` on every session of this database named ``application_name``."""
    killer = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        return int(
            await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = $1"
                " AND pid <> pg_backend_pid()",
                application_name,
            )
        )
    finally:
        await killer.close()


async def test_transactions_on_killed_connections_give_every_slot_back(
    services: Services,
) -> None:
    """A pool of 6 with 6 transactions open when PostgreSQL drops every connection.

    Piccolo's own transaction awaited the failing ROLLBACK before releasing: the six
    slots leaked and the next query waited forever. Each must come back, and the pool
    must serve again at once on fresh connections.
    """
    from common.db import Engine

    name = "sb-test-kill"
    db = Engine(config={"dsn": os.environ["DATABASE_URL"]}, extensions=())
    await db.start_connection_pool(
        min_size=0, max_size=6, reset=_no_session_state, server_settings={"application_name": name}
    )
    db.pool = FairPool(db.pool, 6, acquire_timeout=2)  # type: ignore[assignment]
    inside = asyncio.Event()
    entered = 0
    outcomes: list[str] = []

    async def hold() -> None:
        nonlocal entered
        try:
            async with db.transaction():
                await db.run_ddl("SELECT 1")
                entered += 1
                if entered == 6:
                    inside.set()
                await db.run_ddl("SELECT pg_sleep(30)")
            outcomes.append("committed")
        except Exception as e:
            outcomes.append(type(e).__name__)

    try:
        tasks = [asyncio.create_task(hold()) for _ in range(6)]
        await asyncio.wait_for(inside.wait(), 10)
        assert db.pool.free == 0  # type: ignore[union-attr]
        assert await _terminate_our_backends(name) == 6
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert len(outcomes) == 6 and "committed" not in outcomes
        assert db.pool.free == 6  # type: ignore[union-attr]
        async with db.transaction():
            rows = await db.run_ddl("SELECT 7 AS n")
        assert rows[0]["n"] == 7
        assert db.current_transaction.get() is None
    finally:
        await db.close_connection_pool()


async def test_a_wait_for_a_connection_is_bounded_and_reports_an_outage(pool: FairPool) -> None:
    from common.db import DatabaseUnavailable, unavailable

    holder = await pool.acquire()
    with pytest.raises(DatabaseUnavailable) as caught:
        await pool.acquire(timeout=0.05)
    assert unavailable(caught.value)
    await pool.release(holder)
    assert pool.free == 1


async def test_an_unreachable_server_is_an_outage_not_a_hang(services: Services) -> None:
    from common.db import unavailable
    from common.embedded import free_port

    raw = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/none", min_size=0, max_size=2
    )
    fair = FairPool(raw, 2, acquire_timeout=2)
    try:
        with pytest.raises((OSError, asyncpg.PostgresConnectionError)) as caught:
            await fair.acquire()
        assert unavailable(caught.value), repr(caught.value)
        assert fair.free == 2
    finally:
        await raw.close()
