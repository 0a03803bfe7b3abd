"""Per-API-key request limits in fixed one-minute windows kept in Redis.

Each process leases a small batch of the window's allowance from Redis (``INCRBY``)
and spends it locally, so most requests cost no Redis round trip. Tokens are
reserved in Redis before they are spent, so all processes together never admit
more than the limit; a process may hold back at most one unspent batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# One Redis call per this many requests at most; small limits lease one token at a
# time, i.e. they are counted exactly.
MAX_BATCH = 50
BATCH_SHARE = 64


def batch_size(limit: int) -> int:
    return max(1, min(MAX_BATCH, limit // BATCH_SHARE))


@dataclass
class Limiter:
    """The leased, not yet spent tokens of this process, per key and window."""

    tokens: dict[tuple[str, int], int] = field(default_factory=dict)

    async def hit(self, redis: Any, key_id: str, limit: int, now_epoch: float) -> tuple[bool, int]:
        """Spend one token; return (allowed, seconds until the window resets)."""
        window = int(now_epoch // 60)
        retry_after = max(1, 60 - int(now_epoch % 60))
        slot = (key_id, window)
        left = self.tokens.get(slot, 0)
        if left > 0:
            self.tokens[slot] = left - 1
            return True, retry_after
        if len(self.tokens) > 10_000:  # windows of the past: drop them all
            self.tokens = {k: v for k, v in self.tokens.items() if k[1] == window}
        batch = batch_size(limit)
        name = f"ratelimit:{key_id}:{window}"
        reserved = int(await redis.incrby(name, batch))
        if reserved == batch:
            # First lease of this window: let the counter expire with it.
            await redis.expire(name, 61)
        granted = min(batch, limit - (reserved - batch))
        if granted <= 0:
            return False, retry_after
        self.tokens[slot] = self.tokens.get(slot, 0) + granted - 1
        return True, retry_after
