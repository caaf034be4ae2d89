"""Fast PostgreSQL isolation for the queue and engine suites.

Cloning and dropping a database per test costs seconds on a busy machine, and these
suites have many short tests. Instead each test session clones the migrated template
once, and every test starts from it emptied: the same clean slate, in milliseconds.
Import `pg_url` (and `_pg_reused_url`) into a conftest to use it there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.services import PostgresDatabases, unavailable

# Every table but schema_migrations (which must keep saying the schema is current),
# children before parents. The default org the migrations made stays.
TABLES = (
    "webhook_deliveries",
    "webhook_endpoints",
    "retry_history",
    "dead_letter_jobs",
    "job_executions",
    "refresh_tokens",
    "idempotency_keys",
    "workflow_steps",
    "workflow_runs",
    "workflows",
    "api_keys",
    "tasks",
    "org_members",
    "users",
    "orgs WHERE slug <> 'default'",
    "nodes",
    "settings",
)


@pytest.fixture(scope="session")
def _pg_reused_url(_pg_databases: PostgresDatabases | str) -> Iterator[str | None]:
    """One migrated database for this session (dropped with the template at the end)."""
    if isinstance(_pg_databases, str):
        yield None
        return
    yield asyncio.run(_pg_databases.create())


@pytest.fixture
async def pg_url(
    _pg_databases: PostgresDatabases | str, _pg_reused_url: str | None
) -> AsyncIterator[str]:
    """The session's PostgreSQL database, emptied for this test."""
    if isinstance(_pg_databases, str) or _pg_reused_url is None:
        unavailable("PostgreSQL", str(_pg_databases))
        raise AssertionError("unreachable")
    import asyncpg

    conn = await asyncpg.connect(_pg_reused_url)
    try:
        # A connection leaked by an earlier test must fail this one loudly, not hang it.
        await conn.execute("SET lock_timeout = '10s'")
        # DELETE, not TRUNCATE: the tables are small, and TRUNCATE's new files cost an
        # fsync each, ten times slower on a busy machine.
        async with conn.transaction():
            for table in TABLES:
                await conn.execute(f"DELETE FROM {table}")
    finally:
        await conn.close()
    yield _pg_reused_url
