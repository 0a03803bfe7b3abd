"""Finding 9: a credit that Stripe refuses once must not stay ``failed`` for good.

The policy asks again after a refusal (README: after 5 min, 30 min and 2 h, each under a
new key), then leaves the credit ``failed`` for an admin to re-issue
(``support-billing credits retry SCR_ID…|--failed``, ``POST /v1/service-credits/{id}/retry``);
at most one refund (or credit note) per incident either way, on both sides.

The backoff is minutes to hours; a test cannot wait it out. ``_elapse_backoff`` makes it
pass: the credit's next attempt becomes due in PostgreSQL, and Redis is flushed (the
deferred job for that attempt is lost with it), so the sweep must find the credit on its
own. Everything else is the worker's doing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import OwnRedis, PgServer, Stack, eventually

pytestmark = pytest.mark.faults

# Refusals after which the policy gives a credit up (the first and three retries).
REFUSALS_TO_FAIL = 4


@pytest.fixture(scope="module")
async def stack_and_redis(
    machine_pg: PgServer, faults_root: Path
) -> AsyncIterator[tuple[Stack, OwnRedis]]:
    async with running_stack("f09", machine_pg, faults_root / "f09") as pair:
        yield pair


async def _credit(stack: Stack, incident_id: str) -> dict[str, Any]:
    # The policy's columns read through jsonb: a schema without them answers null.
    rows = await stack.fetch(
        "SELECT c.id, c.status, c.last_error, (to_jsonb(c) ->> 'refusals')::int AS refusals,"
        " (to_jsonb(c) ->> 'next_attempt_at')::timestamptz > now() AS backing_off,"
        " i.credit_status AS incident_status"
        " FROM service_credit c JOIN incident i ON i.id = c.incident_id WHERE c.incident_id = $1",
        incident_id,
    )
    return dict(rows[0]) if rows else {}


def _recorded(credit: dict[str, Any], refusals: int) -> bool:
    """The credit holds its ``refusals``-th refusal (a schema without the count: an error)."""
    if credit.get("refusals") is None:
        return bool(credit.get("last_error"))
    return int(credit["refusals"]) >= refusals


async def _refusals(stack: Stack) -> int:
    """Refund requests Stripe refused so far (the emulator's request log)."""
    assert stack.emulator is not None
    found = await stack.emulator.requests(path="/v1/refunds", method="POST")
    return sum(1 for r in found if r["fault"] and r["status"] == 400)


async def _elapse_backoff(stack: Stack, redis: OwnRedis, incident_id: str) -> None:
    """The policy's delay has passed: the next attempt is due (and Redis lost its job)."""
    async with stack.db() as conn:
        scheduled = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'service_credit' AND column_name = 'next_attempt_at'"
        )
        if scheduled:  # a schema without a schedule has no next attempt to bring forward
            await conn.execute(
                "UPDATE service_credit SET next_attempt_at = now() WHERE incident_id = $1",
                incident_id,
            )
        # The sweep leaves a fresh breach's credit to its own job for a minute.
        await conn.execute(
            "UPDATE incident SET breached_at = breached_at - interval '2 minutes' WHERE id = $1",
            incident_id,
        )
    await redis.flushall()


