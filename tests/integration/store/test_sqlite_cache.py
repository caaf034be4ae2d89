"""SQLite page caches: a connection keeps the memory its cache once filled until it
closes, so the cache sizes bound what the node's RSS grows to under load (issue 17)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskflowd.store.db import SqliteDatabase


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    db = SqliteDatabase(f"sqlite:///{tmp_path / 'cache.db'}", readers=2)
    await db.connect()
    try:
        yield db
    finally:
        await db.close()


def cache_kib(value: object) -> int:
    size = int(str(value))
    assert size < 0, "a cache_size in pages grows with the page size; it must be in KiB"
    return -size


async def test_the_writer_caches_at_most_4_mib(db: SqliteDatabase) -> None:
    async with db.transaction() as conn:
        row = await conn.fetchrow("PRAGMA cache_size")
    assert row is not None
    assert 0 < cache_kib(row["cache_size"]) <= 4096


async def test_every_reader_caches_at_most_2_mib(db: SqliteDatabase) -> None:
    # Two reads at once go to the two readers (each read takes the least busy reader).
    rows = await asyncio.gather(*(db.fetchrow("PRAGMA cache_size") for _ in range(2)))
    assert [r is not None and cache_kib(r["cache_size"]) <= 2048 for r in rows] == [True, True]
