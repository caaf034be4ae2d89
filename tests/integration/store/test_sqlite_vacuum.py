"""SQLite's incremental vacuum step (`SqliteDatabase.incremental_vacuum`): it gives free
pages back to the file system, as many as asked, and stops moving pages once it has run
its time budget, so a step never holds the writer long however slow its pages are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskflowd.store.db import SqliteDatabase

ROWS = 200


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    db = SqliteDatabase(f"sqlite:///{tmp_path / 'vacuum.db'}")
    await db.connect()
    try:
        await db.execute("CREATE TABLE filler (blob TEXT)")
        await db.executemany("INSERT INTO filler VALUES ($1)", [("x" * 4000,)] * ROWS)
        await db.execute("DELETE FROM filler")
        yield db
    finally:
        await db.close()


async def free_pages(db: SqliteDatabase) -> int:
    row = await db.fetchrow("PRAGMA freelist_count")
    assert row is not None
    return int(row["freelist_count"])


async def test_a_step_stops_moving_pages_once_its_budget_is_spent(db: SqliteDatabase) -> None:
    free = await free_pages(db)
    assert free >= ROWS

    assert await db.incremental_vacuum(64, budget_s=0.0) == 1
    assert await free_pages(db) == free - 1


async def test_a_step_within_its_budget_gives_back_what_it_is_asked(db: SqliteDatabase) -> None:
    free = await free_pages(db)

    assert await db.incremental_vacuum(64, budget_s=60.0) == 64
    assert await free_pages(db) == free - 64
    assert await db.incremental_vacuum(10 * free, budget_s=60.0) == free - 64
    assert await free_pages(db) == 0
