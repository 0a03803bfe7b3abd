"""Finding 9: a credit that Stripe refuses once must not stay ``failed`` for good.

It is retried by policy, and an admin can re-issue it
(``support-billing credits retry SCR_ID…|--failed``, ``POST /v1/service-credits/{id}/retry``);
either way at most one refund (or credit note) per incident, on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults import books, flows
from tests.faults.harness import Stack, eventually

pytestmark = pytest.mark.faults


async def _credit(stack: Stack, incident_id: str) -> dict[str, Any]:
    rows = await stack.fetch(
        "SELECT id, status, kind, stripe_object_id FROM service_credit WHERE incident_id = $1",
        incident_id,
    )
    return dict(rows[0]) if rows else {}


async def _refused_once(stack: Stack) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A fast-track breach whose refund Stripe refuses once (400): its credit is failed."""
    assert stack.emulator is not None
    await stack.emulator.fault("/v1/refunds", status=400, count=1)
    customer, incident = await flows.fast_tracked_incident(stack, due_in=2)
    credit = await eventually(
        lambda: _credit(stack, incident["id"]),
        lambda c: c.get("status") == "failed",
        within=60,
        what="Stripe's refusal leaves the credit failed",
    )
    return customer, incident, credit


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


async def test_an_admin_reissues_refused_credits_from_the_cli(
    stack: Stack, report: Callable[..., None]
) -> None:
    customer, incident, _ = await _refused_once(stack)
    done = await stack.cli("credits", "retry", "--failed")
    assert done.returncode == 0, (
        f"credits retry --failed: {done.returncode}\n{done.stdout}{done.stderr}"
    )
    await eventually(
        lambda: _credit(stack, incident["id"]),
        lambda c: c.get("status") == "issued",
        within=60,
        what="the re-issued credit is paid",
    )
    again = await stack.cli("credits", "retry", "--failed")
    assert again.returncode == 0, again.stdout + again.stderr
    tally = await _books(stack, customer, incident["id"])
    report("POST /v1/refunds refused (400) once", "1 breach credit, CLI retry twice", tally)
    tally.check()


async def test_an_admin_reissues_a_refused_credit_over_the_api(
    stack: Stack, report: Callable[..., None]
) -> None:
    customer, incident, credit = await _refused_once(stack)
    api = stack.apis[0]
    first = await api.http.post(f"/v1/service-credits/{credit['id']}/retry")
    assert first.status_code in (200, 202), first.text
    await eventually(
        lambda: _credit(stack, incident["id"]),
        lambda c: c.get("status") == "issued",
        within=60,
        what="the re-issued credit is paid",
    )
    second = await api.http.post(f"/v1/service-credits/{credit['id']}/retry")
    assert second.status_code in (200, 202, 409), second.text
    tally = await _books(stack, customer, incident["id"])
    report("POST /v1/refunds refused (400) once", "1 breach credit, API retry twice", tally)
    tally.check()


async def test_a_credit_refused_once_is_retried_by_policy(
    stack: Stack, report: Callable[..., None]
) -> None:
    customer, incident, _ = await _refused_once(stack)
    await eventually(
        lambda: _credit(stack, incident["id"]),
        lambda c: c.get("status") == "issued",
        within=150,
        what="the refused credit is paid again without anyone's action",
    )
    tally = await _books(stack, customer, incident["id"])
    report("POST /v1/refunds refused (400) once", "1 breach credit, no human", tally)
    tally.check()
