"""Deadline enforcement for the worker: the deadline clock, credits, and the sweep.

The clock (``tick``) is how deadlines are kept: every worker process runs it in a loop,
asking PostgreSQL for the earliest instant still to enforce (a deadline, a warning, an
escalation: three partial-index lookups) and, once one has passed, breaching, warning
and escalating whatever is due in ``FOR UPDATE SKIP LOCKED`` batches, so two workers
split a burst instead of queueing behind each other and never move one incident
twice.  Nothing about a deadline lives in Redis: a flushed or restarted Redis loses no
deadline, and a million open incidents cost no queued jobs.  Breach credits call
Stripe, so they are jobs (``settle_credit``), and the sweep re-offers the ones Redis
lost.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from billing import service as billing
from common.clock import utcnow
from common.db import engine
from common.errors import InvalidRequest, NotFound
from sla import breaches, incident, store
from sla.incident import job
from sla.schemas import SlaJob

log = logging.getLogger("sla.enforcement")

BATCH: Final = 200
# How long a credit waits before asking again when billing named no instant (or Stripe
# did not answer).
CREDIT_RETRY: Final = timedelta(seconds=30)
# A credit still pending this long after its breach is offered to Redis again by the
# sweep (its job id is the breach's: one still queued is refused as a duplicate).
CREDIT_GRACE: Final = timedelta(seconds=60)


class Tick(msgspec.Struct, frozen=True, kw_only=True):
    """What one tick of the deadline clock did.

    ``more``: a batch came back full, tick again at once; else ``next_at`` is the
    earliest instant still to enforce (None: nothing open has one).
    """

    breached: int = 0
    warned: int = 0
    escalated: int = 0
    jobs: list[SlaJob] = []
    more: bool = False
    next_at: datetime | None = None


async def tick(batch: int = BATCH) -> Tick:
    """Enforce everything due now, one batch of each kind, each batch its own transaction."""
    now = utcnow()
    due = await store.next_instant()
    if due is None or due > now:
        return Tick(next_at=due)
    jobs: list[SlaJob] = []
    counts: list[int] = []
    more = False
    for step in (breaches.breach_overdue, breaches.warn_due, breaches.escalate_overdue):
        async with engine().transaction():
            seen, (moved, follow_ups) = await step(now, batch)
        counts.append(moved)
        jobs += follow_ups
        more = more or seen >= batch
    return Tick(
        breached=counts[0],
        warned=counts[1],
        escalated=counts[2],
        jobs=jobs,
        more=more,
        next_at=None if more else await store.next_instant(),
    )


class Check(msgspec.Struct, frozen=True):
    """What a credit job did: ``jobs`` to enqueue, or ``retry_at`` to come back then."""

    jobs: list[SlaJob] = []
    retry_at: datetime | None = None
    done: str = "nothing"


async def settle_credit(incident_id: str) -> Check:
    """Ask billing for the breach credit (exactly once there) and record its outcome once here."""
    seen = await store.peek(incident_id)
    if seen is None or seen.credit_status != "pending":
        return Check(done="stale")
    try:
        outcome = await billing.issue_breach_credit(incident_id)
    except (InvalidRequest, NotFound) as e:
        # Permanent (Stripe refused it, or billing never counted the incident): retrying
        # cannot help; the incident says so and billing keeps the error for finance.
        log.error("service credit failed", extra={"incident_id": incident_id, "error": e.detail})
        await store.record_credit(incident_id, "failed", None, None)
        return Check(done="failed")
    if outcome.kind == "none" or outcome.status == "skipped":
        recorded = await store.record_credit(incident_id, "none", outcome.id, outcome.kind)
        return Check(done="no credit" if recorded else "stale")
    if outcome.status == "failed":  # refused past billing's retry policy: an operator's call
        log.error(
            "service credit failed",
            extra={"incident_id": incident_id, "error": outcome.last_error},
        )
        await store.record_credit(incident_id, "failed", outcome.id, outcome.kind)
        return Check(done="failed")
    if outcome.status != "issued":  # billing backs off after a failed attempt: come back then
        return Check(retry_at=outcome.next_attempt_at or utcnow() + CREDIT_RETRY)
    async with engine().transaction():
        recorded = await store.record_credit(incident_id, "issued", outcome.id, outcome.kind)
        if recorded is None:
            return Check(done="stale")
        data: dict[str, Any] = msgspec.to_builtins(outcome)
        await store.apply(recorded, incident.credit_issued(recorded, data, utcnow()))
    return Check(done="credited")


async def retry_credit(credit_id: str) -> SlaJob:
    """Re-issue a failed service credit (admin): billing asks Stripe again, the incident
    waits for the outcome again; returns the job that pays it."""
    outcome = await billing.reissue_credit(credit_id)
    await store.reopen_failed_credit(outcome.incident_id)
    # A new job id (its instant is now): the failed job's result may still be kept.
    return job("sla_credit", outcome.incident_id, utcnow())


class SweepReport(msgspec.Struct, frozen=True):
    credits: int
    jobs: list[SlaJob]


async def sweep(limit: int = 5_000) -> SweepReport:
    """Re-derive from PostgreSQL what Redis should hold: the credit jobs of breaches whose
    credit is still pending after ``CREDIT_GRACE`` (their ids are the breach's, so one
    still queued is not duplicated).  Deadlines need no sweep: the clock reads them from
    PostgreSQL on every tick."""
    pending = await store.pending_credits(utcnow() - CREDIT_GRACE, limit)
    return SweepReport(credits=len(pending), jobs=[job("sla_credit", c.id, c.at) for c in pending])
