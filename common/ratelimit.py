"""Per-API-key request limits in fixed one-minute windows kept in Redis.

Each process leases batches of a window's allowance from Redis (``INCRBY``) and
spends them locally, so a request costs no Redis round trip: the next batch is leased
in the background while half of the current one is left, and a request waits for
Redis only when this process has nothing left. Tokens are reserved in Redis before
they are spent, so all processes together never admit more than the limit; each
process may hold back at most two unspent batches per key. Limits below
``BATCH_SHARE`` requests a minute are counted one request at a time, exactly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("ratelimit")

MAX_BATCH = 50
BATCH_SHARE = 64
# Leases of past windows are dropped once this many (key, window) slots are held.
MAX_SLOTS = 10_000

Slot = tuple[str, int]


def batch_size(limit: int) -> int:
    return max(1, min(MAX_BATCH, limit // BATCH_SHARE))


@dataclass
class Limiter:
    """This process's leased, unspent tokens per (key, window), and leases in flight."""

    tokens: dict[Slot, int] = field(default_factory=dict)
    exhausted: set[Slot] = field(default_factory=set)
    leasing: dict[Slot, asyncio.Task[None]] = field(default_factory=dict)

    async def hit(self, redis: Any, key_id: str, limit: int, now_epoch: float) -> tuple[bool, int]:
        """Spend one token; return (allowed, seconds until the window resets)."""
        window = int(now_epoch // 60)
        retry_after = max(1, 60 - int(now_epoch % 60))
        slot = (key_id, window)
        batch = batch_size(limit)
        while True:
            left = self.tokens.get(slot, 0)
            if left > 0:
                self.tokens[slot] = left - 1
                if batch > 1 and left - 1 <= batch // 2 and slot not in self.exhausted:
                    self._lease(redis, slot, limit, batch, background=True)
                return True, retry_after
            if slot in self.exhausted:
                return False, retry_after
            # Nothing left here: wait for the lease in flight (one per slot, shared).
            # Each lease either adds tokens or marks the window exhausted.
            await asyncio.shield(self._lease(redis, slot, limit, batch, background=False))

    def _lease(
        self, redis: Any, slot: Slot, limit: int, batch: int, *, background: bool
    ) -> asyncio.Task[None]:
        running = self.leasing.get(slot)
        if running is not None:
            return running
        if len(self.tokens) + len(self.exhausted) >= MAX_SLOTS:
            self._forget_past_windows(slot[1])
        task = asyncio.create_task(self._reserve(redis, slot, limit, batch))
        self.leasing[slot] = task
        task.add_done_callback(self._log_failure if background else _retrieve)
        return task

    async def _reserve(self, redis: Any, slot: Slot, limit: int, batch: int) -> None:
        name = f"ratelimit:{slot[0]}:{slot[1]}"
        try:
            # One round trip; the counter outlives its window by a second.
            pipe = redis.pipeline(transaction=False)
            pipe.incrby(name, batch)
            pipe.expire(name, 61)
            reserved, _ = await pipe.execute()
            granted = min(batch, limit - (int(reserved) - batch))
            if granted > 0:
                self.tokens[slot] = self.tokens.get(slot, 0) + granted
            if granted < batch:
                self.exhausted.add(slot)
        finally:
            # Gone from `leasing` before the task counts as done, so nobody awaits it again.
            self.leasing.pop(slot, None)

    @staticmethod
    def _log_failure(task: asyncio.Task[None]) -> None:
        error = _retrieve(task)
        if error is not None:
            # A request that runs out of tokens leases again and sees the error itself.
            log.warning("rate limit lease failed: %r", error)

    def _forget_past_windows(self, window: int) -> None:
        self.tokens = {k: v for k, v in self.tokens.items() if k[1] >= window}
        self.exhausted = {k for k in self.exhausted if k[1] >= window}


def _retrieve(task: asyncio.Task[None]) -> BaseException | None:
    """The task's exception, marked as seen (its awaiters, if any, see it too)."""
    return None if task.cancelled() else task.exception()
