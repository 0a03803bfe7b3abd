"""Both sides of the books: our rows in PostgreSQL and the emulator's objects, counted alike.

Every money assertion of the suite compares what a scenario should have produced
(``expected``) with what each side holds (``actual``): ``lost`` is what is missing,
``doubled`` what is there too often. Both must be 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.faults.harness import Stack

LIVE = ("active", "trialing", "past_due", "unpaid", "paused")


@dataclass
class Tally:
    """Expected against actual counts, per named effect (``stripe.customers``, ``db.…``)."""

    expected: dict[str, int] = field(default_factory=dict)
    actual: dict[str, int] = field(default_factory=dict)

    def expect(self, name: str, expected: int, actual: int) -> None:
        self.expected[name] = self.expected.get(name, 0) + expected
        self.actual[name] = self.actual.get(name, 0) + actual

    def merge(self, other: Tally) -> None:
        for name, n in other.expected.items():
            self.expect(name, n, other.actual.get(name, 0))

    @property
    def lost(self) -> int:
        return sum(max(0, e - self.actual.get(k, 0)) for k, e in self.expected.items())

    @property
    def doubled(self) -> int:
        return sum(max(0, self.actual.get(k, 0) - e) for k, e in self.expected.items())

    def mismatches(self) -> dict[str, tuple[int, int]]:
        return {
            k: (e, self.actual.get(k, 0))
            for k, e in sorted(self.expected.items())
            if self.actual.get(k, 0) != e
        }

    def check(self) -> None:
        """Fail with every effect that is not exactly as expected (expected, actual)."""
        wrong = self.mismatches()
        assert not wrong, (
            f"lost={self.lost} doubled={self.doubled}; (expected, actual) per effect: {wrong}"
        )


# ---------------------------------------------------------------- the emulator's side


async def stripe_customers(stack: Stack, external_id: str) -> list[dict[str, Any]]:
    assert stack.emulator is not None
    found = await stack.emulator.all("/v1/customers")
    return [c for c in found if (c.get("metadata") or {}).get("external_id") == external_id]


async def stripe_side(stack: Stack, stripe_customer_id: str) -> dict[str, int]:
    """One Stripe customer's objects that move money or grant a plan."""
    emu = stack.emulator
    assert emu is not None
    subs = await emu.all("/v1/subscriptions", customer=stripe_customer_id, status="all")
    intents = await emu.all("/v1/payment_intents", customer=stripe_customer_id)
    invoices = await emu.all("/v1/invoices", customer=stripe_customer_id)
    notes = await emu.all("/v1/credit_notes", customer=stripe_customer_id)
    refunds: list[dict[str, Any]] = []
    for intent in intents:
        refunds += await emu.all("/v1/refunds", payment_intent=intent["id"])
    return {
        "stripe.subscriptions": sum(1 for s in subs if s["status"] not in ("canceled",)),
        "stripe.subscriptions_active": sum(1 for s in subs if s["status"] in LIVE),
        "stripe.payment_intents_succeeded": sum(1 for p in intents if p["status"] == "succeeded"),
        "stripe.fast_track_charges": sum(
            1
            for p in intents
            if p["status"] == "succeeded" and (p.get("metadata") or {}).get("kind") == "fast_track"
        ),
        "stripe.invoices_paid": sum(1 for i in invoices if i["status"] == "paid"),
        "stripe.credit_notes": len(notes),
        "stripe.refunds": len(refunds),
    }


# ---------------------------------------------------------------- our side


async def local_customers(stack: Stack, external_id: str) -> list[Any]:
    return await stack.fetch(
        "SELECT id, stripe_customer_id FROM customer WHERE external_id = $1", external_id
    )


