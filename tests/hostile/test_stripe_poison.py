"""Poison Stripe events: stored as received, marked dead, answered 2xx once, never retried."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from billing import inbox
from billing.tables import StripeEvent
from tests.billing.conftest import sign
from workers.queue import QUEUE_NAME


def _secret() -> str:
    return os.environ["STRIPE_WEBHOOK_SECRET"]


async def _deliver(client: httpx.AsyncClient, body: bytes, at: int | None = None) -> httpx.Response:
    return await client.post(
        "/v1/stripe/webhook",
        content=body,
        headers={
            "Stripe-Signature": sign(body, _secret(), at),
            "Content-Type": "application/json; charset=utf-8",
        },
    )


def _event(**fields: Any) -> dict[str, Any]:
    event = {
        "id": "evt_poison",
        "object": "event",
        "type": "customer.updated",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_x", "object": "customer", "name": "Acme"}},
    }
    event.update(fields)
    return event


def _deep_event(depth: int) -> bytes:
    """A well-formed event whose object nests ``depth`` levels (json.dumps would recurse)."""
    head = json.dumps(_event(data={"object": {"id": "cus_x", "deep": None}})).encode()
    nested = b'{"x":' * depth + b"{}" + b"}" * depth
    return head.replace(b'"deep": null', b'"deep": ' + nested)


POISON = [
    pytest.param(
        json.dumps(_event(data={"object": {"id": "cus_x", "name": "Ac\u0000me"}})).encode(),
        "NUL",
        id="nul-in-customer-data",
    ),
    pytest.param(json.dumps(_event(type=None)).encode(), "type", id="null-type"),
    pytest.param(json.dumps(_event(type=42)).encode(), "type", id="integer-type"),
    pytest.param(json.dumps(_event(created="soon")).encode(), "created", id="string-created"),
    pytest.param(json.dumps(_event(created=2**70)).encode(), "created", id="huge-created"),
    pytest.param(json.dumps(_event(created=1.5)).encode(), "created", id="float-created"),
    pytest.param(json.dumps(_event(id="evt_" + "x" * 100)).encode(), "id", id="long-id"),
    pytest.param(json.dumps(_event(id=None)).encode(), "id", id="null-id"),
    pytest.param(_deep_event(1200), "JSON", id="deep-1200"),
    pytest.param(_deep_event(70), "nest", id="deep-70"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "JSON", id="deep-array-not-an-event"),
    pytest.param(b'{"id": "evt_trunc", "type": ', "JSON", id="not-json"),
]


@pytest.mark.parametrize(("body", "reason"), POISON)
async def test_a_signed_poison_event_is_stored_dead_and_answered_2xx_once(
    client: httpx.AsyncClient, redis: ArqRedis, body: bytes, reason: str
) -> None:
    first = await _deliver(client, body)
    assert first.status_code == 200, first.text
    assert first.json()["dead"] is True and first.json()["duplicate"] is False
    rows = await StripeEvent.objects()
    assert len(rows) == 1
    row = rows[0]
    assert bytes(row.body) == body  # exactly as received
    assert row.payload is None
    assert row.dead_at is not None and reason in (row.last_error or "")
    assert await redis.zcard(QUEUE_NAME) == 0  # no job: nothing would change on a retry
    # Stripe redelivers (it did not see our 2xx, say): one row, 2xx, still no job.
    again = await _deliver(client, body)
    assert again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert await StripeEvent.count() == 1
    assert await redis.zcard(QUEUE_NAME) == 0
    assert await inbox.pending(min_age_seconds=0) == []
    assert await inbox.process(row.id) == "dead"
    assert [r["id"] for r in await inbox.dead()] == [row.id]


async def test_a_signed_event_with_a_malformed_amount_is_dead_after_one_attempt(
    client: httpx.AsyncClient, redis: ArqRedis
) -> None:
    refund = {"id": "re_bad", "object": "refund", "amount": "lots", "currency": "usd"}
    body = json.dumps(_event(id="evt_amount", type="refund.created", data={"object": refund}))
    r = await _deliver(client, body.encode())
    assert r.status_code == 200 and r.json()["dead"] is False  # it parses; applying fails
    assert await inbox.process("evt_amount") == "dead"
    row = await StripeEvent.objects().where(StripeEvent.id == "evt_amount").first()
    assert row is not None and row.attempts == 1 and row.dead_at is not None
    assert "lots" in (row.last_error or "")
    assert await inbox.pending(min_age_seconds=0) == []  # the sweep will not retry it
    assert await inbox.process("evt_amount") == "dead"
    row = await StripeEvent.objects().where(StripeEvent.id == "evt_amount").first()
    assert row is not None and row.attempts == 1


@pytest.mark.parametrize("ahead", [301, 3600, 10 * 365 * 86400])
async def test_a_signature_dated_in_the_future_is_refused(
    client: httpx.AsyncClient, ahead: int
) -> None:
    body = json.dumps(_event(id="evt_future")).encode()
    r = await _deliver(client, body, at=int(time.time()) + ahead)
    assert r.status_code == 400, r.text
    assert "future" in r.json()["detail"]
    assert await StripeEvent.count() == 0


async def test_a_signature_a_little_ahead_of_our_clock_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    body = json.dumps(_event(id="evt_skew")).encode()
    r = await _deliver(client, body, at=int(time.time()) + 60)  # clock skew within tolerance
    assert r.status_code == 200, r.text
    assert r.json()["dead"] is False
    assert await StripeEvent.count() == 1


async def test_an_unsigned_or_missigned_body_is_refused_and_not_stored(
    client: httpx.AsyncClient,
) -> None:
    body = json.dumps(_event(id="evt_unsigned")).encode()
    r = await client.post("/v1/stripe/webhook", content=body)
    assert r.status_code == 400
    r = await client.post(
        "/v1/stripe/webhook", content=body, headers={"Stripe-Signature": sign(body, "whsec_x")}
    )
    assert r.status_code == 400
    assert await StripeEvent.count() == 0
