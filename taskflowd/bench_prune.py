"""`taskflowd bench --prune N`: what pruning N finished executions costs a draining queue.

The database is filled with N executions finished long ago; the queue is drained once
without the pruner and once with the pruner deleting them. On SQLite the writer's thread
times each of its jobs (`SqliteDatabase.observe_writer`): how long each prune
transaction, incremental-vacuum step and other write of the pruner's holds the writer
(statements and COMMIT apart), and how long each claim of the worker waits for the writer
from call to start, in all and behind the pruner's writes. Each claim is also timed from
call to answer on the loop, in both drains.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from taskflowd.bench_fill import fill_executions
from taskflowd.domain.entities import Execution, utcnow
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.queue.base import JobQueue
from taskflowd.store.checkpoint import CATCH_UP
from taskflowd.store.db import Conn, Database, SqliteDatabase
from taskflowd.store.sqlite_thread import Span, span_tag
from taskflowd.worker.pool import WorkerPool

if TYPE_CHECKING:
    from taskflowd.bench import _Bench

_AGE = timedelta(days=40)
_CHECKPOINT_TRIES = 50
_LIMIT_S = 0.050
"""The target: no claim waits longer than this on a prune transaction."""
T = TypeVar("T")
PRUNE = "prune transaction"
VACUUM = "incremental vacuum step"
PRUNER = "other write of the pruner's"
"""The `span_tag`s of the pruner's writer jobs (the last: lease, final checkpoint)."""


@contextmanager
def _tagged(tag: object) -> Iterator[None]:
    token = span_tag.set(tag)
    try:
        yield
    finally:
        span_tag.reset(token)


class _TaggedDatabase:
    """The pruner's database, tagging its transactions and incremental vacuum steps, and
    noting when each transaction ended and the executions it deleted."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.deleted: list[tuple[float, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        with _tagged(PRUNE):
            result = await self._db.atomic(body)
        if isinstance(result, dict):
            self.deleted.append((time.perf_counter(), result.get("job_executions", 0)))
        return result

    async def incremental_vacuum(self, pages: int, budget_s: float) -> int:
        assert isinstance(self._db, SqliteDatabase)
        with _tagged(VACUUM):
            return await self._db.incremental_vacuum(pages, budget_s)


class _Claim:
    """The `span_tag` of a claim's writer job: when the worker asked for it."""

    __slots__ = ("called",)

    def __init__(self, called: float) -> None:
        self.called = called


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
            with _tagged(_Claim(began)):
                return await self._queue.acquire(owner, limit, lease_s)
        finally:
            self.claim_s.append(time.perf_counter() - began)


