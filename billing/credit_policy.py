"""What a broken promise earns, decided from facts alone (no I/O).

A fast-tracked incident that misses its deadline gets its fast-track payment back. A plan
incident gets the plan's percent of the monthly fee as a credit note, within what the
period's cap leaves. The standard tier, and a plan that grants nothing, credit nothing.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from common.money import Money, percent_of

CreditKind = Literal["refund", "credit_note", "none"]


class FastTrackPayment(msgspec.Struct, frozen=True):
    """The paid fast-track purchase an incident used (one credit's worth)."""

    amount: int
    currency: str


class PlanTerms(msgspec.Struct, frozen=True):
    """The credit terms of the plan an incident was opened under."""

    name: str
    monthly_fee: Money
    percent_per_breach: int
    cap_percent_per_period: int


class CreditDecision(msgspec.Struct, frozen=True):
    kind: CreditKind
    amount: int
    currency: str
    reason: str


def plan_credit_amount(monthly_fee: int, percent: int, cap_percent: int, already: int) -> int:
    """The credit for one breach: ``percent`` of the fee, within what the period cap leaves."""
    cap = percent_of(monthly_fee, cap_percent)
    return max(0, min(percent_of(monthly_fee, percent), cap - already))


def decide(
    *,
    tier: str,
    fast_track: FastTrackPayment | None,
    plan: PlanTerms | None,
    credited_this_period: int,
) -> CreditDecision:
    """The service credit for one breached incident.

    ``fast_track``: the payment of the fast-track credit the incident used, if it used a
    paid one. ``plan``: the plan's terms, None under the standard tier (or no plan).
    ``credited_this_period``: credit notes already decided in the incident's period.
    """
    if fast_track is not None:
        return CreditDecision(
            "refund",
            fast_track.amount,
            fast_track.currency,
            "fast-track response deadline missed: the fast-track payment is refunded",
        )
    if plan is None:
        return CreditDecision("none", 0, "usd", f"no service credit on the {tier} tier")
    fee = plan.monthly_fee
    amount = plan_credit_amount(
        fee.amount, plan.percent_per_breach, plan.cap_percent_per_period, credited_this_period
    )
    if amount <= 0:
        reason = (
            "no credit: the plan grants none"
            if plan.percent_per_breach == 0 or fee.amount == 0
            else "no credit: this period's cap is reached"
        )
        return CreditDecision("none", 0, fee.currency, reason)
    return CreditDecision(
        "credit_note",
        amount,
        fee.currency,
        f"{plan.percent_per_breach}% of the {plan.name} monthly fee for a missed response deadline",
    )
