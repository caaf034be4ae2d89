"""`taskflowd bench --prune N`: what pruning N finished executions costs a draining queue.

The database is filled with N executions finished long ago; the queue is drained once
without the pruner and once with the pruner deleting them, and each prune transaction is
timed from the moment it holds the database (a claim waits at most that long on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskflowd.domain.entities import utcnow
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.store.db import Database, SqliteDatabase
from taskflowd.worker.pool import WorkerPool

if TYPE_CHECKING:
    from taskflowd.bench import _Bench

_FILL_CHUNK = 5000
_AGE = timedelta(days=40)


class _TimedDatabase:
    """The pruner's database, timing how long each of its transactions holds it."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.held_s: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self._db.transaction() as conn:
            began = time.perf_counter()
            yield conn
        self.held_s.append(time.perf_counter() - began)

    async def incremental_vacuum(self, pages: int) -> None:
        assert isinstance(self._db, SqliteDatabase)
        began = time.perf_counter()
        await self._db.incremental_vacuum(pages)
        self.held_s.append(time.perf_counter() - began)


async def _fill(bench: _Bench, count: int) -> None:
    assert bench.task is not None
    task, owner, org = bench.task.id, bench.task.created_by, bench.task.org_id
    done = utcnow() - _AGE
    sql = (
        "INSERT INTO job_executions (id, task_id, job_id, owner_id, status, scheduled_for, "
        "run_at, priority, attempts, handler, payload, max_retries, backoff_ms, started_at, "
        "completed_at, duration_ms, result, created_at, updated_at, org_id) VALUES ($1, $2, "
        "$3, $4, 'COMPLETED', $5, $5, 0, 1, 'echo', $6, 0, 0, $5, $5, 1, $6, $5, $5, $7)"
    )
    body = bench.store.db.codec.dump({"n": 1})
    for start in range(0, count, _FILL_CHUNK):
        rows = []
        for i in range(start, min(count, start + _FILL_CHUNK)):
            at = done + timedelta(microseconds=i)
            rows.append((str(uuid.uuid4()), task, f"old-{i}", owner, at, body, org))
        await bench.store.db.executemany(sql, rows)


def _file_mb(db: Database) -> float | None:
    if not isinstance(db, SqliteDatabase):
        return None
    files = [db.path, Path(f"{db.path}-wal")]
    return sum(p.stat().st_size for p in files if p.exists()) / 2**20


def _fresh_worker(bench: _Bench) -> None:
    bench.worker = WorkerPool(
        bench.queue, bench.handlers, bench.settings.worker, "bench", bench.events,
        bench.supervisor,
    )  # fmt: skip


async def prune_rows(bench: _Bench, count: int, jobs: int) -> list[tuple[str, str]]:
    """Drain `jobs` jobs without and then with the pruner deleting `count` executions."""
    await _fill(bench, count)
    before_mb = _file_mb(bench.store.db)
    plain = await bench.drain(jobs)
    await bench.worker.stop()
    _fresh_worker(bench)
    timed = _TimedDatabase(bench.store.db)
    vacuum = timed.incremental_vacuum if isinstance(bench.store.db, SqliteDatabase) else None
    pruner = Pruner(timed, bench.settings.retention, "bench-pruner", vacuum=vacuum)
    began = time.perf_counter()
    pruning = asyncio.create_task(pruner.run_once())
    during = await bench.drain(jobs)
    pruned = await pruning
    prune_s = time.perf_counter() - began
    held = sorted(timed.held_s)
    cost = 1 - during["drain_per_s"] / plain["drain_per_s"]
    rows = [
        ("drain without pruning (jobs/s)", f"{plain['drain_per_s']:,.0f}"),
        ("drain while pruning (jobs/s)", f"{during['drain_per_s']:,.0f}"),
        ("drain rate lost to pruning", f"{cost:.1%}"),
        (f"pruned of {count:,} old executions", f"{(pruned or {}).get('job_executions', 0):,}"),
        ("pruning time (s)", f"{prune_s:,.1f}"),
        ("prune transactions", f"{len(held):,}"),
        (
            "prune transaction hold p50 / p99 / max (ms)",
            f"{_q(held, 0.5):.1f} / {_q(held, 0.99):.1f} / {held[-1] * 1e3 if held else 0:.1f}",
        ),
    ]
    after_mb = _file_mb(bench.store.db)
    if before_mb is not None and after_mb is not None:
        rows.append(("SQLite file before / after (MB)", f"{before_mb:,.0f} / {after_mb:,.0f}"))
    return rows


def _q(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else 0.0
