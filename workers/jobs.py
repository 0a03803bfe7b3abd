"""Job functions: each is a few lines that call a service, and is safe to run twice."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from arq import cron
from arq.worker import Retry

from common import db, idempotency
from workers import queue

log = logging.getLogger("workers.jobs")

Job = TypeVar("Job", bound=Callable[..., Awaitable[Any]])


def retry_on_outage(job: Job) -> Job:
    """Turn a PostgreSQL or Redis outage inside ``job`` into arq's retry, with backoff.

    The job is safe to run twice; failing it would leave the work to the next sweep,
    retrying brings it back as soon as the dependency answers again.
    """

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await job(ctx, *args, **kwargs)
        except Exception as e:
            if db.unavailable(e) or isinstance(e, queue.REDIS_DOWN):
                tries = int(ctx.get("job_try") or 1)
                log.warning("%s: dependency unavailable, retrying: %r", job.__name__, e)
                raise Retry(defer=min(2**tries, 30)) from e
            raise

    return cast(Job, run)


@retry_on_outage
async def noop(ctx: dict[str, Any], token: str) -> str:
    return token


@retry_on_outage
async def purge_idempotency_records(ctx: dict[str, Any]) -> int:
    purged = await idempotency.purge_expired()
    if purged:
        log.info("purged expired idempotency records", extra={"count": purged})
    return purged


CRON_JOBS: list[Any] = [
    cron(purge_idempotency_records, minute=set(range(0, 60, 10)), unique=True),
]


def stopping() -> None:
    """Re-raise the cancellation a failure hid: a task told to stop stays stopped.

    Cancelling a task inside a transaction makes the rollback raise (the connection
    was mid-query), and a loop that retries after any ``Exception`` would then go on
    forever, holding the process's shutdown with it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
