"""The pruner: deletes records past their retention, on one node at a time, in small
paced batches, and gives the freed pages of a SQLite file back to the file system."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from taskflowd.audit.records import AuditRecords
from taskflowd.background import Outage, Supervisor
from taskflowd.config import RetentionSettings
from taskflowd.domain.entities import utcnow
from taskflowd.lifecycle import sweeps
from taskflowd.lifecycle.lease import Lease
from taskflowd.store.db import Database, SqliteDatabase
from taskflowd.store.errors import StoreError

log = logging.getLogger("taskflowd.lifecycle.pruner")

TASK_NAME = "pruner"
AUDIT_EVENTS = "audit_events"
LEASE_NAME = "pruner"
PACE = 9.0
"""After each batch the pruner rests `PACE` times as long as the batch took, so it holds
the database's writer at most a tenth of the time however much there is to delete (a
fifth cost a writer-bound drain about a fifth of its rate: `taskflowd bench --prune`)."""
BUSY_PACE = 39.0
"""While the node's worker has a backlog (`busy`), the pruner rests up to `BUSY_PACE`
times as long as each batch took: it holds the writer at most a fortieth of the time, and
still prunes at a quarter of its quiet rate, so a node that is never idle keeps a bounded
database. It is back at `PACE` within one quiet rest of the backlog's end."""
MIN_REST_S = 0.002
INCREMENTAL = 2
"""`PRAGMA auto_vacuum` of a SQLite file that gives pages back on request."""
VACUUM_PAGES = 64
"""Pages freed per incremental-vacuum step (256 KB with 4 KB pages): one short write each.
A step holds the writer for as long as it moves pages: with 500 a step took 7.5 ms at the
median and 160 ms at worst (`taskflowd bench --prune` on a loaded machine), with 64 under
2 ms at the median, freeing the file as fast overall."""
VACUUM_STEP_S = 0.010
"""A step moves no more pages once it has run this long, however slow its pages are."""


class PruneReport(Protocol):
    """Where the pruner's counts go (the node's metrics)."""

    def pruned(self, table: str, rows: int) -> None: ...
    def prune_pass(self, seconds: float) -> None: ...


