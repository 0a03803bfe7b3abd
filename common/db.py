"""Database lifecycle: the Piccolo engine, its pool, readiness and transactions."""

from __future__ import annotations

from typing import Any, cast

from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine


def engine() -> PostgresEngine:
    found = engine_finder()
    if not isinstance(found, PostgresEngine):
        raise RuntimeError("piccolo_conf.DB must be a PostgresEngine")
    return found


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
        await engine().start_connection_pool(min_size=1, max_size=max_size, reset=_no_session_state)


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
