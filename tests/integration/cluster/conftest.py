"""Fixtures of the cluster suite: the shared Redis under a key prefix of the test's own,
private Redis and PostgreSQL servers for outages, and the store fixtures of the root."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from taskflowd.auth.ratelimit_redis import KEY_PREFIX
from tests.integration.cluster.private_redis import PrivateRedis
from tests.integration.cluster.private_redis import missing as redis_missing
from tests.integration.ops.private_pg import PrivatePostgres
from tests.integration.ops.private_pg import missing as pg_missing
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


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    reason = redis_missing()
    if reason is not None:
        unavailable("a private Redis server", reason)
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    reason = pg_missing()
    if reason is not None:
        unavailable("a private PostgreSQL server", reason)
    server = PrivatePostgres()
    try:
        server.init_and_start()
        yield server
    finally:
        server.destroy()
