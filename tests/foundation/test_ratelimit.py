"""The Redis-backed rate limiter: exact for small limits, leased batches for large ones."""

from __future__ import annotations

import asyncio

from arq.connections import ArqRedis

from common.ratelimit import Limiter, batch_size

NOW = 1_800_000_030.0  # 30 s into a window
WINDOW = int(NOW // 60)


async def _reserved(redis: ArqRedis, key: str, window: int = WINDOW) -> int:
    return int(await redis.get(f"ratelimit:{key}:{window}") or 0)


async def test_small_limits_are_counted_exactly(redis: ArqRedis) -> None:
    limiter = Limiter()
    results = [await limiter.hit(redis, "key_a", 3, NOW) for _ in range(5)]
    assert [allowed for allowed, _ in results] == [True, True, True, False, False]
    assert results[-1][1] == 30  # seconds until the window resets
    # Three tokens and one refused lease; once refused, the window is not asked again.
    assert await _reserved(redis, "key_a") == 4
    assert 0 < await redis.ttl(f"ratelimit:key_a:{WINDOW}") <= 61


async def test_large_limits_lease_batches_and_refill_ahead(redis: ArqRedis) -> None:
    limiter = Limiter()
    assert batch_size(640) == 10
    assert all([(await limiter.hit(redis, "key_b", 640, NOW))[0] for _ in range(5)])
    assert await _reserved(redis, "key_b") == 10  # one lease for five requests
    # Half the batch is spent: the next one is leased in the background...
    await asyncio.sleep(0.05)
    assert await _reserved(redis, "key_b") == 20
    # ...so the next fifteen requests never wait for Redis.
    assert all([(await limiter.hit(redis, "key_b", 640, NOW))[0] for _ in range(15)])
    assert await _reserved(redis, "key_b") <= 30
    # A new window starts from zero.
    assert (await limiter.hit(redis, "key_b", 640, NOW + 60))[0]
    assert await _reserved(redis, "key_b", WINDOW + 1) == 10


async def test_concurrent_requests_share_one_lease(redis: ArqRedis) -> None:
    limiter = Limiter()
    results = await asyncio.gather(*(limiter.hit(redis, "key_d", 6400, NOW) for _ in range(40)))
    assert all(allowed for allowed, _ in results)
    # Forty requests arriving together wait for one lease of fifty, not forty round
    # trips; spending past half of it leased the next fifty ahead.
    await asyncio.sleep(0.05)
    assert await _reserved(redis, "key_d") == 100


async def test_processes_together_never_exceed_the_limit(redis: ArqRedis) -> None:
    first, second = Limiter(), Limiter()
    limit = 640  # batches of ten

    async def burst(limiter: Limiter, n: int) -> int:
        admitted = 0
        for _ in range(n):
            allowed, _ = await limiter.hit(redis, "key_c", limit, NOW)
            admitted += allowed
            await asyncio.sleep(0)  # let background leases interleave
        return admitted

    admitted = sum(await asyncio.gather(burst(first, 500), burst(second, 500)))
    assert admitted <= limit
    # Each process may hold back at most two unspent batches.
    assert admitted >= limit - 2 * 2 * batch_size(limit)
    assert await _reserved(redis, "key_c") >= limit
