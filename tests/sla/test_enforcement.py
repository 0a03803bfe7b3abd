"""Deadline enforcement: the worker's deadline clock (warnings, breaches, escalation) over
real PostgreSQL, the credit jobs on real arq, the sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from arq.connections import ArqRedis

from common.clock import frozen, utcnow
from common.config import get_settings
from sla import enforcement
from sla.tables import Incident as IncidentRow
from sla.tables import SlaEvent
from tests.conftest import drain, drain_workers
from tests.sla.conftest import Open, ago, ledger, outbound, parse
from webhooks.tables import OutboundEvent
from workers import queue, sla_jobs

RunWorker = Callable[[], Awaitable[int]]


async def _get(client: httpx.AsyncClient, headers: dict[str, str], incident_id: str) -> Any:
    r = await client.get(f"/v1/incidents/{incident_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_an_overdue_incident_is_breached_by_the_worker(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    run_worker: RunWorker,
) -> None:
    # P1 is 24 h; opened 24 h 10 min ago: due 10 minutes ago, every warning long gone.
    incident = (
        await open_incident(customer["id"], "W-1", opened_at=ago(hours=24, minutes=10))
    ).json()
    assert incident["sla_status"] == "active"
    assert await run_worker() >= 1
    body = await _get(client, helpdesk_headers, incident["id"])
    assert body["sla_status"] == "breached"
    assert parse(body["breached_at"]) >= parse(body["due_at"])
    assert body["escalation_level"] == 1
    # Standard tier: the credit policy pays nothing, and says so.
    assert body["service_credit"]["kind"] == "none"
    # Warnings past the deadline are not sent: the breach is what matters now.
    assert await ledger(incident["id"]) == ["opened", "breached", "escalated"]
    assert await outbound(incident["id"]) == ["sla.breached", "sla.escalated"]
    r = await client.get(f"/v1/incidents/{incident['id']}/events", headers=helpdesk_headers)
    breached = r.json()["data"][1]
    assert breached["type"] == "breached"
    assert breached["data"]["due_at"] == incident["due_at"]
    assert breached["data"]["lateness_ms"] >= 0
    # Level 2 is due an hour after the deadline: scheduled, not yet run.
    row = await IncidentRow.select(IncidentRow.next_escalation_at).first()
    assert row is not None
    assert row["next_escalation_at"] == parse(body["due_at"]) + timedelta(minutes=60)
    assert await run_worker() == 0


async def test_warnings_are_recorded_once_each_and_in_order(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    run_worker: RunWorker,
) -> None:
    # 20 h into a 24 h target: the 50 % (12 h) and 75 % (18 h) warnings are due, 90 % is not.
    incident = (await open_incident(customer["id"], "W-2", opened_at=ago(hours=20))).json()
    await run_worker()
    assert await ledger(incident["id"]) == ["opened", "warning", "warning"]
    assert await outbound(incident["id"]) == ["sla.warning", "sla.warning"]
    r = await client.get(f"/v1/incidents/{incident['id']}/events", headers=helpdesk_headers)
    assert [e["data"]["fraction"] for e in r.json()["data"][1:]] == [0.5, 0.75]
    assert (await _get(client, helpdesk_headers, incident["id"]))["sla_status"] == "active"
    await run_worker()
    assert await ledger(incident["id"]) == ["opened", "warning", "warning"]


async def test_ticking_twice_changes_nothing(
    open_incident: Open, customer: dict[str, Any], redis: ArqRedis
) -> None:
    incident = (
        await open_incident(customer["id"], "W-3", opened_at=ago(hours=24, minutes=1))
    ).json()
    first = await enforcement.tick()
    assert (first.breached, first.escalated, first.more) == (1, 0, False)
    assert [(j.kind, j.incident_id) for j in first.jobs] == [("sla_credit", incident["id"])]
    # Nothing else is due now: the next instant is level 2 of the escalation ladder.
    assert first.next_at == parse(incident["due_at"]) + timedelta(minutes=60)
    before = await IncidentRow.select().first()
    events = await SlaEvent.count()
    outbox = await OutboundEvent.count()
    again = await enforcement.tick()
    assert (again.breached, again.warned, again.escalated, again.jobs) == (0, 0, 0, [])
    assert await IncidentRow.select().first() == before
    assert await SlaEvent.count() == events
    assert await OutboundEvent.count() == outbox
    ctx = {"redis": redis}
    assert await sla_jobs.settle_breach_credit(ctx, incident["id"]) == "no credit"
    settled = await IncidentRow.select().first()
    assert await sla_jobs.settle_breach_credit(ctx, incident["id"]) == "stale"
    assert await IncidentRow.select().first() == settled


async def test_the_clock_keeps_a_moved_deadline_not_the_old_one(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    run_worker: RunWorker,
) -> None:
    # Overdue as P1 (24 h); P2's 48 h target moves the deadline a day ahead.
    incident = (
        await open_incident(customer["id"], "W-4", opened_at=ago(hours=24, minutes=1))
    ).json()
    r = await client.patch(
        f"/v1/incidents/{incident['id']}", headers=helpdesk_headers, json={"priority": "p2"}
    )
    assert r.status_code == 200
    moved = parse(r.json()["due_at"])
    assert moved > utcnow()
    await run_worker()
    body = await _get(client, helpdesk_headers, incident["id"])
    assert body["sla_status"] == "active"
    tick = await enforcement.tick()
    assert tick.breached == 0
    assert tick.next_at is not None and tick.next_at <= moved
    with frozen(moved + timedelta(seconds=1)):
        assert (await enforcement.tick()).breached == 1
    assert (await _get(client, helpdesk_headers, incident["id"]))["sla_status"] == "breached"


async def test_achieved_incidents_are_left_alone_by_the_clock(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    run_worker: RunWorker,
) -> None:
    incident = (
        await open_incident(customer["id"], "W-5", opened_at=ago(hours=23, minutes=59))
    ).json()
    r = await client.post(
        f"/v1/incidents/{incident['id']}/first-response", headers=helpdesk_headers
    )
    assert r.json()["sla_status"] == "achieved"
    with frozen(parse(incident["due_at"]) + timedelta(minutes=1)):
        assert (await enforcement.tick()).next_at is None  # nothing left to enforce
    await run_worker()  # its warnings were all due: the answer came first
    assert await ledger(incident["id"]) == ["opened", "first_response", "achieved"]
    assert (await _get(client, helpdesk_headers, incident["id"]))["sla_status"] == "achieved"


async def test_a_flushed_redis_loses_no_deadline(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    overdue = [
        (await open_incident(customer["id"], f"S-{i}", opened_at=ago(hours=24, minutes=5))).json()
        for i in range(3)
    ]
    warned = (await open_incident(customer["id"], "S-w", opened_at=ago(hours=13))).json()
    fresh = (await open_incident(customer["id"], "S-f")).json()
    await redis.flushdb()  # deadlines are not in Redis: nothing to lose
    assert await run_worker() >= len(overdue) + 1
    for incident in overdue:
        body = await _get(client, helpdesk_headers, incident["id"])
        assert body["sla_status"] == "breached"
        assert body["service_credit"] is not None  # the credit job ran too
        assert await ledger(incident["id"]) == ["opened", "breached", "escalated"]
    assert await ledger(warned["id"]) == ["opened", "warning"]
    assert (await _get(client, helpdesk_headers, fresh["id"]))["sla_status"] == "active"
    # A second pass (clock, sweep, queues) finds nothing left to do.
    await queue.enqueue_sla_sweep(redis, "again")
    await run_worker()
    assert await SlaEvent.count() == 3 * 3 + 2 + 1


async def _clock(batch: int) -> int:
    moved = 0
    while True:
        tick = await enforcement.tick(batch=batch)
        moved += tick.breached
        if not tick.more:
            return moved


async def test_two_clocks_and_workers_never_breach_or_credit_twice(
    open_incident: Open,
    customer: dict[str, Any],
    redis: ArqRedis,
    services: Any,
    clean_db: None,
) -> None:
    ids = [
        (
            await open_incident(customer["id"], f"D-{i}", opened_at=ago(hours=24, seconds=30 + i))
        ).json()["id"]
        for i in range(40)
    ]
    # Two clocks in small batches split the rows (SKIP LOCKED) and race each other.
    counts = await asyncio.gather(_clock(3), _clock(3))
    left = await IncidentRow.select(IncidentRow.id, IncidentRow.sla_status).where(
        IncidentRow.sla_status != "breached"
    )
    assert (sum(counts), left) == (len(ids), [])
    assert all(n > 0 for n in counts), counts
    # Their credits were dropped with the ticks: the sweep re-offers them, and two pairs
    # of workers race over the same jobs.
    with frozen(utcnow() + enforcement.CREDIT_GRACE + timedelta(seconds=1)):
        await queue.enqueue_sla_sweep(redis, "race")
        workers = [*drain_workers(services.redis_url), *drain_workers(services.redis_url)]
        try:
            await asyncio.gather(*(w.main() for w in workers))
        finally:
            for w in workers:
                await w.close()
        await drain(services.redis_url)
    for incident_id in ids:
        assert await ledger(incident_id) == ["opened", "breached", "escalated"]
    breached = await OutboundEvent.count().where(OutboundEvent.type == "sla.breached")
    assert breached == len(ids)
    settled = await IncidentRow.count().where(IncidentRow.credit_status == "none")
    assert settled == len(ids)


async def test_escalation_climbs_the_ladder_until_answered(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    ladder = get_settings().sla_escalation_minutes
    assert ladder == (0, 60, 240)
    # Due 61 minutes ago: levels 1 and 2 are both reached at the breach.
    incident = (
        await open_incident(customer["id"], "E-1", opened_at=ago(hours=25, minutes=1))
    ).json()
    await run_worker()
    body = await _get(client, helpdesk_headers, incident["id"])
    assert body["escalation_level"] == 2
    assert await outbound(incident["id"]) == ["sla.breached", "sla.escalated", "sla.escalated"]
    # Level 3 falls due at due_at + 240 min.
    row = await IncidentRow.select(IncidentRow.next_escalation_at).first()
    assert row is not None
    assert row["next_escalation_at"] == parse(body["due_at"]) + timedelta(minutes=240)
    # A late first response stops the ladder.
    r = await client.post(
        f"/v1/incidents/{incident['id']}/first-response", headers=helpdesk_headers
    )
    assert r.status_code == 200
    assert r.json()["sla_status"] == "breached"
    with frozen(row["next_escalation_at"] + timedelta(minutes=1)):
        tick = await enforcement.tick()
    assert (tick.escalated, tick.next_at) == (0, None)
    assert await ledger(incident["id"]) == [
        "opened",
        "breached",
        "escalated",
        "escalated",
        "first_response",
    ]


async def test_the_clock_raises_the_escalation_level_when_due(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    incident = (
        await open_incident(customer["id"], "E-2", opened_at=ago(hours=24, minutes=5))
    ).json()
    await run_worker()
    level_two_at = parse(incident["due_at"]) + timedelta(minutes=60)
    assert (await enforcement.tick()).next_at == level_two_at
    # An hour later (the service's clock) the clock raises it, once.
    with frozen(level_two_at + timedelta(seconds=1)):
        assert (await enforcement.tick()).escalated == 1
        assert (await enforcement.tick()).escalated == 0
    body = await _get(client, helpdesk_headers, incident["id"])
    assert body["escalation_level"] == 2
    assert await outbound(incident["id"]) == ["sla.breached", "sla.escalated", "sla.escalated"]
    row = await IncidentRow.select(IncidentRow.next_escalation_at).first()
    assert row is not None
    assert row["next_escalation_at"] == parse(incident["due_at"]) + timedelta(minutes=240)


async def test_an_incident_opened_days_ago_is_breached_at_once(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    run_worker: RunWorker,
) -> None:
    """A deadline days past is breached at once, at the level of the ladder reached."""
    r = await open_incident(customer["id"], "OLD-1", opened_at=ago(days=3))
    assert r.status_code == 201, r.text
    await run_worker()
    body = await _get(client, helpdesk_headers, r.json()["id"])
    assert body["sla_status"] == "breached"
    assert body["escalation_level"] == 3


async def test_the_sweep_settles_a_credit_whose_job_was_lost(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    incident = (
        await open_incident(customer["id"], "CR-1", opened_at=ago(hours=24, minutes=2))
    ).json()
    tick = await enforcement.tick()  # the credit job it returns is lost (never enqueued)
    assert tick.breached == 1 and len(tick.jobs) == 1
    assert (await _get(client, helpdesk_headers, incident["id"]))["service_credit"] is None
    with frozen(utcnow() + timedelta(minutes=2)):  # past the sweep's grace for credits
        await queue.enqueue_sla_sweep(redis, "credits")
        await run_worker()
    body = await _get(client, helpdesk_headers, incident["id"])
    assert body["service_credit"]["kind"] == "none"


async def test_the_worker_clock_breaches_on_time_with_nothing_queued(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    redis: ArqRedis,
) -> None:
    # Due 1.5 s from now: opened 24 h minus 1.5 s ago under the 24 h P1 target.
    incident = (
        await open_incident(
            customer["id"], "CLK-1", opened_at=ago(hours=24) + timedelta(seconds=1.5)
        )
    ).json()
    await redis.flushdb()  # nothing in Redis speaks for it
    state = sla_jobs.ClockState()
    clock = asyncio.create_task(sla_jobs.run_clock(redis, state))
    try:
        # Until the clock has counted its tick (the breach commits a moment before).
        for _ in range(100):
            if state.breached:
                break
            await asyncio.sleep(0.05)
    finally:
        clock.cancel()
        await asyncio.gather(clock, return_exceptions=True)
    body = await _get(client, helpdesk_headers, incident["id"])
    assert body["sla_status"] == "breached"
    lateness = parse(body["breached_at"]) - parse(body["due_at"])
    assert timedelta(0) <= lateness < timedelta(seconds=1), lateness
    assert state.breached == 1 and state.error is None
    # Its credit was queued by the clock, once.
    assert await redis.zcard(queue.DEADLINE_QUEUE) == 1


def test_a_worker_whose_clock_stopped_ticking_is_unhealthy() -> None:
    from workers.process import HEALTHY_WITHIN_SECONDS, Health

    health = Health()
    now = health.clock.ticked_at
    assert health.healthy(now)
    health.clock.ticked_at = now - HEALTHY_WITHIN_SECONDS - 1
    assert not health.healthy(now)
    assert health.report()["deadline_clock"]["ticked_seconds_ago"] > HEALTHY_WITHIN_SECONDS


async def test_a_clock_whose_rollback_hides_its_cancellation_still_stops(
    redis: ArqRedis, monkeypatch: Any
) -> None:
    """Cancelled mid-transaction, the rollback raises instead (the connection was mid-query):
    the clock must stop all the same, or the worker's shutdown waits on it for ever."""
    ticking = asyncio.Event()

    async def tick_whose_rollback_fails(batch: int = 200) -> enforcement.Tick:
        ticking.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionResetError("rollback on a connection mid-query") from None
        raise AssertionError("unreachable")

    monkeypatch.setattr(enforcement, "tick", tick_whose_rollback_fails)
    clock = asyncio.create_task(sla_jobs.run_clock(redis, sla_jobs.ClockState()))
    await asyncio.wait_for(ticking.wait(), 5)
    clock.cancel()
    done, _ = await asyncio.wait([clock], timeout=2)
    assert clock in done and clock.cancelled()


