"""Database lifecycle: the Piccolo engine, its pool, readiness and transactions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator, Generator
from typing import Any, cast

import asyncpg
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction

from common.errors import UpstreamUnavailable

log = logging.getLogger("common.db")

# How long a caller waits for a pooled connection before the database counts as unavailable.
DEFAULT_ACQUIRE_TIMEOUT = 5.0


class DatabaseUnavailable(UpstreamUnavailable):
    """PostgreSQL did not answer: down, restarting, refusing, or every connection busy."""

    title = "Database unavailable"


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    DatabaseUnavailable,
    asyncpg.PostgresConnectionError,  # the connection does not exist, failed, was rejected
    asyncpg.InterfaceError,  # "connection is closed": dropped while in use
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,  # pg_terminate_backend, a fast shutdown, a restart
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,  # refused or reset by the operating system
    socket.gaierror,  # the host name does not resolve
)


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says PostgreSQL could not be reached or dropped the connection.

    Such a failure is an outage (answer 503, retry later), not a bug: a restart, a
    failover, ``pg_terminate_backend`` or a pool with no connection free in time.
    """
    return isinstance(exc, _UNAVAILABLE)


@functools.cache
def engine() -> PostgresEngine:
    """``piccolo_conf.DB``: found once (Piccolo's finder re-imports the conf module per call)."""
    found = engine_finder()
    if not isinstance(found, PostgresEngine):
        raise RuntimeError("piccolo_conf.DB must be a PostgresEngine")
    return found


class Transaction(PostgresTransaction):
    """Piccolo's transaction, giving its connection back to the pool whatever happens.

    Piccolo awaits ``ROLLBACK`` (or ``COMMIT``) and only then releases the connection.
    When PostgreSQL dropped the connection (a restart, ``pg_terminate_backend``) the
    rollback raises, the release never runs, and the pool slot is lost for good: once
    every slot had leaked, a worker waited on the pool forever while looking alive.
    Here the release sits in ``finally``; a failed rollback is logged (the server rolls
    back a transaction whose connection died) and the broken connection is discarded.
    A failed commit still raises: its caller must know the outcome is unknown.
    """

    async def __aenter__(self) -> PostgresTransaction:
        if self._parent is not None:
            return self._parent
        self.connection = await self.get_connection()  # type: ignore[no-untyped-call] # Piccolo's
        try:
            self.transaction = self.connection.transaction()
            await self.begin()  # type: ignore[no-untyped-call] # Piccolo's
        except BaseException:
            await self._discard()
            raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if self._parent:
            return exception is None
        try:
            if exception is not None:
                if not self._rolled_back:
                    try:
                        await self.rollback()  # type: ignore[no-untyped-call] # Piccolo's
                    except Exception as e:
                        log.warning("rollback failed; discarding the connection: %r", e)
                        self.connection.terminate()
            elif not self._committed and not self._rolled_back:
                await self.commit()  # type: ignore[no-untyped-call] # Piccolo's
        finally:
            self.engine.current_transaction.reset(self.context)
            await self._discard()
        return exception is None

    async def _discard(self) -> None:
        """Give the connection back (asyncpg terminates one that cannot be reset)."""
        try:
            if self.engine.pool:
                await self.engine.pool.release(self.connection)
            else:
                await self.connection.close()
        except Exception as e:
            log.warning("releasing a broken connection: %r", e)


class Engine(PostgresEngine):
    """``PostgresEngine`` whose transactions always return their connection."""

    def transaction(self, allow_nested: bool = True) -> PostgresTransaction:
        return Transaction(engine=self, allow_nested=allow_nested)


