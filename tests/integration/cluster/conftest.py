"""Fixtures of the cluster suite: the shared Redis under a key prefix of the test's own,
and the store fixtures of the root. (`private_redis` and `private_pg`, servers to take
away for outages, come from tests/conftest.py.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from taskflowd.auth.ratelimit_redis import KEY_PREFIX
from tests.integration.queue.isolation import _pg_reused_url, pg_url
from tests.services import REDIS_URL, reachable, unavailable

__all__ = ["_pg_reused_url", "pg_url"]


@pytest.fixture
def redis_url() -> str:
    """The shared Redis server; tests keep to `key_prefix` (pub/sub: their own channel)."""
    reason = reachable(REDIS_URL, 6379)
    if reason is not None:
        unavailable("Redis", reason)
    return REDIS_URL


@pytest.fixture
async def key_prefix(redis_url: str) -> AsyncIterator[str]:
    """A rate-limit key prefix of this test's own; its keys are deleted afterwards."""
    from redis.asyncio import Redis

    prefix = f"{KEY_PREFIX}test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
