"""The one place that enqueues jobs: deterministic job ids, UTC-aware defer instants."""

from __future__ import annotations

from datetime import UTC, datetime

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job

QUEUE_NAME = "support-billing"


def redis_settings(redis_url: str) -> RedisSettings:
    return RedisSettings.from_dsn(redis_url)


async def connect(redis_url: str) -> ArqRedis:
    return await create_pool(redis_settings(redis_url), default_queue_name=QUEUE_NAME)


def _job_id(kind: str, *parts: object) -> str:
    """Same work, same id: arq then refuses the duplicate while the first is queued or kept."""
    return ":".join([kind, *(str(p) for p in parts)])


def _defer_until(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("defer instants must be aware")
    return at.astimezone(UTC)


async def _enqueue(
    redis: ArqRedis, function: str, job_id: str, *args: object, defer_until: datetime | None = None
) -> Job | None:
    return await redis.enqueue_job(
        function,
        *args,
        _job_id=job_id,
        _queue_name=QUEUE_NAME,
        _defer_until=_defer_until(defer_until) if defer_until else None,
    )


async def ping(redis: ArqRedis) -> bool:
    return bool(await redis.ping())


async def enqueue_noop(redis: ArqRedis, token: str) -> Job | None:
    """A job that does nothing but prove the queue round-trip (health and tests)."""
    return await _enqueue(redis, "noop", _job_id("noop", token), token)
