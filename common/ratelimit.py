"""Per-API-key request limits in fixed one-minute windows kept in Redis."""

from __future__ import annotations

from typing import Any


async def hit(redis: Any, key_id: str, limit: int, now_epoch: float) -> tuple[bool, int]:
    """Count one request; return (allowed, seconds until the window resets)."""
    window = int(now_epoch // 60)
    retry_after = max(1, 60 - int(now_epoch % 60))
    name = f"ratelimit:{key_id}:{window}"
    count = int(await redis.incr(name))
    if count == 1:
        # First hit of this window: let the counter expire with it. (If this call were
        # lost, the key would linger harmlessly: the next window uses a new name.)
        await redis.expire(name, 61)
    return count <= limit, retry_after
