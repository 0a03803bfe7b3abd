"""arq jobs of the billing capability: each a few lines calling a service."""

from __future__ import annotations

import logging
from typing import Any

from arq import cron

from billing import entitlements, events, fasttrack, usage
from workers import queue

log = logging.getLogger("workers.billing")


async def process_stripe_event(ctx: dict[str, Any], event_id: str) -> str:
    return await events.process(event_id)


async def sweep_stripe_events(ctx: dict[str, Any]) -> int:
    """Re-enqueue stored events not yet applied (lost Redis, crashed worker)."""
    pending = await events.pending()
    for event_id, attempts in pending:
        # A fresh job id per attempt: arq keeps the failed first job's id for a while.
        await queue.enqueue_stripe_replay(ctx["redis"], event_id, str(attempts))
    return len(pending)


async def bill_overages(ctx: dict[str, Any]) -> int:
    return await usage.bill_pending_overages()


async def expire_fast_track(ctx: dict[str, Any]) -> int:
    return await fasttrack.expire_due()


async def announce_lapsed_grace(ctx: dict[str, Any]) -> int:
    return await entitlements.announce_lapsed_grace()


FUNCTIONS: list[Any] = [
    process_stripe_event,
    sweep_stripe_events,
    bill_overages,
    expire_fast_track,
    announce_lapsed_grace,
]
CRON_JOBS: list[Any] = [
    cron(sweep_stripe_events, second={0, 30}, unique=True),
    cron(bill_overages, second={15, 45}, unique=True),
    cron(expire_fast_track, minute={5}, second={0}, unique=True),
    cron(announce_lapsed_grace, second={20}, unique=True),
]
