"""SLA engine figures: opening rate through the API, breach lateness under a burst, the sweep.

Goals (issue "The SLA engine"), on this 2-core machine:

* opening incidents through the API: >= 400/s;
* 10,000 incidents falling due within the same minute, one worker: lateness
  (breached_at - due_at) p99 <= 2 s; with two workers no incident breached or credited twice;
* after flushing Redis with 1,000 incidents pending: all breached within the sweep
  interval + 5 s of their deadline.

Run: ``uv run python -m bench.bench_sla [--burst 10000] [--flush 1000] [--open-seconds 10]``.
Uses its own database (``support_billing_bench_sla``) on the configured server and the
Redis database of ``REDIS_URL``, which it flushes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from bench import loadgen, setup
from billing import catalog
from billing.schemas import PlanCreate
from common import db
from common.config import PROJECT_ROOT, get_settings
from common.embedded import ensure_services, free_port, wait_for_port
from common.ids import new_id
from sla import service
from sla.schemas import IncidentCreate
from workers import queue

DATABASE = "support_billing_bench_sla"
TARGET_MINUTES = 120  # P1 around the clock: a realistic premium target
CUSTOMERS = 500
WORKER_LOG = PROJECT_ROOT / ".data" / "bench_sla_workers.log"


# ---------------------------------------------------------------- set-up


def _database(url: str) -> str:
    base, _, _ = url.rpartition("/")

    async def ensure() -> None:
        conn = await asyncpg.connect(url)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()

    asyncio.run(ensure())
    return f"{base}/{DATABASE}"


@contextlib.contextmanager
def services() -> Iterator[None]:
    configured = os.environ.get("DATABASE_URL") or None
    running = ensure_services(
        _database(configured) if configured else None,
        os.environ.get("REDIS_URL") or None,
        PROJECT_ROOT / ".data",
        database=DATABASE,
    )
    running.export()
    os.environ["SLA_SWEEP_SECONDS"] = os.environ.get("SLA_SWEEP_SECONDS", "5")
    get_settings.cache_clear()
    try:
        yield
    finally:
        running.stop()


async def prepare() -> tuple[list[str], str]:
    """A fresh schema, a 'standard' tier with 24x7 targets, customers and a helpdesk key."""
    await setup.fresh_schema()
    target = {"first_response_minutes": TARGET_MINUTES, "coverage": "24x7"}
    await catalog.create_plan(
        msgspec.convert(
            {
                "code": catalog.STANDARD,
                "name": "Bench standard",
                "monthly_price": 0,
                "annual_price": 0,
                "targets": {p: target for p in ("p1", "p2", "p3", "p4")},
            },
            PlanCreate,
        )
    )
    now = datetime.now(UTC)
    ids = [new_id("cust") for _ in range(CUSTOMERS)]
    pool = db.engine().pool
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO customer (id, external_id, name, email, timezone, country,"
            " created_at, updated_at) VALUES ($1, $2, $3, $4, 'UTC', NULL, $5, $5)",
            [
                (cid, f"org-{i}", f"Customer {i}", f"ops{i}@bench.test", now)
                for i, cid in enumerate(ids)
            ],
        )
    return ids, await setup.helpdesk_key()


async def reset_incidents() -> None:
    await db.engine().run_ddl(
        "TRUNCATE incident, sla_event, outbound_event, incident_usage, service_credit"
    )
    redis = await queue.connect(os.environ["REDIS_URL"])
    await redis.flushdb()
    await redis.aclose()


@contextlib.contextmanager
def workers(count: int) -> Iterator[None]:
    """``count`` real worker processes (``support-billing worker``: both queues, the sweep)."""
    # The production worker process: the deadline and bulk queues, leases, the sweep.
    code = "from api.cli import main; main(['worker'])"
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    WORKER_LOG.parent.mkdir(parents=True, exist_ok=True)
    with WORKER_LOG.open("ab") as log:
        procs = [
            subprocess.Popen(  # noqa: S603 - our own interpreter
                [sys.executable, "-c", code], env=env, stdout=log, stderr=log
            )
            for _ in range(count)
        ]
        try:
            time.sleep(2.0)  # start-up: imports, pools
            yield
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(15)


# ---------------------------------------------------------------- opening through the API


@contextlib.contextmanager
def api_server(processes: int) -> Iterator[int]:
    """The API (``bench.server``'s app) under uvicorn with ``processes`` worker processes."""
    if processes == 1:
        with setup.server() as port:
            yield port
        return
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.server:app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(processes),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, "LOG_LEVEL": "WARNING", "RATE_LIMIT_PER_MINUTE": "1000000000"},
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        time.sleep(1.0)  # every process up
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def bench_open(
    customers: Sequence[str],
    key: str,
    seconds: float,
    connections: int,
    processes: int,
    rounds: int = 3,
) -> None:
    counter = itertools.count()

    def body(_: str) -> bytes:
        return msgspec.json.encode(
            {
                "customer_id": random.choice(customers),
                "external_ref": f"T-{next(counter)}-{uuid.uuid4().hex[:8]}",
                "priority": random.choice(("p1", "p2", "p3", "p4")),
                "context": {"subject": "printer on fire", "channel": "email"},
            }
        )

    headers = {"Authorization": f"Bearer {key}"}
    path = ["/v1/incidents"]
    with api_server(processes) as port:
        # Warm-up (pools, caches), then rounds: other load on the machine moves single runs.
        loadgen.load("warm-up", "127.0.0.1", port, path, headers, 8, 2.0, "POST", None, body)
        results = [
            loadgen.load(
                f"POST /v1/incidents #{i + 1}",
                "127.0.0.1",
                port,
                path,
                headers,
                connections,
                seconds,
                "POST",
                None,
                body,
            )
            for i in range(rounds)
        ]
    print(loadgen.summary(results))
    rate = loadgen.median_rps(results)
    errors = sum(r.errors for r in results)
    verdict = "OK" if rate >= 400 and errors == 0 else "BELOW GOAL"
    print(
        f"  opening rate, median of {rounds}: {rate:.0f}/s (goal >= 400/s; {processes} uvicorn "
        f"process(es), {connections} connections, {errors} errors): {verdict}"
    )


