"""`Database.fetch_kept`: a read answered again by the node may lag other nodes' commits
by up to `KEPT_S`, never this node's own statements."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from taskflowd.store import SqlStore, open_store
from taskflowd.store.db import Row
from taskflowd.store.kept import KEPT_S

LIST = "SELECT value FROM settings WHERE key LIKE $1 ORDER BY key"
PATTERN = "kept-%"
INSERT = (
    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def _values_of(rows: list[Row]) -> list[str]:
    return [str(row["value"]) for row in rows]


async def _kept(store: SqlStore) -> list[str]:
    return await store.db.fetch_kept(_values_of, LIST, PATTERN)


async def _put(store: SqlStore, key: str, value: str) -> None:
    await store.db.execute(INSERT, key, value, datetime.now(UTC))


async def test_a_kept_read_sees_every_statement_of_its_node(store: SqlStore) -> None:
    await _put(store, "kept-a", "first")
    assert await _kept(store) == ["first"]
    await _put(store, "kept-a", "changed")
    assert await _kept(store) == ["changed"]
    async with store.db.transaction() as conn:
        await conn.execute(INSERT, "kept-b", "second", datetime.now(UTC))
    assert await _kept(store) == ["changed", "second"]


async def test_postgresql_answers_a_kept_read_again_until_a_write_of_the_node(
    pg_url: str,
) -> None:
    store = open_store(pg_url)
    await store.start()
    try:
        await _put(store, "kept-a", "first")
        await _put(store, "kept-b", "second")
        before = await _kept(store)
        assert await _kept(store) is before
        assert await store.db.fetchrow("SELECT value FROM settings WHERE key = $1", "kept-a")
        assert await _kept(store) is before
        # Writes sent as fetches, as the worker's claims are (UPDATE … RETURNING).
        await store.db.fetch(
            "UPDATE settings SET value = 'claimed' WHERE key = $1 RETURNING key", "kept-a"
        )
        assert await _kept(store) == ["claimed", "second"]
        await store.db.fetchrow(
            "WITH gone AS (DELETE FROM settings WHERE key = $1) SELECT 1", "kept-b"
        )
        assert await _kept(store) == ["claimed"]
    finally:
        await store.stop()


async def test_postgresql_shows_another_nodes_commit_within_the_kept_time(pg_url: str) -> None:
    here, there = open_store(pg_url), open_store(pg_url)
    await here.start()
    await there.start()
    try:
        await _put(here, "kept-a", "first")
        assert await _kept(here) == ["first"]
        await _put(there, "kept-a", "elsewhere")
        committed = time.monotonic()
        while await _kept(here) != ["elsewhere"]:
            assert time.monotonic() - committed < KEPT_S + 0.5, "the kept page never changed"
            await asyncio.sleep(0.01)
        assert time.monotonic() - committed <= 1.0
    finally:
        await there.stop()
        await here.stop()


async def test_postgresql_reads_a_page_missed_together_once(pg_url: str) -> None:
    store = open_store(pg_url)
    await store.start()
    try:
        await _put(store, "kept-a", "first")
        reads: list[int] = []

        def counted(rows: list[Row]) -> list[str]:
            reads.append(len(rows))
            return _values_of(rows)

        pages = await asyncio.gather(
            *(store.db.fetch_kept(counted, LIST, PATTERN) for _ in range(8))
        )
        assert pages == [["first"]] * 8
        assert reads == [1]
        await _put(store, "kept-a", "changed")
        assert await store.db.fetch_kept(counted, LIST, PATTERN) == ["changed"]
        assert reads == [1, 1]
    finally:
        await store.stop()


async def test_postgresql_joins_no_read_begun_longer_ago_than_the_kept_time(pg_url: str) -> None:
    """A read under way (slow: a saturated pool, a busy server) is shared only while it
    began less than `KEPT_S` ago: a later request shows another node's commit made more
    than `KEPT_S` before it, as a kept page would."""
    here, there = open_store(pg_url), open_store(pg_url)
    await here.start()
    await there.start()
    slow = "SELECT value FROM settings, pg_sleep($2) WHERE key LIKE $1 ORDER BY key"
    try:
        await _put(here, "kept-a", "first")
        first = asyncio.create_task(here.db.fetch_kept(_values_of, slow, PATTERN, 1.5))
        deadline = time.monotonic() + 5.0
        while not await there.db.fetchrow(
            "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 "
            "AND pid <> pg_backend_pid()",
            "%pg_sleep($2)%",
        ):
            assert time.monotonic() < deadline, "the slow read never began"
            await asyncio.sleep(0.01)
        await _put(there, "kept-a", "elsewhere")
        await asyncio.sleep(KEPT_S + 0.05)  # the commit is older than a kept page may lag
        assert not first.done()
        assert await here.db.fetch_kept(_values_of, slow, PATTERN, 1.5) == ["elsewhere"]
        assert await first == ["first"]
    finally:
        await there.stop()
        await here.stop()
