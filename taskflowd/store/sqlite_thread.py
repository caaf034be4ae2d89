"""One SQLite connection owned by one thread, driven from the event loop.

SQLite calls block, so each connection lives in a thread of its own and the loop hands
it work: a function of the connection, run in submission order. Results go back to the
loop in batches (one wake-up of the loop for every job that finished meanwhile), and a
transaction of several statements can be one job, so it costs one hand-over instead of
one per statement. sqlite3 releases the GIL while SQLite itself works, so queries run
beside the loop.

Transaction bodies (`run_transaction`) that are waiting together commit together (group
commit): one BEGIN, each body inside a savepoint of its own, one COMMIT. A commit writes
every page a transaction changed to the log, which costs more than the statements of a
small transaction, so concurrent writers share it. A body that raises rolls back to its
savepoint alone; every body of the group answers only once the group committed, and all
of them fail if the commit does.

With an `observer`, each job's timing is reported from the thread as a `Span`, tagged
with `span_tag` as it was where the job was submitted (a benchmark's way to tell which
job a claim waited behind).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
_MAX_BATCH = 64


span_tag: ContextVar[object | None] = ContextVar("sqlite_span_tag", default=None)
"""What the jobs submitted from this context are, for `SqliteThread.observer`."""


@dataclass(slots=True)
class Span:
    """One job as its thread ran it, in `time.perf_counter()` seconds: submitted at
    `queued`, begun at `started`, done at `ended` (a transaction body: once its group
    committed, whose COMMIT began at `committing`)."""

    tag: object | None
    queued: float
    started: float = 0.0
    committing: float | None = None
    ended: float = 0.0


class _Stop:
    """Sentinel: close the connection and end the thread."""


@dataclass(frozen=True, slots=True)
class _Body:
    """A job that is the body of a transaction (run between BEGIN and COMMIT)."""

    job: Job
    span: Span | None = None


_Item = tuple[asyncio.Future[Any] | None, Job | _Body | type[_Stop], Span | None]
_Results = list[tuple[asyncio.Future[Any], Any, BaseException | None]]


def _deliver(results: _Results) -> None:
    for future, value, error in results:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


class SqliteThread:
    """A sqlite3 connection in its own thread; `run(job)` runs `job(conn)` there."""

    def __init__(self, path: Path, pragmas: tuple[str, ...], name: str) -> None:
        self.path = path
        self._pragmas = pragmas
        self._name = name
        self._queue: SimpleQueue[_Item] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pending = 0
        """Jobs submitted and not yet finished (to pick the least busy reader)."""
        self.observer: Callable[[Span], None] | None = None
        """Called in the connection's thread with each job's span once it finished."""

    async def open(self) -> None:
        """Start the thread and open the connection; raises sqlite3.Error when it cannot."""
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(opened,), name=self._name, daemon=True
        )
        self._thread.start()
        try:
            await opened
        except BaseException:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
            raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            conn.row_factory = sqlite3.Row
            for pragma in self._pragmas:
                conn.execute(pragma)
        except BaseException:
            conn.close()
            raise
        return conn

    def _main(self, opened: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        outcome: _Results
        try:
            conn = self._connect()
        except BaseException as exc:
            outcome = [(opened, None, exc)]
            loop.call_soon_threadsafe(_deliver, outcome)
            return
        outcome = [(opened, None, None)]
        loop.call_soon_threadsafe(_deliver, outcome)
        try:
            self._serve(conn, loop)
        finally:
            conn.close()

    def _serve(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < _MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            results: _Results = []
            group: list[tuple[asyncio.Future[Any], _Body]] = []
            stop = False
            for future, job, span in batch:
                if isinstance(job, _Body):
                    assert future is not None
                    group.append((future, job))
                    continue
                results += _commit_group(conn, group)
                group = []
                if job is _Stop:
                    stop = True
                    continue
                assert future is not None and not isinstance(job, type)
                results.append(_run(conn, future, job, span))
            results += _commit_group(conn, group)
            if results:
                loop.call_soon_threadsafe(self._finished, results)
            self._observe(batch)
            if stop:
                return

    def _observe(self, batch: list[_Item]) -> None:
        observer = self.observer
        if observer is not None:
            for _, _, span in batch:
                if span is not None:
                    observer(span)

    def _finished(self, results: _Results) -> None:
        self.pending -= len(results)
        _deliver(results)

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job(conn)` in the connection's thread and return its result.

        The job runs to its end even if the caller is cancelled meanwhile.
        """
        result: T = await self._submit(job)
        return result

    async def run_transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body(conn)` in a write transaction, committed with the bodies waiting
        beside it (see the module); its result once committed, or what it raised (its
        changes rolled back). Like `run`, it runs to its end even if the caller is
        cancelled. Never call it while a transaction of `run` jobs is open."""
        result: T = await self._submit(_Body(body))
        return result

    async def _submit(self, job: Job | _Body) -> Any:
        if self._thread is None or self._loop is None:
            raise sqlite3.ProgrammingError("the connection is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        span = None
        if self.observer is not None:
            span = Span(span_tag.get(), time.perf_counter())
            if isinstance(job, _Body):
                job = _Body(job.job, span)
        self.pending += 1
        self._queue.put((future, job, span))
        return await future

    async def close(self) -> None:
        """Finish queued jobs, close the connection and end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put((None, _Stop, None))
        await asyncio.to_thread(thread.join)


def _run(
    conn: sqlite3.Connection, future: asyncio.Future[Any], job: Job, span: Span | None
) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
    if span is not None:
        span.started = time.perf_counter()
    try:
        return future, job(conn), None
    except BaseException as exc:
        return future, None, exc
    finally:
        if span is not None:
            span.ended = time.perf_counter()


def _commit_group(
    conn: sqlite3.Connection, group: list[tuple[asyncio.Future[Any], _Body]]
) -> _Results:
    """Run the bodies of `group` in one transaction, each in a savepoint of its own."""
    if not group:
        return []
    if len(group) == 1:
        return [_commit_alone(conn, *group[0])]
    results: _Results = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for index, (future, body) in enumerate(group):
            conn.execute("SAVEPOINT body")
            _begin(body)
            try:
                results.append((future, body.job(conn), None))
            except BaseException as exc:
                if not conn.in_transaction:
                    # SQLite ended the whole transaction (a full disk, say): the bodies
                    # before this one went with it; those after it start afresh.
                    failed = [(f, None, exc) for f, _ in group[: index + 1]]
                    return failed + _commit_group(conn, group[index + 1 :])
                results.append((future, None, exc))
                conn.execute("ROLLBACK TO body")
            conn.execute("RELEASE body")
        _commit(conn, [body for _, body in group])
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(future, None, exc) for future, _ in group]
    return results


def _begin(body: _Body) -> None:
    if body.span is not None:
        body.span.started = time.perf_counter()


def _commit(conn: sqlite3.Connection, bodies: list[_Body]) -> None:
    """COMMIT, noting its start and end in the spans of `bodies`."""
    spans = [body.span for body in bodies if body.span is not None]
    for span in spans:
        span.committing = time.perf_counter()
    try:
        conn.execute("COMMIT")
    finally:
        for span in spans:
            span.ended = time.perf_counter()


def _commit_alone(
    conn: sqlite3.Connection, future: asyncio.Future[Any], body: _Body
) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
    """A group of one: its own transaction, without a savepoint."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        _begin(body)
        try:
            result = body.job(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        _commit(conn, [body])
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return future, None, exc
    return future, result, None
