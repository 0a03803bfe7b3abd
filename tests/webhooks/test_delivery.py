"""Outbound events reach subscribed endpoints signed, once, retried with backoff for 24 h."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta

import pytest
from arq.connections import ArqRedis

from common import clock
from tests.webhooks.helpers import Drive, Receiver, endpoint_for, make_due, only_delivery
from webhooks import outbox, service, signing
from webhooks.tables import OutboundEvent, WebhookDelivery, WebhookEndpoint
from workers import queue

pytestmark = pytest.mark.usefixtures("clean_db")

BREACH = {"incident_id": "inc_1", "priority": "p1", "due_at": "2026-11-22T10:00:00Z"}


async def test_emitted_event_is_delivered_once_with_a_valid_signature(
    receiver: Receiver, drive: Drive
) -> None:
    _, secret = await endpoint_for(receiver, ["sla.breached"])
    event_id = await outbox.emit("sla.breached", BREACH, customer_id="cust_1")
    event = await OutboundEvent.objects().where(OutboundEvent.id == event_id).first()
    assert event is not None

    await drive()
    await drive()  # a second dispatch finds nothing new to send

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["support-billing-event-id"] == event_id
    assert request.json() == {
        "id": event_id,
        "type": "sla.breached",
        "created": int(event.created_at.timestamp()),
        "data": BREACH,
    }
    header = request.headers["support-billing-signature"]
    assert signing.verify_signature(secret, header, request.body)
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{t}.".encode() + request.body, hashlib.sha256)
    assert v1 == expected.hexdigest()
    assert not signing.verify_signature("whsec_other", header, request.body)

    delivery = await only_delivery()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.next_attempt_at is None
    dispatched = await OutboundEvent.objects().where(OutboundEvent.id == event_id).first()
    assert dispatched is not None
    assert dispatched.dispatched_at is not None


async def test_endpoint_receives_only_the_types_it_subscribed_to(
    receiver: Receiver, drive: Drive
) -> None:
    await endpoint_for(receiver, ["sla.breached", "entitlement.updated"], "/some")
    await endpoint_for(receiver, ["*"], "/all")
    await endpoint_for(receiver, ["service_credit.issued"], "/none")
    for event_type in ("sla.breached", "sla.warning", "fast_track.purchased"):
        await outbox.emit(event_type, {"n": 1}, customer_id=None)

    await drive()

    assert [r.json()["type"] for r in receiver.to("/some")] == ["sla.breached"]
    assert sorted(r.json()["type"] for r in receiver.to("/all")) == [
        "fast_track.purchased",
        "sla.breached",
        "sla.warning",
    ]
    assert receiver.to("/none") == []
    assert await WebhookDelivery.count() == 4


async def test_failing_receiver_is_retried_with_backoff_then_succeeds(
    receiver: Receiver, drive: Drive
) -> None:
    _, secret = await endpoint_for(receiver, ["sla.warning"])
    receiver.fail_next(2, status=503)
    event_id = await outbox.emit("sla.warning", {"incident_id": "inc_2"}, customer_id=None)

    await drive()
    first = await only_delivery()
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 503)
    wait = first.next_attempt_at - first.last_attempt_at
    assert timedelta(seconds=26) <= wait <= timedelta(seconds=34)
    await drive()  # not due yet: nothing is sent
    assert len(receiver.requests) == 1

    await make_due(first.id)
    await drive()
    second = await only_delivery()
    assert (second.status, second.attempts) == ("pending", 2)
    wait = second.next_attempt_at - second.last_attempt_at
    assert timedelta(seconds=53) <= wait <= timedelta(seconds=67)

    await make_due(first.id)
    await drive()
    done = await only_delivery()
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 3, 200)
    assert [h["status_code"] for h in done.history] == [503, 503, 200]
    assert len(receiver.requests) == 3
    assert {r.json()["id"] for r in receiver.requests} == {event_id}
    for r in receiver.requests:
        assert signing.verify_signature(secret, r.headers["support-billing-signature"], r.body)


async def test_unreachable_receiver_records_the_error(receiver: Receiver, drive: Drive) -> None:
    endpoint_id, _ = await endpoint_for(receiver, ["sla.warning"])
    # Nothing listens on port 9 of the loopback: the connection is refused.
    await WebhookEndpoint.update({WebhookEndpoint.url: "http://127.0.0.1:9/hook"}).where(
        WebhookEndpoint.id == endpoint_id
    )
    await outbox.emit("sla.warning", {}, customer_id=None)
    await drive()
    delivery = await only_delivery()
    assert (delivery.status, delivery.last_status_code) == ("pending", None)
    assert delivery.last_error
    assert "ConnectError" in delivery.last_error


async def test_delivery_is_marked_failed_after_the_retry_window(
    receiver: Receiver, drive: Drive, redis: ArqRedis
) -> None:
    await endpoint_for(receiver, ["sla.breached"])
    receiver.fail_next(100)
    await outbox.emit("sla.breached", BREACH, customer_id=None)
    await drive()
    delivery = await only_delivery()
    assert delivery.retry_until - delivery.created_at <= timedelta(hours=24)

    # Shortly before the window closes, the last retry is placed on its end rather than after.
    with clock.frozen(delivery.retry_until - timedelta(seconds=10)):
        await make_due(delivery.id)
        await drive()
    last = await only_delivery()
    assert (last.status, last.next_attempt_at) == ("pending", delivery.retry_until)

    with clock.frozen(delivery.retry_until + timedelta(seconds=1)):
        await make_due(delivery.id)
        await drive()
        failed = await only_delivery()
        assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 3, None)
        # A stray job, and the sweep, find nothing to do.
        await queue._enqueue(redis, "deliver_webhook", "stray", delivery.id)
        await drive()
    assert len(receiver.requests) == 3
    assert (await only_delivery()).status == "failed"


async def test_dispatch_and_delivery_run_twice_send_once(
    receiver: Receiver, drive: Drive, redis: ArqRedis
) -> None:
    await endpoint_for(receiver, ["sla.achieved"], "/a")
    await endpoint_for(receiver, ["sla.achieved"], "/b")
    await outbox.emit("sla.achieved", {"incident_id": "inc_3"}, customer_id=None)

    counts = await asyncio.gather(*(service.dispatch_pending(retry_hours=24) for _ in range(3)))
    assert sorted(counts) == [0, 0, 1]
    assert await service.dispatch_pending(retry_hours=24) == 0
    await OutboundEvent.update({OutboundEvent.dispatched_at: None}).where(
        OutboundEvent.id.is_not_null()
    )
    assert await service.dispatch_pending(retry_hours=24) == 1  # re-dispatch: no new rows
    deliveries = await WebhookDelivery.objects()
    assert len(deliveries) == 2

    first = deliveries[0].id
    await asyncio.gather(service.attempt_delivery(first), service.attempt_delivery(first))
    assert len(receiver.to("/a")) + len(receiver.to("/b")) == 1
    # Two jobs for one delivery under different ids (arq would refuse the same id twice).
    second = deliveries[1].id
    for suffix in ("x", "y"):
        await queue._enqueue(redis, "deliver_webhook", f"deliver_webhook:{second}:{suffix}", second)
    await drive()
    assert len(receiver.to("/a")) == 1
    assert len(receiver.to("/b")) == 1


async def test_deliveries_whose_jobs_redis_lost_are_found_by_the_sweep(
    receiver: Receiver, drive: Drive, redis: ArqRedis
) -> None:
    await endpoint_for(receiver, ["entitlement.updated"])
    await outbox.emit("entitlement.updated", {"tier": "business"}, customer_id="cust_9")
    await service.dispatch_pending(retry_hours=24)
    await redis.flushdb()
    await drive()
    assert len(receiver.requests) == 1
    assert (await only_delivery()).status == "delivered"


async def test_delivery_for_a_disabled_endpoint_is_canceled_unsent(receiver: Receiver) -> None:
    endpoint_id, _ = await endpoint_for(receiver, ["sla.escalated"])
    await outbox.emit("sla.escalated", {"level": 2}, customer_id=None)
    await service.dispatch_pending(retry_hours=24)
    # Disabled behind the service's back (as if between the sweep and the job).
    await WebhookEndpoint.update({WebhookEndpoint.disabled_at: clock.utcnow()}).where(
        WebhookEndpoint.id == endpoint_id
    )
    delivery = await only_delivery()
    assert await service.attempt_delivery(delivery.id) is None
    assert (await only_delivery()).status == "canceled"
    assert receiver.requests == []


async def test_production_delivery_refuses_a_host_resolving_inward(receiver: Receiver) -> None:
    # Created in development (loopback allowed), delivered as production would deliver it.
    await endpoint_for(receiver, ["sla.warning"])
    await outbox.emit("sla.warning", {}, customer_id=None)
    await service.dispatch_pending(retry_hours=24)
    delivery = await only_delivery()
    assert await service.attempt_delivery(delivery.id, block_internal=True) is not None
    refused = await only_delivery()
    assert refused.status == "pending"
    assert refused.last_error is not None
    assert "non-public address 127.0.0.1" in refused.last_error
    assert receiver.requests == []


async def test_a_large_backlog_is_dispatched_in_batches(receiver: Receiver) -> None:
    for path in ("/1", "/2", "/3", "/4"):
        await endpoint_for(receiver, ["*"], path)
    now = clock.utcnow()
    await OutboundEvent.insert(
        *(
            OutboundEvent(id=f"evt_bulk{i:04d}", type="sla.warning", created_at=now, data={})
            for i in range(600)
        )
    )
    assert await service.dispatch_pending(retry_hours=24) == 600
    assert await WebhookDelivery.count() == 2400
    assert await OutboundEvent.count().where(OutboundEvent.dispatched_at.is_null()) == 0
    assert len(await service.due_deliveries()) == 1000  # one sweep enqueues at most this many


async def test_an_event_emitted_once_is_recorded_once(clean_db: None) -> None:
    first = await outbox.emit("entitlement.updated", {"n": 1}, customer_id="c", once="grace:s1")
    again = await outbox.emit("entitlement.updated", {"n": 2}, customer_id="c", once="grace:s1")
    other = await outbox.emit("entitlement.updated", {"n": 3}, customer_id="c", once="grace:s2")
    assert first == again != other
    rows = await OutboundEvent.select(OutboundEvent.id, OutboundEvent.data).output(load_json=True)
    assert sorted(r["data"]["n"] for r in rows) == [1, 3]
    assert await outbox.recorded("entitlement.updated", ["grace:s1", "grace:s9"]) == {"grace:s1"}
