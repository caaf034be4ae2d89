"""`Database.fetch_derived`: a value derived from a repeated read may be answered again by
the node, but never one older than a commit made before the call, whoever made it."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from datetime import UTC, datetime

from taskflowd.store import SqlStore
from taskflowd.store.db import Row, SqliteDatabase, sqlite_path

LIST = "SELECT value FROM settings WHERE key LIKE $1 ORDER BY key"
PATTERN = "read-cache-%"


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


_DMS_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
except OSError:
    print("in use")
else:
    print("unused")
"""
"""What SQLite does when it opens a database in WAL mode: it tries to lock the `-shm`
file's "DMS" byte (offset 128) exclusively; when it can, no other process uses the file
and it truncates it. POSIX locks are per process, so only another process can ask."""


async def test_another_process_finds_the_shared_memory_of_a_node_in_use(
    sqlite_url: str, sqlite_store: SqlStore
) -> None:
    """The node's read cache maps the `-shm` file; had it closed a descriptor of that file
    it would have dropped SQLite's lock on it, and another process opening the database
    (the CLI, a backup, the sqlite3 shell) would truncate the file under the node: seen
    as daemons killed by SIGBUS while a script polled their database."""
    store = sqlite_store
    await _put(store, "read-cache-a", "first")
    assert await _values(store) == ["first"]
    shm = f"{sqlite_path(sqlite_url)}-shm"
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DMS_PROBE, shm, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await probe.communicate()
    assert out.decode().strip() == "in use"
    assert await _values(store) == ["first"]