class Pruner:
    """Every `interval_s`, the node holding the pruner lease deletes finished executions
    (with their retry history), handled dead letters, finished one-time tasks and workflow
    runs, webhook deliveries and stale idempotency records past their retention, then the
    oldest audit events (keeping the chain verifiable); unfinished and unhandled records
    are never touched. Rides out database outages and resumes within a second."""

    def __init__(
        self,
        db: Database,
        retention: RetentionSettings,
        node_id: str,
        supervisor: Supervisor | None = None,
        *,
        idempotency_keep: timedelta = timedelta(hours=24),
        report: PruneReport | None = None,
        clock: Callable[[], datetime] = utcnow,
        vacuum: Callable[[int, float], Awaitable[int]] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        """`busy`: whether the node's worker has work due now that it has not started
        (`WorkerPool.backlogged`); the pruner yields more of the writer meanwhile."""
        self.db = db
        self.retention = retention
        self._supervisor = supervisor
        self._idempotency_keep = idempotency_keep
        self._report = report
        self._clock = clock
        lease_s = max(60.0, 3 * retention.interval_s)
        self.lease = Lease(db, LEASE_NAME, node_id, lease_s, clock)
        self._warned_vacuum = False
        self._vacuum_step = vacuum
        self._busy = busy
        if vacuum is None and isinstance(db, SqliteDatabase):
            self._vacuum_step = db.incremental_vacuum

    async def start(self) -> None:
        if self._supervisor is not None:
            self._supervisor.spawn(TASK_NAME, self._loop)

    async def stop(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.cancel(TASK_NAME)
        try:
            await self.lease.release()
        except StoreError as exc:
            log.warning("could not release the pruner lease: %s", exc)

    async def _loop(self) -> None:
        outage = Outage(log, "pruning paused: %s", "pruning resumed", cap_s=1.0)
        while True:
            try:
                await self.run_once()
            except StoreError as exc:
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            await asyncio.sleep(self.retention.interval_s)

    def _cutoff(self, keep_s: int, now: datetime) -> datetime | None:
        return None if keep_s <= 0 else now - timedelta(seconds=keep_s)

    async def run_once(self) -> dict[str, int] | None:
        """One pass when this node holds (or takes) the lease: rows deleted per table;
        None when another node holds it."""
        if not await self.lease.acquire():
            return None
        began = time.monotonic()
        now = self._clock()
        r = self.retention
        deleted: dict[str, int] = {}
        plan = (
            (sweeps.DEAD_LETTERS, self._cutoff(r.dead_letters_s, now)),
            (sweeps.EXECUTIONS, self._cutoff(r.executions_s, now)),
            (sweeps.WORKFLOW_RUNS, self._cutoff(r.workflow_runs_s, now)),
            (sweeps.TASKS, self._cutoff(r.tasks_s, now)),
            (sweeps.WEBHOOK_DELIVERIES, self._cutoff(r.webhook_deliveries_s, now)),
        )
        for sweep, cutoff in plan:
            if cutoff is not None and not await self._sweep(sweep, cutoff, deleted):
                break
        else:
            stale = now - self._idempotency_keep
            stale_keys = functools.partial(sweeps.idempotency_batch, self.db)
            await self._batches(sweeps.IDEMPOTENCY_KEYS, stale_keys, stale, deleted)
            audit_cutoff = self._cutoff(r.audit_s, now)
            if audit_cutoff is not None:
                # Oldest first, moving the chain's checkpoint so `taskflowd audit verify`
                # starts after the last event deleted.
                prune = AuditRecords(self.db).prune
                await self._batches(AUDIT_EVENTS, prune, audit_cutoff, deleted)
        if self._vacuum_step is not None and any(deleted.values()):
            await self._vacuum(self._vacuum_step)
        took = time.monotonic() - began
        if self._report is not None:
            for table, count in deleted.items():
                self._report.pruned(table, count)
            self._report.prune_pass(took)
        if any(deleted.values()):
            log.info("pruned %s in %.1f s", _summary(deleted), took)
        return deleted

    async def _rest(self, began: float) -> None:
        """Rest after a batch begun at `began`: `PACE` times as long as it took, and up to
        `BUSY_PACE` times while the worker has a backlog (asked again every quiet rest)."""
        took = time.monotonic() - began
        quiet_s = max(MIN_REST_S, took * PACE)
        await asyncio.sleep(quiet_s)
        if self._busy is None:
            return
        until = time.monotonic() + took * (BUSY_PACE - PACE)
        while self._busy():
            left = until - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, quiet_s))

    async def _sweep(self, sweep: sweeps.Sweep, cutoff: datetime, deleted: dict[str, int]) -> bool:
        """Delete `sweep`'s rows before `cutoff`; False when the lease was lost."""
        after: tuple[object, object] | None = None
        while True:
            if not await self.lease.keep():
                log.info("pruner lease lost; another node prunes now")
                return False
            began = time.monotonic()
            batch = await sweeps.sweep_batch(
                self.db, sweep, cutoff, after, self.retention.batch_size
            )
            for table, count in batch.deleted.items():
                deleted[table] = deleted.get(table, 0) + count
            if batch.after is None:
                return True
            after = batch.after
            await self._rest(began)

    async def _batches(
        self,
        table: str,
        delete: Callable[[datetime, int], Awaitable[int]],
        cutoff: datetime,
        deleted: dict[str, int],
    ) -> None:
        """Call `delete(cutoff, batch_size)` while the lease holds and a batch comes back
        full, resting between batches, counting the rows under `table`."""
        while await self.lease.keep():
            began = time.monotonic()
            count = await delete(cutoff, self.retention.batch_size)
            deleted[table] = deleted.get(table, 0) + count
            if count < self.retention.batch_size:
                return
            await self._rest(began)

    async def _vacuum(self, step: Callable[[int, float], Awaitable[int]]) -> None:
        """Return a SQLite file's free pages to the file system, a few at a time. The
        file shrinks once the node's checkpoint loop has copied the vacuumed pages back
        (within its interval, beside the writer: a checkpoint here would hold the writer
        while it copied the whole log and synced the file)."""
        row = await self.db.fetchrow("PRAGMA auto_vacuum")
        if row is None or int(row["auto_vacuum"]) != INCREMENTAL:
            if not self._warned_vacuum:
                log.warning(
                    "the SQLite file keeps the pages freed by pruning (it predates "
                    "incremental vacuum); stop the node and run `taskflowd migrate --vacuum` once"
                )
                self._warned_vacuum = True
            return
        left: int | None = None
        while True:
            began = time.monotonic()
            row = await self.db.fetchrow("PRAGMA freelist_count")
            free = 0 if row is None else int(row["freelist_count"])
            if free == 0 or (left is not None and free >= left):
                break
            left = free
            await step(VACUUM_PAGES, VACUUM_STEP_S)
            await self._rest(began)


def _summary(deleted: dict[str, int]) -> str:
    return ", ".join(f"{count} {table}" for table, count in deleted.items() if count)
