"""Fixtures: real PostgreSQL and Redis (the machine's when configured, else embedded)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from billing.stripe_gateway import configure_from_settings
from common import apikeys, db
from common.config import PROJECT_ROOT, Settings, get_settings, load_settings
from common.embedded import Services, ensure_services
from workers.process import ServiceWorker

# Tables emptied after each test; the migration bookkeeping stays.
_KEEP = {"migration"}


def _create_database_if_missing(url: str) -> None:
    """The configured server answers but the named database may not exist yet (a new name
    for a parallel run): create it, so a test run needs nothing done by hand."""
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")

    async def create() -> None:
        try:
            await (await asyncpg.connect(url)).close()
        except asyncpg.InvalidCatalogNameError:
            admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another run created it meanwhile
            finally:
                await admin.close()

    asyncio.run(create())


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    if os.environ.get("DATABASE_URL"):
        _create_database_if_missing(os.environ["DATABASE_URL"])
    running = ensure_services(
        os.environ.get("DATABASE_URL") or None,
        os.environ.get("REDIS_URL") or None,
        PROJECT_ROOT / ".data",
        database="support_billing_test",
    )
    running.export()
    os.environ.setdefault("APP_ENV", "test")
    from stripe_emulator.testing import start_emulator

    # Every test talks to Stripe through the emulator (nothing reaches Stripe from here),
    # which checks each response and event against Stripe's types for the pinned version.
    emulator = start_emulator(check_shapes=True)
    os.environ.update(
        {
            "STRIPE_API_BASE": emulator.url,
            "STRIPE_API_KEY": emulator.api_key,
            "STRIPE_WEBHOOK_SECRET": emulator.webhook_secret,
            "STRIPE_TIMEOUT_SECONDS": "3",
        }
    )
    get_settings.cache_clear()
    configure_from_settings(get_settings())
    running.emulator = emulator  # type: ignore[attr-defined]
    yield running
    shapes = emulator.emulator.shapes
    emulator.stop()
    running.stop()
    assert shapes is not None and shapes.differences == [], shapes.differences[:5]


@pytest.fixture(scope="session")
async def database(services: Services) -> AsyncIterator[None]:
    """A schema built by the migrations, once per session."""
    await db.open_pool(max_size=20)
    await db.engine().run_ddl("DROP SCHEMA IF EXISTS public CASCADE")
    await db.engine().run_ddl("CREATE SCHEMA public")
    await db.run_migrations()
    yield
    from billing.stripe_gateway import close

    await close()
    await db.close_pool()


async def _truncate_all() -> None:
    rows = await db.engine().run_ddl("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    names = [r["tablename"] for r in rows if r["tablename"] not in _KEEP]
    # DELETE is far cheaper than TRUNCATE on the few rows a test leaves behind.
    pool = db.engine().pool
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.execute("".join(f'DELETE FROM "{n}";' for n in names))


@pytest.fixture
async def clean_db(database: None) -> AsyncIterator[None]:
    """An empty database for this test (tables emptied after it)."""
    apikeys.clear_cache()
    yield
    await _truncate_all()


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[ArqRedis]:
    from workers import queue

    pool = await queue.connect(services.redis_url)
    await pool.flushdb()
    yield pool
    await pool.flushdb()
    await pool.aclose()


@pytest.fixture
def settings(services: Services) -> Settings:
    return load_settings({**os.environ, "APP_ENV": "test", "RATE_LIMIT_PER_MINUTE": "0"})


@pytest.fixture
def make_client(clean_db: None, redis: ArqRedis) -> Callable[..., Any]:
    """Build an app with some settings overridden and an httpx client on the same loop."""
    import contextlib

    from api.app import create_app

    @contextlib.asynccontextmanager
    async def build(**overrides: str) -> AsyncIterator[httpx.AsyncClient]:
        env = {**os.environ, "APP_ENV": "test", "RATE_LIMIT_PER_MINUTE": "0", **overrides}
        app = create_app(load_settings(env))
        # The startup/shutdown hooks run on this loop (an anyio lifespan task group
        # cannot span pytest-asyncio's separate setup and teardown tasks).
        for hook in app.on_startup:
            await hook(app)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c
        finally:
            for hook in app.on_shutdown:
                await hook(app)

    return build


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as c:
        yield c


async def _key(role: str) -> str:
    _, secret = await apikeys.create_key(f"test {role}", role)
    return secret


@pytest.fixture
async def admin_headers(clean_db: None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _key('admin')}"}


@pytest.fixture
async def helpdesk_headers(clean_db: None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _key('helpdesk')}"}


@pytest.fixture
async def finance_headers(clean_db: None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _key('finance')}"}


class DrainWorker(ServiceWorker):
    """The service's worker in burst mode, stopping once nothing is due *now*.

    arq's own burst mode waits until the queue is empty, which never happens while
    deferred jobs (deadline checks due later) sit in it.
    """

    async def main(self) -> None:
        from arq.connections import create_pool
        from arq.utils import timestamp_ms

        if self._pool is None:
            self._pool = await create_pool(self.redis_settings, default_queue_name=self.queue_name)
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        while True:
            await self._poll_iteration()
            await asyncio.gather(*self.tasks.values())
            due = await self.pool.zcount(self.queue_name, float("-inf"), timestamp_ms())
            if due == 0:
                await self._poll_iteration()  # reap finished tasks, surface their errors
                return


def drain_workers(redis_url: str) -> list[DrainWorker]:
    """One burst worker per queue, as ``workers.process`` runs them."""
    from workers import runtime
    from workers import settings as ws
    from workers.queue import DEADLINE_QUEUE, QUEUE_NAME, redis_settings

    return [
        DrainWorker(
            functions=functions,
            redis_settings=redis_settings(redis_url),
            queue_name=name,
            burst=True,
            poll_delay=0,
            on_startup=runtime.startup,
            on_shutdown=runtime.shutdown,
            handle_signals=False,
            max_jobs=20,
        )
        for name, functions in (
            (DEADLINE_QUEUE, ws.DEADLINE_FUNCTIONS),
            (QUEUE_NAME, ws.BULK_FUNCTIONS),
        )
    ]


async def tick_until_idle(redis_url: str) -> int:
    """Run the deadline clock until nothing is due now (as the worker's clock would);
    enqueue the credits it schedules; returns how many incidents it moved."""
    from sla import enforcement
    from workers import queue

    moved = 0
    redis = await queue.connect(redis_url)
    try:
        while True:
            tick = await enforcement.tick()
            moved += tick.breached + tick.warned + tick.escalated
            await queue.enqueue_sla_jobs(redis, tick.jobs)
            if not tick.more:
                return moved
    finally:
        await redis.aclose()


async def drain(redis_url: str) -> int:
    """Tick the deadline clock, then run both queues, until nothing is due (a job on one
    queue may enqueue on the other); returns the jobs run and incidents moved."""
    total = 0
    while True:
        ran = await tick_until_idle(redis_url)
        for worker in drain_workers(redis_url):
            try:
                await worker.main()
            finally:
                await worker.close()
            ran += worker.jobs_complete + worker.jobs_failed
        total += ran
        if ran == 0:
            return total


@pytest.fixture
def run_worker(redis: ArqRedis, clean_db: None, services: Services) -> Callable[[], Awaitable[int]]:
    """Run real arq workers in burst mode until no queue has anything due; returns jobs run."""

    async def run() -> int:
        return await drain(services.redis_url)

    return run
