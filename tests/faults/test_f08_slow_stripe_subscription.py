"""Finding 8: a slow Stripe answer on subscription create must not answer 500 for a
subscription that is active and charged.

Stripe created (and charged) the subscription, then answered after the gateway's
timeout; the webhook arrived first and the worker inserted the row; the API's own
insert then hit the primary key: 500, and the subscription's audit row was missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import books, flows
from tests.faults.conftest import running_stack
from tests.faults.harness import PgServer

pytestmark = pytest.mark.faults


async def test_a_subscription_stripe_answered_late_is_created_once_with_its_audit_row(
    machine_pg: PgServer, faults_root: Path, report: Callable[..., None]
) -> None:
    # The gateway gives up after 3 s and retries once with the same idempotency key.
    env = {"STRIPE_TIMEOUT_SECONDS": "3", "STRIPE_MAX_RETRIES": "1"}
    async with running_stack("f08", machine_pg, faults_root / "f08", env=env) as (stack, _):
        assert stack.emulator is not None
        customer = await flows.customer_with_card(stack)
        await stack.emulator.fault("/v1/subscriptions", stall=6, when="after", count=1)
        answer = await flows.subscribe(stack.apis[0], customer["id"])
        await flows.settle(stack)
        rows = await stack.fetch(
            "SELECT id, status FROM subscription WHERE customer_id = $1", customer["id"]
        )
        tally = books.Tally()
        stripe = await books.stripe_side(stack, customer["stripe_customer_id"])
        tally.expect("stripe.subscriptions_active", 1, stripe["stripe.subscriptions_active"])
        tally.expect("stripe.invoices_paid", 1, stripe["stripe.invoices_paid"])
        tally.expect("db.subscriptions", 1, len(rows))
        tally.expect("db.subs_live", 1, sum(1 for r in rows if r["status"] == "active"))
        audits = [await books.audit_count(stack, "subscription.created", r["id"]) for r in rows]
        tally.expect("db.audit_subscription_created", 1, sum(audits))
        report(
            "POST /v1/subscriptions answered after 6 s (gateway timeout 3 s), webhook first",
            "1 subscription",
            tally,
        )
        assert answer.status_code in (201, 503), f"{answer.status_code}: {answer.text}"
        tally.check()
