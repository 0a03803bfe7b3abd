"""A process that keeps every connection of the service's pool inside a transaction.

``python -m tests.faults.probes.pool_probe N``: opens the pool of ``common.db`` with
``N`` connections (as the API and the worker do) and runs ``N`` loops, each a Piccolo
transaction holding its connection a moment. It prints ``ok <count>`` lines as
transactions commit and ``err <repr>`` lines when one fails, so a test can restart
PostgreSQL under it and see whether the pool comes back.
"""

from __future__ import annotations

import asyncio
import sys

from common import db


async def main(size: int) -> None:
    await db.open_pool(max_size=size)
    done = 0

    async def transaction() -> None:
        async with db.engine().transaction():
            await db.engine().run_ddl("SELECT pg_sleep(0.2)")

    async def loop() -> None:
        nonlocal done
        while True:
            try:
                # A task per transaction, as the API runs a request and arq a job.
                await asyncio.create_task(transaction())
                done += 1
            except Exception as e:  # the probe reports every failure and goes on
                print(f"err {e!r}"[:300], flush=True)
                await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(loop()) for _ in range(size)]
    print("ready", flush=True)
    while True:
        await asyncio.sleep(0.25)
        print(f"ok {done}", flush=True)
        if all(t.done() for t in tasks):
            return


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 6))
