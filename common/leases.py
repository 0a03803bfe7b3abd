"""Leases: a claim on work that lapses unless its holder keeps renewing it.

A request that reserves a row before calling Stripe, or claims an ``Idempotency-Key``,
holds a lease on it for as long as it runs. Another request finding the lease current
is told to come back later (409 with ``Retry-After``); finding it lapsed, it knows the
holder died mid-way (a killed process, a dropped connection) and may finish the work,
under the same Stripe idempotency key, so the two attempts converge on one object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

from common.clock import utcnow
from common.config import get_settings

log = logging.getLogger("common.leases")


def seconds() -> float:
    """How long a lease lives without renewal (``LEASE_SECONDS``)."""
    return get_settings().lease_seconds


def until(now: datetime | None = None) -> datetime:
    """The instant a lease taken now lapses if nobody renews it."""
    return (now or utcnow()) + timedelta(seconds=seconds())


def retry_after(locked_until: datetime | None, now: datetime | None = None) -> int:
    """Whole seconds until ``locked_until`` (at least 1): the ``Retry-After`` to send."""
    if locked_until is None:
        return 1
    left = (locked_until - (now or utcnow())).total_seconds()
    return max(1, math.ceil(left))


@contextlib.asynccontextmanager
async def renewing(renew: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    """Run ``renew`` every third of the lease while the block runs.

    A failed renewal is logged and the loop goes on: if the database stays away, the
    lease lapses, which is what a lease is for.
    """

    async def loop() -> None:
        every = seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                await renew()
            except Exception as e:
                log.warning("could not renew a lease: %r", e)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
