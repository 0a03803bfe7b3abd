"""Finding 3: simultaneous identical creates must reach Stripe once.

Subscription create and customer create checked, called Stripe, then inserted: two
requests at once (two API processes, or one) both passed the check and both reached
Stripe. A slow Stripe (a stall after the write, as a busy Stripe is) widens the window
the way production latency does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults import books, flows
from tests.faults.harness import Stack

pytestmark = pytest.mark.faults


def _accepted(statuses: list[int], ids: list[Any]) -> bool:
    """One create wins (201); the others are refused (409) or answer the same object."""
    won = [i for s, i in zip(statuses, ids, strict=True) if s == 201]
    return bool(won) and len(set(won)) == 1 and all(s in (201, 409) for s in statuses)


async def test_simultaneous_subscription_creates_from_two_apis_reach_stripe_once(
    stack: Stack, report: Callable[..., None]
) -> None:
    assert stack.emulator is not None
    customers = [await flows.customer_with_card(stack) for _ in range(10)]
    await stack.emulator.fault("/v1/subscriptions", stall=0.5, when="after", count=40)
    answers = []
    for customer in customers:
        pair = await asyncio.gather(*(flows.subscribe(api, customer["id"]) for api in stack.apis))
        answers.append(pair)
    await flows.settle(stack)
    tally = books.Tally()
    bad: list[list[int]] = []
    for customer, pair in zip(customers, answers, strict=True):
        stripe = await books.stripe_side(stack, customer["stripe_customer_id"])
        local = await books.local_side(stack, customer["id"])
        tally.expect("stripe.subscriptions_active", 1, stripe["stripe.subscriptions_active"])
        tally.expect("stripe.invoices_paid", 1, stripe["stripe.invoices_paid"])
        tally.expect("db.subs_live", 1, local["db.subs_live"])
        statuses = [r.status_code for r in pair]
        ids = [r.json().get("subscription", {}).get("stripe_subscription_id") for r in pair]
        if not _accepted(statuses, ids):
            bad.append(statuses)
    report("slow Stripe (0.5 s) on subscription create", "10 customers x 2 APIs at once", tally)
    tally.check()
    assert not bad, f"not one 201 and the rest 409 (or the same object): {bad}"


async def test_the_same_external_id_from_two_apis_makes_one_customer(
    stack: Stack, report: Callable[..., None]
) -> None:
    assert stack.emulator is not None
    external_ids = [flows.unique("org") for _ in range(20)]
    await stack.emulator.fault("/v1/customers", stall=0.3, when="after", count=80)

    async def both(external_id: str) -> list[Any]:
        return list(
            await asyncio.gather(
                *(
                    api.http.post("/v1/customers", json=flows.customer_body(external_id))
                    for api in stack.apis
                )
            )
        )

    answers = await asyncio.gather(*(both(e) for e in external_ids))
    tally = books.Tally()
    bad: list[list[int]] = []
    for external_id, pair in zip(external_ids, answers, strict=True):
        tally.expect("stripe.customers", 1, len(await books.stripe_customers(stack, external_id)))
        tally.expect("db.customers", 1, len(await books.local_customers(stack, external_id)))
        statuses = [r.status_code for r in pair]
        ids = [r.json().get("id") for r in pair]
        if not _accepted(statuses, ids):
            bad.append(statuses)
    report("slow Stripe (0.3 s) on customer create", "20 external_ids x 2 APIs at once", tally)
    tally.check()
    assert not bad, f"not one 201 and the rest 409 (or the same object): {bad}"


async def test_ten_parallel_posts_of_one_external_id_make_one_stripe_customer(
    stack: Stack, report: Callable[..., None]
) -> None:
    assert stack.emulator is not None
    external_id = flows.unique("org")
    await stack.emulator.fault("/v1/customers", stall=0.3, when="after", count=20)
    api = stack.apis[0]
    answers = await asyncio.gather(
        *(api.http.post("/v1/customers", json=flows.customer_body(external_id)) for _ in range(10))
    )
    tally = books.Tally()
    tally.expect("stripe.customers", 1, len(await books.stripe_customers(stack, external_id)))
    tally.expect("db.customers", 1, len(await books.local_customers(stack, external_id)))
    statuses = [r.status_code for r in answers]
    ids = [r.json().get("id") for r in answers]
    report("slow Stripe (0.3 s) on customer create", "10 posts of 1 external_id, 1 API", tally)
    tally.check()
    assert _accepted(statuses, ids), (
        f"not one 201 and the rest 409 (or the same object): {statuses}"
    )
