"""Fixtures of the webhook tests: a running local receiver and a worker driver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from arq.connections import ArqRedis

from common.ids import new_id
from tests.webhooks.helpers import Drive, Receiver
from workers import queue


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def drive(redis: ArqRedis, run_worker: Callable[[], Awaitable[int]]) -> Drive:
    """Nudge the dispatcher (as a writer or the cron would) and run the worker until idle."""

    async def run() -> int:
        await queue.enqueue_dispatch(redis, new_id("nudge"))
        return await run_worker()

    return run
