"""SQLite's writer commits the transaction bodies waiting together in one transaction
(group commit), each body in a savepoint of its own: a body that raises rolls back alone,
and no body's changes are visible to readers before the whole group commits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from taskflowd.store.sqlite_thread import SqliteThread

Body = Callable[[sqlite3.Connection], str]


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[SqliteThread]:
    thread = SqliteThread(tmp_path / "group.db", ("PRAGMA journal_mode=WAL",), "test-writer")
    await thread.open()
    await thread.run(lambda conn: conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    yield thread
    await thread.close()


def _committed(path: Path) -> list[str]:
    """The rows a reader of the file sees: the committed ones."""
    reader = sqlite3.connect(path)
    try:
        return sorted(row[0] for row in reader.execute("SELECT k FROM t"))
    finally:
        reader.close()


async def test_waiting_bodies_commit_together_and_a_failing_one_rolls_back_alone(
    writer: SqliteThread,
) -> None:
    seen: dict[str, list[str]] = {}

    def insert(key: str) -> Body:
        def body(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO t VALUES (?)", (key,))
            seen[key] = _committed(writer.path)
            return key

        return body

    def failing(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES ('bad')")
        raise ValueError("refused")

    gate = threading.Event()
    held = asyncio.ensure_future(writer.run(lambda conn: gate.wait(10)))
    bodies = [insert("a"), failing, insert("b")]
    waiting = [asyncio.ensure_future(writer.run_transaction(body)) for body in bodies]
    await asyncio.sleep(0)  # one turn of the loop: every task above has queued its job
    assert writer.pending == 4
    gate.set()
    assert await held is True
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert outcomes[0] == "a" and outcomes[2] == "b"
    assert isinstance(outcomes[1], ValueError)
    assert seen == {"a": [], "b": []}, "b ran before a was committed: one transaction"
    assert _committed(writer.path) == ["a", "b"], "the failing body's row was rolled back"


async def test_a_body_alone_commits_or_raises_with_nothing_left(writer: SqliteThread) -> None:
    def insert(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES ('x')")
        return "x"

    assert await writer.run_transaction(insert) == "x"
    with pytest.raises(sqlite3.IntegrityError):
        await writer.run_transaction(insert)
    assert _committed(writer.path) == ["x"]
