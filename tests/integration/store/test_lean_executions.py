"""Migration 0012 drops the indexes of job_executions that no query reads, on a database
that holds executions, on SQLite and PostgreSQL; every row stays."""

from __future__ import annotations

from taskflowd.store.db import Database
from taskflowd.store.migrate import available, current_version, migrate
from tests.integration.store.test_orgs_upgrade import counts, write_release_rows

BEFORE = 11
DROPPED = {
    "sqlite": {
        "job_executions_owner",
        "job_executions_owner_completed_at",
        "job_executions_ready",
        "job_executions_lease",
    },
    "postgresql": {
        "job_executions_owner",
        "job_executions_owner_completed_at",
        "job_executions_ready",
    },
}
INDEXES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job_executions'",
    "postgresql": "SELECT indexname AS name FROM pg_indexes "
    "WHERE schemaname = current_schema() AND tablename = 'job_executions'",
}


async def _indexes(db: Database) -> set[str]:
    return {r["name"] for r in await db.fetch(INDEXES[db.dialect])}


async def test_an_0011_database_loses_the_unread_indexes_and_keeps_its_rows(
    empty_db: Database,
) -> None:
    db = empty_db
    await migrate(db, up_to=4)
    await write_release_rows(db)
    await migrate(db, up_to=BEFORE)
    before, indexed = await counts(db), await _indexes(db)
    assert DROPPED[db.dialect] <= indexed

    applied = await migrate(db, up_to=BEFORE + 1)
    assert [m.version for m in applied] == [BEFORE + 1]
    assert await counts(db) == before, "no row is lost"
    assert await _indexes(db) == indexed - DROPPED[db.dialect]

    await migrate(db)
    assert await current_version(db) == max(m.version for m in available(db.dialect))
    assert await counts(db) == before
    assert not await _indexes(db) & DROPPED[db.dialect]


async def test_a_fresh_database_has_none_of_them(empty_db: Database) -> None:
    await migrate(empty_db)
    left = await _indexes(empty_db)
    assert not left & DROPPED[empty_db.dialect]
    assert "job_executions_org_ready" in left
