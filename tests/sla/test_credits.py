"""Breach credits end to end: Stripe emulator, webhooks, the worker, exactly once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from arq.connections import ArqRedis

from billing import service as billing
from billing.tables import ServiceCredit
from common.clock import frozen, utcnow
from sla.tables import SlaEvent
from tests.billing.conftest import BoughtByCheckout, Stripe, Subscribed
from tests.sla.conftest import Open, ago, iso, ledger, outbound, parse
from webhooks.tables import OutboundEvent
from workers import queue, sla_jobs

RunWorker = Callable[[], Awaitable[int]]


async def _stripe_objects(stripe_emu: Stripe, path: str, incident_id: str) -> list[Any]:
    """The emulator's objects made for ``incident_id`` (it serves every test of the session)."""
    page = await stripe_emu.get(path, limit=100)
    return [o for o in page["data"] if (o.get("metadata") or {}).get("incident_id") == incident_id]


async def test_fast_track_quote_matches_the_incident_and_its_breach_is_refunded_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    finance_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    stripe_emu: Stripe,
    bought_by_checkout: BoughtByCheckout,
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    cid = customer["id"]
    await bought_by_checkout(cid)
    url = f"/v1/customers/{cid}/entitlements/quote"
    now = (await client.get(url, headers=helpdesk_headers, params={"priority": "p1"})).json()
    assert now["fast_track"]["credits"] == 1
    # Standard tier: P1 24 business hours (here: the whole week), fast-track 4 h around the clock.
    opened_at = ago(hours=4, minutes=30).replace(microsecond=0)
    r = await client.get(
        url, headers=helpdesk_headers, params={"priority": "p1", "opened_at": iso(opened_at)}
    )
    assert r.status_code == 200, r.text
    quote = r.json()
    assert quote["fast_track"]["faster"] is True
    assert parse(quote["fast_track"]["due_at"]) == opened_at + timedelta(hours=4)

    plain = (await open_incident(cid, "Q-plain", "p1", opened_at=opened_at)).json()
    fast = (await open_incident(cid, "Q-fast", "p1", opened_at=opened_at, fast_track=True)).json()
    assert plain["due_at"] == quote["due_at"]
    assert fast["due_at"] == quote["fast_track"]["due_at"]
    assert fast["fast_track"] is True
    assert fast["target"]["source"] == "fast_track"
    # The credit is spent: a second fast-track incident is refused and nothing is opened.
    refused = await open_incident(cid, "Q-none", "p1", fast_track=True)
    assert refused.status_code == 422, refused.text

    # Due half an hour ago: the worker breaches it and refunds the fast-track payment.
    await run_worker()
    body = (await client.get(f"/v1/incidents/{fast['id']}", headers=helpdesk_headers)).json()
    assert body["sla_status"] == "breached"
    assert body["service_credit"]["kind"] == "refund"
    assert body["service_credit"]["status"] == "issued"
    assert await ledger(fast["id"]) == ["opened", "breached", "escalated", "credit_issued"]
    assert await outbound(fast["id"]) == ["sla.breached", "sla.escalated", "service_credit.issued"]
    refunds = await _stripe_objects(stripe_emu, "/v1/refunds", fast["id"])
    assert [r["amount"] for r in refunds] == [14900]

    # Again, from every direction: the job, the sweep, billing itself.
    assert await sla_jobs.settle_breach_credit({"redis": redis}, fast["id"]) == "stale"
    await queue.enqueue_sla_sweep(redis, "again")
    await run_worker()
    again = await billing.issue_breach_credit(fast["id"])
    assert again.id == body["service_credit"]["id"]
    assert len(await _stripe_objects(stripe_emu, "/v1/refunds", fast["id"])) == 1
    assert await ServiceCredit.count().where(ServiceCredit.incident_id == fast["id"]) == 1
    r = await client.get("/v1/service-credits", headers=finance_headers)
    assert [c["kind"] for c in r.json()["data"] if c["incident_id"] == fast["id"]] == ["refund"]
    issued = await OutboundEvent.count().where(OutboundEvent.type == "service_credit.issued")
    assert issued == 1


async def _breached_plan_incident(
    subscribed: Subscribed, open_incident: Open, customer: dict[str, Any], ref: str
) -> dict[str, Any]:
    """A business subscriber's P1 (120 minutes around the clock), opened now."""
    cid = customer["id"]
    await subscribed(cid, "business")
    incident = (await open_incident(cid, ref, "p1")).json()
    assert incident["tier"] == "business"
    return incident


async def _breach_later(redis: ArqRedis, run_worker: RunWorker) -> datetime:
    """Three hours on (the service's clock): the sweep breaches, the credit is attempted."""
    later = utcnow() + timedelta(hours=3)
    with frozen(later):
        await queue.enqueue_sla_sweep(redis, f"later-{later.timestamp()}")
        await run_worker()
    return later


