"""`taskflowd bench --prune N`: what pruning N finished executions costs a draining queue.

The database is filled once with N executions finished long ago. After one warm-up drain,
`--pairs` pairs of drains of `--jobs` fresh jobs each follow: a plain drain, then a drain
with the pruner deleting those executions. The pruner starts a pass as the pruned drain's
worker starts and is stopped between two of its database calls once the drain is done, so
it never runs in a plain drain and, with a backlog far larger than it deletes in a drain
(a few hundred rows/s while the worker is backlogged), it is still pruning at the end of
every pruned drain. Each pair gives the drain rate lost and the process CPU per job added
(CPU per job moves less with the machine's load than a rate); the medians over the pairs
are the figures. Then the pruner runs alone with the worker idle: its quiet rate.

On SQLite the writer's thread times each of its jobs (`SqliteDatabase.observe_writer`): how
long each prune transaction, incremental-vacuum step and other write of the pruner's
holds the writer (statements and COMMIT apart), and how long each claim of the worker
waits for the writer from call to start, in all and behind the pruner's writes. Each claim
is also timed from call to answer on the loop, in every drain.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from taskflowd.bench_fill import fill_executions
from taskflowd.domain.entities import Execution, utcnow
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.queue.base import JobQueue
from taskflowd.store.checkpoint import CATCH_UP
from taskflowd.store.db import Conn, Database, Row, SqliteDatabase
from taskflowd.store.sqlite_thread import Span, span_tag
from taskflowd.worker.pool import WorkerPool

if TYPE_CHECKING:
    from taskflowd.bench import _Bench

_AGE = timedelta(days=40)
_CHECKPOINT_TRIES = 50
_IDLE_S = 5.0
"""How long the pruner runs alone, the worker idle, for its quiet rate."""
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
    """The pruner's database, tagging its transactions and incremental vacuum steps,
    noting when each transaction ended and the executions it deleted, and knowing whether
    one of the pruner's calls is in flight."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.deleted: list[tuple[float, int]] = []
        self._calls = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @asynccontextmanager
    async def _call(self) -> AsyncIterator[None]:
        self._calls += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._calls -= 1
            if not self._calls:
                self._idle.set()

    async def between_calls(self) -> None:
        """Return when none of the pruner's database calls is in flight (it rests)."""
        while self._calls:
            await self._idle.wait()

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._call():
            return await self._db.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._call():
            return await self._db.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._call():
            return await self._db.execute(sql, *args)

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        async with self._call():
            with _tagged(PRUNE):
                result = await self._db.atomic(body)
        if isinstance(result, dict):
            self.deleted.append((time.perf_counter(), result.get("job_executions", 0)))
        return result

    async def incremental_vacuum(self, pages: int, budget_s: float) -> int:
        assert isinstance(self._db, SqliteDatabase)
        async with self._call():
            with _tagged(VACUUM):
                return await self._db.incremental_vacuum(pages, budget_s)

    def pruned(self, began: float, ended: float) -> int:
        """Executions deleted by the transactions that ended from `began` to `ended`."""
        return sum(n for at, n in self.deleted if began <= at <= ended)


class _Pruning:
    """The bench's pruner, pruning only between `start` and `stop`: each start begins a
    pass (a lease renewal, then the oldest executions first), as a node's pruner does."""

    def __init__(self, bench: _Bench, db: Database) -> None:
        self.db = _TaggedDatabase(db)
        vacuum = self.db.incremental_vacuum if isinstance(db, SqliteDatabase) else None
        self.pruner = Pruner(
            self.db,
            bench.settings.retention,
            "bench-pruner",
            vacuum=vacuum,
            busy=lambda: bench.worker.backlogged(),
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pass())

    async def _pass(self) -> None:
        with _tagged(PRUNER):
            await self.pruner.run_once()

    async def stop(self) -> bool:
        """Stop the pass between two database calls; True when it had not ended (it still
        had old executions to delete)."""
        assert self._task is not None
        await self.db.between_calls()
        pruning = not self._task.done()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return pruning

    async def idle_rate(self, seconds: float) -> float:
        """Executions deleted per second in a pass of `seconds` with the worker idle."""
        began = time.perf_counter()
        self.start()
        await asyncio.sleep(seconds)
        await self.stop()
        ended = time.perf_counter()
        return self.db.pruned(began, ended) / (ended - began)


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


