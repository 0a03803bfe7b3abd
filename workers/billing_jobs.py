"""arq jobs of the billing capability: each a few lines calling a service."""

from __future__ import annotations

import logging
from typing import Any

from arq import cron

from billing import service as billing
from common.config import get_settings
from common.errors import UpstreamUnavailable
from workers import queue
from workers.jobs import retry_on_outage

log = logging.getLogger("workers.billing")


def _every(seconds: int) -> dict[str, Any]:
    """arq cron fields for "every ``seconds``" (whole minutes above 60)."""
    if seconds < 60:
        return {"second": set(range(0, 60, seconds))}
    minutes = max(1, seconds // 60)
    return {"minute": set(range(0, 60, minutes)), "second": {40}}


@retry_on_outage
async def process_stripe_event(ctx: dict[str, Any], event_id: str) -> str:
    return await billing.process_stripe_event(event_id)


@retry_on_outage
async def sweep_stripe_events(ctx: dict[str, Any]) -> int:
    """Re-enqueue stored events not yet applied (lost Redis, crashed worker)."""
    pending = await billing.pending_stripe_events()
    for event_id, attempts in pending:
        # A fresh job id per attempt: arq keeps the failed first job's id for a while.
        await queue.enqueue_stripe_replay(ctx["redis"], event_id, str(attempts))
    return len(pending)


@retry_on_outage
async def catch_up_stripe_events(ctx: dict[str, Any]) -> int:
    """Pull events Stripe made whose webhook never came into the inbox, and apply them."""
    try:
        result = await billing.catch_up_stripe_events()
    except UpstreamUnavailable as e:  # Stripe away: the cursor stays, the next run goes on
        log.warning("Stripe event catch-up postponed: %s", e.detail)
        return 0
    for event_id in result.stored:
        await queue.enqueue_stripe_event(ctx["redis"], event_id)
    return len(result.stored)


async def catch_up_at_start(ctx: dict[str, Any]) -> None:
    """The catch-up once when a worker starts (the cron runs it from then on)."""
    try:
        await queue.enqueue_catch_up(ctx["redis"], "start")
    except Exception as e:  # Redis is away: the cron will enqueue it once it is back
        log.warning("could not enqueue the start-up catch-up: %r", e)


@retry_on_outage
async def bill_overages(ctx: dict[str, Any]) -> int:
    return await billing.bill_overages()


@retry_on_outage
async def expire_fast_track(ctx: dict[str, Any]) -> int:
    return await billing.expire_fast_track()


@retry_on_outage
async def expire_abandoned_reservations(ctx: dict[str, Any]) -> int:
    return await billing.expire_abandoned_reservations()


@retry_on_outage
async def announce_lapsed_grace(ctx: dict[str, Any]) -> int:
    return await billing.announce_lapsed_grace()


@retry_on_outage
async def reconcile_mirror(ctx: dict[str, Any]) -> int:
    """Repair the finance mirror from Stripe's objects; returns how many it fixed."""
    try:
        report = await billing.reconcile_with_stripe()
    except UpstreamUnavailable as e:  # Stripe away: the next run goes through everything
        log.warning("mirror reconcile postponed: %s", e.detail)
        return 0
    return report.total_fixed


FUNCTIONS: list[Any] = [
    process_stripe_event,
    sweep_stripe_events,
    catch_up_stripe_events,
    bill_overages,
    expire_fast_track,
    announce_lapsed_grace,
    expire_abandoned_reservations,
    reconcile_mirror,
]
CRON_JOBS: list[Any] = [
    cron(sweep_stripe_events, second={0, 30}, unique=True),
    cron(catch_up_stripe_events, **_every(get_settings().stripe_catchup_seconds), unique=True),
    cron(bill_overages, second={15, 45}, unique=True),
    cron(expire_fast_track, minute={5}, second={0}, unique=True),
    cron(announce_lapsed_grace, second={20}, unique=True),
    cron(expire_abandoned_reservations, minute={35}, second={0}, unique=True),
    # Hourly; unique, and each object's write is under its own lock and only when Stripe
    # differs, so an overlapping run repairs nothing twice.
    cron(reconcile_mirror, minute={50}, second={0}, unique=True, timeout=1800),
]