async def test_the_credit_queue_waits_while_the_clock_is_behind(
    redis: ArqRedis, services: Any, clean_db: None
) -> None:
    """A burst of deadlines goes first: the credits' worker takes no job until the clock
    has caught up, then takes them all."""
    from workers import runtime
    from workers import settings as ws
    from workers.process import ServiceWorker

    clock = sla_jobs.ClockState(behind=True)
    worker = ServiceWorker(
        functions=ws.DEADLINE_FUNCTIONS,
        redis_settings=queue.redis_settings(services.redis_url),
        queue_name=queue.DEADLINE_QUEUE,
        on_startup=runtime.startup,
        on_shutdown=runtime.shutdown,
        handle_signals=False,
        burst=True,
        poll_delay=0,
        yield_to=clock,
    )
    await queue.enqueue_sla_sweep(redis, "held")
    try:
        worker._pool = redis
        worker.ctx["redis"] = redis
        await worker._poll_iteration()
        assert worker.jobs_complete == 0 and not worker.tasks
        assert await redis.zcard(queue.DEADLINE_QUEUE) == 1
        clock.behind = False
        await worker._poll_iteration()
        await asyncio.gather(*worker.tasks.values())
        await worker._poll_iteration()
        assert worker.jobs_complete == 1
        assert worker.allow_pick_jobs
    finally:
        worker._pool = None
        await worker.close()
