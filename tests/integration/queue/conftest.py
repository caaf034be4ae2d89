"""Fixtures of the JobQueue contract suite.

`queue` is parametrised by queue backend on top of the parametrised `store`: add a
param (e.g. "redis") and a branch in `open_test_queue` and every contract test runs
against the new queue too. The store stays the system of record for every queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskflowd.domain.entities import Task, User
from taskflowd.queue.base import JobQueue
from taskflowd.queue.redis import RedisQueue
from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore, open_store
from tests.conftest import RedisTarget
from tests.integration.queue.factories import new_owner, new_task
from tests.integration.queue.isolation import _pg_reused_url, pg_url

__all__ = ["_pg_reused_url", "open_test_queue", "pg_url"]


def open_test_queue(kind: str, store: SqlStore, redis: RedisTarget | None = None) -> JobQueue:
    if kind == "database":
        return SqlQueue(store.db)
    if kind == "redis" and redis is not None:
        return RedisQueue(store.db, redis.url, keys=redis.keys)
    raise ValueError(f"no test queue called {kind!r}")


@pytest.fixture(params=["database", "redis"])
async def queue(request: pytest.FixtureRequest, store: SqlStore) -> AsyncIterator[JobQueue]:
    """A started queue over the test's store; stopped afterwards. The Redis queue keeps
    its records in the same store, as in production."""
    redis = request.getfixturevalue("redis_target") if request.param == "redis" else None
    opened = open_test_queue(request.param, store, redis)
    await opened.start()
    yield opened
    await opened.stop()


@pytest.fixture
async def owner(store: SqlStore) -> User:
    """A USER who owns `task`."""
    return await new_owner(store)


@pytest.fixture
async def task(store: SqlStore, owner: User) -> Task:
    """An active one-time task of `owner` with no limits: jobs need a task row."""
    return await new_task(store, owner)


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[SqlStore]:
    """A started store on a PostgreSQL database of its own, for what PostgreSQL alone does."""
    store = open_store(pg_url)
    await store.start()
    yield store
    await store.stop()
