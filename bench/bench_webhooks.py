"""Stripe webhook ingest: events/s accepted by the API and events/s applied by one worker.

Run: ``uv run python -m bench.bench_webhooks``.  The baseline is /health in the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
from arq.worker import Worker

from bench import loadgen, setup
from billing import catalog, seed
from billing.tables import Plan
from common import db
from workers import runtime
from workers.queue import QUEUE_NAME, redis_settings
from workers.settings import FUNCTIONS

SECRET = "whsec_bench"
FIXTURES = json.loads(
    (
        Path(__file__).resolve().parent.parent / "stripe_emulator/fixtures/stripe_fixtures.json"
    ).read_text()
)
FIXTURES = FIXTURES.get("resources", FIXTURES)


async def prepare(customers: int) -> str:
    # The drain below runs arq in burst mode, which waits for every queued job: start
    # from an empty queue (this bench owns the REDIS_URL database, as bench_sla does).
    from workers.queue import connect

    redis = await connect(setup.os.environ["REDIS_URL"])
    await redis.flushdb()
    await redis.aclose()
    await db.open_pool()
    try:
        await setup.fresh_schema()
        await seed.seed_if_empty()
        business = await catalog.get_plan("business")
        await Plan.update({Plan.stripe_price_month_id: "price_business_month"}).where(
            Plan.id == business.id
        )
    finally:
        await db.close_pool()
    conn = await asyncpg.connect(setup.os.environ["DATABASE_URL"])
    try:
        now = time.time()
        from datetime import UTC, datetime

        at = datetime.fromtimestamp(now, UTC)
        await conn.copy_records_to_table(
            "customer",
            records=[
                (f"cust_b{i}", f"org-b{i}", f"B{i}", f"b{i}@x.test", "UTC", f"cus_b{i}", at, at)
                for i in range(customers)
            ],
            columns=[
                "id",
                "external_id",
                "name",
                "email",
                "timezone",
                "stripe_customer_id",
                "created_at",
                "updated_at",
            ],
        )
    finally:
        await conn.close()
    return "price_business_month"


_TEMPLATES: dict[bool, str] = {}


def fast_event_body(n: int, customers: int, price: str) -> bytes:
    """``event_body`` from a cached JSON template (the load process must not be the limit)."""
    odd = bool(n % 2)
    if odd not in _TEMPLATES:
        _TEMPLATES[odd] = event_body(n, customers, price).decode()
        base = n
        _TEMPLATES[odd] = (
            _TEMPLATES[odd]
            .replace(f"evt_b{base}_", "evt_b@N@_")
            .replace(f"in_b{base}", "in_b@N@")
            .replace(f"cus_b{base % customers}", "cus_b@C@")
            .replace(f"sub_b{base % customers}", "sub_b@C@")
        )
    text = _TEMPLATES[odd].replace("@N@", str(n)).replace("@C@", str(n % customers))
    return text.encode()


def event_body(n: int, customers: int, price: str) -> bytes:
    i = n % customers
    created = 1_790_000_000 + n
    if n % 2:
        obj = copy.deepcopy(FIXTURES["invoice"])
        obj.update(id=f"in_b{n}", customer=f"cus_b{i}", status="paid", subscription=None)
        kind = "invoice.paid"
    else:
        obj = copy.deepcopy(FIXTURES["subscription"])
        obj.update(id=f"sub_b{i}", customer=f"cus_b{i}", status="active", metadata={})
        item = obj["items"]["data"][0]
        item.update(current_period_start=created, current_period_end=created + 2_592_000)
        item["price"] = {**item["price"], "id": price, "recurring": {"interval": "month"}}
        obj["items"]["data"] = [item]
        kind = "customer.subscription.updated"
    event = copy.deepcopy(FIXTURES["event"])
    event.update(id=f"evt_b{n}_{time.time_ns()}", type=kind, created=created, data={"object": obj})
    return json.dumps(event).encode()


def signed(body: bytes) -> dict[str, str]:
    t = int(time.time())
    sig = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={sig}"}


async def drain(redis_url: str) -> tuple[int, float]:
    worker = Worker(
        functions=FUNCTIONS,
        redis_settings=redis_settings(redis_url),
        queue_name=QUEUE_NAME,
        burst=True,
        poll_delay=0,
        max_jobs=20,
        on_startup=runtime.startup,
        on_shutdown=runtime.shutdown,
        handle_signals=False,
    )
    started = time.perf_counter()
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker.jobs_complete, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with setup.services() as services:
        price = asyncio.run(prepare(args.customers))
        counter = iter(range(10**9))
        env = {
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "STRIPE_API_KEY": "sk_test_bench",
            "STRIPE_API_BASE": "http://127.0.0.1:9",
        }
        setup.os.environ.update(env)
        with setup.server(env) as port:
            # Same (Python) load generator as the ingest run, so the ratio compares like
            # with like: the events are signed per request, which wrk cannot do.
            health = loadgen.load(
                "baseline /health",
                "127.0.0.1",
                port,
                ["/health"],
                {},
                connections=args.connections,
                seconds=args.seconds,
            )

            def body_for(_: str) -> bytes:
                return fast_event_body(next(counter), args.customers, price)

            accepted = _post_load(port, args, body_for)
        print(loadgen.summary([health, accepted]))
        print(f"ingest / baseline throughput ratio: {accepted.rps / health.rps:.2f}")
        processed, seconds = asyncio.run(drain(services.redis_url))
        print(
            f"processed {processed} events in {seconds:.1f}s: {processed / seconds:.0f} events/s "
            "(one worker, 20 concurrent jobs)"
        )


def _post_load(port: int, args: Any, body_for: Any) -> loadgen.Result:
    """POST signed events; the signature is computed per request inside the load process."""
    return loadgen.load(
        "webhook ingest",
        "127.0.0.1",
        port,
        ["/v1/stripe/webhook"],
        {},
        connections=args.connections,
        seconds=args.seconds,
        method="POST",
        body_for=_SignedBodies(body_for),
    )


class _SignedBodies:
    def __init__(self, make: Any) -> None:
        self.make = make

    def __call__(self, path: str) -> tuple[bytes, dict[str, str]]:
        body = self.make(path)
        return body, signed(body)


if __name__ == "__main__":
    main()
