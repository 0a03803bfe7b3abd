"""The worker process: the deadline clock, and arq workers for the SLA and bulk queues,
all outliving outages.

arq's own runner exits when Redis goes away and cannot see a wedged database, while
its health key says all is well. Here one process runs the deadline clock
(``workers.sla_jobs.run_clock``: deadlines, warnings and escalations read from
PostgreSQL, nothing queued) and a worker per queue (breach credits never wait behind a
backlog of Stripe events), keeps each one polling through
Redis and PostgreSQL outages (reconnecting with backoff), holds the lock on each
running job as a short lease it renews (a job whose worker was killed is picked up
by another one within seconds, not minutes), and reports itself healthy only while
it can make progress: PostgreSQL and Redis answer, the clock ticks and every queue is
being polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis.exceptions import ResponseError, WatchError

from billing.service import close_stripe, configure_stripe
from common import db
from common.config import Settings, configure_logging, get_settings
from workers import queue
from workers.jobs import stopping
from workers.sla_jobs import ClockState, run_clock

log = logging.getLogger("workers.process")

# A running job's lock lives this long without renewal; renewed every third of it.
JOB_LEASE_SECONDS = 15.0
# How often the process checks PostgreSQL and Redis, and how stale a check (or a
# queue's last poll) may be before the process reports itself unhealthy.
WATCH_SECONDS = 5.0
HEALTHY_WITHIN_SECONDS = 30.0
# A stopping worker lets running jobs finish for this long, then cancels them (arq
# runs a cancelled job again).
STOP_GRACE_SECONDS = 10.0


class ServiceWorker(Worker):
    """arq's Worker with leased job locks and a slot count that survives Redis errors."""

    def __init__(
        self,
        *args: Any,
        job_lease_seconds: float = JOB_LEASE_SECONDS,
        yield_to: ClockState | None = None,
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        # While this clock is behind (a burst of deadlines), take no new jobs: the
        # process's CPU goes to the deadlines first, the jobs wait in Redis meanwhile.
        self.yield_to = yield_to
        # arq sets the in-progress key for the longest job timeout + 10 s (310 s with the
        # sweep's 300 s): a job whose worker died stayed locked that long.
        self.in_progress_timeout_s = job_lease_seconds
        # Counted from the start: a process that has not polled yet has not failed yet.
        self.last_poll = time.monotonic()

    async def _poll_iteration(self) -> None:
        if self.yield_to is not None and self.yield_to.behind and self.allow_pick_jobs:
            self.allow_pick_jobs = False  # still reaps finished jobs and reports health
            try:
                await super()._poll_iteration()
            finally:
                self.allow_pick_jobs = True
        else:
            await super()._poll_iteration()
        self.last_poll = time.monotonic()

    async def renew_job_leases(self) -> None:
        """Keep the locks of the jobs running here; a lock of a dead worker lapses."""
        running = list(self.job_tasks)
        if not running:
            return
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.pexpire(
                    in_progress_key_prefix + job_id, int(self.in_progress_timeout_s * 1000)
                )
            await pipe.execute()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's start_jobs, giving the slot back when Redis fails mid-way.

        arq counts the slot before its Redis round trips and only gives it back on the
        paths it expects; a connection error there leaked it, and after ``max_jobs``
        Redis errors the worker never picked a job again.
        """
        for job_id_b in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            started = False
            try:
                started = await self._claim(job_id_b.decode())
            finally:
                if not started:
                    self.job_counter -= 1
                    self.sem.release()

    async def _claim(self, job_id: str) -> bool:
        from arq.utils import timestamp_ms

        in_progress_key = in_progress_key_prefix + job_id
        async with self.pool.pipeline(transaction=True) as pipe:
            await pipe.watch(in_progress_key)
            ongoing = await pipe.exists(in_progress_key)
            score = await pipe.zscore(self.queue_name, job_id)
            if ongoing or not score or score > timestamp_ms():
                return False  # running elsewhere, finished, or deferred again meanwhile
            pipe.multi()
            pipe.psetex(in_progress_key, int(self.in_progress_timeout_s * 1000), b"1")
            try:
                await pipe.execute()
            except (ResponseError, WatchError):
                return False  # another worker took it between the check and the claim
        task = self.loop.create_task(self.run_job(job_id, int(score)))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
        return True

    async def record_health(self) -> None:
        # arq's health key says only that the loop runs; it is written while the
        # process can make progress at all, so `arq --check` turns red with it.
        health = self.ctx.get("health")
        if isinstance(health, Health) and not health.healthy():
            return
        await super().record_health()


@dataclass
class Health:
    """What the process last knew of its dependencies and queues (monotonic seconds)."""

    started_at: float = field(default_factory=time.time)
    # A fresh process gets the grace period before its first checks count against it.
    postgres_ok_at: float = field(default_factory=time.monotonic)
    redis_ok_at: float = field(default_factory=time.monotonic)
    postgres_error: str | None = None
    redis_error: str | None = None
    workers: list[ServiceWorker] = field(default_factory=list)
    clock: ClockState = field(default_factory=ClockState)

    def healthy(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        fresh = [
            self.postgres_ok_at,
            self.redis_ok_at,
            self.clock.ticked_at,
            *(w.last_poll for w in self.workers),
        ]
        return all(now - at <= HEALTHY_WITHIN_SECONDS for at in fresh)

    def report(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "checked_at": time.time(),
            "healthy": self.healthy(now),
            "postgres": "ok" if now - self.postgres_ok_at <= HEALTHY_WITHIN_SECONDS else "down",
            "postgres_error": self.postgres_error,
            "redis": "ok" if now - self.redis_ok_at <= HEALTHY_WITHIN_SECONDS else "down",
            "redis_error": self.redis_error,
            "deadline_clock": {
                "ticked_seconds_ago": round(now - self.clock.ticked_at, 1),
                "error": self.clock.error,
                "breached": self.clock.breached,
                "warned": self.clock.warned,
                "escalated": self.clock.escalated,
            },
            "queues": {
                w.queue_name: {
                    "polled_seconds_ago": round(now - w.last_poll, 1) if w.last_poll else None,
                    "running": len(w.job_tasks),
                    "complete": w.jobs_complete,
                    "failed": w.jobs_failed,
                    "retried": w.jobs_retried,
                }
                for w in self.workers
            },
        }


def health_dir(settings: Settings) -> Path:
    return settings.data_dir / "run"


def health_file(settings: Settings, pid: int | None = None) -> Path:
    return health_dir(settings) / f"worker-{pid or os.getpid()}.json"


def build_workers(
    settings: Settings, redis: Any, ctx: dict[str, Any], clock: ClockState | None = None
) -> list[ServiceWorker]:
    """One worker per queue, sharing the process's Redis pool and database pool; the
    credits' worker yields to ``clock`` while it is behind."""
    from workers import settings as ws

    common: dict[str, Any] = {
        "redis_pool": redis,
        "ctx": ctx,
        "handle_signals": False,
        "poll_delay": ws.POLL_DELAY,
        "keep_result": ws.KEEP_RESULT,
        "max_tries": ws.MAX_TRIES,
        "health_check_interval": ws.HEALTH_CHECK_INTERVAL,
    }
    # The bulk queue may hold at most half the connections: the clock and credits always
    # find one free, whatever backlog of Stripe events or webhooks is being worked off.
    bulk_jobs = max(1, settings.worker_database_pool_size // 2)
    return [
        ServiceWorker(
            functions=ws.DEADLINE_FUNCTIONS,
            cron_jobs=ws.DEADLINE_CRON_JOBS,
            queue_name=queue.DEADLINE_QUEUE,
            job_timeout=ws.DEADLINE_JOB_TIMEOUT,
            max_jobs=settings.worker_database_pool_size,
            yield_to=clock,
            **common,
        ),
        ServiceWorker(
            functions=ws.BULK_FUNCTIONS,
            cron_jobs=ws.BULK_CRON_JOBS,
            queue_name=queue.QUEUE_NAME,
            job_timeout=ws.BULK_JOB_TIMEOUT,
            max_jobs=bulk_jobs,
            **common,
        ),
    ]


async def _keep_polling(worker: ServiceWorker) -> None:
    """Run the worker's loop, and run it again after any failure (Redis away, mostly)."""
    delay = 0.25
    while True:
        began = time.monotonic()
        try:
            await worker.main()
            return
        except Exception as e:
            stopping()
            if time.monotonic() - began > 30:
                delay = 0.25  # it had been running fine: a new outage starts from the top
            log.warning(
                "queue %s stopped polling (%r); polling again in %.1f s",
                worker.queue_name,
                e,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _watch(health: Health, redis: Any, settings: Settings) -> None:
    """Check PostgreSQL and Redis, renew job leases, and write the health file."""
    path = health_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    last_watch = 0.0
    while True:
        now = time.monotonic()
        if now - last_watch >= WATCH_SECONDS:
            last_watch = now
            try:
                async with asyncio.timeout(3):
                    if await db.ping():
                        health.postgres_ok_at, health.postgres_error = time.monotonic(), None
            except Exception as e:
                health.postgres_error = repr(e)[:300]
            try:
                async with asyncio.timeout(3):
                    await redis.ping()
                health.redis_ok_at, health.redis_error = time.monotonic(), None
            except Exception as e:
                health.redis_error = repr(e)[:300]
            try:
                path.write_text(json.dumps(health.report()))
            except OSError as e:
                log.warning("could not write the health file %s: %r", path, e)
            if not health.healthy():
                log.warning("worker cannot make progress", extra=_flat(health.report()))
        for worker in health.workers:
            try:
                await worker.renew_job_leases()
            except Exception as e:
                log.warning("could not renew job leases on %s: %r", worker.queue_name, e)
        await asyncio.sleep(JOB_LEASE_SECONDS / 3)


def _flat(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k in ("postgres", "redis", "postgres_error")}


async def serve(settings: Settings | None = None) -> None:
    """Run the worker process until SIGTERM or SIGINT."""
    settings = settings or get_settings()
    configure_logging(settings)
    await db.open_pool(
        max_size=settings.worker_database_pool_size,
        acquire_timeout=settings.database_acquire_timeout_seconds,
        application_name="support-billing-worker",
    )
    configure_stripe(settings)
    redis = await queue.connect(settings.redis, wait=False)
    health = Health()
    ctx: dict[str, Any] = {"settings": settings, "redis": redis, "health": health}
    workers = build_workers(settings, redis, ctx, health.clock)
    health.workers = workers
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = [asyncio.create_task(_keep_polling(w)) for w in workers]
    running.append(asyncio.create_task(run_clock(redis, health.clock)))
    watcher = asyncio.create_task(_watch(health, redis, settings))
    from workers import billing_jobs

    # Events Stripe sent while no worker listened: pulled once at start (then by cron).
    catch_up = asyncio.create_task(billing_jobs.catch_up_at_start(ctx))
    log.info("worker started", extra={"queues": [w.queue_name for w in workers]})
    try:
        await stop.wait()
    finally:
        log.info("worker stopping")
        for w in workers:
            w.allow_pick_jobs = False
        await _finish_running(workers)
        tasks = (*running, watcher, catch_up)
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        if stuck:
            log.error("tasks ignored their cancellation; stopping without them: %r", stuck)
        with contextlib.suppress(Exception):
            health_file(settings).unlink(missing_ok=True)
        await _close(redis)
        log.info("worker stopped")


async def _finish_running(workers: list[ServiceWorker]) -> None:
    """Let running jobs finish within the grace period, then cancel the rest."""
    running = [t for w in workers for t in w.tasks.values()]
    if running:
        await asyncio.wait(running, timeout=STOP_GRACE_SECONDS)
    left = [t for t in running if not t.done()]
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=2)


async def _close(redis: Any) -> None:
    for step in (close_stripe(), db.close_pool(), redis.aclose()):
        try:
            async with asyncio.timeout(5):
                await step
        except Exception as e:
            log.warning("shutdown step failed: %r", e)


def check(settings: Settings, pid: int | None = None) -> tuple[bool, list[str]]:
    """Whether this host's worker processes (or one) are healthy, with a line for each."""
    lines: list[str] = []
    healthy = True
    found = 0
    for path in sorted(health_dir(settings).glob("worker-*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        wpid = int(report.get("pid", 0))
        if pid is not None and wpid != pid:
            continue
        if not _alive(wpid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        found += 1
        age = time.time() - float(report.get("checked_at", 0))
        ok = bool(report.get("healthy")) and age <= HEALTHY_WITHIN_SECONDS
        healthy = healthy and ok
        clock = report.get("deadline_clock") or {}
        lines.append(
            f"worker {wpid}: {'healthy' if ok else 'UNHEALTHY'}"
            f" (postgres {report.get('postgres')}, redis {report.get('redis')},"
            f" deadline clock ticked {clock.get('ticked_seconds_ago', '?')} s ago,"
            f" checked {age:.0f} s ago)"
        )
    if found == 0:
        return False, ["no worker process is running here"]
    return healthy, lines


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
