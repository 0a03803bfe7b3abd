"""arq jobs of the sla capability: each a few lines calling ``sla.enforcement``."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from arq import cron
from arq.worker import Retry

from common.clock import utcnow
from common.config import get_settings
from common.errors import UpstreamUnavailable
from sla import enforcement
from sla.enforcement import Check
from sla.schemas import JobKind
from workers import queue
from workers.jobs import retry_on_outage

log = logging.getLogger("workers.sla")


async def _finish(ctx: dict[str, Any], check: Check) -> str:
    if check.retry_at is not None:  # ran before its instant (clock skew): come back then
        raise Retry(defer=max(check.retry_at - utcnow(), timedelta(0)))
    await queue.enqueue_sla_jobs(ctx["redis"], check.jobs)
    return check.done


@retry_on_outage
async def check_deadline(ctx: dict[str, Any], incident_id: str, kind: JobKind, ts: int) -> str:
    return await _finish(ctx, await enforcement.check_deadline(incident_id, kind, ts))


@retry_on_outage
async def escalate_incident(ctx: dict[str, Any], incident_id: str, ts: int) -> str:
    return await _finish(ctx, await enforcement.escalate(incident_id, ts))


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
    if report.breached or report.escalated or report.warnings or report.credits:
        log.info(
            "sla sweep",
            extra={
                "breached": report.breached,
                "escalated": report.escalated,
                "warnings": report.warnings,
                "credits": report.credits,
            },
        )
    return (
        f"breached={report.breached} escalated={report.escalated} "
        f"warnings={report.warnings} credits={report.credits}"
    )


def _sweep_seconds() -> set[int]:
    every = get_settings().sla_sweep_seconds
    return set(range(0, 60, every)) if every < 60 else {0}


FUNCTIONS: list[Any] = [check_deadline, escalate_incident, settle_breach_credit, sla_sweep]
CRON_JOBS: list[Any] = [
    cron(sla_sweep, name="sla_sweep_cron", second=_sweep_seconds(), unique=True, timeout=300)
]
