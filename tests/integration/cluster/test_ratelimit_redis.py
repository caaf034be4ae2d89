"""The Redis GCRA limiter: one quota per key across every node (each node its own client),
the same decisions as the in-process limiter, keys that expire and name no one, and a
fast, loud failure while Redis is down that heals by itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from taskflowd.auth.ratelimit import Decision, GcraRateLimiter, RateLimiterUnavailable
from taskflowd.auth.ratelimit_redis import RedisRateLimiter, storage_key
from tests.integration.cluster.private_redis import PrivateRedis
from tests.integration.queue.polling import eventually

MakeLimiter = Callable[..., RedisRateLimiter]


@pytest.fixture
async def make_limiter(redis_url: str, key_prefix: str) -> AsyncIterator[MakeLimiter]:
    """`make_limiter()`: a limiter with a client of its own, as on another node."""
    made: list[RedisRateLimiter] = []

    def make(url: str = redis_url, **kwargs: object) -> RedisRateLimiter:
        limiter = RedisRateLimiter.from_url(url, prefix=key_prefix, **kwargs)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def hits(limiter: RedisRateLimiter, key: str, limit: int, n: int) -> list[Decision]:
    return [await limiter.hit(key, limit) for _ in range(n)]


async def test_a_burst_of_the_limit_then_refusals(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()

    decisions = await hits(limiter, "user:ada", 5, 7)

    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[5]
    # 5 per minute: the next hit is allowed about 12 s later (less the time spent so far)
    assert 10.0 < refused.retry_after_s <= 12.0
    assert refused.remaining == 0
    assert decisions[6].retry_after_s <= refused.retry_after_s  # a refusal costs nothing


async def test_nodes_share_one_quota(make_limiter: MakeLimiter) -> None:
    nodes = [make_limiter(), make_limiter(), make_limiter()]

    decisions = await asyncio.gather(*(n.hit("login:10.0.0.1:ada@x.org", 6) for n in nodes * 4))

    assert sum(d.allowed for d in decisions) == 6
    assert [d.allowed for d in await hits(nodes[0], "login:10.0.0.1:bob@x.org", 6, 1)] == [True]


async def test_decisions_match_the_in_process_limiter(make_limiter: MakeLimiter) -> None:
    shared = make_limiter()
    local = GcraRateLimiter()
    # Limits slow enough that the time the round trips take cannot refill a hit.
    for limit, cost in ((1, 1), (3, 1), (7, 2), (60, 1), (60, 7)):
        key = f"user:match-{limit}-{cost}"
        remote = [await shared.hit(key, limit, cost) for _ in range(limit // cost + 2)]
        here = [local.hit_now(key, limit, cost) for _ in range(limit // cost + 2)]
        assert [d.allowed for d in remote] == [d.allowed for d in here], (limit, cost)
        assert [d.remaining for d in remote] == [d.remaining for d in here], (limit, cost)


async def test_keys_expire_and_name_no_one(
    make_limiter: MakeLimiter, redis_url: str, key_prefix: str
) -> None:
    limiter = make_limiter()
    await limiter.hit("login:192.0.2.7:ada@example.org", 10)

    client = Redis.from_url(redis_url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"{key_prefix}*")]
        assert keys == [storage_key("login:192.0.2.7:ada@example.org", key_prefix)]
        assert keys[0].startswith(f"{key_prefix}login:")
        assert "ada" not in keys[0] and "192.0.2.7" not in keys[0]
        ttl_ms = await client.pttl(keys[0])
        assert 0 < ttl_ms <= 6001  # one hit of ten per minute: six seconds of backlog
    finally:
        await client.aclose()


async def test_invalid_limits_are_refused(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    with pytest.raises(ValueError, match="limit_per_min"):
        await limiter.hit("user:x", 0)


async def test_redis_down_fails_fast_then_heals(
    private_redis: PrivateRedis, make_limiter: MakeLimiter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "taskflowd.ratelimit")
    limiter = make_limiter(private_redis.url, cooldown_s=0.2)
    assert (await limiter.hit("user:ada", 10)).allowed
    await limiter.ping()

    private_redis.kill()
    for _ in range(3):
        with pytest.raises(RateLimiterUnavailable):
            await limiter.hit("user:ada", 10)
    with pytest.raises(RateLimiterUnavailable, match="redis unreachable"):
        await limiter.ping()
    outage_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage_logs) == 1, "an outage is logged once, not once per request"

    private_redis.start()  # empty: a restarted Redis forgot every quota and script

    async def allowed_again() -> bool:
        try:
            return (await limiter.hit("user:ada", 10)).allowed
        except RateLimiterUnavailable:
            return False

    await eventually(allowed_again, "the limiter to answer once Redis is back")
    assert any("answers again" in r.getMessage() for r in caplog.records)
