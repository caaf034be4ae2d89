"""Checkpoints of a SQLite file's write-ahead log, off the writer's commit path.

Left to itself, SQLite copies the log back into the database file inside the commit that
takes it past 1,000 pages, so one transaction in a few hundred stalls the single writer
for tens of milliseconds. Here a connection of its own, in a thread of its own, runs a
PASSIVE checkpoint (never waiting for the writer or the readers) every `interval_s`.

A checkpoint that copied the whole log lets the next write start the log afresh, and the
first commit of a fresh log syncs the log file (its new header must be on disk before any
frame after it, or a power loss could corrupt the file), even under synchronous=NORMAL.
Behind a busy disk that one sync held the writer up to 0.16 s, once a pass while the node
had moments of rest (strace of `taskflowd bench --prune`). So the loop starts the log afresh itself,
right after such a pass: a transaction of its own rewrites an unchanged page (the
application id in the file's header), which pays that sync on the loop's thread; the
writer, which is mostly idle then, finds the fresh log and appends to it. A writer that
begins during that transaction waits for it (its busy timeout); one that holds the write
lock for longer than `_BUSY_TIMEOUT_MS` has the loop give up until the next pass. Until
something else is written, the next passes leave the log alone: copying the loop's own
page would have the writer start the log afresh again.

The log can start afresh only once all of it is copied, which a busy writer, always
appending, never lets a checkpoint beside it achieve. So once the log is longer than
`wal_bytes`, the loop has the writer copy the few pages appended since the checkpoint
(`catch_up`, a moment between two transactions), then starts the log afresh as above,
unless the writer wrote first (its commit starts it afresh then): the file stops growing.
(It is not cut back then, which would put a truncation into a commit.) A log file longer
than `wal_bytes` is given back to the file system once the writer has been idle for a
pass.

The writer keeps an automatic checkpoint at `SAFETY_NET_PAGES`, so the log stays bounded
even when this loop cannot run.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from taskflowd.background import Outage, Supervisor
from taskflowd.store.errors import StoreError
from taskflowd.store.read_cache import WalHeader
from taskflowd.store.sqlite_thread import SqliteThread, span_tag

log = logging.getLogger("taskflowd.store.checkpoint")

TASK_NAME = "sqlite.checkpoint"
CATCH_UP = "checkpoint catch-up"
"""The `span_tag` of the writer's checkpoints (`catch_up`)."""
INTERVAL_S = 0.5
WAL_BYTES = 16 * 1024 * 1024
SAFETY_NET_PAGES = 10_000
"""The writer's own automatic checkpoint (40 MB of log with 4 KB pages): it only runs
when the checkpoint loop has fallen far behind."""
_BUSY_TIMEOUT_MS = 20
"""How long a TRUNCATE may wait for readers while it holds the write lock, and the loop
for the writer's lock to start the log afresh."""
_PRAGMAS = (
    f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}",
    # Its checkpoints sync the log and the file as under FULL; its own commits (starting
    # the log afresh) need no sync beyond the new log header's.
    "PRAGMA synchronous=NORMAL",
)


class CheckpointReport(Protocol):
    """Where the loop's outcomes go (the node's metrics)."""

    def checkpointed(self, outcome: str, log_pages: int, seconds: float) -> None:
        """`outcome`: "complete" (the whole log copied), "partial" (readers still
        read part of it) or "failed"; `log_pages`: the log's length."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One pass: pages in the log, how many of them are in the database file now, the
    log's length in bytes, whether it was given back to the file system, and the
    wal-index header once the pass started the log afresh itself (None when it did not)."""

    log_pages: int
    copied_pages: int
    log_bytes: int
    truncated: bool
    restarted: bytes | None = None

    @property
    def complete(self) -> bool:
        return self.copied_pages >= self.log_pages


