"""Per-API-key request limits in fixed one-minute windows kept in Redis."""

from __future__ import annotations

from typing import Any


async def hit(redis: Any, key_id: str, limit: int, now_epoch: float) -> tuple[bool, int]:
    """Count one request; return (allowed, seconds until the window resets)."""
    window = int(now_epoch // 60)
    retry_after = max(1, 60 - int(now_epoch % 60))
    name = f"ratelimit:{key_id}:{window}"
    pipe = redis.pipeline(transaction=False)
    pipe.incr(name)
    pipe.expire(name, 61)
    count, _ = await pipe.execute()
    return int(count) <= limit, retry_after
