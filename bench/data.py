"""Realistic benchmark data, loaded with COPY into the schema the migrations build.

10,000 customers across the plans (55 % standard, 20 % basic, 18 % business, 7 %
premium; 90 % of subscriptions active), their incident usage, fast-track purchases,
100,000 historical incidents (achieved or breached, with their SLA events) and 50,000
mirrored invoices: about what a service a year into production holds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import setup
from billing import catalog
from billing import seed as catalog_seed
from billing.schemas import Plan
from common import db
from common.ids import new_id

MIX = (("standard", 0.55), ("basic", 0.2), ("business", 0.18), ("premium", 0.07))
PRIORITIES = ("p1", "p2", "p3", "p4")


@dataclass(frozen=True)
class Loaded:
    key: str  # a helpdesk API key
    customers: list[str]
    counts: dict[str, int]


async def load(customers: int, incidents: int, invoices: int, seed: int = 7) -> Loaded:
    """A fresh schema (migrations), the seed catalog, then the data by COPY."""
    await db.open_pool()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Piccolo's migration banner
            await setup.fresh_schema()
        await catalog_seed.seed_if_empty()
        plans = {p.code: p for p in await catalog.list_current()}
        key = await setup.helpdesk_key()
    finally:
        await db.close_pool()
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    cust, subs, hist, usage, purchases, ledger = [], [], [], [], [], []
    ids: list[str] = []
    plan_of: dict[str, str] = {}
    sub_of: dict[str, str] = {}
    for i in range(customers):
        cid = new_id("cust")
        ids.append(cid)
        cust.append(
            (
                cid,
                f"org-{i}",
                f"Customer {i}",
                f"ops{i}@example.test",
                "Europe/Berlin",
                "DE",
                f"cus_bench{i}",
                now,
                now,
            )
        )
        code = rnd.choices([c for c, _ in MIX], [w for _, w in MIX])[0]
        plan_of[cid] = code
        start = now - timedelta(days=rnd.randint(0, 29))
        end = start + timedelta(days=30)
        if code != "standard":
            plan = plans[code]
            sid = new_id("subs")
            sub_of[cid] = sid
            status = rnd.choices(["active", "past_due", "canceled"], [0.9, 0.05, 0.05])[0]
            subs.append(
                (
                    sid,
                    cid,
                    plan.id,
                    plan.code,
                    plan.version,
                    "month",
                    status,
                    "charge_automatically",
                    start,
                    end,
                    False,
                    start,
                    f"sub_{i}",
                    f"si_{i}",
                    "",
                    start,
                    now,
                )
            )
            hist.append(
                (
                    new_id("subh"),
                    sid,
                    cid,
                    start - timedelta(days=60),
                    plan.id,
                    "active",
                    "month",
                    start,
                    end,
                )
            )
        for _ in range(rnd.randint(0, 8)):
            opened = now - timedelta(days=rnd.randint(0, 90), minutes=rnd.randint(0, 1440))
            usage.append((new_id("use"), new_id("inc"), cid, opened, "{}"))
        if rnd.random() < 0.1:
            pid = new_id("ftp")
            qty = rnd.randint(1, 5)
            purchases.append(
                (
                    pid,
                    cid,
                    qty,
                    14900,
                    "usd",
                    "checkout",
                    "paid",
                    now,
                    now,
                    now + timedelta(days=365),
                )
            )
            ledger.append((new_id("ftl"), cid, qty, "purchase", pid, f"purchase:{pid}", now))

    incident_rows, event_rows = _history(rnd, ids, plan_of, incidents, now)
    invoice_rows = _invoices(rnd, ids, sub_of, plans, plan_of, invoices, now)

    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        copy = conn.copy_records_to_table
        await copy("customer", records=cust, columns=CUSTOMER)
        await copy("subscription", records=subs, columns=SUBSCRIPTION)
        await copy("subscription_history", records=hist, columns=SUBSCRIPTION_HISTORY)
        await copy("incident_usage", records=usage, columns=USAGE)
        await copy("fast_track_purchase", records=purchases, columns=PURCHASE)
        await copy("fast_track_ledger", records=ledger, columns=LEDGER)
        await copy("incident", records=incident_rows, columns=INCIDENT)
        await copy("sla_event", records=event_rows, columns=SLA_EVENT)
        await copy("invoice", records=invoice_rows, columns=INVOICE)
        # Leave autovacuum nothing to do during the measurements (it would share the CPU).
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    counts = {
        "customers": len(cust),
        "subscriptions": len(subs),
        "incident usage rows": len(usage),
        "fast-track purchases": len(purchases),
        "historical incidents": len(incident_rows),
        "sla events": len(event_rows),
        "invoices": len(invoice_rows),
    }
    return Loaded(key, ids, counts)


def _history(
    rnd: random.Random, ids: list[str], plan_of: dict[str, str], count: int, now: datetime
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Closed incidents of the past year: 85 % achieved, 15 % breached (credit settled)."""
    incidents: list[tuple[object, ...]] = []
    events: list[tuple[object, ...]] = []
    for n in range(count):
        cid = rnd.choice(ids)
        iid = new_id("inc")
        priority = rnd.choice(PRIORITIES)
        target = rnd.choice((30, 120, 480, 1440, 2160, 4320))
        opened = now - timedelta(days=rnd.uniform(2, 365))
        due = opened + timedelta(minutes=target * rnd.uniform(1.0, 2.5))
        breached = rnd.random() < 0.15
        responded = (
            due + timedelta(minutes=rnd.uniform(1, 120))
            if breached
            else due - (timedelta(minutes=rnd.uniform(0, target)))
        )
        if responded < opened:
            responded = opened + timedelta(minutes=1)
        resolved = responded + timedelta(hours=rnd.uniform(0.5, 48))
        snapshot = json.dumps(
            {"tier": plan_of[cid], "target_minutes": target, "coverage": "business_hours"}
        )
        incidents.append(
            (
                iid,
                cid,
                f"HIST-{n}",
                priority,
                opened,
                snapshot,
                plan_of[cid],
                target,
                "business_hours",
                due,
                "breached" if breached else "achieved",
                due if breached else None,
                1 if breached else 0,
                "none" if breached else None,
                responded,
                resolved,
                opened,
                resolved,
            )
        )
        events.append((new_id("sev"), iid, cid, "opened", opened, "{}", opened))
        if breached:
            events.append((new_id("sev"), iid, cid, "breached", due, "{}", due))
        else:
            events.append((new_id("sev"), iid, cid, "achieved", responded, "{}", responded))
    return incidents, events


