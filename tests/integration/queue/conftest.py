"""Fixtures of the JobQueue contract suite.

`queue` is parametrised by queue backend on top of the parametrised `store`: add a
param (e.g. "redis") and a branch in `open_test_queue` and every contract test runs
against the new queue too. The store stays the system of record for every queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskflowd.queue.base import JobQueue
from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore
from tests.integration.queue.isolation import _pg_reused_url, pg_url

__all__ = ["_pg_reused_url", "open_test_queue", "pg_url"]


def open_test_queue(kind: str, store: SqlStore) -> JobQueue:
    if kind == "database":
        return SqlQueue(store.db)
    raise ValueError(f"no test queue called {kind!r}")


@pytest.fixture(params=["database"])
async def queue(request: pytest.FixtureRequest, store: SqlStore) -> AsyncIterator[JobQueue]:
    """A started queue over the test's store; stopped afterwards."""
    opened = open_test_queue(request.param, store)
    await opened.start()
    yield opened
    await opened.stop()