async def _settle(db: Database) -> None:
    """On SQLite, let the node's checkpoint copy all of the fill's log back into the file
    (a pass copies only what no reader still reads: it is run again, a while)."""
    if not isinstance(db, SqliteDatabase):
        return
    for _ in range(_CHECKPOINT_TRIES):
        if (await db.checkpointer.run_once()).complete:
            return
        await asyncio.sleep(0.1)


@dataclass
class _Drain:
    """One drain: its rate, process CPU per job, when it ran, its claims' times (sorted)
    and, on SQLite, the writer's spans from its start until the pruner stopped."""

    per_s: float
    cpu_us: float
    began: float
    ended: float
    claims: list[float]
    spans: list[Span] = field(default_factory=list)


def _fresh_worker(bench: _Bench, queue: JobQueue | None = None) -> None:
    bench.worker = WorkerPool(
        queue or bench.queue, bench.handlers, bench.settings.worker, "bench", bench.events,
        bench.supervisor,
    )  # fmt: skip


async def _drain(
    bench: _Bench, jobs: int, observed: _Spans, pruning: _Pruning | None = None
) -> _Drain:
    """Drain `jobs` fresh jobs with a fresh worker whose claims are timed, the writer's
    spans collected from the worker's start, and `pruning` started with the worker."""
    timed = _TimedQueue(bench.queue)
    await bench.worker.stop()
    _fresh_worker(bench, cast(JobQueue, timed))
    began = 0.0

    def starting() -> None:
        nonlocal began
        observed.take()
        if pruning is not None:
            pruning.start()
        began = time.perf_counter()

    drained = await bench.drain(jobs, starting)
    ended = time.perf_counter()
    return _Drain(
        drained["drain_per_s"], drained["cpu_us_per_job"], began, ended, sorted(timed.claim_s)
    )


async def prune_rows(bench: _Bench, count: int, jobs: int, pairs: int) -> list[tuple[str, str]]:
    """Fill `count` old executions, then drain `jobs` jobs `pairs` times without and with
    the pruner deleting them (see the module)."""
    filling = time.perf_counter()
    assert bench.task is not None
    await fill_executions(bench.store.db, bench.task, count, utcnow() - _AGE)
    fill_s = time.perf_counter() - filling
    db = bench.store.db
    await _settle(db)
    observed = _Spans()
    if isinstance(db, SqliteDatabase):
        db.observe_writer(observed.add)
    pruning = _Pruning(bench, db)
    warm = await _drain(bench, jobs, observed)
    plain: list[_Drain] = []
    pruned: list[_Drain] = []
    always = True
    for _ in range(pairs):
        plain.append(await _drain(bench, jobs, observed))
        plain[-1].spans = observed.take()
        pruned.append(await _drain(bench, jobs, observed, pruning))
        always = await pruning.stop() and always
        pruned[-1].spans = observed.take()
    idle = await pruning.idle_rate(_IDLE_S)
    await pruning.pruner.lease.release()
    if isinstance(db, SqliteDatabase):
        db.observe_writer(None)
    done = sum(n for _, n in pruning.db.deleted)
    rows = [
        (f"fill: {count:,} old executions (s)", f"{fill_s:,.1f}"),
        ("warm-up drain, not counted (jobs/s)", f"{warm.per_s:,.0f}"),
        *_pair_rows(plain, pruned, pruning.db),
        ("pruned rows/s with the worker idle", f"{idle:,.0f}"),
        (f"pruned of {count:,}; still pruning at each pruned drain's end", f"{done:,}; "
         + ("yes" if always else "no")),
        ("claim p50 / p99 / max in plain drains (ms)", _spread(_merged(plain))),
        ("claim p50 / p99 / max in pruned drains (ms)", _spread(_merged(pruned))),
        (f"claims over {_LIMIT_S * 1e3:.0f} ms in plain / pruned drains", _over(plain, pruned)),
    ]  # fmt: skip
    if isinstance(db, SqliteDatabase):
        rows += _writer_rows(plain, pruned)
    return rows


