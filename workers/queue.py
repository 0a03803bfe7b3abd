"""The one place that enqueues jobs: deterministic job ids, UTC-aware defer instants."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime

import redis.exceptions
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job

from sla.schemas import SlaJob

log = logging.getLogger("workers.queue")

# Bulk work: Stripe events, webhook deliveries, overage billing, housekeeping.
QUEUE_NAME = "support-billing"
# Breach credits and the SLA sweep: never behind bulk work (deadlines are the clock's).
DEADLINE_QUEUE = "support-billing:deadlines"
# How long a request waits on Redis to enqueue the follow-up of a committed write.
AFTER_COMMIT_TIMEOUT = 2.0
# Seconds a Redis command may take before it counts as an outage (arq uses no blocking reads).
REDIS_SOCKET_TIMEOUT = 5.0
REDIS_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    TimeoutError,
)


def redis_settings(redis_url: str) -> RedisSettings:
    return RedisSettings.from_dsn(redis_url)


async def connect(redis_url: str, *, wait: bool = True) -> ArqRedis:
    """A Redis pool for enqueueing; ``wait=False`` does not wait for Redis to answer.

    The API connects without waiting: it must start (and serve what needs only
    PostgreSQL) while Redis is away; redis-py connects on the first command.
    """
    if wait:
        return await create_pool(redis_settings(redis_url), default_queue_name=QUEUE_NAME)
    settings = redis_settings(redis_url)
    pool = ArqRedis(
        host=settings.host,
        port=settings.port,
        unix_socket_path=settings.unix_socket_path,
        db=settings.database,
        username=settings.username,
        password=settings.password,
        ssl=settings.ssl,
        socket_connect_timeout=settings.conn_timeout,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        encoding="utf8",
    )
    pool.default_queue_name = QUEUE_NAME
    return pool


def _job_id(kind: str, *parts: object) -> str:
    """Same work, same id: arq then refuses the duplicate while the first is queued or kept."""
    return ":".join([kind, *(str(p) for p in parts)])


def _defer_until(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("defer instants must be aware")
    return at.astimezone(UTC)


async def _enqueue(
    redis: ArqRedis,
    function: str,
    job_id: str,
    *args: object,
    defer_until: datetime | None = None,
    queue_name: str = QUEUE_NAME,
) -> Job | None:
    """One job, in one round trip (arq's own enqueue takes four); None when a duplicate."""
    defer = _defer_until(defer_until) if defer_until else None
    queued = await _enqueue_many(redis, queue_name, [(function, job_id, args, defer)])
    return Job(job_id, redis, _queue_name=queue_name) if queued else None


async def after_commit(step: Awaitable[object], what: str) -> bool:
    """Enqueue the follow-up of a write that has committed; False when Redis is away.

    The write stands either way (a committed incident is answered as created): every
    job has a sweep that re-derives it from PostgreSQL, so Redis being down or slow
    delays the follow-up instead of failing the request.
    """
    try:
        async with asyncio.timeout(AFTER_COMMIT_TIMEOUT):
            await step
    except REDIS_DOWN as e:
        log.warning("could not enqueue %s; its sweep will: %r", what, e)
        return False
    return True


async def ping(redis: ArqRedis) -> bool:
    return bool(await redis.ping())


async def enqueue_noop(redis: ArqRedis, token: str) -> Job | None:
    """A job that does nothing but prove the queue round-trip (health and tests)."""
    return await _enqueue(redis, "noop", _job_id("noop", token), token)


async def enqueue_dispatch(redis: ArqRedis, event_id: str) -> Job | None:
    """Nudge the webhook dispatcher after committing ``event_id`` (the cron also finds it)."""
    return await _enqueue(redis, "dispatch_webhooks", _job_id("dispatch_webhooks", event_id))


async def enqueue_webhook_delivery(
    redis: ArqRedis, delivery_id: str, due_at: datetime, *, deferred: bool = False
) -> Job | None:
    """One attempt of a webhook delivery due at ``due_at``; ``deferred`` waits for that instant.

    The id carries the due instant: a retry or a redelivery is a new job, while the sweep
    re-finding an attempt that is already queued is refused as a duplicate.
    """
    return await _enqueue(
        redis,
        "deliver_webhook",
        _job_id("deliver_webhook", delivery_id, int(due_at.timestamp() * 1000)),
        delivery_id,
        defer_until=due_at if deferred else None,
    )


# ---------------------------------------------------------------- billing


async def enqueue_stripe_event(redis: ArqRedis, event_id: str) -> Job | None:
    """Apply one stored Stripe event (the job is a no-op once it has been applied)."""
    return await _enqueue(
        redis, "process_stripe_event", _job_id("stripe_event", event_id), event_id
    )


async def enqueue_catch_up(redis: ArqRedis, token: str) -> Job | None:
    """Pull missed events from Stripe now (the cron does it every STRIPE_CATCHUP_SECONDS)."""
    return await _enqueue(redis, "catch_up_stripe_events", _job_id("catch_up_stripe_events", token))


async def enqueue_stripe_replay(redis: ArqRedis, event_id: str, attempt: str) -> Job | None:
    return await _enqueue(
        redis, "process_stripe_event", _job_id("stripe_event", event_id, attempt), event_id
    )


# ---------------------------------------------------------------- sla


def _sla_job(job: SlaJob) -> tuple[str, str, tuple[object, ...], datetime | None]:
    """(function, job id, arguments, defer until) of one SLA job; ids are ``kind:incident:µs``.

    A credit has one id per breach (its instant, ``sla.incident.micros``): the sweep
    offering it again while it is queued or its result kept is refused as a duplicate.
    """
    kind, incident_id, ts = job.kind, job.incident_id, job.ts
    job_id = _job_id(kind, incident_id, ts)
    if kind == "sla_credit":
        return "settle_breach_credit", job_id, (incident_id,), None
    raise ValueError(f"unknown SLA job kind {kind!r}")


# arq's enqueue_job, for many jobs in one round trip: each job is written only when
# neither it nor its kept result exists (the same duplicate rule as arq's WATCH/MULTI).
_ENQUEUE_MANY_LUA = """
local queued = 0
for n = 0, (#ARGV / 4) - 1 do
  local job_key, result_key = KEYS[2 * n + 2], KEYS[2 * n + 3]
  if redis.call('EXISTS', job_key, result_key) == 0 then
    redis.call('PSETEX', job_key, ARGV[4 * n + 3], ARGV[4 * n + 4])
    redis.call('ZADD', KEYS[1], ARGV[4 * n + 2], ARGV[4 * n + 1])
    queued = queued + 1
  end
end
return queued
"""


Queued = tuple[str, str, tuple[object, ...], datetime | None]  # function, id, args, defer


async def _enqueue_many(redis: ArqRedis, queue_name: str, jobs: list[Queued]) -> int:
    """arq's enqueue_job for many jobs, a chunk of them per round trip; how many were new.

    The same duplicate rule as arq's (a job whose key or kept result exists is refused)
    in one script call instead of arq's WATCH/EXISTS/MULTI/EXEC round trips per job.
    """
    from arq.constants import job_key_prefix, result_key_prefix
    from arq.jobs import serialize_job
    from arq.utils import timestamp_ms, to_unix_ms

    script = getattr(redis, "_support_billing_enqueue", None)
    if script is None:  # registered once per connection pool (the script's SHA is kept)
        script = redis.register_script(_ENQUEUE_MANY_LUA)
        redis._support_billing_enqueue = script  # type: ignore[attr-defined]
    queued = 0
    for start in range(0, len(jobs), _CHUNK):
        keys: list[str] = [queue_name]
        argv: list[bytes | str | int] = []
        now = timestamp_ms()
        for function, job_id, args, defer in jobs[start : start + _CHUNK]:
            score = to_unix_ms(defer) if defer is not None else now
            payload = serialize_job(function, args, {}, None, now, serializer=redis.job_serializer)
            keys += [job_key_prefix + job_id, result_key_prefix + job_id]
            argv += [job_id, score, score - now + redis.expires_extra_ms, payload]
        queued += int(await script(keys=keys, args=argv))
    return queued


_CHUNK = 500


async def enqueue_sla_jobs(redis: ArqRedis, jobs: Iterable[SlaJob]) -> int:
    """Enqueue the follow-ups SLA changes returned (after their transactions committed).

    A batch of breaches schedules a credit each and a sweep may re-offer thousands, a
    chunk per round trip. Returns how many were new (a job still queued, or whose result
    is kept, is a duplicate).
    """
    return await _enqueue_many(redis, DEADLINE_QUEUE, [_sla_job(j) for j in jobs])


async def enqueue_sla_sweep(redis: ArqRedis, token: str) -> Job | None:
    """Run the SLA sweep now (the cron runs it every ``SLA_SWEEP_SECONDS``)."""
    return await _enqueue(
        redis, "sla_sweep", _job_id("sla_sweep", token), queue_name=DEADLINE_QUEUE
    )
