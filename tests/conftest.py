from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskflowd.queue.redis_index import RedisKeys
from taskflowd.store import SqlStore, open_store
from tests.integration.ops.private_pg import InitdbTemplate, PrivatePostgres
from tests.integration.ops.private_pg import missing as private_pg_missing
from tests.integration.queue.redis_server import private_redis
from tests.services import (
    PG_ADMIN_URL,
    REDIS_URL,
    PostgresDatabases,
    delete_redis_keys,
    reachable,
    unavailable,
)

# Private servers a test owns, to stop, kill or restart: `private_pg` below and
# `private_redis` (from tests/integration/queue/redis_server.py).
__all__ = ["private_redis"]


@pytest.fixture(scope="session")
def _pg_databases() -> Iterator[PostgresDatabases | str]:
    """The session's template database, or the reason PostgreSQL is unreachable."""
    reason = reachable(PG_ADMIN_URL, 5432)
    if reason is not None:
        yield reason
        return
    databases = PostgresDatabases(PG_ADMIN_URL)
    asyncio.run(databases.build_template())
    yield databases
    databases.drop_all()


@pytest.fixture
async def pg_url(_pg_databases: PostgresDatabases | str) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for this test, dropped afterwards (with the
    next batch of finished tests' databases)."""
    if isinstance(_pg_databases, str):
        unavailable("PostgreSQL", _pg_databases)
        raise AssertionError("unreachable")
    url = await _pg_databases.create()
    yield url
    await _pg_databases.release(url)


@pytest.fixture(scope="session")
def _initdb_template() -> Iterator[InitdbTemplate | str]:
    """The session's one freshly initialised data directory, or why there can be none."""
    reason = private_pg_missing()
    if reason is not None:
        yield reason
        return
    template = InitdbTemplate()
    try:
        yield template
    finally:
        template.destroy()


@pytest.fixture
def private_pg(_initdb_template: InitdbTemplate | str) -> Iterator[PrivatePostgres]:
    """A started private PostgreSQL server of this test's own (a copy of a fresh initdb,
    trust auth, a free port), destroyed afterwards."""
    if isinstance(_initdb_template, str):
        unavailable("a private PostgreSQL server", _initdb_template)
        raise AssertionError("unreachable")
    server = PrivatePostgres()
    try:
        server.init_and_start(_initdb_template)
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def _redis_reachable() -> str | None:
    """None when the test Redis answers, else the reason."""
    return reachable(REDIS_URL, 6379)


@dataclass(frozen=True)
class RedisTarget:
    """A Redis server and key names no other test uses."""

    url: str
    keys: RedisKeys


@pytest.fixture
def redis_target(_redis_reachable: str | None) -> Iterator[RedisTarget]:
    """Redis with this test's own key prefix (`taskflow-test-<id>:`), deleted afterwards.
    (A plain fixture, so async fixtures can ask for it with `getfixturevalue`.)"""
    if _redis_reachable is not None:
        unavailable("Redis", _redis_reachable)
    target = RedisTarget(REDIS_URL, RedisKeys(prefix=f"taskflow-test-{uuid.uuid4().hex[:12]}:"))
    yield target
    asyncio.run(delete_redis_keys(target.url, target.keys.prefix))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'taskflowd.db'}"


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[SqlStore]:
    """A started store on this test's own SQLite file."""
    store = open_store(sqlite_url)
    await store.start()
    yield store
    await store.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per SQL backend."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    store = open_store(db_url)
    await store.start()
    yield store
    await store.stop()