def _invoices(
    rnd: random.Random,
    ids: list[str],
    sub_of: dict[str, str],
    plans: dict[str, Plan],
    plan_of: dict[str, str],
    count: int,
    now: datetime,
) -> list[tuple[object, ...]]:
    """Monthly invoices of the paying customers (and fast-track one-offs of the others)."""
    payers = [c for c in ids if c in sub_of] or ids
    rows: list[tuple[object, ...]] = []
    for n in range(count):
        cid = rnd.choice(payers)
        plan = plans[plan_of[cid]]
        amount = plan.monthly_price.amount or 14900
        created = now - timedelta(days=rnd.uniform(0, 365))
        status = rnd.choices(["paid", "open", "void", "uncollectible"], [0.93, 0.04, 0.02, 0.01])[0]
        paid = status == "paid"
        rows.append(
            (
                new_id("inv"),
                f"in_bench{n}",
                cid,
                sub_of.get(cid),
                f"BENCH-{n:06d}",
                status,
                "subscription_cycle",
                "usd",
                amount,
                0,
                amount,
                amount if paid else 0,
                0 if paid else amount,
                created,
                created + timedelta(days=30),
                created,
                created,
                created + timedelta(hours=1) if paid else None,
                "[]",
                "{}",
                int(created.timestamp()),
            )
        )
    return rows


CUSTOMER = [
    "id",
    "external_id",
    "name",
    "email",
    "timezone",
    "country",
    "stripe_customer_id",
    "created_at",
    "updated_at",
]
SUBSCRIPTION = [
    "id",
    "customer_id",
    "plan_id",
    "plan_code",
    "plan_version",
    "interval",
    "status",
    "collection_method",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "past_due_since",
    "stripe_subscription_id",
    "stripe_item_id",
    "stripe_event_key",
    "created_at",
    "updated_at",
]
SUBSCRIPTION_HISTORY = [
    "id",
    "subscription_id",
    "customer_id",
    "effective_at",
    "plan_id",
    "status",
    "interval",
    "current_period_start",
    "current_period_end",
]
USAGE = ["id", "incident_id", "customer_id", "opened_at", "claim"]
PURCHASE = [
    "id",
    "customer_id",
    "quantity",
    "unit_amount",
    "currency",
    "mode",
    "status",
    "created_at",
    "paid_at",
    "expires_at",
]
LEDGER = ["id", "customer_id", "delta", "reason", "purchase_id", "dedupe_key", "created_at"]
INCIDENT = [
    "id",
    "customer_id",
    "external_ref",
    "priority",
    "opened_at",
    "entitlement",
    "tier",
    "target_minutes",
    "coverage",
    "due_at",
    "sla_status",
    "breached_at",
    "escalation_level",
    "credit_status",
    "first_response_at",
    "resolved_at",
    "created_at",
    "updated_at",
]
SLA_EVENT = ["id", "incident_id", "customer_id", "type", "at", "data", "created_at"]
INVOICE = [
    "id",
    "stripe_invoice_id",
    "customer_id",
    "subscription_id",
    "number",
    "status",
    "billing_reason",
    "currency",
    "subtotal",
    "tax",
    "total",
    "amount_paid",
    "amount_due",
    "period_start",
    "period_end",
    "created",
    "finalized_at",
    "paid_at",
    "lines",
    "stripe_object",
    "stripe_event_created",
]
