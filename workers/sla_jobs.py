"""The sla capability in the worker: the deadline clock, and the credit and sweep jobs.

The clock is not a job: every worker process runs ``run_clock`` beside its queues,
ticking ``sla.enforcement.tick`` (everything due now, in batches) and sleeping until
the next instant, never longer than ``CLOCK_NAP_SECONDS`` (an incident opened since
may be due sooner).  Deadlines live in PostgreSQL only, so Redis being flushed,
restarted or backlogged cannot delay or lose one; the jobs are what calls Stripe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from arq import cron
from arq.connections import ArqRedis
from arq.worker import Retry

from common.clock import utcnow
from common.config import get_settings
from common.errors import UpstreamUnavailable
from sla import enforcement
from sla.enforcement import Check, Tick
from workers import queue
from workers.jobs import retry_on_outage, stopping

log = logging.getLogger("workers.sla")

# The clock's longest sleep: how late a deadline opened (or moved) since the last tick
# can be noticed.  Each tick when idle is one index lookup.
CLOCK_NAP_SECONDS: Final = 0.25
# Its shortest: a due instant another worker is holding (SKIP LOCKED) is asked again.
CLOCK_MIN_SLEEP_SECONDS: Final = 0.02
CLOCK_MAX_BACKOFF_SECONDS: Final = 2.0


@dataclass
class ClockState:
    """What the process knows of its deadline clock (monotonic seconds)."""

    # A fresh process gets the grace period before its first tick counts against it.
    ticked_at: float = field(default_factory=time.monotonic)
    error: str | None = None
    # A batch came back full: more is due than one tick could take (a burst).
    behind: bool = False
    breached: int = 0
    warned: int = 0
    escalated: int = 0

    def count(self, tick: Tick) -> None:
        self.ticked_at, self.error, self.behind = time.monotonic(), None, tick.more
        self.breached += tick.breached
        self.warned += tick.warned
        self.escalated += tick.escalated


def _sleep_after(tick: Tick, nap: float) -> float:
    if tick.more:
        return 0.0
    if tick.next_at is None:
        return nap
    until = (tick.next_at - utcnow()).total_seconds()
    return min(max(until, CLOCK_MIN_SLEEP_SECONDS), nap)


async def run_clock(redis: ArqRedis, state: ClockState, *, nap: float = CLOCK_NAP_SECONDS) -> None:
    """Tick forever; a failed tick (PostgreSQL away) is tried again with backoff."""
    backoff = nap
    while True:
        try:
            tick = await enforcement.tick()
        except Exception as e:  # an outage: the rows are still there, try again soon
            stopping()
            state.error = repr(e)[:300]
            log.warning("deadline clock could not tick (%r); again in %.2f s", e, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, CLOCK_MAX_BACKOFF_SECONDS)
            continue
        backoff = nap
        state.count(tick)
        if tick.breached or tick.escalated:
            log.info(
                "deadlines enforced",
                extra={
                    "breached": tick.breached,
                    "warned": tick.warned,
                    "escalated": tick.escalated,
                },
            )
        if tick.jobs:  # committed: the credits are the queue's (or the sweep's) now
            await queue.after_commit(queue.enqueue_sla_jobs(redis, tick.jobs), "breach credits")
        await asyncio.sleep(_sleep_after(tick, nap))


async def _finish(ctx: dict[str, Any], check: Check) -> str:
    if check.retry_at is not None:  # billing asked us to come back then
        raise Retry(defer=max(check.retry_at - utcnow(), timedelta(0)))
    await queue.enqueue_sla_jobs(ctx["redis"], check.jobs)
    return check.done


@retry_on_outage
async def settle_breach_credit(ctx: dict[str, Any], incident_id: str) -> str:
    try:
        return await _finish(ctx, await enforcement.settle_credit(incident_id))
    except UpstreamUnavailable as e:
        # Billing keeps its idempotency keys, so asking again pays at most once.
        raise Retry(defer=enforcement.CREDIT_RETRY) from e


@retry_on_outage
async def sla_sweep(ctx: dict[str, Any]) -> str:
    report = await enforcement.sweep()
    await queue.enqueue_sla_jobs(ctx["redis"], report.jobs)
    if report.credits:
        log.info("sla sweep", extra={"credits": report.credits})
    return f"credits={report.credits}"


def _sweep_seconds() -> set[int]:
    every = get_settings().sla_sweep_seconds
    return set(range(0, 60, every)) if every < 60 else {0}


FUNCTIONS: list[Any] = [settle_breach_credit, sla_sweep]
CRON_JOBS: list[Any] = [
    cron(sla_sweep, name="sla_sweep_cron", second=_sweep_seconds(), unique=True, timeout=300)
]
