"""What a helpdesk, a storefront and Stripe do to the service, over HTTP only."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.faults.harness import WEBHOOK_SECRET, Api, Stack

ALL_WEEK = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
# Targets of the seeded catalog, in minutes, on a calendar that counts every minute.
STANDARD_P1 = 24 * 60
STANDARD_FAST_TRACK = 240
BUSINESS_P1 = 120

_serial = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}-{next(_serial)}"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def customer_body(external_id: str) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "name": "Acme",
        "email": f"{external_id}@acme.test",
        "timezone": "UTC",
        "business_hours": ALL_WEEK,
    }


async def setup_post(api: Api, path: str, body: dict[str, Any]) -> httpx.Response:
    """A POST of a test's set-up, retried as a client retries a 503 (a loaded machine sheds
    load; every create here is safe to retry) under one Idempotency-Key."""
    key = unique("setup")
    for _ in range(30):
        r = await api.http.post(path, json=body, headers={"Idempotency-Key": key})
        if r.status_code != 503:
            return r
        await asyncio.sleep(float(r.headers.get("retry-after") or 1))
    return r


async def create_customer(api: Api, external_id: str | None = None) -> dict[str, Any]:
    r = await setup_post(api, "/v1/customers", customer_body(external_id or unique("org")))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def customer_with_card(stack: Stack, api: Api | None = None) -> dict[str, Any]:
    assert stack.emulator is not None
    customer = await create_customer(api or stack.apis[0])
    await stack.emulator.save_card(customer["stripe_customer_id"])
    return customer


async def subscribe(api: Api, customer_id: str, plan: str = "business") -> httpx.Response:
    return await api.http.post(
        f"/v1/customers/{customer_id}/subscription",
        json={"plan": plan, "interval": "month", "mode": "charge_saved_method"},
    )


async def subscribed_customer(stack: Stack, plan: str = "business") -> dict[str, Any]:
    customer = await customer_with_card(stack)
    r = await setup_post(
        stack.apis[0],
        f"/v1/customers/{customer['id']}/subscription",
        {"plan": plan, "interval": "month", "mode": "charge_saved_method"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["subscription"]["status"] == "active", r.text
    return customer


async def buy_fast_track(api: Api, customer_id: str, quantity: int = 1, **headers: str) -> Any:
    return await api.http.post(
        f"/v1/customers/{customer_id}/fast-track-purchases",
        json={"quantity": quantity, "mode": "charge_saved_method"},
        headers=headers,
    )


def incident_body(
    customer_id: str, ref: str, *, due_in: float, target_minutes: int, **extra: Any
) -> dict[str, Any]:
    """An incident whose deadline falls ``due_in`` seconds from now (``opened_at`` in the past)."""
    opened = datetime.now(UTC) - timedelta(minutes=target_minutes) + timedelta(seconds=due_in)
    return {
        "customer_id": customer_id,
        "external_ref": ref,
        "priority": "p1",
        "opened_at": iso(opened),
        **extra,
    }


async def open_incident(
    api: Api,
    customer_id: str,
    *,
    due_in: float,
    target_minutes: int = STANDARD_P1,
    ref: str | None = None,
    expect: tuple[int, ...] = (201,),
    **extra: Any,
) -> dict[str, Any]:
    body = incident_body(
        customer_id, ref or unique("ZD"), due_in=due_in, target_minutes=target_minutes, **extra
    )
    r = await setup_post(api, "/v1/incidents", body)
    assert r.status_code in expect, r.text
    return dict(r.json())


async def open_many(
    apis: list[Api], customer_ids: list[str], count: int, *, due_in: float, spread: float = 0
) -> list[str]:
    """``count`` standard-tier incidents due from ``due_in`` to ``due_in + spread`` seconds."""
    sem = asyncio.Semaphore(8)

    async def one(n: int) -> str:
        async with sem:
            api = apis[n % len(apis)]
            at = due_in + (spread * n / max(count - 1, 1))
            found = await open_incident(api, customer_ids[n % len(customer_ids)], due_in=at)
            return str(found["id"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


def sign(payload: bytes, secret: str = WEBHOOK_SECRET) -> str:
    t = int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


async def deliver(api: Api, event: dict[str, Any]) -> httpx.Response:
    """POST one Stripe event to the API, signed as Stripe signs it."""
    body = json.dumps(event).encode()
    return await api.http.post(
        "/v1/stripe/webhook",
        content=body,
        headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"},
    )


async def retry_until_final(
    call: Any, *, attempts: int = 30, pause: float = 0.5, final: tuple[int, ...] = ()
) -> tuple[httpx.Response, list[int]]:
    """A client that retries 5xx, 409 "in progress" and network errors until a final answer."""
    seen: list[int] = []
    last: httpx.Response | None = None
    for _ in range(attempts):
        try:
            last = await call()
        except httpx.HTTPError:
            seen.append(0)
            await asyncio.sleep(pause)
            continue
        seen.append(last.status_code)
        in_progress = last.status_code == 409 and "request-in-progress" in last.text
        if (last.status_code < 500 and not in_progress) or last.status_code in final:
            return last, seen
        await asyncio.sleep(pause)
    assert last is not None, f"no answer at all: {seen}"
    return last, seen


async def settle(stack: Stack, within: float = 90) -> None:
    """Wait until Stripe's webhooks are delivered and the workers tried every stored event."""
    from tests.faults.harness import eventually

    assert stack.emulator is not None
    await stack.emulator.flush_webhooks(within=min(within, 30))
    await eventually(
        lambda: stack.fetchval(
            "SELECT count(*) FROM stripe_event WHERE processed_at IS NULL AND attempts = 0"
        ),
        lambda n: n == 0,
        within=within,
        what="every stored Stripe event was applied (or tried) by a worker",
    )


async def fast_tracked_incident(
    stack: Stack, *, due_in: float, api: Api | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A standard customer who bought one fast-track credit on the saved card, and an
    incident using it, due in ``due_in`` s: its breach refunds the fast-track payment."""
    api = api or stack.apis[0]
    customer = await customer_with_card(stack, api)
    r = await setup_post(
        api,
        f"/v1/customers/{customer['id']}/fast-track-purchases",
        {"quantity": 1, "mode": "charge_saved_method"},
    )
    assert r.status_code == 201 and r.json()["status"] == "paid", r.text
    incident = await open_incident(
        api,
        customer["id"],
        due_in=due_in,
        target_minutes=STANDARD_FAST_TRACK,
        fast_track=True,
    )
    assert incident["fast_track"] is True, incident
    return customer, incident


MINUTE_PLAN = "minute"


async def ensure_minute_plan(api: Api) -> None:
    """A plan whose every target is one minute, 24x7, crediting 10 % per breach: plan
    incidents (credited by credit note) that fall due a minute after they open."""
    target = {"first_response_minutes": 1, "coverage": "24x7"}
    r = await api.http.post(
        "/v1/plans",
        json={
            "code": MINUTE_PLAN,
            "name": "Minute",
            "monthly_price": 10_000,
            "annual_price": 100_000,
            "targets": {p: target for p in ("p1", "p2", "p3", "p4")},
            "credit_percent": 10,
            "credit_cap_percent": 100,
        },
    )
    assert r.status_code in (201, 409), r.text
