"""Deadline enforcement under a burst: N incidents due within one minute, real arq workers.

The incidents are clones (COPY) of one incident opened through the service, so each
carries a real entitlement snapshot; nothing is enqueued for them (opening schedules
nothing either): the workers' deadline clocks find them in PostgreSQL.  Lateness is ``breached_at -
due_at`` as the workers record it.  (Opening 100,000 incidents through the service
would take minutes of the benchmark's budget and is measured on its own.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import setup
from common import db
from common.config import PROJECT_ROOT
from common.ids import new_id
from sla import service
from sla.schemas import IncidentCreate

WORKER_LOG = PROJECT_ROOT / ".data" / "bench_workers.log"
# The fields a clone changes; everything else (the entitlement snapshot) is the template's.
_CHANGED = ("id", "external_ref", "customer_id", "opened_at", "due_at", "created_at", "updated_at")


@dataclass(frozen=True)
class Burst:
    count: int
    workers: int
    breached: int
    lateness_s: list[float]  # sorted; an incident not breached by the end counts as late as
    # the end (a lower bound), so the percentiles are lower bounds when ``breached < count``
    twice: dict[str, int]
    staged_s: float
    peak_rss_mb: float

    def pct(self, q: float) -> float:
        values = self.lateness_s
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


@contextlib.contextmanager
def workers(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` real worker processes (``support-billing worker``: both queues, cron included)."""
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
            time.sleep(3.0)  # start-up: imports, pools
            yield procs
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)


async def _stage(
    customers: Sequence[str], count: int, first_due: datetime, spread_s: float, tag: str
) -> None:
    await db.open_pool(max_size=4)
    try:
        opened = await service.open_incident(
            IncidentCreate(customer_id=customers[0], external_ref=f"{tag}-template", priority="p1")
        )
    finally:
        await db.close_pool()
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        template = dict(
            await conn.fetchrow("SELECT * FROM incident WHERE id = $1", opened.incident.id)
        )
        # The template itself is resolved: it must not be breached with the clones.
        await conn.execute(
            "UPDATE incident SET sla_status = 'achieved', first_response_at = now() WHERE id = $1",
            opened.incident.id,
        )
        columns = list(template)
        target = timedelta(minutes=int(template["target_minutes"]))
        now = datetime.now(UTC)
        rows = []
        for i in range(count):
            due = first_due + timedelta(seconds=spread_s * i / count)
            iid = new_id("inc")
            changed = {
                "id": iid,
                "external_ref": f"{tag}-{i}",
                "customer_id": customers[i % len(customers)],
                "opened_at": due - target,
                "due_at": due,
                "created_at": now,
                "updated_at": now,
                # warnings were sent long ago (the burst is about deadlines)
                "warn_at": "[]",
                "warnings_sent": 0,
                "next_warning_at": None,
            }
            rows.append(tuple(changed.get(c, template[c]) for c in columns))
        for column in ("entitlement", "context", "pauses"):
            index = columns.index(column)
            rows = [(*r[:index], _json(r[index]), *r[index + 1 :]) for r in rows]
        await conn.copy_records_to_table("incident", records=rows, columns=columns)
    finally:
        await conn.close()


def _json(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


async def _wait(tag: str, count: int, within: float) -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        started = time.monotonic()
        while time.monotonic() - started < within:
            done = await conn.fetchval(
                "SELECT count(*) FROM incident"
                " WHERE external_ref LIKE $1 AND breached_at IS NOT NULL",
                f"{tag}-%",
            )
            if done >= count:
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _results(tag: str, ended: datetime) -> tuple[list[float], int, dict[str, int]]:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        rows = await conn.fetch(
            "SELECT EXTRACT(EPOCH FROM coalesce(breached_at, $2) - due_at)::float8 AS s"
            " FROM incident WHERE external_ref LIKE $1 ORDER BY 1",
            f"{tag}-%",
            ended,
        )
        breached = await conn.fetchval(
            "SELECT count(*) FROM incident WHERE external_ref LIKE $1 AND breached_at IS NOT NULL",
            f"{tag}-%",
        )
        twice = {
            "breached twice": await conn.fetchval(
                "SELECT count(*) FROM (SELECT e.incident_id FROM sla_event e JOIN incident i"
                " ON i.id = e.incident_id WHERE i.external_ref LIKE $1 AND e.type = 'breached'"
                " GROUP BY 1 HAVING count(*) > 1) d",
                f"{tag}-%",
            ),
            "credited twice": await conn.fetchval(
                "SELECT count(*) FROM (SELECT c.incident_id FROM service_credit c JOIN incident i"
                " ON i.id = c.incident_id WHERE i.external_ref LIKE $1"
                " GROUP BY 1 HAVING count(*) > 1) d",
                f"{tag}-%",
            ),
        }
        # What the burst left unbreached must not weigh on later scenarios (nor the sweep).
        await conn.execute(
            "UPDATE incident SET sla_status = 'achieved', first_response_at = now()"
            " WHERE external_ref LIKE $1 AND sla_status = 'active'",
            f"{tag}-%",
        )
        await conn.execute("VACUUM ANALYZE incident")
    finally:
        await conn.close()
    return [float(r["s"]) for r in rows], int(breached), twice


def burst(
    customers: Sequence[str],
    count: int,
    worker_count: int,
    lead_s: float,
    spread_s: float = 60.0,
    grace_s: float = 45.0,
) -> Burst:
    """``count`` incidents due within ``spread_s`` from ``lead_s`` on, ``worker_count`` workers.

    Waits at most ``grace_s`` past the last deadline (what is left is counted as that late).
    """
    tag = f"BURST{worker_count}-{time.time_ns()}"
    with workers(worker_count) as procs:
        started = time.perf_counter()
        first_due = datetime.now(UTC) + timedelta(seconds=lead_s)
        asyncio.run(_stage(customers, count, first_due, spread_s, tag))
        staged = time.perf_counter() - started
        if datetime.now(UTC) > first_due:
            print(f"  WARNING: staging took {staged:.0f} s, past the first deadline", flush=True)
        left = (first_due - datetime.now(UTC)).total_seconds() + spread_s + grace_s
        asyncio.run(_wait(tag, count, left))
        ended = datetime.now(UTC)
        print(
            f"  staged in {staged:.0f} s; waited until {time.perf_counter() - started:.0f} s"
            " after staging began",
            flush=True,
        )
        time.sleep(2)  # let the follow-up jobs (credits, escalations) settle
        rss = max(setup.peak_rss_mb(p.pid) for p in procs)
        stopping = time.perf_counter()
    print(f"  workers stopped in {time.perf_counter() - stopping:.0f} s", flush=True)
    late, breached, twice = asyncio.run(_results(tag, ended))
    return Burst(count, worker_count, breached, late, twice, staged, rss)
