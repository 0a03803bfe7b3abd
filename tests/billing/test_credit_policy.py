"""The credit policy, decided from facts alone: table cases and properties (no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.credit_policy import CreditDecision, FastTrackPayment, PlanTerms, decide
from common.money import Money, percent_of

BUSINESS = PlanTerms("Business", Money(49900, "usd"), 5, 20)


@pytest.mark.parametrize(
    ("tier", "fast_track", "plan", "already", "expected"),
    [
        (
            "business",
            None,
            BUSINESS,
            0,
            ("credit_note", 2495, "usd", "5% of the Business monthly fee for a missed response"),
        ),
        # 20 % cap of 499.00 = 99.80; 89.82 credited already leaves 9.98.
        ("business", None, BUSINESS, 8982, ("credit_note", 998, "usd", "5%")),
        ("business", None, BUSINESS, 9980, ("none", 0, "usd", "this period's cap is reached")),
        ("business", None, BUSINESS, 20000, ("none", 0, "usd", "this period's cap is reached")),
        (
            "basic",
            None,
            PlanTerms("Basic", Money(9900, "eur"), 0, 0),
            0,
            ("none", 0, "eur", "the plan grants none"),
        ),
        ("standard", None, None, 0, ("none", 0, "usd", "no service credit on the standard tier")),
        # A paid fast-track credit is refunded whole, whatever the plan says.
        (
            "business",
            FastTrackPayment(7900, "usd"),
            BUSINESS,
            9980,
            ("refund", 7900, "usd", "the fast-track payment is refunded"),
        ),
        (
            "standard",
            FastTrackPayment(14900, "gbp"),
            None,
            0,
            ("refund", 14900, "gbp", "fast-track"),
        ),
    ],
)
def test_each_case_earns_what_the_policy_says(
    tier: str,
    fast_track: FastTrackPayment | None,
    plan: PlanTerms | None,
    already: int,
    expected: tuple[str, int, str, str],
) -> None:
    got = decide(tier=tier, fast_track=fast_track, plan=plan, credited_this_period=already)
    kind, amount, currency, reason = expected
    assert (got.kind, got.amount, got.currency) == (kind, amount, currency)
    assert reason in got.reason


fees = st.integers(min_value=0, max_value=10_000_000_00)
percents = st.integers(min_value=0, max_value=100)


@given(fee=fees, percent=percents, cap=percents, already=st.integers(0, 10_000_000_00))
def test_a_plan_credit_never_passes_the_period_cap_nor_the_breach_percent(
    fee: int, percent: int, cap: int, already: int
) -> None:
    plan = PlanTerms("P", Money(fee, "usd"), percent, cap)
    got = decide(tier="p", fast_track=None, plan=plan, credited_this_period=already)
    assert got.amount >= 0
    assert got.amount <= percent_of(fee, percent)
    if got.amount > 0:
        assert got.kind == "credit_note"
        assert already + got.amount <= percent_of(fee, cap)
    else:
        assert got.kind == "none"


@given(fee=fees, percent=percents, cap=percents)
def test_breaches_in_one_period_add_up_to_the_cap_at_most(fee: int, percent: int, cap: int) -> None:
    plan = PlanTerms("P", Money(fee, "usd"), percent, cap)
    credited = 0
    for _ in range(200):
        got = decide(tier="p", fast_track=None, plan=plan, credited_this_period=credited)
        if got.amount == 0:
            break
        credited += got.amount
    assert credited <= percent_of(fee, cap)


@given(amount=st.integers(1, 10_000_000_00), plan_fee=fees)
def test_a_fast_track_breach_refunds_exactly_its_payment(amount: int, plan_fee: int) -> None:
    got = decide(
        tier="business",
        fast_track=FastTrackPayment(amount, "usd"),
        plan=PlanTerms("B", Money(plan_fee, "usd"), 10, 30),
        credited_this_period=0,
    )
    assert got == CreditDecision("refund", amount, "usd", got.reason)
