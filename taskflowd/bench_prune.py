"""`taskflowd bench --prune N`: what pruning N finished executions costs a draining queue.

The database is filled with N executions finished long ago; the queue is drained once
without the pruner and once with the pruner deleting them. Each prune transaction is
timed from the moment it holds the database (a claim waits at most that long on it), and
each claim of the worker from call to answer, in both drains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from taskflowd.bench_fill import fill_executions
from taskflowd.domain.entities import Execution, utcnow
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.queue.base import JobQueue
from taskflowd.store.db import Conn, Database, SqliteDatabase
from taskflowd.worker.pool import WorkerPool

if TYPE_CHECKING:
    from taskflowd.bench import _Bench

_AGE = timedelta(days=40)
T = TypeVar("T")


class _TimedDatabase:
    """The pruner's database, timing how long each of its transactions and incremental
    vacuum steps holds it."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.held_s: list[float] = []
        self.vacuum_s: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        began = 0.0

        async def timed(conn: Conn) -> T:
            nonlocal began
            began = time.perf_counter()
            return await body(conn)

        result = await self._db.atomic(timed)
        self.held_s.append(time.perf_counter() - began)
        return result

    async def incremental_vacuum(self, pages: int) -> None:
        assert isinstance(self._db, SqliteDatabase)
        began = time.perf_counter()
        await self._db.incremental_vacuum(pages)
        self.vacuum_s.append(time.perf_counter() - began)


class _TimedQueue:
    """The worker's queue, timing each claim (`acquire`) from call to answer."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self.claim_s: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)

    async def acquire(self, owner: str, limit: int, lease_s: float) -> list[Execution]:
        began = time.perf_counter()
        try:
            return await self._queue.acquire(owner, limit, lease_s)
        finally:
            self.claim_s.append(time.perf_counter() - began)


async def _file_mb(db: Database) -> float | None:
    """The SQLite main file's size once the node's checkpoint has copied the log back."""
    if not isinstance(db, SqliteDatabase):
        return None
    await db.checkpointer.run_once()
    return db.path.stat().st_size / 2**20


def _fresh_worker(bench: _Bench, queue: JobQueue | None = None) -> None:
    bench.worker = WorkerPool(
        queue or bench.queue, bench.handlers, bench.settings.worker, "bench", bench.events,
        bench.supervisor,
    )  # fmt: skip


async def _timed_drain(bench: _Bench, jobs: int) -> tuple[float, list[float]]:
    """Drain `jobs` jobs with a fresh worker whose claims are timed: jobs/s, claim times."""
    timed = _TimedQueue(bench.queue)
    await bench.worker.stop()
    _fresh_worker(bench, cast(JobQueue, timed))
    drained = await bench.drain(jobs)
    return drained["drain_per_s"], sorted(timed.claim_s)


async def prune_rows(bench: _Bench, count: int, jobs: int) -> list[tuple[str, str]]:
    """Drain `jobs` jobs without and then with the pruner deleting `count` executions."""
    filling = time.perf_counter()
    assert bench.task is not None
    await fill_executions(bench.store.db, bench.task, count, utcnow() - _AGE)
    fill_s = time.perf_counter() - filling
    plain, plain_claims = await _timed_drain(bench, jobs)
    before_mb = await _file_mb(bench.store.db)
    timed = _TimedDatabase(bench.store.db)
    vacuum = timed.incremental_vacuum if isinstance(bench.store.db, SqliteDatabase) else None
    pruner = Pruner(timed, bench.settings.retention, "bench-pruner", vacuum=vacuum)
    began = time.perf_counter()
    pruning = asyncio.create_task(pruner.run_once())
    during, claims = await _timed_drain(bench, jobs)
    drained_s = time.perf_counter() - began
    pruned = await pruning
    prune_s = time.perf_counter() - began
    held = sorted(timed.held_s)
    done = (pruned or {}).get("job_executions", 0)
    rows = [
        (f"fill: {count:,} old executions (s)", f"{fill_s:,.1f}"),
        ("drain without pruning (jobs/s)", f"{plain:,.0f}"),
        ("drain while pruning (jobs/s)", f"{during:,.0f}"),
        ("drain rate lost to pruning", f"{1 - during / plain:.1%}"),
        (f"pruned of {count:,} old executions", f"{done:,}"),
        ("pruned while the drain ran (share of the prune time)", f"{drained_s / prune_s:.0%}"),
        ("pruning time (s), rows/s", f"{prune_s:,.1f}, {done / prune_s:,.0f}"),
        ("prune transactions", f"{len(held):,}"),
        ("prune transaction hold p50 / p99 / max (ms)", _spread(held)),
        ("claim p50 / p99 / max without pruning (ms)", _spread(plain_claims)),
        ("claim p50 / p99 / max while pruning (ms)", _spread(claims)),
    ]
    after_mb = await _file_mb(bench.store.db)
    if before_mb is not None and after_mb is not None:
        steps = sorted(timed.vacuum_s)
        rows.append(
            ("incremental vacuum steps, total time (s)", f"{len(steps):,}, {sum(steps):,.1f}")
        )
        rows.append(("incremental vacuum step hold p50 / p99 / max (ms)", _spread(steps)))
        sizes = f"{before_mb:,.0f} / {after_mb:,.0f}"
        rows.append(("SQLite file before / after pruning (MB)", sizes))
    return rows


def _spread(ordered: list[float]) -> str:
    return f"{_q(ordered, 0.5):.1f} / {_q(ordered, 0.99):.1f} / {_q(ordered, 1.0):.1f}"


def _q(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else 0.0
