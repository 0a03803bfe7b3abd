"""The entitlement cache never answers stale: each kind of change is seen on the next read.

The API process under test listens to PostgreSQL like every API process; writes come
through the API, the worker, or raw SQL on a connection of their own (another process).
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from billing import catalog
from billing.entitlement_cache import cache
from common.clock import frozen, utcnow
from tests.billing.conftest import Stripe
from tests.billing.test_fast_track_and_entitlements import (
    _apply,
    _buy_saved,
    _save_card,
    _sub_event,
)


async def _ent(client: httpx.AsyncClient, headers: dict[str, str], cid: str) -> dict[str, Any]:
    r = await client.get(f"/v1/customers/{cid}/entitlements", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _cached(client: httpx.AsyncClient, headers: dict[str, str], cid: str) -> dict[str, Any]:
    """Read twice: the second answer comes from the cache (the customer is in it)."""
    for _ in range(100):
        if cache.listening:
            break
        await asyncio.sleep(0.02)
    assert cache.listening
    first = await _ent(client, headers, cid)
    assert cid in cache.entries
    again = await _ent(client, headers, cid)
    assert {k: v for k, v in again.items() if k != "at"} == {
        k: v for k, v in first.items() if k != "at"
    }
    return again


async def _forgotten(cid: str) -> None:
    """Until this process has heard the change (a notification lands a moment after commit)."""
    for _ in range(200):
        if cid not in cache.entries:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{cid} was never forgotten: no notification reached the cache")


@pytest.fixture
async def other_process() -> Any:
    """A connection of its own: writes as another process (an operator, a second worker) would."""
    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    yield connection
    await connection.close()


async def test_a_subscription_change_is_seen_at_once(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    run_worker: Any,
) -> None:
    cid = customer["id"]
    assert (await _cached(client, helpdesk_headers, cid))["tier"] == "standard"
    business = (await catalog.get_plan("business")).stripe_price_ids["month"]
    t0 = int((utcnow() - timedelta(days=1)).timestamp())
    event = _sub_event(
        customer["stripe_customer_id"], business, "active", t0, "evt_c1", (t0, t0 + 30 * 86400)
    )
    await _apply(client, stripe_emu.secret, event)
    await run_worker()
    assert (await _ent(client, helpdesk_headers, cid))["tier"] == "business"


async def test_incidents_credits_and_refunds_are_seen_at_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    cid = customer["id"]
    await _save_card(stripe_emu, customer, "pm_card_visa")
    before = await _cached(client, helpdesk_headers, cid)
    assert (before["incidents"]["used"], before["fast_track"]["credits"]) == (0, 0)
    # Bought: two credits.
    assert (await _buy_saved(client, helpdesk_headers, cid, 2)).status_code == 201
    assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 2
    # An incident counts and spends one.
    await _cached(client, helpdesk_headers, cid)
    r = await client.post(
        "/v1/incidents",
        headers=helpdesk_headers,
        json={"customer_id": cid, "external_ref": "C-1", "priority": "p1", "fast_track": True},
    )
    assert r.status_code == 201, r.text
    now = await _ent(client, helpdesk_headers, cid)
    assert (now["incidents"]["used"], now["fast_track"]["credits"]) == (1, 1)
    # The unused credit refunded.
    await _cached(client, helpdesk_headers, cid)
    purchases = (
        await client.get(f"/v1/customers/{cid}/fast-track-purchases", headers=helpdesk_headers)
    ).json()["data"]
    r = await client.post(
        f"/v1/customers/{cid}/fast-track-purchases/{purchases[0]['id']}/refund",
        headers=admin_headers,
        json={},
    )
    assert r.status_code == 200, r.text
    assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 0


async def test_a_write_by_another_process_is_heard_before_the_next_answer(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    other_process: asyncpg.Connection,
) -> None:
    cid = customer["id"]
    await _save_card(stripe_emu, customer, "pm_card_visa")
    assert (await _buy_saved(client, helpdesk_headers, cid, 3)).status_code == 201
    assert (await _cached(client, helpdesk_headers, cid))["fast_track"]["credits"] == 3
    # An operator expires the purchase by hand, from elsewhere.
    await other_process.execute(
        "UPDATE fast_track_purchase SET expires_at = now() - interval '1 second'"
        " WHERE customer_id = $1",
        cid,
    )
    await _forgotten(cid)
    assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 0


async def test_the_cache_holds_what_no_trigger_told_it(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    other_process: asyncpg.Connection,
) -> None:
    """Without its trigger a write goes unheard: proof the answers come from the cache, and
    that the triggers are what keeps it true."""
    cid = customer["id"]
    await _save_card(stripe_emu, customer, "pm_card_visa")
    assert (await _buy_saved(client, helpdesk_headers, cid, 1)).status_code == 201
    assert (await _cached(client, helpdesk_headers, cid))["fast_track"]["credits"] == 1
    await other_process.execute(
        "ALTER TABLE fast_track_purchase DISABLE TRIGGER fast_track_purchase_entitlement_changed"
    )
    try:
        await other_process.execute(
            "UPDATE fast_track_purchase SET expires_at = now() - interval '1 second'"
            " WHERE customer_id = $1",
            cid,
        )
        await asyncio.sleep(0.2)
        assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 1  # stale
    finally:
        await other_process.execute(
            "ALTER TABLE fast_track_purchase ENABLE TRIGGER fast_track_purchase_entitlement_changed"
        )
    await other_process.execute(
        "UPDATE fast_track_purchase SET quantity = quantity WHERE customer_id = $1", cid
    )
    await _forgotten(cid)
    assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 0


async def test_time_boundaries_end_an_answer_without_any_write(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    run_worker: Any,
) -> None:
    cid = customer["id"]
    # A past_due subscription: the plan holds through the grace period, then lapses.
    business = (await catalog.get_plan("business")).stripe_price_ids["month"]
    t0 = int((utcnow() - timedelta(days=3)).timestamp())
    period = (t0 - 20 * 86400, t0 + 10 * 86400)
    await _apply(
        client,
        stripe_emu.secret,
        _sub_event(customer["stripe_customer_id"], business, "past_due", t0, "evt_t1", period),
    )
    await run_worker()
    assert (await _cached(client, helpdesk_headers, cid))["tier"] == "business"
    grace_end = datetime.fromtimestamp(t0, UTC) + timedelta(days=7)
    with frozen(grace_end + timedelta(seconds=1)):
        assert (await _ent(client, helpdesk_headers, cid))["tier"] == "standard"
    # And a purchase's expiry ends its credits at that instant.
    await _save_card(stripe_emu, customer, "pm_card_visa")
    assert (await _buy_saved(client, helpdesk_headers, cid, 1)).status_code == 201
    held = await _cached(client, helpdesk_headers, cid)
    assert held["fast_track"]["credits"] == 1
    expires = utcnow() + timedelta(days=365)
    with frozen(expires + timedelta(minutes=1)):
        assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 0


async def test_without_its_listener_the_cache_answers_nothing(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    other_process: asyncpg.Connection,
) -> None:
    cid = customer["id"]
    await _cached(client, helpdesk_headers, cid)
    await other_process.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'support-billing-cache'"
    )
    for _ in range(200):
        if not cache.listening:
            break
        await asyncio.sleep(0.01)
    assert not cache.listening and cache.entries == {}
    # Answers still come, from PostgreSQL, and are not kept until listening resumes.
    await _ent(client, helpdesk_headers, cid)
    assert cid not in cache.entries
    for _ in range(300):  # it reconnects by itself
        if cache.listening:
            break
        await asyncio.sleep(0.02)
    assert cache.listening
    await _cached(client, helpdesk_headers, cid)
