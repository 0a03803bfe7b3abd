"""Finance exports and reports at scale: ``python -m bench.finance`` (not a test).

Loads (COPY, ``bench.data``) 10,000 customers, 100,000 incidents and 100,000 invoices
into a database of its own (``<DATABASE_URL's database>_finance_bench``, reset each run),
starts one API process, then measures:

- ``GET /v1/invoices/export.csv`` of every invoice: rows/s, and the API's RSS growth while
  it streams (VmRSS sampled every 10 ms, minus the RSS just before; goal < 50 MB);
- each report over the whole year: median and worst latency of 5 calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import data
from common import apikeys, db
from common.embedded import free_port, wait_for_port

CUSTOMERS, INCIDENTS, INVOICES = 10_000, 100_000, 100_000


def _database() -> str:
    url = os.environ["DATABASE_URL"]
    base, _, name = url.rpartition("/")
    target = f"{name}_finance_bench"

    async def ensure() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target):
                await conn.execute(f'CREATE DATABASE "{target}"')
        finally:
            await conn.close()

    asyncio.run(ensure())
    return f"{base}/{target}"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _finance_key() -> str:
    await db.open_pool()
    try:
        _, secret = await apikeys.create_key("bench-finance", "finance")
        return secret
    finally:
        await db.close_pool()


@contextlib.contextmanager
def finance_server() -> Iterator[tuple[int, subprocess.Popen[bytes], str]]:
    """The finance data loaded, a finance key, and an API process on it: (port, process, key)."""
    os.environ["DATABASE_URL"] = _database()
    started = time.monotonic()
    loaded = asyncio.run(data.load(CUSTOMERS, INCIDENTS, INVOICES))
    print(f"loaded {loaded.counts} in {time.monotonic() - started:.0f} s")
    key = asyncio.run(_finance_key())
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.server", "--port", str(port)],
        env={
            **os.environ,
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_MINUTE": "0",
            "STRIPE_API_KEY": "sk_test_bench",
            "STRIPE_API_BASE": "http://127.0.0.1:9",
        },
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield port, proc, key
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def main() -> int:
    with finance_server() as (port, proc, key):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=300) as c:
            c.get("/v1/invoices", params={"limit": 1}).raise_for_status()
            _export(c, proc.pid)
            _reports(c)
    return 0


def _sample(pid: int, peak: list[float], done: threading.Event) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], _rss_mb(pid))
        time.sleep(0.01)


def _export(c: httpx.Client, pid: int) -> None:
    for attempt in ("cold", "warm"):
        before = _rss_mb(pid)
        peak = [before]
        done = threading.Event()

        sampler = threading.Thread(target=_sample, args=(pid, peak, done), daemon=True)
        sampler.start()
        t0 = time.monotonic()
        size = 0
        body = io.StringIO()
        with c.stream("GET", "/v1/invoices/export.csv") as r:
            r.raise_for_status()
            for chunk in r.iter_text():
                size += len(chunk)
                body.write(chunk)
        elapsed = time.monotonic() - t0
        done.set()
        sampler.join()
        rows = list(csv.DictReader(io.StringIO(body.getvalue())))
        total = sum(int(x["total"]) for x in rows)
        print(
            f"export ({attempt}): {len(rows):,} rows, {size / 1e6:.1f} MB in {elapsed:.2f} s"
            f" = {len(rows) / elapsed:,.0f} rows/s; API RSS {before:.0f} MB before,"
            f" peak {peak[0]:.0f} MB: growth {peak[0] - before:.1f} MB; sum(total) {total:,}"
        )


REPORTS = (
    ("revenue by month", "/v1/reports/revenue", {"group_by": "month"}),
    ("revenue by plan", "/v1/reports/revenue", {"group_by": "plan"}),
    ("mrr with movement", "/v1/reports/mrr", {"window_as": "mrr"}),
    ("sla", "/v1/reports/sla", {}),
    ("worth-it", "/v1/reports/worth-it", {}),
    ("revenue CSV", "/v1/reports/revenue/export.csv", {"group_by": "month"}),
    ("sla CSV", "/v1/reports/sla/export.csv", {}),
)


def _reports(c: httpx.Client) -> None:
    now = time.time()
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 86400))
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 400 * 86400))
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30 * 86400))
    for name, path, extra in REPORTS:
        if extra.get("window_as") == "mrr":
            params = {"at": at, "from": since}
        else:
            params = {"from": start, "to": to, **extra}
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            r = c.get(path, params=params)
            times.append(time.monotonic() - t0)
            r.raise_for_status()
        print(
            f"{name:<18} median {statistics.median(times) * 1000:7.0f} ms,"
            f" worst {max(times) * 1000:7.0f} ms ({len(r.content):,} bytes)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
