"""The SQLite checkpoint loop (taskflowd/store/checkpoint.py): it copies the write-ahead
log back into the database file beside the writer, keeps the log file bounded, stops with
the database and rides out a failing disk."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskflowd.store.checkpoint import TASK_NAME, Checkpointer
from taskflowd.store.db import SqliteDatabase
from taskflowd.store.read_cache import WalHeader
from tests.integration.engine.harness import LogLines
from tests.integration.queue.polling import eventually

WAL_BYTES = 64 * 1024
ROW_BYTES = 8 * 1024


class Outcomes:
    """The checkpoint report: each pass's outcome, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def checkpointed(self, outcome: str, log_pages: int, seconds: float) -> None:
        self.seen.append(outcome)


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
async def db(tmp_path: Path, outcomes: Outcomes) -> AsyncIterator[SqliteDatabase]:
    db = SqliteDatabase(
        f"sqlite:///{tmp_path / 'taskflowd.db'}",
        checkpoint_interval_s=0.02,
        wal_bytes=WAL_BYTES,
    )
    db.checkpointer.report = outcomes
    await db.connect()
    await db.execute("CREATE TABLE load (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    yield db
    await db.close()


@pytest.fixture
def messages() -> Iterator[LogLines]:
    lines = LogLines(logging.INFO)
    logger = logging.getLogger("taskflowd.store.checkpoint")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(lines)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


def wal_bytes(db: SqliteDatabase) -> int:
    wal = db.path.with_name(db.path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def write(db: SqliteDatabase, rows: int) -> None:
    """`rows` transactions of one row each, as a busy node's writer commits them."""
    for _ in range(rows):
        await db.execute("INSERT INTO load (body) VALUES ($1)", os.urandom(ROW_BYTES))


async def test_the_log_stays_bounded_under_sustained_writes(
    db: SqliteDatabase, outcomes: Outcomes
) -> None:
    await write(db, 400)  # 3.2 MB: fifty times the bound, far below the writer's own limit

    async def bounded() -> bool:
        return wal_bytes(db) <= WAL_BYTES

    await eventually(bounded, "the write-ahead log to shrink back below its bound")
    row = await db.fetchrow("SELECT COUNT(*) AS n FROM load")
    assert row is not None and row["n"] == 400
    assert "complete" in outcomes.seen
    assert "failed" not in outcomes.seen


async def test_the_loop_stops_with_the_database(tmp_path: Path) -> None:
    db = SqliteDatabase(f"sqlite:///{tmp_path / 'taskflowd.db'}", checkpoint_interval_s=0.02)
    await db.connect()
    await db.execute("CREATE TABLE load (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    await write(db, 10)

    await db.close()

    assert [t for t in asyncio.all_tasks() if t.get_name() == TASK_NAME] == []
    assert "sqlite-checkpoint" not in [t.name for t in threading.enumerate()]
    # The last connection to close removes the log: the loop's own is closed too.
    assert not db.path.with_name(db.path.name + "-wal").exists()


async def test_the_loop_rides_out_a_full_disk(
    db: SqliteDatabase, outcomes: Outcomes, messages: LogLines
) -> None:
    await write(db, 100)
    await eventually(
        lambda: _true(wal_bytes(db) <= WAL_BYTES), "the log to be copied and given back"
    )
    # The file may not grow any more: the next checkpoint cannot copy new pages into it.
    # (SIGXFSZ ignored: a write past the limit fails with EFBIG instead of killing us.)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (db.path.stat().st_size + 4096, hard))
    try:
        await write(db, 20)
        failed_at = len(outcomes.seen)
        await eventually(
            lambda: _true("failed" in outcomes.seen[failed_at:]), "a checkpoint to fail"
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    mark = len(outcomes.seen)
    await eventually(
        lambda: _true("complete" in outcomes.seen[mark:]), "checkpoints to succeed again"
    )
    await write(db, 100)
    await eventually(lambda: _true(wal_bytes(db) <= WAL_BYTES), "the log to be given back again")
    assert TASK_NAME in [t.get_name() for t in asyncio.all_tasks()]
    failing = [m for m in messages.messages if m.startswith("WAL checkpoints failing")]
    assert len(failing) == 1, messages.messages
    assert "WAL checkpoints resumed" in messages.messages
    row = await db.fetchrow("SELECT COUNT(*) AS n FROM load")
    assert row is not None and row["n"] == 220


async def _true(value: bool) -> bool:
    return value


def log_generation(db: SqliteDatabase) -> int:
    """The log file header's checkpoint sequence number: it changes each time the log is
    started afresh, by whichever connection writes the first frame of the fresh log."""
    with db.path.with_name(db.path.name + "-wal").open("rb") as wal:
        return int.from_bytes(wal.read(16)[12:16], "big")


async def test_the_loop_starts_the_log_afresh_so_the_writer_never_syncs_it(
    tmp_path: Path,
) -> None:
    # The first commit of a fresh log syncs the log file even under synchronous=NORMAL:
    # the loop makes that commit itself, and later passes leave its page alone, so the
    # writer only ever appends.
    db = SqliteDatabase(f"sqlite:///{tmp_path / 'taskflowd.db'}", checkpoint_interval_s=3600)
    await db.connect()
    try:
        await db.execute("CREATE TABLE load (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        await write(db, 5)
        before = log_generation(db)

        done = await db.checkpointer.run_once()

        assert done.complete and done.restarted is not None
        fresh = log_generation(db)
        assert fresh != before
        await db.checkpointer.run_once()  # the writer idle: nothing to copy
        await db.checkpointer.run_once()
        await write(db, 5)
        assert log_generation(db) == fresh
        row = await db.fetchrow("SELECT COUNT(*) AS n FROM load")
        assert row is not None and row["n"] == 10
    finally:
        await db.close()


async def test_after_the_writer_caught_up_the_loop_starts_the_log_afresh(tmp_path: Path) -> None:
    # A reader's snapshot keeps the pass from copying the whole log; it ends before the
    # writer catches up, so the catch-up copies the rest and the log can start afresh.
    db = SqliteDatabase(f"sqlite:///{tmp_path / 'taskflowd.db'}", checkpoint_interval_s=3600)
    await db.connect()
    header = WalHeader(db.path)
    header.open()
    reader = sqlite3.connect(db.path, isolation_level=None)
    caught_up: list[int] = []

    async def catch_up() -> None:
        reader.execute("ROLLBACK")
        await db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        caught_up.append(log_generation(db))

    checkpointer = Checkpointer(db.path, header, catch_up, interval_s=3600, wal_bytes=WAL_BYTES)
    try:
        await db.execute("CREATE TABLE load (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        await write(db, 5)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM load").fetchone()
        await write(db, 20)  # 160 KB past the reader's snapshot
        outcomes = Outcomes()
        checkpointer.report = outcomes
        await checkpointer.start()
        await eventually(lambda: _true(bool(outcomes.seen)), "the loop's first pass")

        assert outcomes.seen == ["partial"] and len(caught_up) == 1
        fresh = log_generation(db)
        assert fresh != caught_up[0]
        await write(db, 5)
        assert log_generation(db) == fresh
    finally:
        await checkpointer.stop()
        reader.close()
        await db.close()
        header.close()
