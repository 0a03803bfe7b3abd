"""The inbox catches up on Stripe's /v1/events: events whose webhook never came are applied."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from arq.connections import ArqRedis

from billing import catchup
from billing.tables import StripeEvent, Subscription
from common.clock import frozen, utcnow
from tests.billing.conftest import Stripe, Subscribed
from workers import queue


async def test_events_never_delivered_are_caught_up_and_applied_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    redis: ArqRedis,
    run_worker: Any,
    subscribed: Subscribed,
) -> None:
    remote = await subscribed(customer["id"], deliver=False)  # webhooks are never sent here
    sub = await Subscription.objects().first()
    assert sub is not None and sub.id == remote["metadata"]["subscription_id"]
    made = await stripe_emu.new_events()
    assert any(e["type"] == "checkout.session.completed" for e in made)
    before = await catchup.position()
    # A minute on, Stripe lists them (the catch-up leaves the last minute to settle).
    with frozen(utcnow() + timedelta(minutes=2)):
        await queue.enqueue_catch_up(redis, "test")
        await run_worker()
        fresh = await Subscription.objects().where(Subscription.id == sub.id).first()
        assert fresh is not None and fresh.status == "active"
        stored = {r["id"] for r in await StripeEvent.select(StripeEvent.id)}
        assert {e["id"] for e in made} <= stored
        processed = await StripeEvent.count().where(StripeEvent.processed_at.is_null())
        assert processed == 0
        moved = await catchup.position()
        assert moved is not None and (before is None or moved > before)
        # Again: nothing new is stored, the inbox already has every event.
        again = await catchup.catch_up()
        assert again.stored == [] and again.seen == 0  # the cursor is past them
        assert await catchup.catch_up(since=utcnow() - timedelta(minutes=10)) is not None
        assert await StripeEvent.count() == len(stored)
