"""Money moves once: client retries after unknown outcomes, and concurrent creates.

Every assertion counts both sides: our rows and the emulator's objects.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx

from billing import inbox
from billing.tables import Customer, FastTrackLedger, FastTrackPurchase, Subscription
from common import idempotency
from common.clock import frozen, utcnow
from common.ids import new_id
from common.tables import AuditLog, IdempotencyRecord
from tests.billing.conftest import Deliver, Stripe, sign
from tests.billing.test_fast_track_and_entitlements import _save_card

# More failures than the SDK's retries (STRIPE_MAX_RETRIES=3): the API answers 503.
_OUTLASTS_THE_SDK = 4


async def _stripe_objects(stripe_emu: Stripe, path: str, **filters: Any) -> list[dict[str, Any]]:
    page = await stripe_emu.get(path, limit=100, **filters)
    return list(page["data"])


async def _balance(customer_id: str) -> int:
    rows = await FastTrackLedger.select(FastTrackLedger.delta).where(
        FastTrackLedger.customer_id == customer_id
    )
    return sum(int(r["delta"]) for r in rows)


async def test_a_retried_purchase_after_a_5xx_that_followed_the_charge_charges_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    await stripe_emu.fault(
        method="POST", path="/v1/payment_intents", status=500, when="after", count=_OUTLASTS_THE_SDK
    )
    url = f"/v1/customers/{customer['id']}/fast-track-purchases"
    headers = {**admin_headers, "Idempotency-Key": "buy-two"}
    body = {"quantity": 2, "mode": "charge_saved_method"}
    first = await client.post(url, headers=headers, json=body)
    assert first.status_code == 503, first.text
    assert first.headers["retry-after"]
    retried = await client.post(url, headers=headers, json=body)
    assert retried.status_code == 201, retried.text
    assert retried.json()["status"] == "paid"
    again = await client.post(url, headers=headers, json=body)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == retried.json()["id"]
    # One charge in Stripe, one purchase and two credits here.
    intents = await _stripe_objects(
        stripe_emu, "/v1/payment_intents", customer=customer["stripe_customer_id"]
    )
    assert [(i["amount"], i["status"]) for i in intents] == [(2 * 14900, "succeeded")]
    assert await FastTrackPurchase.count() == 1
    assert await _balance(customer["id"]) == 2


async def test_a_retried_subscription_after_a_5xx_that_followed_the_write_subscribes_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    await stripe_emu.fault(
        method="POST", path="/v1/subscriptions", status=502, when="after", count=_OUTLASTS_THE_SDK
    )
    url = f"/v1/customers/{customer['id']}/subscription"
    body = {"plan": "business", "mode": "charge_saved_method"}
    headers = {**admin_headers, "Idempotency-Key": "subscribe-1"}
    first = await client.post(url, headers=headers, json=body)
    assert first.status_code == 503, first.text
    retried = await client.post(url, headers=headers, json=body)
    assert retried.status_code == 201, retried.text
    assert retried.json()["subscription"]["status"] == "active"
    await deliver()
    scus = customer["stripe_customer_id"]
    subs = await _stripe_objects(stripe_emu, "/v1/subscriptions", customer=scus, status="all")
    assert len(subs) == 1
    paid = await _stripe_objects(stripe_emu, "/v1/invoices", customer=scus, status="paid")
    assert len(paid) == 1
    rows = await Subscription.select().where(Subscription.customer_id == customer["id"])
    assert [(r["status"], r["stripe_subscription_id"]) for r in rows] == [("active", subs[0]["id"])]


async def test_a_retry_without_idempotency_key_converges_on_the_customer(
    client: httpx.AsyncClient, admin_headers: dict[str, str], seeded: list[str], stripe_emu: Stripe
) -> None:
    await stripe_emu.fault(
        method="POST", path="/v1/customers", status=500, when="after", count=_OUTLASTS_THE_SDK
    )
    body = {"external_id": "org-retry", "name": "Retry", "email": "r@x.test"}
    assert (await client.post("/v1/customers", headers=admin_headers, json=body)).status_code == 503
    r = await client.post("/v1/customers", headers=admin_headers, json=body)
    assert r.status_code == 201, r.text
    made = await stripe_emu.get("/v1/customers/search", query="metadata['external_id']:'org-retry'")
    assert [c["id"] for c in made["data"]] == [r.json()["stripe_customer_id"]]
    assert await Customer.count() == 1


async def test_concurrent_subscription_creates_reach_stripe_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    await _save_card(stripe_emu, customer, "pm_card_visa")
    url = f"/v1/customers/{customer['id']}/subscription"
    body = {"plan": "business", "mode": "charge_saved_method"}
    answers = await asyncio.gather(
        *(client.post(url, headers=admin_headers, json=body) for _ in range(10))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 9, [a.text for a in answers]
    scus = customer["stripe_customer_id"]
    subs = await _stripe_objects(stripe_emu, "/v1/subscriptions", customer=scus, status="all")
    assert len(subs) == 1
    intents = await _stripe_objects(stripe_emu, "/v1/invoices", customer=scus, status="paid")
    assert len(intents) == 1
    assert await Subscription.count().where(Subscription.customer_id == customer["id"]) == 1


async def test_concurrent_creates_of_one_external_id_make_one_stripe_customer(
    client: httpx.AsyncClient, admin_headers: dict[str, str], seeded: list[str], stripe_emu: Stripe
) -> None:
    body = {"external_id": "org-race", "name": "Race", "email": "race@x.test"}
    answers = await asyncio.gather(
        *(client.post("/v1/customers", headers=admin_headers, json=body) for _ in range(10))
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9
    made = await stripe_emu.get("/v1/customers/search", query="metadata['external_id']:'org-race'")
    assert len(made["data"]) == 1
    assert await Customer.count() == 1


async def test_a_slow_stripe_answer_after_the_webhook_is_still_the_one_subscription(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    """Stripe writes, the webhook is applied, and only then does the API hear back."""
    await _save_card(stripe_emu, customer, "pm_card_visa")
    # Longer than the gateway's timeout (STRIPE_TIMEOUT_SECONDS=3 in tests): the SDK
    # gives up on the first attempt and retries with the same key.
    await stripe_emu.fault(method="POST", path="/v1/subscriptions", timeout=4, when="after")
    creating = asyncio.create_task(
        client.post(
            f"/v1/customers/{customer['id']}/subscription",
            headers=admin_headers,
            json={"plan": "business", "mode": "charge_saved_method"},
        )
    )
    for _ in range(100):  # the emulator has written; its events reach us before its answer
        fresh = await stripe_emu.new_events()
        if any(e["type"] == "customer.subscription.created" for e in fresh):
            break
        await asyncio.sleep(0.05)
    # Applied here rather than by a worker: a worker in this process would close the
    # Stripe client the API call is still waiting on.
    for event in fresh:
        body = json.dumps(event).encode()
        stored = await client.post(
            "/v1/stripe/webhook",
            content=body,
            headers={"Stripe-Signature": sign(body, stripe_emu.secret)},
        )
        assert stored.status_code == 200
        await inbox.process(event["id"])
    stripe_emu.mark_seen(fresh)
    assert not creating.done()  # the API has not heard back yet
    r = await creating
    assert r.status_code == 201, r.text
    rows = await Subscription.select().where(Subscription.customer_id == customer["id"])
    assert len(rows) == 1 and rows[0]["status"] == "active"
    audited = await AuditLog.count().where(
        (AuditLog.action == "subscription.created") & (AuditLog.entity_id == rows[0]["id"])
    )
    assert audited == 1
    scus = customer["stripe_customer_id"]
    assert len(await _stripe_objects(stripe_emu, "/v1/subscriptions", customer=scus)) == 1


async def test_a_claim_whose_request_died_is_taken_over_after_its_lease(
    client: httpx.AsyncClient, admin_headers: dict[str, str], seeded: list[str]
) -> None:
    """The claim was committed, then the database went away before it could be released."""
    body = {"external_id": "org-lease", "name": "Lease", "email": "l@x.test"}
    headers = {**admin_headers, "Idempotency-Key": "died-mid-way"}
    first = await client.post("/v1/customers", headers=headers, json={**body, "name": "x"})
    # Re-create that state: the same key held by a request nobody renews any more.
    record = (
        await IdempotencyRecord.objects().where(IdempotencyRecord.key == "died-mid-way").first()
    )
    assert record is not None and first.status_code == 201
    await Customer.delete().where(Customer.external_id == "org-lease")
    await IdempotencyRecord.delete().where(IdempotencyRecord.id == record.id)
    now = utcnow()
    payload = httpx.Request("POST", "http://x", json=body).content
    fingerprint = idempotency.fingerprint("POST", "/v1/customers", "", payload)
    held = IdempotencyRecord(
        id=new_id("idem"),
        api_key_id=record.api_key_id,
        key="died-mid-way",
        method="POST",
        path="/v1/customers",
        fingerprint=fingerprint,
        status_code=None,
        locked_until=now + timedelta(seconds=30),
        created_at=now,
        expires_at=now + timedelta(hours=24),
    )
    await held.save()
    busy = await client.post("/v1/customers", headers=headers, json=body)
    assert busy.status_code == 409 and 1 <= int(busy.headers["retry-after"]) <= 30
    assert busy.json()["type"].endswith("/request-in-progress")
    await IdempotencyRecord.update(
        {IdempotencyRecord.locked_until: now - timedelta(seconds=1)}
    ).where(IdempotencyRecord.id == held.id)
    taken = await client.post("/v1/customers", headers=headers, json=body)
    assert taken.status_code == 201, taken.text
    replay = await client.post("/v1/customers", headers=headers, json=body)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["id"] == taken.json()["id"]


async def test_a_create_nobody_retries_is_finished_by_stripes_event(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    seeded: list[str],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    await stripe_emu.fault(
        method="POST", path="/v1/customers", status=500, when="after", count=_OUTLASTS_THE_SDK
    )
    body = {"external_id": "org-orphan", "name": "Orphan", "email": "o@x.test"}
    assert (await client.post("/v1/customers", headers=admin_headers, json=body)).status_code == 503
    await deliver()  # customer.created, carrying our id in its metadata
    found = await client.get("/v1/customers?external_id=org-orphan", headers=admin_headers)
    made = await stripe_emu.get(
        "/v1/customers/search", query="metadata['external_id']:'org-orphan'"
    )
    assert [c["stripe_customer_id"] for c in found.json()["data"]] == [made["data"][0]["id"]]
    again = await client.post("/v1/customers", headers=admin_headers, json=body)
    assert again.status_code == 409
    assert (
        len(
            (
                await stripe_emu.get(
                    "/v1/customers/search", query="metadata['external_id']:'org-orphan'"
                )
            )["data"]
        )
        == 1
    )


async def test_a_reservation_stripe_never_confirmed_is_dropped_after_three_days(
    client: httpx.AsyncClient, admin_headers: dict[str, str], seeded: list[str], stripe_emu: Stripe
) -> None:
    from billing import reservations

    await stripe_emu.fault(method="POST", path="/v1/customers", status=500, count=20)
    body = {"external_id": "org-never", "name": "Never", "email": "n@x.test"}
    assert (await client.post("/v1/customers", headers=admin_headers, json=body)).status_code == 503
    await stripe_emu.http.delete("/_emulator/faults")
    kept = await client.post(
        "/v1/customers",
        headers=admin_headers,
        json={"external_id": "org-kept", "name": "Kept", "email": "k@x.test"},
    )
    assert kept.status_code == 201
    assert await reservations.expire_abandoned() == 0  # too young to give up on
    with frozen(utcnow() + reservations.ABANDONED_AFTER + timedelta(minutes=1)):
        assert await reservations.expire_abandoned() == 1
    assert [r["external_id"] for r in await Customer.select(Customer.external_id)] == ["org-kept"]