def writer_pragmas() -> tuple[str, ...]:
    """The writer connection's settings that leave checkpoints to the loop."""
    return (f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}",)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class Checkpointer:
    """Runs the checkpoints of one SQLite file (see the module docstring) from `start()`
    until `stop()`; rides out errors (a full disk, say), logging an outage once."""

    def __init__(
        self,
        path: Path,
        header: WalHeader,
        catch_up: Callable[[], Awaitable[None]],
        *,
        interval_s: float = INTERVAL_S,
        wal_bytes: int = WAL_BYTES,
    ) -> None:
        """`header`: the file's wal-index header, open while the loop runs; `catch_up`: a
        PASSIVE checkpoint on the writer's connection, between two of its transactions."""
        self.interval_s = interval_s
        self._header = header
        self._catch_up = catch_up
        self.wal_bytes = wal_bytes
        self.report: CheckpointReport | None = None
        self._wal = path.with_name(path.name + "-wal")
        self._restarted: bytes | None = None
        """The wal-index header once the last pass started the log afresh."""
        self._thread = SqliteThread(path, _PRAGMAS, "sqlite-checkpoint")
        self._supervisor = Supervisor(lambda name, exc: None)

    async def start(self) -> None:
        """Open the loop's connection and start the loop; raises sqlite3.Error when the
        connection cannot be opened."""
        await self._thread.open()
        self._supervisor.spawn(TASK_NAME, self._loop)

    async def stop(self) -> None:
        """Stop the loop (a checkpoint under way runs to its end) and close its connection."""
        await self._supervisor.cancel(TASK_NAME)
        await self._thread.close()

    def _checkpoint(self, conn: sqlite3.Connection, restarted: bytes | None) -> Checkpoint:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        if restarted is not None and self._header.read() == restarted:
            # Nothing written since the last pass started the log afresh: the log holds
            # that pass's one page, unchanged, as good as copied. A writer idle for a pass
            # has a long log file given back; TRUNCATE holds the write lock a moment only.
            truncated = False
            if _size(self._wal) > self.wal_bytes:
                truncated = not conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            return Checkpoint(1, 1, page_size, truncated, None if truncated else restarted)
        busy, log_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        log_pages, copied = max(log_pages, 0), max(copied, 0)
        fresh = self._restart(conn) if not busy and 0 < log_pages <= copied else None
        return Checkpoint(log_pages, copied, log_pages * page_size, False, fresh)

    def _restart(self, conn: sqlite3.Connection) -> bytes | None:
        """Start the log afresh (see the module): the wal-index header then, or None when
        the writer held its lock or wrote first (it appends to the log then)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return None
        try:
            (application_id,) = conn.execute("PRAGMA application_id").fetchone()
            conn.execute(f"PRAGMA application_id={int(application_id)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        header = self._header.read()
        return header if header is not None and self._header.frames() == 1 else None

    async def run_once(self) -> Checkpoint:
        """One pass; raises StoreError when SQLite fails it."""
        restarted = self._restarted
        try:
            done = await self._thread.run(lambda conn: self._checkpoint(conn, restarted))
        except sqlite3.Error as exc:
            self._restarted = None
            raise StoreError(f"sqlite checkpoint: {exc}") from exc
        self._restarted = done.restarted
        if done.restarted is None and not done.truncated and done.log_bytes > self.wal_bytes:
            tagged = span_tag.set(CATCH_UP)
            try:
                await self._catch_up()
            finally:
                span_tag.reset(tagged)
            try:
                self._restarted = await self._thread.run(self._restart)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite checkpoint: {exc}") from exc
        return done

    async def _loop(self) -> None:
        outage = Outage(
            log, "WAL checkpoints failing: %s", "WAL checkpoints resumed", cap_s=self.interval_s
        )
        while True:
            began = time.monotonic()
            try:
                done = await self.run_once()
            except StoreError as exc:
                self._tell("failed", 0, began)
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            left = 0 if done.truncated else done.log_pages
            self._tell("complete" if done.complete else "partial", left, began)
            await asyncio.sleep(self.interval_s)

    def _tell(self, outcome: str, log_pages: int, began: float) -> None:
        if self.report is not None:
            self.report.checkpointed(outcome, log_pages, time.monotonic() - began)
