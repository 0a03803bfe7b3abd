"""arq WorkerSettings: the jobs, the periodic sweeps and the health check."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings

from workers import billing_jobs, jobs, runtime, sla_jobs, webhook_jobs
from workers.queue import QUEUE_NAME, redis_settings


def _redis() -> RedisSettings:
    return redis_settings(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


FUNCTIONS: list[Any] = [
    jobs.noop,
    jobs.purge_idempotency_records,
    *billing_jobs.FUNCTIONS,
    *sla_jobs.FUNCTIONS,
    *webhook_jobs.FUNCTIONS,
]
CRON_JOBS: list[Any] = [
    cron(jobs.purge_idempotency_records, minute=set(range(0, 60, 10)), unique=True),
    *billing_jobs.CRON_JOBS,
    *sla_jobs.CRON_JOBS,
    *webhook_jobs.CRON_JOBS,
]


class WorkerSettings:
    functions: ClassVar[list[Any]] = FUNCTIONS
    cron_jobs: ClassVar[list[Any]] = CRON_JOBS
    on_startup = runtime.startup
    on_shutdown = runtime.shutdown
    queue_name = QUEUE_NAME
    health_check_interval = 10
    # Deadline jobs are due to the second; a short poll keeps breach lateness low.
    poll_delay = 0.2
    health_check_key = f"{QUEUE_NAME}:health-check"
    max_jobs = 50
    job_timeout = 120
    keep_result = 60
    redis_settings = _redis()