async def test_a_plan_incident_breach_credits_the_latest_invoice_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    incident = await _breached_plan_incident(subscribed, open_incident, customer, "PL-1")
    assert parse(incident["due_at"]) == parse(incident["opened_at"]) + timedelta(minutes=120)
    # Three hours later (the service's clock, not arq's): the sweep finds it overdue.
    with frozen(utcnow() + timedelta(hours=3)):
        await queue.enqueue_sla_sweep(redis, "later")
        await run_worker()
    body = (await client.get(f"/v1/incidents/{incident['id']}", headers=helpdesk_headers)).json()
    assert body["sla_status"] == "breached"
    assert body["escalation_level"] == 2  # breached an hour ago: levels 0 min and 60 min
    assert body["service_credit"]["kind"] == "credit_note"
    events = (
        await client.get(f"/v1/incidents/{incident['id']}/events", headers=helpdesk_headers)
    ).json()["data"]
    credit = next(e for e in events if e["type"] == "credit_issued")
    # 5 % of the 499.00 monthly fee.
    assert credit["data"]["service_credit"]["amount"] == {"amount": 2495, "currency": "usd"}
    notes = await _stripe_objects(stripe_emu, "/v1/credit_notes", incident["id"])
    assert [n["amount"] for n in notes] == [2495]

    assert await sla_jobs.settle_breach_credit({"redis": redis}, incident["id"]) == "stale"
    with frozen(utcnow() + timedelta(hours=3)):
        await queue.enqueue_sla_sweep(redis, "again")
        await run_worker()
    assert len(await _stripe_objects(stripe_emu, "/v1/credit_notes", incident["id"])) == 1
    assert await SlaEvent.count().where(SlaEvent.type == "credit_issued") == 1


async def test_a_credit_stripe_refuses_once_is_asked_again_under_a_new_key(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    from sla import enforcement

    incident = await _breached_plan_incident(subscribed, open_incident, customer, "CR-1")
    await stripe_emu.fault(method="POST", path="/v1/credit_notes", status=400, count=1)
    later = await _breach_later(redis, run_worker)  # breach, then the credit: refused
    row = await ServiceCredit.objects().where(ServiceCredit.incident_id == incident["id"]).first()
    assert row is not None
    assert (row.status, row.refusals, row.attempts) == ("pending", 1, 1)
    assert row.next_attempt_at is not None and row.next_attempt_at > later
    assert "Emulated fault" in (row.last_error or "")
    assert await _stripe_objects(stripe_emu, "/v1/credit_notes", incident["id"]) == []
    # Before its time, nothing is asked; after it, the credit is paid under a new key.
    with frozen(later + timedelta(seconds=1)):
        assert (await enforcement.settle_credit(incident["id"])).retry_at == row.next_attempt_at
    with frozen(row.next_attempt_at + timedelta(seconds=1)):
        assert (await enforcement.settle_credit(incident["id"])).done == "credited"
    notes = await _stripe_objects(stripe_emu, "/v1/credit_notes", incident["id"])
    assert [n["amount"] for n in notes] == [2495]
    keys = {r["idempotency_key"] for r in await stripe_emu.requests(path="/v1/credit_notes")}
    assert {
        f"credit-note-breach-{incident['id']}",
        f"credit-note-breach-{incident['id']}-r1",
    } <= keys
    assert await SlaEvent.count().where(SlaEvent.type == "credit_issued") == 1


async def test_a_credit_refused_past_the_policy_fails_and_an_admin_reissues_it_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    finance_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    open_incident: Open,
    customer: dict[str, Any],
    stripe_emu: Stripe,
    subscribed: Subscribed,
    redis: ArqRedis,
    run_worker: RunWorker,
) -> None:
    from billing import credits
    from sla import enforcement

    incident = await _breached_plan_incident(subscribed, open_incident, customer, "CR-2")
    refusals = len(credits.REFUSAL_BACKOFF) + 1
    await stripe_emu.fault(method="POST", path="/v1/credit_notes", status=400, count=refusals)
    await _breach_later(redis, run_worker)
    for _ in range(refusals - 1):  # each retry falls due and is refused again
        row = (
            await ServiceCredit.objects().where(ServiceCredit.incident_id == incident["id"]).first()
        )
        assert row is not None and row.next_attempt_at is not None
        with frozen(row.next_attempt_at + timedelta(seconds=1)):
            await enforcement.settle_credit(incident["id"])
    failed = await client.get(
        "/v1/service-credits", headers=finance_headers, params={"status": "failed"}
    )
    assert [c["incident_id"] for c in failed.json()["data"]] == [incident["id"]]
    credit = failed.json()["data"][0]
    assert credit["attempts"] == refusals and credit["last_error"]
    body = (await client.get(f"/v1/incidents/{incident['id']}", headers=helpdesk_headers)).json()
    assert body["service_credit"]["status"] == "failed"
    # Only an admin re-issues; the worker pays it, once.
    r = await client.post(f"/v1/service-credits/{credit['id']}/retry", headers=finance_headers)
    assert r.status_code == 403
    r = await client.post(f"/v1/service-credits/{credit['id']}/retry", headers=admin_headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    again = await client.post(f"/v1/service-credits/{credit['id']}/retry", headers=admin_headers)
    assert again.status_code == 409  # no longer failed
    with frozen(utcnow() + timedelta(hours=12)):
        await run_worker()
    body = (await client.get(f"/v1/incidents/{incident['id']}", headers=helpdesk_headers)).json()
    assert body["service_credit"]["status"] == "issued"
    notes = await _stripe_objects(stripe_emu, "/v1/credit_notes", incident["id"])
    assert [n["amount"] for n in notes] == [2495]
    assert await SlaEvent.count().where(SlaEvent.type == "credit_issued") == 1
    assert await OutboundEvent.count().where(OutboundEvent.type == "service_credit.issued") == 1