# ---------------------------------------------------------------- deadlines


async def open_due_between(
    customers: Sequence[str], count: int, first_due: datetime, spread_s: float
) -> float:
    """Open ``count`` incidents whose deadlines fall in [first_due, first_due + spread)."""
    redis = await queue.connect(os.environ["REDIS_URL"])
    started = time.perf_counter()
    todo = iter(range(count))

    async def opener() -> None:
        for i in todo:
            due = first_due + timedelta(seconds=spread_s * i / count)
            opened = await service.open_incident(
                IncidentCreate(
                    customer_id=customers[i % len(customers)],
                    external_ref=f"B-{i}-{uuid.uuid4().hex[:6]}",
                    priority="p1",
                    opened_at=due - timedelta(minutes=TARGET_MINUTES),
                )
            )
            await queue.enqueue_sla_jobs(redis, opened.jobs)

    await asyncio.gather(*(opener() for _ in range(16)))
    await redis.aclose()
    return time.perf_counter() - started


async def wait_all_breached(count: int, within: float) -> float:
    started = time.perf_counter()
    pool = db.engine().pool
    assert pool is not None
    while time.perf_counter() - started < within:
        async with pool.acquire() as conn:
            done = await conn.fetchval(
                "SELECT count(*) FROM incident WHERE breached_at IS NOT NULL"
            )
        if done >= count:
            break
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def lateness() -> list[float]:
    pool = db.engine().pool
    assert pool is not None
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT EXTRACT(EPOCH FROM breached_at - due_at) AS s FROM incident"
            " WHERE breached_at IS NOT NULL ORDER BY 1"
        )
    return [float(r["s"]) for r in rows]


