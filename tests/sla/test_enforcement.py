"""Deadline enforcement with the real arq worker: warnings, breaches, escalation, the sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from common.clock import frozen, utcnow
from common.config import get_settings
from sla.incident import micros
from sla.tables import Incident as IncidentRow
from sla.tables import SlaEvent
from tests.conftest import drain_workers
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


async def test_running_the_same_job_twice_changes_nothing(
    open_incident: Open, customer: dict[str, Any], redis: ArqRedis
) -> None:
    incident = (
        await open_incident(customer["id"], "W-3", opened_at=ago(hours=24, minutes=1))
    ).json()
    ctx = {"redis": redis}
    ts = micros(parse(incident["due_at"]))
    assert await sla_jobs.check_deadline(ctx, incident["id"], "sla_due", ts) == "breached"
    before = await IncidentRow.select().first()
    events = await SlaEvent.count()
    outbox = await OutboundEvent.count()
    assert await sla_jobs.check_deadline(ctx, incident["id"], "sla_due", ts) == "stale"
    assert await IncidentRow.select().first() == before
    assert await SlaEvent.count() == events
    assert await OutboundEvent.count() == outbox
    assert await sla_jobs.settle_breach_credit(ctx, incident["id"]) == "no credit"
    settled = await IncidentRow.select().first()
    assert await sla_jobs.settle_breach_credit(ctx, incident["id"]) == "stale"
    assert await IncidentRow.select().first() == settled


async def test_a_job_for_a_moved_deadline_is_stale(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    redis: ArqRedis,
) -> None:
    incident = (
        await open_incident(customer["id"], "W-4", opened_at=ago(hours=24, minutes=1))
    ).json()
    r = await client.patch(
        f"/v1/incidents/{incident['id']}", headers=helpdesk_headers, json={"priority": "p2"}
    )
    assert r.status_code == 200
    old_ts = micros(parse(incident["due_at"]))
    result = await sla_jobs.check_deadline({"redis": redis}, incident["id"], "sla_due", old_ts)
    assert result == "stale"
    assert (await _get(client, helpdesk_headers, incident["id"]))["sla_status"] == "active"


async def test_achieved_and_resolved_incidents_are_left_alone_by_their_jobs(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    incident = (
        await open_incident(customer["id"], "W-5", opened_at=ago(hours=23, minutes=59))
    ).json()
    r = await client.post(
        f"/v1/incidents/{incident['id']}/first-response", headers=helpdesk_headers
    )
    assert r.json()["sla_status"] == "achieved"
    ts = micros(parse(incident["due_at"]))
    assert await sla_jobs.check_deadline({"redis": redis}, incident["id"], "sla_due", ts) == "stale"
    await run_worker()  # the three warning checks, already due, find the incident answered
    assert await ledger(incident["id"]) == ["opened", "first_response", "achieved"]
    assert (await _get(client, helpdesk_headers, incident["id"]))["sla_status"] == "achieved"


async def test_the_sweep_breaches_incidents_whose_jobs_were_lost(
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
    await redis.flushdb()  # Redis lost every deadline check
    assert await run_worker() == 0
    await queue.enqueue_sla_sweep(redis, "test")
    await run_worker()
    for incident in overdue:
        body = await _get(client, helpdesk_headers, incident["id"])
        assert body["sla_status"] == "breached"
        assert body["service_credit"] is not None  # the credit job ran too
        assert await ledger(incident["id"]) == ["opened", "breached", "escalated"]
    assert await ledger(warned["id"]) == ["opened", "warning"]
    assert (await _get(client, helpdesk_headers, fresh["id"]))["sla_status"] == "active"
    # A second sweep finds nothing left to do.
    await queue.enqueue_sla_sweep(redis, "again")
    await run_worker()
    assert await SlaEvent.count() == 3 * 3 + 2 + 1


async def test_two_workers_never_breach_or_credit_twice(
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
    # Both workers also race the sweep over the same rows.
    await queue.enqueue_sla_sweep(redis, "race")

    for _ in range(2):  # the breaches enqueue credit jobs behind the first pass
        workers = [*drain_workers(services.redis_url), *drain_workers(services.redis_url)]
        try:
            await asyncio.gather(*(w.main() for w in workers))
        finally:
            for w in workers:
                await w.close()
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
    ts = micros(row["next_escalation_at"])
    assert await sla_jobs.escalate_incident({"redis": redis}, incident["id"], ts) == "stale"
    assert await ledger(incident["id"]) == [
        "opened",
        "breached",
        "escalated",
        "escalated",
        "first_response",
    ]


async def test_escalation_job_raises_the_level_when_due(
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
    ts = micros(level_two_at)
    # The breach deferred the job for level 2 to its instant, under a deterministic id.
    deferred = Job(f"sla_escalate:{incident['id']}:{ts}", redis, _queue_name=queue.DEADLINE_QUEUE)
    assert await deferred.status() == JobStatus.deferred
    # An hour later (the service's clock) the job runs.
    with frozen(level_two_at + timedelta(seconds=1)):
        assert await sla_jobs.escalate_incident({"redis": redis}, incident["id"], ts) == "escalated"
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
    """Checks due more than a day ago are enqueued to run now (arq would refuse their TTL)."""
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
    ts = micros(parse(incident["due_at"]))
    assert (
        await sla_jobs.check_deadline({"redis": redis}, incident["id"], "sla_due", ts) == "breached"
    )
    await redis.flushdb()  # the credit job is lost with Redis
    assert (await _get(client, helpdesk_headers, incident["id"]))["service_credit"] is None
    with frozen(utcnow() + timedelta(minutes=2)):  # past the sweep's grace for credits
        await queue.enqueue_sla_sweep(redis, "credits")
        await run_worker()
    body = await _get(client, helpdesk_headers, incident["id"])
    assert body["service_credit"]["kind"] == "none"