async def _refused(
    stack: Stack, redis: OwnRedis, times: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A fast-track breach whose refund Stripe refuses (400) ``times`` times in a row."""
    assert stack.emulator is not None
    await stack.emulator.clear_faults()
    before = await _refusals(stack)
    await stack.emulator.fault("/v1/refunds", status=400, count=times)
    customer, incident = await flows.fast_tracked_incident(stack, due_in=2)
    for n in range(1, times + 1):
        await eventually(
            lambda: _refusals(stack),
            lambda seen: seen >= before + n,  # noqa: B023 - awaited in this iteration
            within=60,
            what=f"the credit is asked for again: Stripe's refusal number {n}",
        )
        await eventually(
            lambda: _credit(stack, incident["id"]),
            lambda c: _recorded(c, n),  # noqa: B023 - awaited in this iteration
            within=30,
            what=f"refusal number {n} is recorded on the credit",
        )
        if n < times:
            await _elapse_backoff(stack, redis, incident["id"])
    return customer, incident, await _credit(stack, incident["id"])


async def _books(stack: Stack, customer: dict[str, Any], incident_id: str) -> books.Tally:
    await flows.settle(stack)
    tally = books.Tally()
    stripe = await books.stripe_side(stack, customer["stripe_customer_id"])
    local = await books.local_side(stack, customer["id"])
    tally.expect("stripe.refunds", 1, stripe["stripe.refunds"])
    tally.expect("db.credits_issued", 1, local["db.credits_issued"])
    tally.expect("db.refunds", 1, local["db.refunds"])
    status = await stack.fetchval("SELECT credit_status FROM incident WHERE id = $1", incident_id)
    tally.expect("db.incident_credit_issued", 1, int(status == "issued"))
    return tally


async def _issued(stack: Stack, incident_id: str) -> None:
    await eventually(
        lambda: _credit(stack, incident_id),
        lambda c: c.get("status") == "issued" and c.get("incident_status") == "issued",
        within=60,
        what="the credit is paid",
    )


async def test_a_credit_refused_once_is_asked_again_by_policy(
    stack_and_redis: tuple[Stack, OwnRedis], report: Callable[..., None]
) -> None:
    stack, redis = stack_and_redis
    customer, incident, credit = await _refused(stack, redis, 1)
    assert credit["status"] != "failed" and credit["incident_status"] == "pending", credit
    assert credit["backing_off"], f"no next attempt is scheduled: {credit}"
    await _elapse_backoff(stack, redis, incident["id"])
    await _issued(stack, incident["id"])
    tally = await _books(stack, customer, incident["id"])
    report("POST /v1/refunds refused (400) once", "1 breach credit, no human", tally)
    tally.check()


async def test_an_admin_reissues_credits_the_policy_gave_up_on_from_the_cli(
    stack_and_redis: tuple[Stack, OwnRedis], report: Callable[..., None]
) -> None:
    stack, redis = stack_and_redis
    customer, incident, _ = await _refused(stack, redis, REFUSALS_TO_FAIL)
    await eventually(
        lambda: _credit(stack, incident["id"]),
        lambda c: c.get("status") == "failed" and c.get("incident_status") == "failed",
        within=30,
        what="the policy gives the credit up after its last refusal",
    )
    done = await stack.cli("credits", "retry", "--failed")
    assert done.returncode == 0, (
        f"credits retry --failed {done.returncode}: {done.stdout}{done.stderr}"
    )
    await _issued(stack, incident["id"])
    again = await stack.cli("credits", "retry", "--failed")
    assert again.returncode == 0, again.stdout + again.stderr
    tally = await _books(stack, customer, incident["id"])
    report("POST /v1/refunds refused (400) 4x", "1 breach credit, CLI re-issue twice", tally)
    tally.check()


async def test_an_admin_reissues_a_credit_the_policy_gave_up_on_over_the_api(
    stack_and_redis: tuple[Stack, OwnRedis], report: Callable[..., None]
) -> None:
    stack, redis = stack_and_redis
    customer, incident, credit = await _refused(stack, redis, REFUSALS_TO_FAIL)
    await eventually(
        lambda: _credit(stack, incident["id"]),
        lambda c: c.get("status") == "failed" and c.get("incident_status") == "failed",
        within=30,
        what="the policy gives the credit up after its last refusal",
    )
    api = stack.apis[0]
    first = await api.http.post(f"/v1/service-credits/{credit['id']}/retry")
    assert first.status_code in (200, 202), first.text
    await _issued(stack, incident["id"])
    second = await api.http.post(f"/v1/service-credits/{credit['id']}/retry")
    assert second.status_code in (200, 202, 409), second.text
    tally = await _books(stack, customer, incident["id"])
    report("POST /v1/refunds refused (400) 4x", "1 breach credit, API re-issue twice", tally)
    tally.check()
