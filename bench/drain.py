"""One arq worker in burst mode: apply whatever is queued, then print what it did (JSON).

Run by the benchmark as its own process: ``python -m bench.drain``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time

from arq.worker import Worker

from workers import runtime
from workers.queue import QUEUE_NAME, redis_settings
from workers.settings import FUNCTIONS


async def drain(max_jobs: int) -> dict[str, float]:
    worker = Worker(
        functions=FUNCTIONS,
        redis_settings=redis_settings(os.environ["REDIS_URL"]),
        queue_name=QUEUE_NAME,
        burst=True,
        poll_delay=0,
        max_jobs=max_jobs,
        on_startup=runtime.startup,
        on_shutdown=runtime.shutdown,
        handle_signals=False,
    )
    started = time.perf_counter()
    try:
        await worker.main()
    finally:
        await worker.close()
    return {
        "jobs": worker.jobs_complete,
        "failed": worker.jobs_failed,
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(drain(int(os.environ.get("BENCH_MAX_JOBS", "20"))))))