async def local_side(stack: Stack, customer_id: str) -> dict[str, int]:
    """One customer's rows that mirror money or grant a plan."""
    async with stack.db() as conn:
        row = await conn.fetchrow(
            """
            SELECT
              (SELECT count(*) FROM subscription WHERE customer_id = $1
                 AND status = ANY($2::text[])) AS subs_live,
              (SELECT count(*) FROM subscription WHERE customer_id = $1) AS subs_all,
              (SELECT count(*) FROM fast_track_purchase WHERE customer_id = $1
                 AND paid_at IS NOT NULL) AS purchases_paid,
              (SELECT coalesce(sum(quantity), 0) FROM fast_track_purchase WHERE customer_id = $1
                 AND paid_at IS NOT NULL) AS quantity_paid,
              (SELECT coalesce(sum(delta), 0) FROM fast_track_ledger
                 WHERE customer_id = $1) AS balance,
              (SELECT count(*) FROM fast_track_ledger WHERE customer_id = $1
                 AND reason = 'purchase') AS ledger_purchases,
              (SELECT count(*) FROM service_credit WHERE customer_id = $1
                 AND status = 'issued') AS credits_issued,
              (SELECT count(*) FROM service_credit WHERE customer_id = $1) AS credits_all,
              (SELECT count(*) FROM refund WHERE customer_id = $1) AS refunds,
              (SELECT count(*) FROM credit_note WHERE customer_id = $1) AS credit_notes,
              (SELECT count(*) FROM invoice WHERE customer_id = $1 AND status = 'paid')
                 AS invoices_paid
            """,
            customer_id,
            list(LIVE),
        )
    assert row is not None
    return {f"db.{k}": int(v) for k, v in dict(row).items()}


async def audit_count(stack: Stack, action: str, entity_id: str) -> int:
    return int(
        await stack.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND entity_id = $2",
            action,
            entity_id,
        )
    )


# ---------------------------------------------------------------- deadlines


@dataclass
class Lateness:
    """Breach lateness (breached_at - due_at, seconds) and what was lost or doubled."""

    values: list[float]
    not_breached: list[str]
    doubled: list[str]

    @staticmethod
    def percentile(values: list[float], q: float) -> float:
        if not values:
            return math.nan
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    @property
    def p50(self) -> float:
        return self.percentile(self.values, 0.50)

    @property
    def p99(self) -> float:
        return self.percentile(self.values, 0.99)

    @property
    def max(self) -> float:
        return max(self.values) if self.values else math.nan

    def line(self) -> str:
        return (
            f"breaches={len(self.values)} not_breached={len(self.not_breached)} "
            f"doubled={len(self.doubled)} lateness p50={self.p50:.2f}s p99={self.p99:.2f}s "
            f"max={self.max:.2f}s"
        )


async def lateness(stack: Stack, incident_ids: Iterable[str]) -> Lateness:
    ids = list(incident_ids)
    rows = await stack.fetch(
        """
        SELECT i.id, extract(epoch FROM i.breached_at - i.due_at)::float8 AS late,
               (SELECT count(*) FROM sla_event e
                 WHERE e.incident_id = i.id AND e.type = 'breached') AS breaches
        FROM incident i WHERE i.id = ANY($1::text[])
        """,
        ids,
    )
    by_id = {r["id"]: r for r in rows}
    values = [float(r["late"]) for r in rows if r["late"] is not None]
    missing = [i for i in ids if i not in by_id or by_id[i]["late"] is None]
    doubled = [r["id"] for r in rows if int(r["breaches"]) > 1]
    return Lateness(values=values, not_breached=missing, doubled=doubled)


async def breached_count(stack: Stack, incident_ids: Iterable[str]) -> int:
    return int(
        await stack.fetchval(
            "SELECT count(*) FROM incident WHERE id = ANY($1::text[]) AND breached_at IS NOT NULL",
            list(incident_ids),
        )
    )


def table(rows: Iterable[Mapping[str, Any]]) -> str:
    """The closing table: faults injected x load x lost x doubled x lateness."""
    header = ("test", "fault injected", "load", "lost", "doubled", "p50 s", "p99 s", "max s")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for r in rows:
        lines.append(
            " | ".join(
                str(x)
                for x in (
                    r["test"],
                    r["fault"],
                    r["load"],
                    r["lost"],
                    r["doubled"],
                    *(
                        "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"
                        for v in (r.get("p50"), r.get("p99"), r.get("max"))
                    ),
                )
            )
        )
    return "\n".join(lines)