class _Acquire:
    """``pool.acquire()`` of :class:`FairPool`: awaitable and an async context manager."""

    __slots__ = ("_connection", "_pool", "_timeout")

    def __init__(self, pool: FairPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._connection: Any = None

    async def _acquire(self) -> Any:
        gate = self._pool.gate
        timeout = self._timeout
        try:
            async with asyncio.timeout(timeout):
                await gate.acquire()
        except TimeoutError:
            raise DatabaseUnavailable(
                f"no database connection became free within {timeout:g} s"
            ) from None
        try:
            # Never waits for another task: at most max_size tasks get past the gate.
            # It may connect, though, and a server that is down answers here.
            return await self._pool.pool.acquire(timeout=timeout)
        except BaseException as e:
            gate.release()
            if isinstance(e, TimeoutError):
                raise DatabaseUnavailable(
                    f"PostgreSQL did not accept a connection within {timeout:g} s"
                ) from e
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
    """asyncpg's pool behind a first-come, first-served gate, with a bounded wait.

    asyncpg keeps idle connections in an ``asyncio.Queue``, which lets a newly arriving
    task take a just-released connection ahead of a task that was already woken for
    it; the woken task then queues again at the back. Under contention (more requests
    in flight than connections) a few unlucky requests wait many turns: in the
    entitlement benchmark that was a p99 of 50-140 ms at a p50 of 9 ms. The gate (a
    fair semaphore sized to the pool) hands each released slot to the longest waiter,
    so the pool itself never has to queue anyone. A caller waits at most
    ``acquire_timeout`` seconds (Piccolo passes none), then gets
    :class:`DatabaseUnavailable`: an outage is reported, never waited out forever.
    """

    def __init__(
        self, pool: Any, size: int, acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT
    ) -> None:
        self.pool = pool
        self.size = size
        self.gate = asyncio.Semaphore(size)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, self.acquire_timeout if timeout is None else timeout)

    @property
    def free(self) -> int:
        """Slots nobody holds (a health figure: a leak shows as a number that stays low)."""
        return self.gate._value

    # asyncpg's signature, kept so that Piccolo and asyncpg callers need not know the gate.
    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        try:
            await self.pool.release(connection, timeout=timeout)
        except Exception as e:
            # asyncpg has terminated a connection it could not reset; the slot is free.
            log.warning("discarded a broken database connection: %r", e)
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


async def open_pool(
    max_size: int = 20,
    acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
    application_name: str = "support-billing",
) -> None:
    """Open the shared pool, or join it when this process already has one.

    The pool opens even while PostgreSQL is down (connections are made on demand), so a
    process started during an outage serves 503s and recovers by itself.
    """
    global _pool_users
    _pool_users += 1
    if _pool_users == 1:
        db = engine()
        await db.start_connection_pool(
            min_size=0,
            max_size=max_size,
            reset=_no_session_state,
            # Names the service's sessions in pg_stat_activity (operators, fault tests).
            server_settings={"application_name": application_name},
        )
        # Piccolo (queries and transactions) and our own hot reads all go through it.
        db.pool = cast(Any, FairPool(db.pool, max_size, acquire_timeout))


async def close_pool() -> None:
    global _pool_users
    _pool_users = max(0, _pool_users - 1)
    if _pool_users == 0:
        db = engine()
        pool = db.pool
        if pool is None:
            return
        try:
            # A connection stuck on a dead server would hold a graceful close forever.
            await asyncio.wait_for(pool.close(), timeout=5)
        except Exception as e:
            log.warning("closing the pool took too long or failed; terminating it: %r", e)
            pool.terminate()
        db.pool = None


async def ping() -> bool:
    """True when PostgreSQL answers a trivial query."""
    rows = cast(list[dict[str, Any]], await engine().run_ddl("SELECT 1 AS ok"))
    return bool(rows and rows[0]["ok"] == 1)


async def run_migrations() -> int:
    """Apply every app's pending migrations (the schema lives in migrations only).

    Piccolo prints a banner per app; it is kept for a failure's message and otherwise
    summed up in one log line. Returns how many migrations ran.
    """
    import contextlib
    import io

    from piccolo.apps.migrations.commands.forwards import run_forwards

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = await run_forwards(app_name="all", migration_id="all", fake=False)
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}\n{printed.getvalue()}")
    applied = printed.getvalue().count("[forwards]... ok")
    log.info("database schema is up to date", extra={"migrations_applied": applied})
    return applied


@contextlib.asynccontextmanager
async def connection() -> AsyncIterator[Any]:
    """An asyncpg connection of the shared pool (or one of its own outside a server): for
    reports that read with a server-side cursor or fetch many rows at once."""
    db = engine()
    if db.pool is not None:
        async with db.pool.acquire() as conn:
            yield conn
        return
    conn = await asyncpg.connect(db.config["dsn"])
    try:
        yield conn
    finally:
        await conn.close()