def pct(values: Sequence[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def duplicates() -> dict[str, int]:
    pool = db.engine().pool
    assert pool is not None
    async with pool.acquire() as conn:
        return {
            "incidents breached twice": await conn.fetchval(
                "SELECT count(*) FROM (SELECT incident_id FROM sla_event WHERE type = 'breached'"
                " GROUP BY 1 HAVING count(*) > 1) d"
            ),
            "credits decided twice": await conn.fetchval(
                "SELECT count(*) FROM (SELECT incident_id FROM service_credit"
                " GROUP BY 1 HAVING count(*) > 1) d"
            ),
            "credit events twice": await conn.fetchval(
                "SELECT count(*) FROM (SELECT incident_id FROM sla_event"
                " WHERE type = 'credit_issued' GROUP BY 1 HAVING count(*) > 1) d"
            ),
            "sla.breached events": await conn.fetchval(
                "SELECT count(*) FROM outbound_event WHERE type = 'sla.breached'"
            ),
            "credits settled": await conn.fetchval(
                "SELECT count(*) FROM incident WHERE credit_status IN ('none', 'issued')"
            ),
        }


async def bench_burst(customers: Sequence[str], count: int, worker_count: int, lead: float) -> None:
    await reset_incidents()
    with workers(worker_count):
        first_due = datetime.now(UTC) + timedelta(seconds=lead)
        took = await open_due_between(customers, count, first_due, 60.0)
        print(f"  opened {count} incidents in {took:.1f} s ({count / took:.0f}/s, in-process)")
        if datetime.now(UTC) > first_due:
            print("  WARNING: set-up overran the first deadline; raise --lead")
        wait = (first_due - datetime.now(UTC)).total_seconds() + 60 + 120
        await wait_all_breached(count, wait)
        await asyncio.sleep(3)  # let the credit jobs settle
    late = await lateness()
    dup = await duplicates()
    print(
        f"  {worker_count} worker(s): breached {len(late)}/{count}; lateness p50 "
        f"{pct(late, 0.5):.3f} s  p95 {pct(late, 0.95):.3f} s  p99 {pct(late, 0.99):.3f} s  "
        f"max {late[-1] if late else float('nan'):.3f} s"
    )
    print("  " + "  ".join(f"{k}: {v}" for k, v in dup.items()))
    ok = len(late) == count and pct(late, 0.99) <= 2.0
    twice = dup["incidents breached twice"] + dup["credits decided twice"]
    ok = ok and twice == 0 and dup["credit events twice"] == 0
    print(f"  goal (p99 <= 2 s, nothing twice): {'OK' if ok else 'MISSED'}")


async def bench_flush(customers: Sequence[str], count: int) -> None:
    await reset_incidents()
    sweep = get_settings().sla_sweep_seconds
    with workers(1):
        first_due = datetime.now(UTC) + timedelta(seconds=15)
        took = await open_due_between(customers, count, first_due, 5.0)
        redis = await queue.connect(os.environ["REDIS_URL"])
        await redis.flushdb()  # every deadline check is lost
        await redis.aclose()
        print(f"  opened {count} incidents in {took:.1f} s, then flushed Redis")
        wait = (first_due - datetime.now(UTC)).total_seconds() + 5 + 60
        await wait_all_breached(count, wait)
    late = await lateness()
    bound = sweep + 5
    print(
        f"  breached {len(late)}/{count}; lateness p50 {pct(late, 0.5):.2f} s  "
        f"max {late[-1] if late else float('nan'):.2f} s (bound: sweep {sweep} s + 5 s)"
    )
    ok = len(late) == count and late and late[-1] <= bound
    print(f"  goal (all breached within {bound} s of their deadline): {'OK' if ok else 'MISSED'}")


# ---------------------------------------------------------------- main


async def _with_pool(coro: Any) -> Any:
    await db.open_pool(max_size=20)
    try:
        return await coro
    finally:
        await db.close_pool()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--open-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--api-processes", type=int, nargs="+", default=[1])
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--flush", type=int, default=1_000)
    parser.add_argument("--lead", type=float, default=90.0, help="seconds before the first due")
    parser.add_argument(
        "--only", choices=("open", "burst1", "burst2", "flush"), action="append", default=None
    )
    args = parser.parse_args(argv)
    only = set(args.only or ("open", "burst1", "burst2", "flush"))
    print(f"(worker output: {WORKER_LOG})")
    with services():
        customers, key = asyncio.run(_with_pool(prepare()))
        if "open" in only:
            for processes in args.api_processes:
                print(f"Opening incidents through the API ({processes} process(es))")
                bench_open(customers, key, args.open_seconds, args.connections, processes)
        if "burst1" in only:
            print(f"{args.burst} incidents due within one minute, one worker")
            asyncio.run(_with_pool(bench_burst(customers, args.burst, 1, args.lead)))
        if "burst2" in only:
            print(f"{args.burst} incidents due within one minute, two workers")
            asyncio.run(_with_pool(bench_burst(customers, args.burst, 2, args.lead)))
        if "flush" in only:
            print(f"{args.flush} incidents pending, Redis flushed")
            asyncio.run(_with_pool(bench_flush(customers, args.flush)))


if __name__ == "__main__":
    main()
