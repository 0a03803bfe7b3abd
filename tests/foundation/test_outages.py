"""Dependency outages answer 503 with Retry-After, never 500; committed writes stand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from common.embedded import free_port
from sla.tables import Incident as IncidentRow
from tests.billing import conftest as billing_fixtures
from tests.sla.conftest import ALL_WEEK

seeded = billing_fixtures.seeded

PROBLEM = "application/problem+json"


@pytest.fixture
def dead_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_with_redis_down_an_incident_is_committed_and_answered_as_created(
    make_client: Callable[..., Any],
    helpdesk_headers: dict[str, str],
    admin_headers: dict[str, str],
    seeded: list[str],
    dead_redis: str,
) -> None:
    # Rate limiting on: its counters live in Redis, and it must not take the API down.
    async with make_client(REDIS_URL=dead_redis, RATE_LIMIT_PER_MINUTE="600") as client:
        r = await client.post(
            "/v1/customers",
            headers=admin_headers,
            json={
                "external_id": "org-redis-down",
                "name": "Acme",
                "email": "a@x.test",
                "business_hours": ALL_WEEK,
            },
        )
        assert r.status_code == 201, r.text
        opened = await client.post(
            "/v1/incidents",
            headers=helpdesk_headers,
            json={"customer_id": r.json()["id"], "external_ref": "RD-1", "priority": "p1"},
        )
        assert opened.status_code == 201, opened.text
        assert await IncidentRow.count().where(IncidentRow.id == opened.json()["id"]) == 1
        # Reads that need only PostgreSQL go on working.
        got = await client.get(f"/v1/incidents/{opened.json()['id']}", headers=helpdesk_headers)
        assert got.status_code == 200
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["redis"] == "unavailable"


async def test_with_postgres_down_requests_get_503_with_retry_after(
    make_client: Callable[..., Any], helpdesk_headers: dict[str, str], seeded: list[str]
) -> None:
    from common import db

    pool = db.engine().pool
    assert isinstance(pool, db.FairPool)
    # Every connection taken and held: to a request that is PostgreSQL not answering.
    async with make_client(DATABASE_ACQUIRE_TIMEOUT_SECONDS="0.2") as client:
        held = [await pool.acquire() for _ in range(pool.size)]
        saved = pool.acquire_timeout
        pool.acquire_timeout = 0.2
        try:
            r = await client.get("/v1/plans", headers=helpdesk_headers)
        finally:
            pool.acquire_timeout = saved
            for connection in held:
                await pool.release(connection)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["type"].endswith("/unavailable")
        assert (await client.get("/v1/plans", headers=helpdesk_headers)).status_code == 200
