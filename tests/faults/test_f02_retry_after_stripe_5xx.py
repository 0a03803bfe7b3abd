"""Finding 2: a client retry after a Stripe 5xx that followed a completed write must not
move money twice.

Stripe wrote the object, then answered 500 (``when=after``, on every SDK attempt), so the
API answers 5xx. The idempotency layer released the key and the retry minted new ids,
hence new Stripe idempotency keys: Stripe saw a new request.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults import books, flows
from tests.faults.harness import Stack

pytestmark = pytest.mark.faults

# STRIPE_MAX_RETRIES=1: two attempts per gateway call, both answered 500 after the write.
EVERY_ATTEMPT = 2


async def test_a_fast_track_purchase_retried_after_a_5xx_charges_once(
    stack: Stack, report: Callable[..., None]
) -> None:
    assert stack.emulator is not None
    api = stack.apis[0]
    customer = await flows.customer_with_card(stack)
    await stack.emulator.fault("/v1/payment_intents", status=500, when="after", count=EVERY_ATTEMPT)
    key = flows.unique("idem")
    final, seen = await flows.retry_until_final(
        lambda: flows.buy_fast_track(api, customer["id"], 1, **{"Idempotency-Key": key})
    )
    assert seen[0] >= 500, f"the fault did not reach the client: {seen}"
    await flows.settle(stack)
    tally = books.Tally()
    stripe = await books.stripe_side(stack, customer["stripe_customer_id"])
    local = await books.local_side(stack, customer["id"])
    tally.expect("stripe.fast_track_charges", 1, stripe["stripe.fast_track_charges"])
    tally.expect("db.purchases_paid", 1, local["db.purchases_paid"])
    tally.expect("db.ledger_purchases", 1, local["db.ledger_purchases"])
    tally.expect("db.balance", 1, local["db.balance"])
    report("POST /v1/payment_intents 500 after the write, x2", "1 purchase, client retries", tally)
    tally.check()
    assert final.status_code == 201, f"{seen}: {final.text}"


async def test_a_customer_create_retried_after_a_5xx_makes_one_stripe_customer(
    stack: Stack, report: Callable[..., None]
) -> None:
    assert stack.emulator is not None
    api = stack.apis[0]
    external_id = flows.unique("org")
    await stack.emulator.fault("/v1/customers", status=500, when="after", count=EVERY_ATTEMPT)
    key = flows.unique("idem")
    final, seen = await flows.retry_until_final(
        lambda: api.http.post(
            "/v1/customers",
            json=flows.customer_body(external_id),
            headers={"Idempotency-Key": key},
        )
    )
    assert seen[0] >= 500, f"the fault did not reach the client: {seen}"
    tally = books.Tally()
    remote = await books.stripe_customers(stack, external_id)
    local = await books.local_customers(stack, external_id)
    tally.expect("stripe.customers", 1, len(remote))
    tally.expect("db.customers", 1, len(local))
    tally.expect(
        "db.customers_linked_to_stripe",
        1,
        sum(1 for row in local if row["stripe_customer_id"] in {c["id"] for c in remote}),
    )
    report("POST /v1/customers 500 after the write, x2", "1 customer, client retries", tally)
    tally.check()
    assert final.status_code == 201, f"{seen}: {final.text}"


async def test_a_subscription_retried_after_a_5xx_subscribes_once(
    stack: Stack, report: Callable[..., None]
) -> None:
    assert stack.emulator is not None
    api = stack.apis[0]
    customer = await flows.customer_with_card(stack)
    # Stripe's webhooks are late (as they may be): only the API's own answer tells it.
    await stack.emulator.flush_webhooks()
    await stack.emulator.set_webhook_url(None)
    await stack.emulator.fault("/v1/subscriptions", status=500, when="after", count=EVERY_ATTEMPT)
    key = flows.unique("idem")
    final, seen = await flows.retry_until_final(
        lambda: api.http.post(
            f"/v1/customers/{customer['id']}/subscription",
            json={"plan": "business", "interval": "month", "mode": "charge_saved_method"},
            headers={"Idempotency-Key": key},
        )
    )
    assert seen[0] >= 500, f"the fault did not reach the client: {seen}"
    tally = books.Tally()
    stripe = await books.stripe_side(stack, customer["stripe_customer_id"])
    local = await books.local_side(stack, customer["id"])
    tally.expect("stripe.subscriptions_active", 1, stripe["stripe.subscriptions_active"])
    tally.expect("stripe.invoices_paid", 1, stripe["stripe.invoices_paid"])
    tally.expect("db.subs_live", 1, local["db.subs_live"])
    report("POST /v1/subscriptions 500 after the write, x2", "1 subscription, retries", tally)
    tally.check()
    assert final.status_code == 201, f"{seen}: {final.text}"
