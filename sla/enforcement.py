"""Deadline enforcement for the worker: checks, breaches in batches, escalations, credits, sweep.

Every function is safe to run twice and from several workers at once: it re-reads
the incident under a row lock and does nothing when the state moved on.  Batches
take ``FOR UPDATE SKIP LOCKED`` so two workers split the overdue rows instead of
queueing behind each other, and never breach (or credit) one incident twice.
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
from sla import service
from sla.schemas import JobKind, SlaJob
from sla.service import Row, job, micros
from sla.tables import Incident as IncidentRow

log = logging.getLogger("sla.enforcement")

BATCH: Final = 200
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


async def _peek(incident_id: str) -> Row | None:
    """The incident without a lock: lets a stale job finish in one cheap read."""
    rows = await service.fetch(
        "SELECT id, sla_status, due_at, warn_at, warnings_sent, next_escalation_at,"
        " credit_status FROM incident WHERE id = {}",
        incident_id,
    )
    return rows[0] if rows else None


def _warning_index(row: Row, ts: int) -> int | None:
    """The index of the still-unrecorded warning scheduled at ``ts``, if it is one."""
    for i, w in enumerate(row["warn_at"] or []):
        if i >= row["warnings_sent"] and micros(service.parse_instant(w["at"])) == ts:
            return i
    return None


async def check_deadline(incident_id: str, kind: JobKind, ts: int) -> Check:
    """A deferred check at a warning instant (``sla_warning``) or at the deadline (``sla_due``)."""
    if kind == "sla_due":
        return await _check_due(incident_id, ts)
    if kind == "sla_warning":
        return await _check_warning(incident_id, ts)
    raise ValueError(f"check_deadline does not handle {kind!r}")


async def _check_due(incident_id: str, ts: int) -> Check:
    now = utcnow()
    row = await _peek(incident_id)
    if row is None or row["sla_status"] != "active" or micros(row["due_at"]) != ts:
        return Check(done="stale")
    if row["due_at"] > now:
        return Check(retry_at=row["due_at"])
    jobs: list[SlaJob] = []
    done = "stale"  # breached meanwhile (by a batch, the sweep, a late first response)
    async with engine().transaction():
        row = await service.locked(incident_id)
        if row["sla_status"] == "active" and micros(row["due_at"]) == ts:
            _, jobs = await service.breach(row, now)
            done = "breached"
        # Whatever else is overdue rides along: a burst of deadlines costs one
        # transaction per batch, and the jobs behind it find their work done.
        jobs += await _breach_batch(now, BATCH)
    return Check(jobs=jobs, done=done)


async def _check_warning(incident_id: str, ts: int) -> Check:
    now = utcnow()
    row = await _peek(incident_id)
    if row is None or row["sla_status"] != "active" or _warning_index(row, ts) is None:
        return Check(done="stale")
    async with engine().transaction():
        row = await service.locked(incident_id)
        index = _warning_index(row, ts) if row["sla_status"] == "active" else None
        if index is None:
            return Check(done="stale")
        if row["due_at"] <= now:
            return Check(done="stale")  # past the deadline: the breach, not a warning, is due
        # Every warning up to this one, once each and in order: a job that runs
        # late (or before an earlier one) still leaves the same ledger.
        recorded = row["warn_at"][row["warnings_sent"] : index + 1]
        upcoming = row["warn_at"][index + 1 :]
        row = await service.save(
            row,
            {
                "warnings_sent": index + 1,
                "next_warning_at": service.parse_instant(upcoming[0]["at"]) if upcoming else None,
            },
        )
        await service.append_events(
            *(
                service.event_row(
                    row, "warning", now, {"fraction": w["fraction"], "warn_at": w["at"]}
                )
                for w in recorded
            )
        )
        for w in recorded:
            await service.emit("sla.warning", row, fraction=w["fraction"], warn_at=w["at"])
    return Check(done="warned")


async def _breach_batch(now: datetime, limit: int) -> list[SlaJob]:
    """Breach up to ``limit`` overdue active incidents nobody else holds (caller's transaction)."""
    rows = await service.fetch(
        "SELECT * FROM incident WHERE sla_status = 'active' AND due_at <= {}"
        " ORDER BY due_at LIMIT {} FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    _, jobs = await service.breach_many(rows, now)
    return jobs


async def breach_overdue(limit: int = BATCH) -> tuple[int, list[SlaJob]]:
    """One batch of overdue breaches in one transaction; returns how many and the follow-ups."""
    now = utcnow()
    async with engine().transaction():
        jobs = await _breach_batch(now, limit)
    return sum(1 for j in jobs if j.kind == "sla_credit"), jobs


async def escalate(incident_id: str, ts: int) -> Check:
    """The escalation due at ``ts`` (stale when the incident was answered or resolved since)."""
    now = utcnow()
    row = await _peek(incident_id)
    if row is None or row["next_escalation_at"] is None:
        return Check(done="stale")
    if micros(row["next_escalation_at"]) != ts:
        return Check(done="stale")
    if row["next_escalation_at"] > now:
        return Check(retry_at=row["next_escalation_at"])
    async with engine().transaction():
        row = await service.locked(incident_id)
        level = row["escalation_level"]
        row, jobs = await service.escalate_locked(row, now)
    return Check(jobs=jobs, done="escalated" if row["escalation_level"] > level else "stale")


async def escalate_overdue(limit: int = BATCH) -> tuple[int, list[SlaJob]]:
    now = utcnow()
    jobs: list[SlaJob] = []
    async with engine().transaction():
        rows = await service.fetch(
            "SELECT * FROM incident WHERE next_escalation_at <= {}"
            " ORDER BY next_escalation_at LIMIT {} FOR UPDATE SKIP LOCKED",
            now - GRACE,
            limit,
        )
        for row in rows:
            _, more = await service.escalate_locked(row, now)
            jobs += more
    return len(rows), jobs


async def _record_credit(
    incident_id: str, status: str, credit_id: str | None, kind: str | None
) -> Row | None:
    """Move the credit out of ``pending`` once: the conditional update is the guard."""
    rows = await service.fetch(
        "UPDATE incident SET credit_status = {}, credit_id = {}, credit_kind = {}, updated_at = {}"
        " WHERE id = {} AND credit_status = 'pending' RETURNING *",
        status,
        credit_id,
        kind,
        utcnow(),
        incident_id,
    )
    return rows[0] if rows else None


async def settle_credit(incident_id: str) -> Check:
    """Ask billing for the breach credit (exactly once there) and record its outcome once here."""
    row = await _peek(incident_id)
    if row is None or row["credit_status"] != "pending":
        return Check(done="stale")
    try:
        outcome = await billing.issue_breach_credit(incident_id)
    except (InvalidRequest, NotFound) as e:
        # Permanent (Stripe refused it, or billing never counted the incident): retrying
        # cannot help; the incident says so and billing keeps the error for finance.
        log.error("service credit failed", extra={"incident_id": incident_id, "error": e.detail})
        await _record_credit(incident_id, "failed", None, None)
        return Check(done="failed")
    if outcome.kind == "none" or outcome.status == "skipped":
        recorded = await _record_credit(incident_id, "none", outcome.id, outcome.kind)
        return Check(done="no credit" if recorded else "stale")
    if outcome.status == "failed":  # refused past billing's retry policy: an operator's call
        log.error(
            "service credit failed",
            extra={"incident_id": incident_id, "error": outcome.last_error},
        )
        await _record_credit(incident_id, "failed", outcome.id, outcome.kind)
        return Check(done="failed")
    if outcome.status != "issued":  # billing backs off after a failed attempt: come back then
        return Check(retry_at=outcome.next_attempt_at or utcnow() + CREDIT_RETRY)
    async with engine().transaction():
        recorded = await _record_credit(incident_id, "issued", outcome.id, outcome.kind)
        if recorded is None:
            return Check(done="stale")
        data: dict[str, Any] = msgspec.to_builtins(outcome)
        await service.append_events(
            service.event_row(recorded, "credit_issued", utcnow(), {"service_credit": data})
        )
        await service.emit("service_credit.issued", recorded, service_credit=data)
    return Check(done="credited")


async def retry_credit(credit_id: str) -> SlaJob:
    """Re-issue a failed service credit (admin): billing asks Stripe again, the incident
    waits for the outcome again; returns the job that pays it."""
    outcome = await billing.reissue_credit(credit_id)
    await service.fetch(
        "UPDATE incident SET credit_status = 'pending', updated_at = {}"
        " WHERE id = {} AND credit_status = 'failed' RETURNING id",
        utcnow(),
        outcome.incident_id,
    )
    # A new job id (its instant is now): the failed job's result may still be kept.
    return job("sla_credit", outcome.incident_id, utcnow())


class SweepReport(msgspec.Struct, frozen=True):
    breached: int
    escalated: int
    warnings: int
    credits: int
    jobs: list[SlaJob]


async def sweep(limit: int = 5_000) -> SweepReport:
    """Re-derive from PostgreSQL what Redis should hold: late but never missed.

    Breaches every overdue active incident and applies due escalations (in
    ``SKIP LOCKED`` batches), and returns the warning and credit jobs overdue by more
    than their grace for the caller to (re-)enqueue; their ids are deterministic, so
    one still queued is not duplicated.
    """
    breached = escalated = 0
    jobs: list[SlaJob] = []
    while breached < limit:
        count, more = await breach_overdue(BATCH)
        breached += count
        jobs += more
        if count < BATCH:
            break
    while escalated < limit:
        count, more = await escalate_overdue(BATCH)
        escalated += count
        jobs += more
        if count < BATCH:
            break
    now = utcnow()
    cutoff = now - WARNING_GRACE
    late_warnings = await (
        IncidentRow.select(IncidentRow.id, IncidentRow.warn_at, IncidentRow.warnings_sent)
        .where((IncidentRow.sla_status == "active") & (IncidentRow.next_warning_at <= cutoff))
        .limit(limit)
        .output(load_json=True)
    )
    for row in late_warnings:
        # The latest warning that has passed: its job records the earlier ones too.
        passed = [
            w
            for w in row["warn_at"][row["warnings_sent"] :]
            if service.parse_instant(w["at"]) <= cutoff
        ]
        if passed:
            jobs.append(job("sla_warning", row["id"], service.parse_instant(passed[-1]["at"])))
    pending_credits = await (
        IncidentRow.select(IncidentRow.id, IncidentRow.breached_at)
        .where(
            (IncidentRow.credit_status == "pending")
            & (IncidentRow.breached_at <= now - CREDIT_GRACE)
        )
        .limit(limit)
    )
    for row in pending_credits:
        jobs.append(job("sla_credit", row["id"], row["breached_at"]))
    upcoming = await (
        IncidentRow.select(IncidentRow.id, IncidentRow.due_at)
        .where(
            (IncidentRow.sla_status == "active")
            & (IncidentRow.due_at > now)
            & (IncidentRow.due_at <= now + UPCOMING)
        )
        .limit(limit)
    )
    for row in upcoming:
        jobs.append(job("sla_due", row["id"], row["due_at"]))
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
