"""Entitlement reads under 64 connections, against a one-SELECT baseline in the same run.

Goal (issue 4): throughput >= 0.6x the baseline, p99 <= 20 ms, 10,000 customers with
realistic subscriptions and incident history.  Run: ``uv run python -m bench.bench_entitlements``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import loadgen, setup
from billing import catalog, seed
from common import db
from common.ids import new_id

MIX = (("standard", 0.55), ("basic", 0.2), ("business", 0.18), ("premium", 0.07))


async def populate(customers: int) -> list[str]:
    await db.open_pool()
    try:
        await setup.fresh_schema()
        await seed.seed_if_empty()
        plans = {p.code: p for p in await catalog.list_current()}
        key = await setup.helpdesk_key()
    finally:
        await db.close_pool()
    rnd = random.Random(7)
    now = datetime.now(UTC)
    cust, subs, hist, usage, purchases, ledger = [], [], [], [], [], []
    ids = []
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
                now,
                now,
            )
        )
        code = rnd.choices([c for c, _ in MIX], [w for _, w in MIX])[0]
        start = now - timedelta(days=rnd.randint(0, 29))
        end = start + timedelta(days=30)
        if code != "standard":
            plan = plans[code]
            sid = new_id("subs")
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
    conn = await asyncpg.connect(setup.os.environ["DATABASE_URL"])
    try:
        await conn.copy_records_to_table(
            "customer",
            records=cust,
            columns=[
                "id",
                "external_id",
                "name",
                "email",
                "timezone",
                "country",
                "created_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table(
            "subscription",
            records=subs,
            columns=[
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
            ],
        )
        await conn.copy_records_to_table(
            "subscription_history",
            records=hist,
            columns=[
                "id",
                "subscription_id",
                "customer_id",
                "effective_at",
                "plan_id",
                "status",
                "interval",
                "current_period_start",
                "current_period_end",
            ],
        )
        await conn.copy_records_to_table(
            "incident_usage",
            records=usage,
            columns=["id", "incident_id", "customer_id", "opened_at", "claim"],
        )
        await conn.copy_records_to_table(
            "fast_track_purchase",
            records=purchases,
            columns=[
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
            ],
        )
        await conn.copy_records_to_table(
            "fast_track_ledger",
            records=ledger,
            columns=[
                "id",
                "customer_id",
                "delta",
                "reason",
                "purchase_id",
                "dedupe_key",
                "created_at",
            ],
        )
        # Leave autovacuum nothing to do during the measurement (it would share the CPU).
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(
        f"populated {customers} customers, {len(subs)} subscriptions, "
        f"{len(usage)} incidents, {len(purchases)} fast-track purchases"
    )
    return [key, *ids]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1, help="uvicorn server processes")
    args = parser.parse_args()
    with setup.services():
        started = time.perf_counter()
        key, *ids = asyncio.run(populate(args.customers))
        print(f"set-up {time.perf_counter() - started:.1f}s")
        headers = {"Authorization": f"Bearer {key}"}
        sample = random.Random(1).sample(ids, min(2000, len(ids)))
        print(
            f"server: {args.processes} uvicorn process(es); load: {args.connections} "
            f"keep-alive connections from {loadgen.generator()}"
        )
        with setup.server(processes=args.processes) as port:

            def run(name: str, paths: list[str], seconds: float) -> loadgen.Result:
                return loadgen.best(
                    name,
                    "127.0.0.1",
                    port,
                    paths,
                    headers,
                    connections=args.connections,
                    seconds=seconds,
                )

            base_paths = [f"/v1/bench/baseline/{c}" for c in sample]
            ent_paths = [f"/v1/customers/{c}/entitlements" for c in sample]
            run("warm-up", base_paths + ent_paths, 2)
            baseline, entitlement = [], []
            for _ in range(args.rounds):
                baseline.append(run("baseline (1 SELECT)", base_paths, args.seconds))
                entitlement.append(run("entitlement", ent_paths, args.seconds))
            print(loadgen.summary([*baseline, *entitlement]))
            ratio = loadgen.median_rps(entitlement) / loadgen.median_rps(baseline)
            p99 = max(r.pct(0.99) for r in entitlement)
            print(f"entitlement / baseline throughput ratio: {ratio:.2f}  (goal >= 0.60)")
            print(f"entitlement p99: {p99:.1f} ms  (goal <= 20 ms)")


if __name__ == "__main__":
    main()
