"""Issue 4: fast-track purchases and the entitlement helpdesks query."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from billing import catalog, entitlements, fasttrack, usage
from billing.tables import Customer, FastTrackLedger, FastTrackPurchase
from common.clock import frozen, utcnow
from common.config import get_settings
from tests.billing.conftest import Deliver, Stripe, sign
from tests.billing.test_webhook_inbox import FIXTURES
from webhooks.tables import OutboundEvent

PROBLEM = "application/problem+json"


async def _save_card(stripe_emu: Stripe, customer: dict[str, Any], card: str) -> None:
    pm = await stripe_emu.post(
        f"/v1/payment_methods/{card}/attach", customer=customer["stripe_customer_id"]
    )
    await stripe_emu.post(
        f"/v1/customers/{customer['stripe_customer_id']}",
        **{"invoice_settings[default_payment_method]": pm["id"]},
    )


async def _buy_saved(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str, quantity: int
) -> httpx.Response:
    """Buy fast-track credits on the customer's saved card."""
    return await client.post(
        f"/v1/customers/{cid}/fast-track-purchases",
        headers=headers,
        json={"quantity": quantity, "mode": "charge_saved_method"},
    )


async def _ent(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str, at: str | None = None
) -> dict[str, Any]:
    r = await client.get(
        f"/v1/customers/{cid}/entitlements", headers=headers, params={"at": at} if at else None
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def entitlement_updates(reason: str) -> list[dict[str, Any]]:
    """The ``entitlement.updated`` events recorded for ``reason``, oldest first."""
    rows = (
        await OutboundEvent.select(OutboundEvent.data)
        .where(OutboundEvent.type == "entitlement.updated")
        .order_by(OutboundEvent.created_at)
        .output(load_json=True)
    )
    return [r["data"] for r in rows if r["data"]["reason"] == reason]


async def test_standard_entitlement_for_a_new_customer(
    client: httpx.AsyncClient, helpdesk_headers: dict[str, str], customer: dict[str, Any]
) -> None:
    ent = await _ent(client, helpdesk_headers, customer["id"])
    assert ent["tier"] == "standard"
    assert ent["plan_version"] is None
    assert ent["subscription_status"] is None
    assert ent["targets"]["p1"]["first_response_minutes"] == 24 * 60
    assert ent["incidents"] == {"included": None, "used": 0, "remaining": None}
    assert ent["fast_track"]["credits"] == 0
    assert ent["fast_track"]["price"] == {"amount": 14900, "currency": "usd"}
    assert {
        "customer_id",
        "at",
        "tier",
        "plan_version",
        "subscription_status",
        "valid_until",
        "targets",
        "incidents",
        "fast_track",
    } <= ent.keys()


async def test_paid_checkout_grants_exactly_n_credits_once(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    cid = customer["id"]
    r = await client.post(
        f"/v1/customers/{cid}/fast-track-purchases",
        headers=helpdesk_headers,
        json={"quantity": 3, "mode": "checkout"},
    )
    assert r.status_code == 201, r.text
    purchase = r.json()
    assert purchase["status"] == "pending"
    assert purchase["checkout_url"]
    assert purchase["total"] == {"amount": 3 * 14900, "currency": "usd"}
    assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 0

    row = await FastTrackPurchase.objects().first()
    assert row is not None and row.stripe_checkout_session_id
    await stripe_emu.complete_checkout(row.stripe_checkout_session_id, "paid")
    fresh = await stripe_emu.new_events()
    completed = [e for e in fresh if e["type"] == "checkout.session.completed"]
    assert len(completed) == 1
    stripe_emu._seen.difference_update(e["id"] for e in fresh)
    await deliver()
    # The same webhook delivered again, and the storefront's success page refreshing.
    body = json.dumps(completed[0]).encode()
    again = await client.post(
        "/v1/stripe/webhook",
        content=body,
        headers={"Stripe-Signature": sign(body, stripe_emu.secret)},
    )
    assert again.json()["duplicate"] is True
    refreshed = await client.post(
        f"/v1/customers/{cid}/fast-track-purchases/{row.id}/refresh", headers=helpdesk_headers
    )
    assert refreshed.json()["status"] == "paid"
    assert await fasttrack.grant(row.id, payment_intent=None) is False

    ent = await _ent(client, helpdesk_headers, cid)
    assert ent["fast_track"]["credits"] == 3
    assert await FastTrackLedger.count().where(FastTrackLedger.reason == "purchase") == 1
    assert await OutboundEvent.count().where(OutboundEvent.type == "fast_track.purchased") == 1
    [update] = await entitlement_updates("fast_track_purchased")
    assert update["purchase_id"] == row.id
    assert update["entitlement"]["fast_track"]["credits"] == 3


async def test_declined_card_grants_nothing(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    deliver: Deliver,
) -> None:
    cid = customer["id"]
    await _save_card(stripe_emu, customer, "pm_card_chargeDeclined")
    r = await _buy_saved(client, helpdesk_headers, cid, 2)
    assert r.status_code == 402, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "declined" in r.json()["detail"]
    row = await FastTrackPurchase.objects().first()
    assert row is not None and row.status == "failed"
    # A declined checkout, too.
    r = await client.post(
        f"/v1/customers/{cid}/fast-track-purchases",
        headers=helpdesk_headers,
        json={"quantity": 1, "mode": "checkout"},
    )
    session = (
        await FastTrackPurchase.objects().where(FastTrackPurchase.id == r.json()["id"]).first()
    )
    assert session is not None and session.stripe_checkout_session_id
    await stripe_emu.complete_checkout(session.stripe_checkout_session_id, "declined")
    await deliver()
    assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 0
    assert await FastTrackLedger.count() == 0


async def test_saved_card_paths_succeed_or_need_action(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    cid = customer["id"]
    await _save_card(stripe_emu, customer, "pm_card_visa")
    r = await _buy_saved(client, helpdesk_headers, cid, 2)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "paid"
    assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 2
    await Customer.update({Customer.default_payment_method: None}).where(Customer.id == cid)
    await _save_card(stripe_emu, customer, "pm_card_authenticationRequired")
    r = await _buy_saved(client, helpdesk_headers, cid, 1)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "requires_action"
    assert "authentication" in r.json()["failure_reason"]
    assert (await _ent(client, helpdesk_headers, cid))["fast_track"]["credits"] == 2


async def test_expired_credits_leave_the_balance(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
) -> None:
    cid = customer["id"]
    await _save_card(stripe_emu, customer, "pm_card_visa")
    r = await _buy_saved(client, helpdesk_headers, cid, 2)
    assert r.status_code == 201
    row = await FastTrackPurchase.objects().first()
    assert row is not None and row.expires_at is not None
    assert row.expires_at - row.paid_at == timedelta(days=365)  # type: ignore[operator]
    with frozen(row.expires_at - timedelta(seconds=1)):
        assert (await entitlements.entitlement(cid)).fast_track.credits == 2
    with frozen(row.expires_at + timedelta(seconds=1)):
        assert (await entitlements.entitlement(cid)).fast_track.credits == 0
        assert await fasttrack.expire_due() == 1
        assert await fasttrack.expire_due() == 0
        assert (await entitlements.entitlement(cid)).fast_track.credits == 0
    # The helpdesk hears of it once.
    [expired] = await entitlement_updates("fast_track_expired")
    assert (expired["purchase_id"], expired["expired_credits"]) == (row.id, 2)
    assert expired["entitlement"]["fast_track"]["credits"] == 0
    # History still answers for the day before expiry.
    assert (
        await entitlements.entitlement(cid, row.expires_at - timedelta(days=1))
    ).fast_track.credits == 2


async def test_credit_validity_follows_fast_track_expiry_days(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAST_TRACK_EXPIRY_DAYS", "30")
    get_settings.cache_clear()
    try:
        await _save_card(stripe_emu, customer, "pm_card_visa")
        assert (await _buy_saved(client, helpdesk_headers, customer["id"], 1)).status_code == 201
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    row = await FastTrackPurchase.objects().first()
    assert row is not None and row.paid_at is not None and row.expires_at is not None
    assert row.expires_at - row.paid_at == timedelta(days=30)
    with frozen(row.paid_at + timedelta(days=31)):
        assert (await entitlements.entitlement(customer["id"])).fast_track.credits == 0


def _sub_event(
    stripe_customer: str,
    price: str,
    status: str,
    created: int,
    event_id: str,
    period: tuple[int, int],
) -> dict[str, Any]:
    sub = copy.deepcopy(FIXTURES["subscription"])
    sub.update(id="sub_ent1", customer=stripe_customer, status=status, metadata={})
    item = sub["items"]["data"][0]
    item.update(current_period_start=period[0], current_period_end=period[1])
    item["price"] = {**item["price"], "id": price, "recurring": {"interval": "month"}}
    sub["items"]["data"] = [item]
    event = copy.deepcopy(FIXTURES["event"])
    event.update(
        id=event_id, type="customer.subscription.updated", created=created, data={"object": sub}
    )
    return event


async def _apply(client: httpx.AsyncClient, secret: str, event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    r = await client.post(
        "/v1/stripe/webhook", content=body, headers={"Stripe-Signature": sign(body, secret)}
    )
    assert r.status_code == 200, r.text


async def _subscribe_active(
    client: httpx.AsyncClient,
    stripe_emu: Stripe,
    run_worker: Any,
    customer: dict[str, Any],
    plan: str,
    since: timedelta,
    event_id: str,
) -> None:
    """Put the customer on ``plan`` (monthly, active for ``since``) by a signed webhook."""
    price = (await catalog.get_plan(plan)).stripe_price_ids["month"]
    t0 = int((utcnow() - since).timestamp())
    event = _sub_event(
        customer["stripe_customer_id"], price, "active", t0, event_id, (t0, t0 + 30 * 86400)
    )
    await _apply(client, stripe_emu.secret, event)
    await run_worker()


async def test_at_answers_from_history_after_an_upgrade(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    run_worker: Any,
) -> None:
    business = (await catalog.get_plan("business")).stripe_price_ids["month"]
    premium = (await catalog.get_plan("premium")).stripe_price_ids["month"]
    t0 = int((utcnow() - timedelta(days=10)).timestamp())
    period = (t0, t0 + 30 * 86400)
    scus = customer["stripe_customer_id"]
    # Applied one after the other (each event's job runs before the next arrives).
    await _apply(
        client, stripe_emu.secret, _sub_event(scus, business, "active", t0, "evt_h1", period)
    )
    await run_worker()
    await _apply(
        client,
        stripe_emu.secret,
        _sub_event(scus, premium, "active", t0 + 5 * 86400, "evt_h2", period),
    )
    await run_worker()
    now = await _ent(client, helpdesk_headers, customer["id"])
    assert (now["tier"], now["targets"]["p1"]["first_response_minutes"]) == ("premium", 30)
    at = datetime.fromtimestamp(t0 + 86400, UTC).isoformat()
    then = await _ent(client, helpdesk_headers, customer["id"], at)
    assert (then["tier"], then["plan_version"]) == ("business", 1)
    assert then["targets"]["p1"]["first_response_minutes"] == 120
    before = datetime.fromtimestamp(t0 - 60, UTC).isoformat()
    assert (await _ent(client, helpdesk_headers, customer["id"], before))["tier"] == "standard"
    # Each change is an entitlement.updated event for the helpdesk webhooks.
    updates = await entitlement_updates("subscription_changed")
    assert [(u["tier"], u["customer_id"]) for u in updates] == [
        ("business", customer["id"]),
        ("premium", customer["id"]),
    ]
    assert updates[-1]["entitlement"]["targets"]["p1"]["first_response_minutes"] == 30


async def test_a_stale_event_fills_history_but_announces_nothing(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    run_worker: Any,
) -> None:
    """The upgrade applied before the older subscribe event (jobs race for the customer).

    ``entitlement.updated`` tells a helpdesk what the customer may expect *now*; the
    older event changes only the past, so it is recorded for ``?at=`` and announced to
    no one (announcing it would tell receivers the customer is on ``business`` again).
    """
    business = (await catalog.get_plan("business")).stripe_price_ids["month"]
    premium = (await catalog.get_plan("premium")).stripe_price_ids["month"]
    t0 = int((utcnow() - timedelta(days=10)).timestamp())
    period = (t0, t0 + 30 * 86400)
    scus = customer["stripe_customer_id"]
    await _apply(
        client,
        stripe_emu.secret,
        _sub_event(scus, premium, "active", t0 + 5 * 86400, "evt_s2", period),
    )
    await run_worker()
    await _apply(
        client, stripe_emu.secret, _sub_event(scus, business, "active", t0, "evt_s1", period)
    )
    await run_worker()
    now = await _ent(client, helpdesk_headers, customer["id"])
    assert (now["tier"], now["targets"]["p1"]["first_response_minutes"]) == ("premium", 30)
    at = datetime.fromtimestamp(t0 + 86400, UTC).isoformat()
    then = await _ent(client, helpdesk_headers, customer["id"], at)
    assert (then["tier"], then["plan_version"]) == ("business", 1)
    updates = await entitlement_updates("subscription_changed")
    assert [(u["tier"], u["customer_id"]) for u in updates] == [("premium", customer["id"])]


async def test_quote_under_a_paid_plan_matches_the_incident_it_opens(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    run_worker: Any,
) -> None:
    await _subscribe_active(
        client, stripe_emu, run_worker, customer, "business", timedelta(days=2), "evt_q1"
    )
    opened_at = (utcnow() - timedelta(minutes=10)).replace(microsecond=0)
    r = await client.get(
        f"/v1/customers/{customer['id']}/entitlements/quote",
        headers=helpdesk_headers,
        params={"priority": "p1", "opened_at": opened_at.isoformat()},
    )
    assert r.status_code == 200, r.text
    quote = r.json()
    # Business: P1 in 2 h around the clock; fast-track answers in 1 h for $79.
    assert (quote["tier"], quote["plan_version"]) == ("business", 1)
    assert datetime.fromisoformat(quote["due_at"]) == opened_at + timedelta(hours=2)
    assert datetime.fromisoformat(quote["fast_track"]["due_at"]) == opened_at + timedelta(hours=1)
    assert quote["fast_track"]["price"] == {"amount": 7900, "currency": "usd"}
    assert quote["fast_track"]["faster"] is True
    incident = await client.post(
        "/v1/incidents",
        headers=helpdesk_headers,
        json={
            "customer_id": customer["id"],
            "external_ref": "ZD-7",
            "priority": "p1",
            "opened_at": opened_at.isoformat(),
        },
    )
    assert incident.status_code == 201, incident.text
    assert incident.json()["due_at"] == quote["due_at"]
    ent = await _ent(client, helpdesk_headers, customer["id"])
    assert ent["incidents"] == {"included": 10, "used": 1, "remaining": 9}


async def test_past_due_keeps_the_plan_during_grace_only(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    run_worker: Any,
) -> None:
    business = (await catalog.get_plan("business")).stripe_price_ids["month"]
    t0 = int((utcnow() - timedelta(days=3)).timestamp())
    period = (t0 - 20 * 86400, t0 + 10 * 86400)
    await _apply(
        client,
        stripe_emu.secret,
        _sub_event(customer["stripe_customer_id"], business, "past_due", t0, "evt_pd1", period),
    )
    await run_worker()
    ent = await entitlements.entitlement(customer["id"])
    assert (ent.tier, ent.subscription_status, ent.in_grace_period) == (
        "business",
        "past_due",
        True,
    )
    assert ent.valid_until == datetime.fromtimestamp(t0, UTC) + timedelta(days=7)
    assert await entitlements.announce_lapsed_grace() == 0
    with frozen(datetime.fromtimestamp(t0, UTC) + timedelta(days=7, seconds=1)):
        late = await entitlements.entitlement(customer["id"])
        # Nothing is written when grace ends: the worker's minute job announces it, once.
        assert await entitlements.announce_lapsed_grace() == 1
        assert await entitlements.announce_lapsed_grace() == 0
    assert (late.tier, late.subscription_status) == ("standard", "past_due")
    [lapsed] = await entitlement_updates("grace_period_ended")
    assert lapsed["previous_tier"] == "business"
    assert lapsed["entitlement"]["tier"] == "standard"
    ended = datetime.fromisoformat(lapsed["grace_ended_at"])
    assert ended == datetime.fromtimestamp(t0, UTC) + timedelta(days=7)


async def test_allowance_counts_incidents_and_flags_overage(
    customer: dict[str, Any],
    client: httpx.AsyncClient,
    stripe_emu: Stripe,
    run_worker: Any,
) -> None:
    await _subscribe_active(
        client, stripe_emu, run_worker, customer, "basic", timedelta(days=1), "evt_al1"
    )
    claims = [
        await usage.claim_incident(customer["id"], f"inc_{i}", utcnow(), fast_track=False)
        for i in range(6)
    ]
    assert [c.overage for c in claims] == [False] * 5 + [True]
    assert claims[5].overage_amount is not None and claims[5].overage_amount.amount == 4900
    again = await usage.claim_incident(customer["id"], "inc_5", utcnow(), fast_track=False)
    assert again == claims[5]
    ent = await entitlements.entitlement(customer["id"])
    assert (ent.incidents.included, ent.incidents.used, ent.incidents.remaining) == (5, 6, 0)


@pytest.mark.parametrize(
    ("path", "params", "body", "status"),
    [
        ("fast-track-purchases", None, {"quantity": 0, "mode": "checkout"}, 400),
        ("fast-track-purchases", None, {"quantity": 1000, "mode": "checkout"}, 400),
        ("fast-track-purchases", None, {"quantity": 1, "mode": "cash"}, 400),
        # well-formed but in the future: the service refuses it (422)
        ("entitlements", {"at": "2099-01-01T00:00:00Z"}, None, 422),
        # not a time the contract accepts: outside the range, no offset, not RFC 3339 (400)
        ("entitlements", {"at": "2999-01-01T00:00:00Z"}, None, 400),
        ("entitlements", {"at": "yesterday"}, None, 400),
        ("entitlements", {"at": "2026-01-01T00:00:00"}, None, 400),
        ("entitlements", {"at": "1767225600"}, None, 400),
    ],
)
async def test_bad_fast_track_and_entitlement_input(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    path: str,
    params: dict[str, str] | None,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    url = f"/v1/customers/{customer['id']}/{path}"
    r = await (
        client.post(url, headers=helpdesk_headers, json=body)
        if body is not None
        else client.get(url, headers=helpdesk_headers, params=params)
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert await FastTrackPurchase.count() == 0


async def test_unknown_customer_is_404(
    client: httpx.AsyncClient, helpdesk_headers: dict[str, str], seeded: list[str]
) -> None:
    for r in (
        await client.get("/v1/customers/cust_none/entitlements", headers=helpdesk_headers),
        await client.post(
            "/v1/customers/cust_none/fast-track-purchases",
            headers=helpdesk_headers,
            json={"quantity": 1},
        ),
    ):
        assert r.status_code == 404
        assert r.headers["content-type"].startswith(PROBLEM)


async def test_the_entitlement_says_why_its_tier_applies(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    customer: dict[str, Any],
    stripe_emu: Stripe,
    run_worker: Any,
) -> None:
    assert (await _ent(client, helpdesk_headers, customer["id"]))["basis"] == (
        "standard: no paid subscription was in force at that instant"
    )
    await _subscribe_active(
        client, stripe_emu, run_worker, customer, "business", timedelta(hours=1), "evt_why"
    )
    now = await _ent(client, helpdesk_headers, customer["id"])
    assert now["basis"].startswith("business v1: subscription subs_") and now["basis"].endswith(
        " is active"
    )
    # A ticket backdated to before the subscription began is opened under standard, and
    # the snapshot says so.
    before = (utcnow() - timedelta(hours=2)).isoformat()
    then = await _ent(client, helpdesk_headers, customer["id"], before)
    assert then["tier"] == "standard"
    assert "its subscription began only at" in then["basis"]
    r = await client.post(
        "/v1/incidents",
        headers=helpdesk_headers,
        json={
            "customer_id": customer["id"],
            "external_ref": "WHY-1",
            "priority": "p1",
            "opened_at": before,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["tier"] == "standard"
    assert "its subscription began only at" in r.json()["entitlement"]["basis"]
