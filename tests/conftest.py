from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskflowd.store import SqlStore, open_store
from tests.services import PG_ADMIN_URL, PostgresDatabases, reachable, unavailable


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
    """A fresh, migrated PostgreSQL database for this test, dropped afterwards."""
    if isinstance(_pg_databases, str):
        unavailable("PostgreSQL", _pg_databases)
        raise AssertionError("unreachable")
    url = await _pg_databases.create()
    yield url
    await _pg_databases.drop(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'taskflowd.db'}"


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