class _Spans:
    """The writer's spans, as the writer's observer collects them."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def add(self, span: Span) -> None:
        self.spans.append(span)

    def take(self) -> list[Span]:
        taken, self.spans = self.spans, []
        return taken


def _holds(spans: list[Span], *tags: object) -> list[float]:
    return sorted(s.ended - s.started for s in spans if s.tag in tags)


def _claim_waits(spans: list[Span], behind: tuple[object, ...]) -> tuple[list[float], list[float]]:
    """Each claim's wait for the writer from call to start, and the part of it the writer
    spent on jobs tagged `behind` (the writer runs one job at a time), both sorted."""
    busy = sorted((s.started, s.ended) for s in spans if s.tag in behind)
    starts = [b[0] for b in busy]
    waits: list[float] = []
    behind_s: list[float] = []
    for span in spans:
        if not isinstance(span.tag, _Claim):
            continue
        called, started = span.tag.called, span.started
        waits.append(started - called)
        held = 0.0
        i = max(0, bisect.bisect_right(starts, called) - 1)
        while i < len(busy) and busy[i][0] < started:
            held += max(0.0, min(busy[i][1], started) - max(busy[i][0], called))
            i += 1
        behind_s.append(held)
    return sorted(waits), sorted(behind_s)


async def _file_mb(db: Database) -> float | None:
    """The SQLite main file's size once the node's checkpoint has copied all of the log
    back (a pass copies only what no reader still reads: it is run again, a while)."""
    if not isinstance(db, SqliteDatabase):
        return None
    for _ in range(_CHECKPOINT_TRIES):
        if (await db.checkpointer.run_once()).complete:
            break
        await asyncio.sleep(0.1)
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
    db = bench.store.db
    observed = _Spans()
    if isinstance(db, SqliteDatabase):
        db.observe_writer(observed.add)
    plain, plain_claims = await _timed_drain(bench, jobs)
    plain_spans = observed.take()
    before_mb = await _file_mb(db)
    tagged = _TaggedDatabase(db)
    vacuum = tagged.incremental_vacuum if isinstance(db, SqliteDatabase) else None
    pruner = Pruner(
        tagged,
        bench.settings.retention,
        "bench-pruner",
        vacuum=vacuum,
        busy=lambda: bench.worker.backlogged(),
    )

    async def prune() -> dict[str, int] | None:
        with _tagged(PRUNER):
            return await pruner.run_once()

    began = time.perf_counter()
    pruning = asyncio.create_task(prune())
    during, claims = await _timed_drain(bench, jobs)
    drained_at = time.perf_counter()
    drained_s = drained_at - began
    pruned = await pruning
    prune_s = time.perf_counter() - began
    spans = observed.take()
    if isinstance(db, SqliteDatabase):
        db.observe_writer(None)
    done = (pruned or {}).get("job_executions", 0)
    rows = [
        (f"fill: {count:,} old executions (s)", f"{fill_s:,.1f}"),
        ("drain without pruning (jobs/s)", f"{plain:,.0f}"),
        ("drain while pruning (jobs/s)", f"{during:,.0f}"),
        ("drain rate lost to pruning", f"{1 - during / plain:.1%}"),
        (f"pruned of {count:,} old executions", f"{done:,}"),
        ("pruned while the drain ran (share of the prune time)", f"{drained_s / prune_s:.0%}"),
        ("pruning time (s), rows/s", f"{prune_s:,.1f}, {done / prune_s:,.0f}"),
        *_rates(tagged.deleted, began, drained_at),
        ("claim p50 / p99 / max without pruning (ms)", _spread(plain_claims)),
        ("claim p50 / p99 / max while pruning (ms)", _spread(claims)),
    ]
    after_mb = await _file_mb(db)
    if before_mb is not None and after_mb is not None:
        rows += _writer_rows(plain_spans, spans, drained_at)
        sizes = f"{before_mb:,.0f} / {after_mb:,.0f}"
        rows.append(("SQLite file before / after pruning (MB)", sizes))
    return rows


def _writer_rows(plain: list[Span], spans: list[Span], drained_at: float) -> list[tuple[str, str]]:
    """What held SQLite's writer, and what claims waited for it (see the module);
    `drained_at`: when the drain ended (the worker's loop no longer busy)."""
    held = _holds(spans, PRUNE)
    draining = _holds([s for s in spans if s.started < drained_at], PRUNE)
    commits = sorted(s.ended - s.committing for s in spans if s.tag == PRUNE and s.committing)
    steps = _holds(spans, VACUUM)
    plain_waits, _ = _claim_waits(plain, ())
    waits, behind = _claim_waits(spans, (PRUNE, VACUUM, PRUNER))
    over = sum(1 for w in behind if w > _LIMIT_S)
    return [
        ("prune transactions", f"{len(held):,}"),
        ("prune transaction hold p50 / p99 / max (ms)", _spread(held)),
        ("  while the drain ran (ms)", _spread(draining)),
        ("  of which COMMIT p50 / p99 / max (ms)", _spread(commits)),
        ("incremental vacuum steps, total time (s)", f"{len(steps):,}, {sum(steps):,.1f}"),
        ("incremental vacuum step hold p50 / p99 / max (ms)", _spread(steps)),
        ("other pruner write hold p50 / p99 / max (ms)", _spread(_holds(spans, PRUNER))),
        ("writer checkpoint catch-ups, hold max (ms)", _count_max(spans, CATCH_UP)),
        ("claim wait for the writer p50 / p99 / max without pruning (ms)", _spread(plain_waits)),
        ("claim wait for the writer p50 / p99 / max while pruning (ms)", _spread(waits)),
        ("claim wait behind the pruner p50 / p99 / max (ms)", _spread(behind)),
        (f"claims waiting > {_LIMIT_S * 1e3:.0f} ms behind the pruner", f"{over:,}"),
    ]


def _rates(
    deleted: list[tuple[float, int]], began: float, drained_at: float
) -> list[tuple[str, str]]:
    """The executions pruned per second while the drain ran (the worker backlogged) and
    after it, until the last prune transaction (the worker idle)."""
    during = sum(n for at, n in deleted if at <= drained_at)
    after = [(at, n) for at, n in deleted if at > drained_at]
    quiet_s = after[-1][0] - drained_at if after else 0.0
    quiet = f"{sum(n for _, n in after) / quiet_s:,.0f}" if quiet_s else "-"
    return [
        ("pruned rows/s while the drain ran", f"{during / (drained_at - began):,.0f}"),
        ("pruned rows/s after the drain (worker idle)", quiet),
    ]


def _count_max(spans: list[Span], tag: object) -> str:
    held = _holds(spans, tag)
    return f"{len(held):,}, {_q(held, 1.0):.1f}"


def _spread(ordered: list[float]) -> str:
    return f"{_q(ordered, 0.5):.1f} / {_q(ordered, 0.99):.1f} / {_q(ordered, 1.0):.1f}"


def _q(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else 0.0
