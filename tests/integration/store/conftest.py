"""Fixtures shared by the store tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskflowd.store.db import Database, open_database


@pytest.fixture
async def empty_db(db_url: str) -> AsyncIterator[Database]:
    """The test's database with no schema at all (to take through the migrations)."""
    db = open_database(db_url)
    await db.connect()
    if db.dialect == "postgresql":
        await db.execute("DROP SCHEMA public CASCADE")
        await db.execute("CREATE SCHEMA public")
    yield db
    await db.close()
