"""The Redis-backed rate limiter: exact for small limits, leased batches for large ones."""

from __future__ import annotations

from arq.connections import ArqRedis

from common.ratelimit import Limiter, batch_size

NOW = 1_800_000_030.0  # 30 s into a window


async def test_small_limits_are_counted_exactly(redis: ArqRedis) -> None:
    limiter = Limiter()
    results = [await limiter.hit(redis, "key_a", 3, NOW) for _ in range(5)]
    assert [allowed for allowed, _ in results] == [True, True, True, False, False]
    assert results[-1][1] == 30  # seconds until the window resets
    assert int(await redis.get(f"ratelimit:key_a:{int(NOW // 60)}")) == 5
    assert 0 < await redis.ttl(f"ratelimit:key_a:{int(NOW // 60)}") <= 61


async def test_large_limits_lease_batches_from_redis(redis: ArqRedis) -> None:
    limiter = Limiter()
    assert batch_size(640) == 10
    assert all([(await limiter.hit(redis, "key_b", 640, NOW))[0] for _ in range(25)])
    # Three leases of ten, not twenty-five round trips.
    assert int(await redis.get(f"ratelimit:key_b:{int(NOW // 60)}")) == 30
    # A new window starts from zero.
    assert (await limiter.hit(redis, "key_b", 640, NOW + 60))[0]


async def test_processes_together_never_exceed_the_limit(redis: ArqRedis) -> None:
    first, second = Limiter(), Limiter()
    limit = 128  # batches of two
    admitted = 0
    for n in range(400):
        allowed, _ = await (first if n % 3 else second).hit(redis, "key_c", limit, NOW)
        admitted += allowed
    assert limit - 2 * (batch_size(limit) - 1) <= admitted <= limit
