"""Deadline enforcement for the worker: the checks its jobs run, credits, and the sweep.

Every function is safe to run twice and from several workers at once: it re-reads
the incident under a row lock and does nothing when the state moved on.  Batches
take ``FOR UPDATE SKIP LOCKED`` so two workers split the overdue rows instead of
queueing behind each other, and never breach (or credit) one incident twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from billing import service as billing
from common.clock import utcnow
from common.config import get_settings
from common.db import engine
from common.errors import InvalidRequest, NotFound
from sla import breaches, incident, store
from sla.incident import Policy, job, micros
from sla.schemas import JobKind, SlaJob

log = logging.getLogger("sla.enforcement")

BATCH: Final = 200
# How long a credit waits before asking again when billing named no instant (or Stripe
# did not answer).
CREDIT_RETRY: Final = timedelta(seconds=30)
# The sweep leaves a just-passed instant to its own job for this long before re-deriving it
# (a job still queued is not duplicated, but re-offering thousands during a burst is waste).
GRACE: Final = timedelta(seconds=2)
WARNING_GRACE: Final = timedelta(seconds=10)
# Deadline checks falling due this soon are offered to Redis again by every sweep: one
# still queued is refused as a duplicate, one that Redis lost (a flush, a restart
# without persistence) is back before its instant, not a sweep interval after it.
UPCOMING: Final = timedelta(seconds=30)
CREDIT_GRACE: Final = timedelta(seconds=60)


class Check(msgspec.Struct, frozen=True):
    """What a job did: ``jobs`` to enqueue, or ``retry_at`` when it ran before its instant."""

    jobs: list[SlaJob] = []
    retry_at: datetime | None = None
    done: str = "nothing"


async def check_deadline(incident_id: str, kind: JobKind, ts: int) -> Check:
    """A deferred check at a warning instant (``sla_warning``) or at the deadline (``sla_due``)."""
    if kind == "sla_due":
        return await _check_due(incident_id, ts)
    if kind == "sla_warning":
        return await _check_warning(incident_id, ts)
    raise ValueError(f"check_deadline does not handle {kind!r}")


async def _check_due(incident_id: str, ts: int) -> Check:
    now = utcnow()
    seen = await store.peek(incident_id)
    if seen is None or seen.sla_status != "active" or micros(seen.due_at) != ts:
        return Check(done="stale")
    if seen.due_at > now:
        return Check(retry_at=seen.due_at)
    jobs: list[SlaJob] = []
    done = "stale"  # breached meanwhile (by a batch, the sweep, a late first response)
    async with engine().transaction():
        state = await store.locked(incident_id)
        if state.sla_status == "active" and micros(state.due_at) == ts:
            jobs = await breaches.breach([state], now)
            done = "breached"
        # Whatever else is overdue rides along: a burst of deadlines costs one
        # transaction per batch, and the jobs behind it find their work done.
        _, more = await breaches.breach_overdue(now, BATCH)
    return Check(jobs=jobs + more, done=done)


async def _check_warning(incident_id: str, ts: int) -> Check:
    now = utcnow()
    seen = await store.peek(incident_id)
    if (
        seen is None
        or seen.sla_status != "active"
        or incident.warning_index(seen.warn_at, seen.warnings_sent, ts) is None
    ):
        return Check(done="stale")
    async with engine().transaction():
        state = await store.locked(incident_id)
        transition = incident.warn(state, ts, now=now, policy=Policy.from_settings(get_settings()))
        await store.apply(state, transition)
    return Check(done="warned" if transition.events else "stale")


async def breach_overdue(limit: int = BATCH) -> tuple[int, list[SlaJob]]:
    """One batch of overdue breaches in one transaction; returns how many and the follow-ups."""
    now = utcnow()
    async with engine().transaction():
        done = await breaches.breach_overdue(now, limit)
    return done


async def escalate(incident_id: str, ts: int) -> Check:
    """The escalation due at ``ts`` (stale when the incident was answered or resolved since)."""
    now = utcnow()
    seen = await store.peek(incident_id)
    if seen is None or seen.next_escalation_at is None:
        return Check(done="stale")
    if micros(seen.next_escalation_at) != ts:
        return Check(done="stale")
    if seen.next_escalation_at > now:
        return Check(retry_at=seen.next_escalation_at)
    async with engine().transaction():
        state = await store.locked(incident_id)
        transition = await breaches.escalate(state, now)
    raised = transition.state.escalation_level > state.escalation_level
    return Check(jobs=list(transition.jobs), done="escalated" if raised else "stale")


async def escalate_overdue(limit: int = BATCH) -> tuple[int, list[SlaJob]]:
    now = utcnow()
    async with engine().transaction():
        done = await breaches.escalate_overdue(now - GRACE, now, limit)
    return done


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
    breached: int
    escalated: int
    warnings: int
    credits: int
    jobs: list[SlaJob]


async def _batches(
    step: Callable[[int], Awaitable[tuple[int, list[SlaJob]]]], limit: int
) -> tuple[int, list[SlaJob]]:
    """``step(BATCH)`` until a batch comes back short or ``limit`` rows are done."""
    done = 0
    jobs: list[SlaJob] = []
    while done < limit:
        count, more = await step(BATCH)
        done += count
        jobs += more
        if count < BATCH:
            break
    return done, jobs


async def sweep(limit: int = 5_000) -> SweepReport:
    """Re-derive from PostgreSQL what Redis should hold: late but never missed.

    Breaches every overdue active incident and applies due escalations (in
    ``SKIP LOCKED`` batches), and returns the warning and credit jobs overdue by more
    than their grace for the caller to (re-)enqueue; their ids are deterministic, so
    one still queued is not duplicated.
    """
    breached, jobs = await _batches(breach_overdue, limit)
    escalated, more = await _batches(escalate_overdue, limit)
    jobs += more
    now = utcnow()
    cutoff = now - WARNING_GRACE
    late_warnings = await store.late_warnings(cutoff, limit)
    for pending in late_warnings:
        latest = incident.latest_passed_warning(pending.warn_at, pending.warnings_sent, cutoff)
        if latest is not None:
            jobs.append(job("sla_warning", pending.id, latest.at))
    pending_credits = await store.pending_credits(now - CREDIT_GRACE, limit)
    jobs += [job("sla_credit", c.id, c.at) for c in pending_credits]
    upcoming = await store.falling_due(now, now + UPCOMING, limit)
    jobs += [job("sla_due", d.id, d.at) for d in upcoming]
    return SweepReport(
        breached=breached,
        escalated=escalated,
        warnings=len(late_warnings),
        credits=len(pending_credits),
        jobs=_dedupe(jobs),
    )


def _dedupe(jobs: list[SlaJob]) -> list[SlaJob]:
    seen: set[tuple[str, str, int]] = set()
    out: list[SlaJob] = []
    for j in jobs:
        key = (j.kind, j.incident_id, j.ts)
        if key not in seen:
            seen.add(key)
            out.append(j)
    return out
