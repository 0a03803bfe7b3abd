"""What runs where: the jobs and periodic sweeps of the deadline queue and the bulk queue.

Breach credits and the SLA sweep have a queue of their own, so they never wait behind
bulk work (Stripe events after an outage, webhook deliveries, overage billing);
deadlines, warnings and escalations need no queue (the process's deadline clock reads
them from PostgreSQL). ``workers.process`` runs the clock and a worker per queue in one
process.
"""

from __future__ import annotations

from typing import Any, ClassVar

from arq.connections import RedisSettings

from common.config import get_settings
from workers import billing_jobs, jobs, runtime, sla_jobs, webhook_jobs
from workers.queue import QUEUE_NAME, redis_settings

# Deadline jobs are due to the second; a short poll keeps breach lateness low.
POLL_DELAY = 0.2
KEEP_RESULT = 60
# An outage turns a job into a retry with backoff (``jobs.retry_on_outage``).
MAX_TRIES = 12
HEALTH_CHECK_INTERVAL = 10
DEADLINE_JOB_TIMEOUT = 60
BULK_JOB_TIMEOUT = 120

DEADLINE_FUNCTIONS: list[Any] = [*sla_jobs.FUNCTIONS]
DEADLINE_CRON_JOBS: list[Any] = [*sla_jobs.CRON_JOBS]
BULK_FUNCTIONS: list[Any] = [
    jobs.noop,
    jobs.purge_idempotency_records,
    *billing_jobs.FUNCTIONS,
    *webhook_jobs.FUNCTIONS,
]
BULK_CRON_JOBS: list[Any] = [
    *jobs.CRON_JOBS,
    *billing_jobs.CRON_JOBS,
    *webhook_jobs.CRON_JOBS,
]

# Every job function (tests and tools that run one arq worker per queue by hand).
FUNCTIONS: list[Any] = [*DEADLINE_FUNCTIONS, *BULK_FUNCTIONS]
CRON_JOBS: list[Any] = [*DEADLINE_CRON_JOBS, *BULK_CRON_JOBS]


def _redis() -> RedisSettings:
    return redis_settings(get_settings().redis)


class WorkerSettings:
    """arq's settings class for the bulk queue only (``arq workers.settings.WorkerSettings``).

    Production runs ``support-billing worker`` (``workers.process``): both queues, with
    leased job locks and reconnection. This class remains for arq's own tooling.
    """

    functions: ClassVar[list[Any]] = BULK_FUNCTIONS
    cron_jobs: ClassVar[list[Any]] = BULK_CRON_JOBS
    on_startup = runtime.startup
    on_shutdown = runtime.shutdown
    queue_name = QUEUE_NAME
    health_check_interval = HEALTH_CHECK_INTERVAL
    poll_delay = POLL_DELAY
    health_check_key = f"{QUEUE_NAME}:health-check"
    max_jobs = 50
    job_timeout = BULK_JOB_TIMEOUT
    keep_result = KEEP_RESULT
    redis_settings = _redis()
