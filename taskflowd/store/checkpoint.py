"""Checkpoints of a SQLite file's write-ahead log, off the writer's commit path.

Left to itself, SQLite copies the log back into the database file inside the commit that
takes it past 1,000 pages, so one transaction in a few hundred stalls the single writer
for tens of milliseconds. Here a connection of its own, in a thread of its own, runs a
PASSIVE checkpoint (never waiting for the writer or the readers) every `interval_s`.

The writer starts the log afresh only when it finds all of it copied, which a busy writer,
always appending, never lets a checkpoint beside it achieve. So once the log is longer
than `wal_bytes`, the loop has the writer copy the few pages appended since the
checkpoint (`catch_up`, a moment between two transactions): its next transaction starts
the log from the beginning, so the file stops growing. (It is not cut back then, which
would put a truncation into a commit.) A log file longer than `wal_bytes` is given back
to the file system once the writer has been idle for a pass.

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
"""How long a TRUNCATE may wait for readers while it holds the write lock."""


class CheckpointReport(Protocol):
    """Where the loop's outcomes go (the node's metrics)."""

    def checkpointed(self, outcome: str, log_pages: int, seconds: float) -> None:
        """`outcome`: "complete" (the whole log copied), "partial" (readers still
        read part of it) or "failed"; `log_pages`: the log's length."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One pass: pages in the log, how many of them are in the database file now, the
    log's length in bytes, and whether it was given back to the file system."""

    log_pages: int
    copied_pages: int
    log_bytes: int
    truncated: bool

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
        catch_up: Callable[[], Awaitable[None]],
        *,
        interval_s: float = INTERVAL_S,
        wal_bytes: int = WAL_BYTES,
    ) -> None:
        """`catch_up`: a PASSIVE checkpoint on the writer's connection, between two of its
        transactions."""
        self.interval_s = interval_s
        self._catch_up = catch_up
        self.wal_bytes = wal_bytes
        self.report: CheckpointReport | None = None
        self._wal = path.with_name(path.name + "-wal")
        self._idle_at: int | None = None
        """The log's length when the last pass found all of it copied."""
        self._thread = SqliteThread(
            path, (f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}",), "sqlite-checkpoint"
        )
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

    def _checkpoint(self, conn: sqlite3.Connection, idle_at: int | None) -> Checkpoint:
        busy, log_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        log_pages, copied = max(log_pages, 0), max(copied, 0)
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        truncated = False
        idle = not busy and copied >= log_pages and log_pages == idle_at
        if idle and _size(self._wal) > self.wal_bytes:
            # All copied and nothing written since the last pass: TRUNCATE holds the
            # write lock a moment only, and a busy writer is not made to wait for it.
            truncated = not conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return Checkpoint(log_pages, copied, log_pages * page_size, truncated)

    async def run_once(self) -> Checkpoint:
        """One pass; raises StoreError when SQLite fails it."""
        idle_at = self._idle_at
        try:
            done = await self._thread.run(lambda conn: self._checkpoint(conn, idle_at))
        except sqlite3.Error as exc:
            self._idle_at = None
            raise StoreError(f"sqlite checkpoint: {exc}") from exc
        self._idle_at = done.log_pages if done.complete and not done.truncated else None
        if not done.truncated and done.log_bytes > self.wal_bytes:
            tagged = span_tag.set(CATCH_UP)
            try:
                await self._catch_up()
            finally:
                span_tag.reset(tagged)
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
