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


async def enqueue_stripe_replay(redis: ArqRedis, event_id: str, attempt: str) -> Job | None:
    return await _enqueue(
        redis, "process_stripe_event", _job_id("stripe_event", event_id, attempt), event_id
    )


# ---------------------------------------------------------------- sla


def _not_before_now(at: datetime) -> datetime | None:
    """A past instant runs now: arq would give a job deferred into the past by more than a
    day a negative time-to-live (an error), and it is due anyway."""
    from common.clock import utcnow  # the one clock; this module keeps its imports minimal

    return at if at > utcnow() else None


def _micros(at: datetime) -> int:
    """Exact epoch microseconds: the instant in an SLA job's id and arguments."""
    delta = _defer_until(at) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


async def enqueue_check_deadline(
    redis: ArqRedis, incident_id: str, kind: str, at: datetime
) -> Job | None:
    """``check_deadline`` at a warning instant (``sla_warning``) or the deadline (``sla_due``).

    Id ``kind:incident:µs``: re-scheduling an unchanged instant is refused as a duplicate,
    a moved deadline is a new job and the old one finds itself stale.
    """
    ts = _micros(at)
    return await _enqueue(
        redis,
        "check_deadline",
        _job_id(kind, incident_id, ts),
        incident_id,
        kind,
        ts,
        defer_until=_not_before_now(at),
    )


async def enqueue_escalation(redis: ArqRedis, incident_id: str, at: datetime) -> Job | None:
    ts = _micros(at)
    return await _enqueue(
        redis,
        "escalate_incident",
        _job_id("sla_escalate", incident_id, ts),
        incident_id,
        ts,
        defer_until=_not_before_now(at),
    )


async def enqueue_breach_credit(
    redis: ArqRedis, incident_id: str, breached_at: datetime
) -> Job | None:
    """Settle the breach credit now; one id per breach, so the sweep cannot double it."""
    return await _enqueue(
        redis,
        "settle_breach_credit",
        _job_id("sla_credit", incident_id, _micros(breached_at)),
        incident_id,
    )


async def enqueue_sla_job(redis: ArqRedis, kind: str, incident_id: str, at: datetime) -> Job | None:
    """Route one ``sla.schemas.SlaJob`` (kind, incident, instant) to its enqueue function."""
    if kind in ("sla_warning", "sla_due"):
        return await enqueue_check_deadline(redis, incident_id, kind, at)
    if kind == "sla_escalate":
        return await enqueue_escalation(redis, incident_id, at)
    if kind == "sla_credit":
        return await enqueue_breach_credit(redis, incident_id, at)
    raise ValueError(f"unknown SLA job kind {kind!r}")


async def enqueue_sla_sweep(redis: ArqRedis, token: str) -> Job | None:
    """Run the SLA sweep now (the cron runs it every ``SLA_SWEEP_SECONDS``)."""
    return await _enqueue(redis, "sla_sweep", _job_id("sla_sweep", token))
