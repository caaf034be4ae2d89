"""`taskflowd backup` copies a SQLite database consistently while the daemon writes to it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from taskflowd.backup import backup_sqlite
from taskflowd.store import SqlStore, open_store
from tests.integration.store.factories import insert_execution, make_execution, make_task, make_user

PAYLOAD = {"blob": "x" * 16_000}
PREFILLED = 2000
"""~35 MiB of executions: a copy made in steps would restart after every commit of the
writer and never finish; the copy must be one consistent read."""
BACKUP_DEADLINE_S = 60.0


async def _prefill(store: SqlStore) -> str:
    owner = await store.create_user(make_user())
    task = make_task(owner.id, handler="echo")
    await store.create_task(task)
    async with store.db.transaction() as conn:
        for _ in range(PREFILLED):
            await insert_execution(conn, make_execution(task, payload=PAYLOAD))
    return owner.id


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


async def test_backup_while_writes_run_is_consistent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    store = open_store(url)
    await store.start()
    try:
        owner_id = await _prefill(store)
        written = 0
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal written
            while not stop.is_set():
                await store.create_task(make_task(owner_id, handler="echo", payload=PAYLOAD))
                written += 1
                await asyncio.sleep(0)

        writing = asyncio.create_task(writer())
        try:
            while written < 20:  # the writer is well under way before the copy starts
                await asyncio.sleep(0.01)
            before = written
            target = tmp_path / "copy.db"
            copy = backup_sqlite(url, str(target))
            pages = await asyncio.wait_for(copy, timeout=BACKUP_DEADLINE_S)
            after = written
        finally:
            stop.set()  # also lets a copy that never finished end, once writes stop
            await writing
    finally:
        await store.stop()

    assert pages > 1024, "the database should span several backup steps"
    assert _integrity(target) == "ok"
    assert _count(target, "job_executions") == PREFILLED
    # The copy is one moment of the database: every task committed before it started,
    # none that was not yet committed when it ended.
    assert before + 1 <= _count(target, "tasks") <= after + 1
    assert _count(target, "schema_migrations") >= 1


async def test_backup_refuses_to_overwrite_and_non_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    store = open_store(url)
    await store.start()
    await store.stop()
    existing = tmp_path / "exists.db"
    existing.write_bytes(b"")
    with pytest.raises(ValueError, match="exists"):
        await backup_sqlite(url, str(existing))
    with pytest.raises(ValueError, match="pg_dump"):
        await backup_sqlite("postgresql://localhost/x", str(tmp_path / "y.db"))
