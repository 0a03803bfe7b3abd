"""Finding 5: an Idempotency-Key whose request died with PostgreSQL must not stay "in
progress" for 24 h.

The claim was committed, then PostgreSQL went away mid-request and the release failed:
the identical retry got 409 for a day although nothing was created here. It must be
usable again after a short lease, and the retry must converge on the Stripe customer the
first attempt already created.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import OwnPostgres, eventually

pytestmark = pytest.mark.faults


async def test_a_key_whose_request_died_with_postgres_is_usable_after_its_lease(
    own_pg: OwnPostgres, faults_root: Path, report: Callable[..., None]
) -> None:
    env = {"STRIPE_TIMEOUT_SECONDS": "15", "LEASE_SECONDS": "3"}
    async with running_stack("f05", own_pg, faults_root / "f05", env=env) as (stack, _):
        assert stack.emulator is not None
        api = stack.apis[0]
        external_id = flows.unique("org")
        key = flows.unique("idem")

        emulator = stack.emulator

        async def post() -> httpx.Response:
            return await api.http.post(
                "/v1/customers",
                json=flows.customer_body(external_id),
                headers={"Idempotency-Key": key},
            )

        # Stripe creates the customer, then takes 3 s to answer: PostgreSQL goes meanwhile.
        await stack.emulator.fault("/v1/customers", stall=3, when="after", count=1)
        first = asyncio.create_task(post())
        await eventually(
            lambda: emulator.requests(path="/v1/customers", method="POST"),
            lambda found: any(r["fault"] for r in found),
            within=30,
            what="the create reached Stripe",
        )
        await asyncio.to_thread(own_pg.stop, "fast")
        answer = await first
        await asyncio.to_thread(own_pg.start)
        assert answer.status_code >= 500, answer.text
        final, seen = await flows.retry_until_final(post, attempts=80, pause=0.5)
        tally = books.Tally()
        remote = await books.stripe_customers(stack, external_id)
        local = await books.local_customers(stack, external_id)
        tally.expect("stripe.customers", 1, len(remote))
        tally.expect("db.customers", 1, len(local))
        report(
            "postgres stopped mid-request (claim committed, release failed)",
            "1 customer create with Idempotency-Key, client retries 40 s",
            tally,
        )
        assert final.status_code == 201, f"answers of the retries: {seen}; last: {final.text}"
        tally.check()
        assert local[0]["stripe_customer_id"] == remote[0]["id"]
