"""The arq worker: jobs enqueued through workers/queue.py run once, ids are deterministic."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from workers import queue


async def test_enqueued_job_runs_in_a_burst_worker(
    redis: ArqRedis, run_worker: Callable[[], Awaitable[int]]
) -> None:
    job = await queue.enqueue_noop(redis, "hello")
    assert job is not None
    assert await run_worker() == 1
    assert await job.status() == JobStatus.complete
    assert await job.result(timeout=1) == "hello"


async def test_the_same_job_id_is_enqueued_once(
    redis: ArqRedis, run_worker: Callable[[], Awaitable[int]]
) -> None:
    first = await queue.enqueue_noop(redis, "dup")
    second = await queue.enqueue_noop(redis, "dup")
    assert first is not None
    assert second is None
    assert await run_worker() == 1


async def test_deferred_job_waits_for_its_instant(
    redis: ArqRedis, run_worker: Callable[[], Awaitable[int]]
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    job = await queue._enqueue(
        redis, "noop", queue._job_id("noop", "later"), "x", defer_until=later
    )
    assert job is not None
    assert await run_worker() == 0
    assert await Job(job.job_id, redis, _queue_name=queue.QUEUE_NAME).status() == JobStatus.deferred


def test_defer_instants_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        queue._defer_until(datetime(2026, 1, 1))  # noqa: DTZ001 - the naive value under test
    assert queue._defer_until(datetime(2026, 1, 1, 1, tzinfo=UTC) + timedelta(0)).tzinfo is UTC


def test_job_ids_are_deterministic() -> None:
    assert queue._job_id("due", "inc_1", 1700000000) == "due:inc_1:1700000000"
