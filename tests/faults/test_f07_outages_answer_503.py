"""Finding 7: a dependency outage answers 503 problem+json with Retry-After, never 500,
and a write that committed is reported as committed.

PostgreSQL down: every call answered 500. Redis down: ``POST /v1/incidents`` answered
500 although the incident was committed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import OwnPostgres, OwnRedis, Stack, eventually

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
async def stack_and_redis(
    own_pg: OwnPostgres, faults_root: Path
) -> AsyncIterator[tuple[Stack, OwnRedis]]:
    async with running_stack("f07", own_pg, faults_root / "f07") as pair:
        yield pair


def _event(customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": flows.unique("evt_outage").replace("-", "_"),
        "object": "event",
        "type": "customer.updated",
        "created": 1_790_000_000,
        "data": {
            "object": {
                "id": customer["stripe_customer_id"],
                "object": "customer",
                "invoice_settings": {},
            }
        },
    }


def _unavailable(r: httpx.Response) -> str | None:
    """What is wrong with ``r`` as an outage answer (None when it is right)."""
    if r.status_code != 503:
        return f"status {r.status_code}"
    if not r.headers.get("content-type", "").startswith("application/problem+json"):
        return f"content-type {r.headers.get('content-type')}"
    if not str(r.json().get("type", "")).endswith("/unavailable"):
        return f"type {r.json().get('type')}"
    if not r.headers.get("retry-after"):
        return "no Retry-After"
    return None


async def test_postgres_down_answers_503_with_retry_after_and_recovers(
    stack_and_redis: tuple[Stack, OwnRedis], own_pg: OwnPostgres, report: Callable[..., None]
) -> None:
    stack, _ = stack_and_redis
    api = stack.apis[0]
    customer = await flows.create_customer(api)
    incident = await flows.open_incident(api, customer["id"], due_in=3600)
    calls: dict[str, Callable[[], Any]] = {
        "GET /v1/plans": lambda: api.http.get("/v1/plans"),
        "GET /v1/customers/{id}": lambda: api.http.get(f"/v1/customers/{customer['id']}"),
        "GET /v1/incidents/{id}": lambda: api.http.get(f"/v1/incidents/{incident['id']}"),
        "POST /v1/customers": lambda: api.http.post(
            "/v1/customers", json=flows.customer_body(flows.unique("org"))
        ),
        "POST /v1/incidents": lambda: api.http.post(
            "/v1/incidents",
            json=flows.incident_body(
                customer["id"], flows.unique("ZD"), due_in=3600, target_minutes=flows.STANDARD_P1
            ),
        ),
        "POST /v1/stripe/webhook": lambda: flows.deliver(api, _event(customer)),
    }
    await asyncio.to_thread(own_pg.stop, "fast")
    try:
        answers = {name: await call() for name, call in calls.items()}
        ready = await api.http.get("/ready")
    finally:
        await asyncio.to_thread(own_pg.start)
    wrong = {name: _unavailable(r) for name, r in answers.items() if _unavailable(r)}
    # Back: the pool must not be wedged by the connections the stop killed.
    back, seen = await flows.retry_until_final(
        lambda: api.http.get(f"/v1/customers/{customer['id']}"), attempts=60
    )
    report("postgres stopped", f"{len(calls)} calls during the outage (nothing to write)")
    assert not wrong, f"outage answers that are not 503 problem+json with Retry-After: {wrong}"
    assert ready.status_code == 503
    assert back.status_code == 200, f"the API did not recover after PostgreSQL came back: {seen}"


async def test_redis_down_a_committed_incident_is_201_and_enforced_later(
    stack_and_redis: tuple[Stack, OwnRedis], report: Callable[..., None]
) -> None:
    stack, redis = stack_and_redis
    api = stack.apis[0]
    customer = await flows.create_customer(api)
    body = flows.incident_body(
        customer["id"], flows.unique("ZD"), due_in=8, target_minutes=flows.STANDARD_P1
    )
    event = _event(customer)
    redis.stop()
    try:
        opened = await api.http.post("/v1/incidents", json=body)
        listed = await api.http.get("/v1/incidents", params={"customer_id": customer["id"]})
        read_customer = await api.http.get(f"/v1/customers/{customer['id']}")
        webhook = await flows.deliver(api, event)
    finally:
        redis.start()
    rows = await stack.fetch(
        "SELECT id FROM incident WHERE customer_id = $1 AND external_ref = $2",
        customer["id"],
        body["external_ref"],
    )
    stored = await stack.fetchval("SELECT count(*) FROM stripe_event WHERE id = $1", event["id"])
    answers = {
        "POST /v1/incidents": opened.status_code,
        "GET /v1/incidents": listed.status_code,
        "GET /v1/customers/{id}": read_customer.status_code,
        "POST /v1/stripe/webhook": webhook.status_code,
    }
    assert len(rows) == 1, "the incident was not committed"
    assert stored == 1, "the Stripe event was not stored"
    assert answers == {
        "POST /v1/incidents": 201,
        "GET /v1/incidents": 200,
        "GET /v1/customers/{id}": 200,
        "POST /v1/stripe/webhook": 200,
    }, f"answers while Redis was down: {answers}; incident: {opened.text}"
    assert opened.json()["id"] == rows[0]["id"]
    assert json.loads(webhook.text)["received"] is True

    async def breached() -> int:
        # Workers that exited with Redis are finding 4's; here only the sweep is under test.
        for worker in stack.workers:
            if not worker.alive:
                worker.start()
        return await books.breached_count(stack, [rows[0]["id"]])

    await eventually(
        breached,
        lambda n: n == 1,
        within=60,
        what="the sweep enforces the incident opened while Redis was down",
    )
    late = await books.lateness(stack, [rows[0]["id"]])
    report("redis stopped", "1 incident + 1 Stripe event during the outage", late=late)
