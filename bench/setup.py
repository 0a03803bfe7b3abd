"""Shared benchmark set-up: services, a fresh schema, an API key, a server process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import apikeys, db
from common.config import PROJECT_ROOT
from common.embedded import Services, ensure_services, free_port, wait_for_port

# The benchmark's own database on the configured server (reset by every run).
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "support_billing_bench")


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


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    out = [pid]
    for p in out:
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out.extend(int(c) for c in children)
    return out


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of ``pid`` and its descendants, summed, in MiB."""
    total_kb = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


API_LOG = PROJECT_ROOT / ".data" / "bench_api.log"


class Api:
    """A running API server: its port and its processes' peak memory so far."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.proc = proc

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.proc.pid)


@contextlib.contextmanager
def api(processes: int = 1, env: dict[str, str] | None = None) -> Iterator[Api]:
    """``bench.server`` (the API plus the baseline routes) with ``processes`` uvicorn workers."""
    port = free_port()
    API_LOG.parent.mkdir(parents=True, exist_ok=True)
    # The server's own log goes to a file: wrk hangs up mid-request when its time is up,
    # which the API logs as "client disconnected prematurely", not worth a screenful.
    with API_LOG.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "bench.server",
                "--port",
                str(port),
                "--processes",
                str(processes),
            ],
            env={
                **os.environ,
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_PER_MINUTE": "0",
                # N processes share one budget of connections, as an operator would size them
                **({"DATABASE_POOL_SIZE": str(max(5, 40 // processes))} if processes > 1 else {}),
                **(env or {}),
            },
            stdout=log,
            stderr=log,
        )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        if processes > 1:  # every worker process up (each binds the shared socket)
            deadline = time.monotonic() + 60
            while len(process_tree(proc.pid)) < processes + 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
        yield Api(port, proc)
    finally:
        proc.terminate()
        proc.wait(20)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
