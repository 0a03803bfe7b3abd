"""Database lifecycle: the Piccolo engine, its pool, readiness and transactions."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Generator
from typing import Any, cast

from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine


@functools.cache
def engine() -> PostgresEngine:
    """``piccolo_conf.DB``: found once (Piccolo's finder re-imports the conf module per call)."""
    found = engine_finder()
    if not isinstance(found, PostgresEngine):
        raise RuntimeError("piccolo_conf.DB must be a PostgresEngine")
    return found


class _Acquire:
    """``pool.acquire()`` of :class:`FairPool`: awaitable and an async context manager."""

    __slots__ = ("_connection", "_pool", "_timeout")

    def __init__(self, pool: FairPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._connection: Any = None

    async def _acquire(self) -> Any:
        gate = self._pool.gate
        if self._timeout is None:
            await gate.acquire()
        else:
            async with asyncio.timeout(self._timeout):
                await gate.acquire()
        try:
            # Never waits: at most max_size tasks get past the gate.
            return await self._pool.pool.acquire(timeout=self._timeout)
        except BaseException:
            gate.release()
            raise

    def __await__(self) -> Generator[Any, None, Any]:
        return self._acquire().__await__()

    async def __aenter__(self) -> Any:
        self._connection = await self._acquire()
        return self._connection

    async def __aexit__(self, *exc: object) -> None:
        connection, self._connection = self._connection, None
        await self._pool.release(connection)


class FairPool:
    """asyncpg's pool behind a first-come, first-served gate.

    asyncpg keeps idle connections in an ``asyncio.Queue``, which lets a newly arriving
    task take a just-released connection ahead of a task that was already woken for
    it; the woken task then queues again at the back. Under contention (more requests
    in flight than connections) a few unlucky requests wait many turns: in the
    entitlement benchmark that was a p99 of 50-140 ms at a p50 of 9 ms. The gate (a
    fair semaphore sized to the pool) hands each released slot to the longest waiter,
    so the pool itself never has to queue anyone. Everything else is asyncpg's.
    """

    def __init__(self, pool: Any, size: int) -> None:
        self.pool = pool
        self.gate = asyncio.Semaphore(size)

    def acquire(self, *, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, timeout)

    # asyncpg's signature, kept so that Piccolo and asyncpg callers need not know the gate.
    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        try:
            await self.pool.release(connection, timeout=timeout)
        finally:
            self.gate.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


_pool_users = 0


async def _no_session_state(connection: Any) -> None:
    """Pool release hook: nothing to reset.

    asyncpg's default sends ``RESET ALL; UNLISTEN *; …`` on every release, a round trip
    per request. The service never sets session state (no SET, LISTEN, advisory locks or
    cursors outside transactions), so a released connection is already clean.
    """


async def open_pool(max_size: int = 20) -> None:
    """Open the shared pool, or join it when this process already has one."""
    global _pool_users
    _pool_users += 1
    if _pool_users == 1:
        db = engine()
        await db.start_connection_pool(min_size=1, max_size=max_size, reset=_no_session_state)
        # Piccolo (queries and transactions) and our own hot reads all go through it.
        db.pool = cast(Any, FairPool(db.pool, max_size))


async def close_pool() -> None:
    global _pool_users
    _pool_users = max(0, _pool_users - 1)
    if _pool_users == 0:
        await engine().close_connection_pool()


async def ping() -> bool:
    """True when PostgreSQL answers a trivial query."""
    rows = cast(list[dict[str, Any]], await engine().run_ddl("SELECT 1 AS ok"))
    return bool(rows and rows[0]["ok"] == 1)


async def run_migrations() -> None:
    """Apply every app's pending migrations (the schema lives in migrations only)."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    result = await run_forwards(app_name="all", migration_id="all", fake=False)
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}")
