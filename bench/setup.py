"""Shared benchmark set-up: services, a fresh schema, an API key, a server process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from common import apikeys, db
from common.config import PROJECT_ROOT
from common.embedded import Services, ensure_services, free_port, wait_for_port

BENCH_DATABASE = "support_billing_bench"


def _bench_database(url: str) -> str:
    """The same server as ``url``, but the benchmark's own database (created if missing)."""
    import asyncpg

    base, _, _ = url.rpartition("/")

    async def ensure() -> None:
        conn = await asyncpg.connect(url)
        try:
            if not await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DATABASE
            ):
                await conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
        finally:
            await conn.close()

    asyncio.run(ensure())
    return f"{base}/{BENCH_DATABASE}"


@contextlib.contextmanager
def services() -> Iterator[Services]:
    """Configured or embedded services; never the tests' database (the bench resets it)."""
    configured = os.environ.get("DATABASE_URL") or None
    running = ensure_services(
        _bench_database(configured) if configured else None,
        os.environ.get("REDIS_URL") or None,
        PROJECT_ROOT / ".data",
        database=BENCH_DATABASE,
    )
    running.export()
    try:
        yield running
    finally:
        running.stop()


async def fresh_schema() -> None:
    await db.engine().run_ddl("DROP SCHEMA IF EXISTS public CASCADE")
    await db.engine().run_ddl("CREATE SCHEMA public")
    await db.run_migrations()


async def helpdesk_key() -> str:
    _, secret = await apikeys.create_key("bench", "helpdesk")
    return secret


@contextlib.contextmanager
def server(env: dict[str, str] | None = None, processes: int = 1) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.server", "--port", str(port), "--processes", str(processes)],
        env={
            **os.environ,
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_MINUTE": "1000000000",
            **(env or {}),
        },
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
