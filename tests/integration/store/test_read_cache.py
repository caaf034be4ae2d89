"""`Database.fetch_derived`: a value derived from a repeated read may be answered again by
the node, but never one older than a commit made before the call, whoever made it."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from taskflowd.store import SqlStore, open_store
from taskflowd.store.db import Row, SqliteDatabase, sqlite_path

LIST = "SELECT value FROM settings WHERE key LIKE $1 ORDER BY key"
PATTERN = "read-cache-%"


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[SqlStore]:
    store = open_store(sqlite_url)
    await store.start()
    yield store
    await store.stop()


async def _values(store: SqlStore) -> list[str]:
    return await store.db.fetch_derived(_values_of, LIST, PATTERN)


def _values_of(rows: list[Row]) -> list[str]:
    return [str(row["value"]) for row in rows]


async def _put(store: SqlStore, key: str, value: str) -> None:
    await store.db.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        key,
        value,
        datetime.now(UTC),
    )


async def test_a_cached_read_sees_every_commit_made_before_it(store: SqlStore) -> None:
    assert await _values(store) == []
    await _put(store, "read-cache-a", "first")
    assert await _values(store) == ["first"]
    assert await _values(store) == ["first"]
    await _put(store, "read-cache-a", "changed")
    assert await _values(store) == ["changed"]
    await _put(store, "read-cache-b", "second")
    assert await _values(store) == ["changed", "second"]
    await store.db.execute("DELETE FROM settings WHERE key = $1", "read-cache-a")
    assert await _values(store) == ["second"]


async def test_sqlite_answers_a_repeated_read_from_the_node_until_a_commit(
    sqlite_store: SqlStore,
) -> None:
    store = sqlite_store
    db = store.db
    assert isinstance(db, SqliteDatabase)
    await _put(store, "read-cache-a", "first")
    before = await db.fetch_derived(_values_of, LIST, PATTERN)
    assert await db.fetch_derived(_values_of, LIST, PATTERN) is before
    await _put(store, "read-cache-a", "changed")
    after = await db.fetch_derived(_values_of, LIST, PATTERN)
    assert after is not before
    assert after == ["changed"]


async def test_sqlite_sees_a_commit_of_another_process_at_once(
    sqlite_url: str, sqlite_store: SqlStore
) -> None:
    """The CLI writes the file through a connection of its own: its commit is seen by the
    next read although the node's writer never knew of it."""
    store = sqlite_store
    await _put(store, "read-cache-a", "first")
    assert await _values(store) == ["first"]

    def other_process_writes() -> None:
        conn = sqlite3.connect(sqlite_path(sqlite_url), isolation_level=None)
        try:
            conn.execute("UPDATE settings SET value = 'outside' WHERE key = 'read-cache-a'")
        finally:
            conn.close()

    await asyncio.to_thread(other_process_writes)
    assert await _values(store) == ["outside"]


async def test_sqlite_sees_a_commit_after_the_log_restarts(
    sqlite_url: str, sqlite_store: SqlStore
) -> None:
    """A checkpoint that empties the log lets the next commit write from its start again:
    that commit is still seen."""
    store = sqlite_store
    await _put(store, "read-cache-a", "first")
    assert await _values(store) == ["first"]

    def truncate_the_log() -> None:
        conn = sqlite3.connect(sqlite_path(sqlite_url), isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()

    await asyncio.to_thread(truncate_the_log)
    assert await _values(store) == ["first"]
    await _put(store, "read-cache-a", "after")
    assert await _values(store) == ["after"]


_OTHER_PROCESS = """
import fcntl, sqlite3, sys
shm = open(sys.argv[1] + "-shm", "rb+")
try:
    fcntl.lockf(shm, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
except OSError:
    pass
else:
    sys.exit("nobody holds the -shm file's DMS lock")
conn = sqlite3.connect(sys.argv[1])
conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('read-cache-other', 'x', 0)")
conn.commit()
conn.close()
"""
"""Another process: it finds the node's lock on the -shm file (the DMS byte, 128, which
each connection holds shared: see https://www.sqlite.org/walformat.html), then writes."""


async def test_another_process_finds_the_node_holding_its_lock_on_the_shm_file(
    sqlite_store: SqlStore, sqlite_url: str
) -> None:
    """Reading the wal-index header must not drop SQLite's locks: a process that found
    none would take itself for the only one and truncate the -shm file under the node
    (the `bench --orgs` daemon died of SIGBUS once the bench's own process had written
    its orgs)."""
    path = sqlite_path(sqlite_url)
    assert await _values(sqlite_store) == []
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OTHER_PROCESS, str(path), stderr=asyncio.subprocess.PIPE
    )
    _, err = await other.communicate()
    assert other.returncode == 0, err.decode()

    assert await _values(sqlite_store) == ["x"]
