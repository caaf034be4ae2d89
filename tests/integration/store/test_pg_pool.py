"""The PostgreSQL pool gives a connection back without a statement of its own: one round
trip per use of the pool, not two (taskflowd keeps no session state to reset)."""

from __future__ import annotations

import asyncpg

from taskflowd.store import SqlStore, open_store


async def test_a_connection_goes_back_to_the_pool_without_a_reset_statement(
    pg_url: str,
) -> None:
    store: SqlStore = open_store(pg_url)
    await store.start()
    try:
        row = await store.db.fetchrow("SELECT pg_backend_pid() AS pid")
        assert row is not None
        watcher = await asyncpg.connect(pg_url)
        try:
            last = await watcher.fetchval(
                "SELECT query FROM pg_stat_activity WHERE pid = $1", row["pid"]
            )
        finally:
            await watcher.close()
    finally:
        await store.stop()
    assert last == "SELECT pg_backend_pid() AS pid", "the last statement was the pool's reset"


async def test_a_transaction_given_back_unfinished_is_rolled_back(pg_url: str) -> None:
    store: SqlStore = open_store(pg_url)
    await store.start()
    try:
        conn = await store.db.pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ('pool-test', 'x', now())"
        )
        await store.db.pool.release(conn)
        assert await store.get_setting("pool-test") is None
    finally:
        await store.stop()