def _pair_rows(
    plain: list[_Drain], pruned: list[_Drain], db: _TaggedDatabase
) -> list[tuple[str, str]]:
    """Each pair's rates, CPU per job and pruning rate, and the medians over the pairs."""
    rows: list[tuple[str, str]] = []
    lost: list[float] = []
    added: list[float] = []
    for i, (a, b) in enumerate(zip(plain, pruned, strict=True), 1):
        lost.append(1 - b.per_s / a.per_s)
        added.append(b.cpu_us / a.cpu_us - 1)
        rate = db.pruned(b.began, b.ended) / (b.ended - b.began)
        rows += [
            (f"pair {i}: drain plain / pruned (jobs/s), lost",
             f"{a.per_s:,.0f} / {b.per_s:,.0f}, {lost[-1]:.1%}"),
            (f"pair {i}: CPU per job plain / pruned (µs), added",
             f"{a.cpu_us:,.0f} / {b.cpu_us:,.0f}, {added[-1]:.1%}"),
            (f"pair {i}: pruned rows/s while draining", f"{rate:,.0f}"),
        ]  # fmt: skip
    return [
        *rows,
        (f"drain rate lost to pruning, median of {len(lost)} pairs",
         f"{statistics.median(lost):.1%}"),
        (f"CPU per job added by pruning, median of {len(added)} pairs",
         f"{statistics.median(added):.1%}"),
    ]  # fmt: skip


def _merged(drains: list[_Drain]) -> list[float]:
    return sorted(c for d in drains for c in d.claims)


def _over(plain: list[_Drain], pruned: list[_Drain]) -> str:
    counts = [sum(1 for c in _merged(ds) if c > _LIMIT_S) for ds in (plain, pruned)]
    return " / ".join(f"{n:,}" for n in counts)


def _writer_rows(plain: list[_Drain], pruned: list[_Drain]) -> list[tuple[str, str]]:
    """What held SQLite's writer in the pruned drains, and what claims waited for it in
    both kinds of drain (see the module)."""
    spans = [s for d in pruned for s in d.spans]
    held = _holds(spans, PRUNE)
    draining = _holds([s for d in pruned for s in d.spans if s.started < d.ended], PRUNE)
    commits = sorted(s.ended - s.committing for s in spans if s.tag == PRUNE and s.committing)
    steps = _holds(spans, VACUUM)
    plain_waits, _ = _claim_waits([s for d in plain for s in d.spans], ())
    waits, behind = _claim_waits(spans, (PRUNE, VACUUM, PRUNER))
    over = sum(1 for w in behind if w > _LIMIT_S)
    pruner = sum(
        min(s.ended, d.ended) - max(s.started, d.began)
        for d in pruned
        for s in d.spans
        if s.tag in (PRUNE, VACUUM, PRUNER) and s.started < d.ended
    )
    drained_s = sum(d.ended - d.began for d in pruned)
    return [
        ("pruned drains' time the pruner held the writer", f"{pruner / drained_s:.1%}"),
        ("prune transactions", f"{len(held):,}"),
        ("prune transaction hold p50 / p99 / max (ms)", _spread(held)),
        ("  while the drain ran (ms)", _spread(draining)),
        ("  of which COMMIT p50 / p99 / max (ms)", _spread(commits)),
        ("incremental vacuum steps, total time (s)", f"{len(steps):,}, {sum(steps):,.1f}"),
        ("incremental vacuum step hold p50 / p99 / max (ms)", _spread(steps)),
        ("other pruner write hold p50 / p99 / max (ms)", _spread(_holds(spans, PRUNER))),
        ("writer checkpoint catch-ups, hold max (ms)", _count_max(spans, CATCH_UP)),
        ("claim wait for the writer p50 / p99 / max in plain drains (ms)", _spread(plain_waits)),
        ("claim wait for the writer p50 / p99 / max in pruned drains (ms)", _spread(waits)),
        ("claim wait behind the pruner p50 / p99 / max (ms)", _spread(behind)),
        (f"claims waiting > {_LIMIT_S * 1e3:.0f} ms behind the pruner", f"{over:,}"),
    ]


def _count_max(spans: list[Span], tag: object) -> str:
    held = _holds(spans, tag)
    return f"{len(held):,}, {_q(held, 1.0):.1f}"


def _spread(ordered: list[float]) -> str:
    return f"{_q(ordered, 0.5):.1f} / {_q(ordered, 0.99):.1f} / {_q(ordered, 1.0):.1f}"


def _q(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else 0.0
