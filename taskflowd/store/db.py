"""A thin async database handle over sqlite3 (in threads) and asyncpg, one SQL dialect.

Queries are written with PostgreSQL's `$1` placeholders; SQLite receives them as `?1`.
Times go in as aware datetimes: PostgreSQL keeps `timestamptz`, SQLite integer
microseconds. Driver errors are translated to `taskflowd.store.errors` here and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from taskflowd.audit.journal import CHAIN_HEAD, CHAIN_MOVE, INSERT, Journal, link, writes
from taskflowd.audit.model import AuditEvent
from taskflowd.store import checkpoint
from taskflowd.store.codec import Keyring, RowCodec
from taskflowd.store.errors import DuplicateKey, NothingChanged, StoreError, StoreUnavailable
from taskflowd.store.kept import KeptReads
from taskflowd.store.read_cache import ReadCache, WalHeader, read_job
from taskflowd.store.sqlite_thread import Span, SqliteThread

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")

Row = Mapping[str, Any]
Dialect = Literal["sqlite", "postgresql"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH
_PLACEHOLDER = re.compile(r"\$(\d+)")
_READ = re.compile(r"\s*(SELECT|WITH)\b", re.IGNORECASE)
_WRITE_WORD = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|COPY|CALL|DO)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def reads_only(sql: str) -> bool:
    """Whether `sql` cannot change a row: a SELECT (or WITH) naming no statement that
    writes, not even as a lock (`FOR UPDATE`): a word test that errs towards writing."""
    return _READ.match(sql) is not None and _WRITE_WORD.search(sql) is None


class Conn(Protocol):
    """Statements on one connection, inside or outside a transaction."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed."""

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None: ...


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a `Database.script`: `args` is a row of values, or with `many`
    a sequence of rows; `required` aborts the script unless it changed a row."""

    sql: str
    args: Sequence[Any] = ()
    many: bool = False
    required: bool = False


class Database(Conn, Protocol):
    dialect: Dialect
    codec: RowCodec
    journal: Journal
    """The audit trail's writer: events of a pending recording join the first
    transaction that changes a row (see `taskflowd.audit.journal`)."""

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """An async context manager yielding a `Conn` whose statements commit together."""

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        """`body(conn)` in one transaction, as `transaction()` would run it, but in one
        hand-over where the driver allows: on SQLite the whole body runs in the writer's
        thread, so it may await only its connection's statements (directly or through
        coroutines that await nothing else); anything else is a RuntimeError."""

    async def script(self, steps: Sequence[Step]) -> list[int]:
        """Run `steps` in one transaction, in one hand-over where the driver allows;
        returns each step's changed-row count. Raises NothingChanged (everything rolled
        back) when a `required` step changed no row."""

    async def fetch_derived(self, derive: Callable[[list[Row]], T], sql: str, *args: Any) -> T:
        """`derive(await fetch(sql, *args))` for a read asked again and again (a page of
        a list): the node may keep the derived value and answer it again while nothing
        was committed to the database since, so it is never older than the last commit
        before the call, on any connection. `derive` must be a pure function of the rows
        that `sql` and `args` determine; it may run in a database thread."""

    async def fetch_kept(self, derive: Callable[[list[Row]], T], sql: str, *args: Any) -> T:
        """`fetch_derived` for a read that may lag other nodes' commits a little: where
        the database cannot tell a node of them without a round trip (PostgreSQL), the
        node answers the value again for up to `kept.KEPT_S` after its read began, but
        never once a statement of its own began since (see `taskflowd.store.kept`)."""

    def decode_time(self, value: Any) -> datetime: ...


def sqlite_path(url: str) -> Path:
    """The file of a sqlite:/// URL: three slashes relative, four absolute."""
    return Path(url.removeprefix("sqlite:///"))


def _encode_sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MICRO
    return value


def _translate_sqlite(exc: BaseException) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return DuplicateKey(str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return StoreUnavailable(f"database is busy: {exc}")
    return StoreError(f"sqlite: {exc}")


@functools.lru_cache(maxsize=2048)
def _sqlite_sql(sql: str) -> str:
    """PostgreSQL's `$1` placeholders as SQLite's `?1` (statements repeat: converted once)."""
    return _PLACEHOLDER.sub(r"?\1", sql)


def _sqlite_args(args: Sequence[Any]) -> list[Any]:
    return [_encode_sqlite(a) for a in args]


def _fetch(sql: str, args: Sequence[Any]) -> Callable[[sqlite3.Connection], list[Row]]:
    def job(conn: sqlite3.Connection) -> list[Row]:
        return cast(list[Row], conn.execute(sql, args).fetchall())

    return job


def _execute(sql: str, args: Sequence[Any]) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        return conn.execute(sql, args).rowcount

    return job


def _executemany(sql: str, rows: list[list[Any]]) -> Callable[[sqlite3.Connection], None]:
    def job(conn: sqlite3.Connection) -> None:
        conn.executemany(sql, rows)

    return job


async def steps_in(conn: Conn, steps: Sequence[Step]) -> list[int]:
    """`Database.script` on a connection inside a transaction."""
    counts: list[int] = []
    for index, step in enumerate(steps):
        if step.many:
            await conn.executemany(step.sql, step.args)
            counts.append(len(step.args))
            continue
        changed = await conn.execute(step.sql, *step.args)
        counts.append(changed)
        if step.required and changed < 1:
            raise NothingChanged(index)
    return counts


def _prepared(steps: Sequence[Step]) -> list[tuple[str, Any, Step]]:
    return [
        (
            _sqlite_sql(step.sql),
            [_sqlite_args(a) for a in step.args] if step.many else _sqlite_args(step.args),
            step,
        )
        for step in steps
    ]


def _apply(conn: sqlite3.Connection, prepared: list[tuple[str, Any, Step]]) -> list[int]:
    counts: list[int] = []
    for index, (sql, args, step) in enumerate(prepared):
        cursor = conn.executemany(sql, args) if step.many else conn.execute(sql, args)
        counts.append(cursor.rowcount)
        if step.required and cursor.rowcount < 1:
            raise NothingChanged(index)
    return counts


def _script_body(steps: Sequence[Step]) -> Callable[[sqlite3.Connection], list[int]]:
    """`Database.script` as the body of a transaction of the writer's."""
    prepared = _prepared(steps)

    def body(conn: sqlite3.Connection) -> list[int]:
        return _apply(conn, prepared)

    return body


def _audited_script_body(
    steps: Sequence[Step], events: Sequence[AuditEvent]
) -> Callable[[sqlite3.Connection], tuple[list[int], list[AuditEvent]]]:
    """`_script_body`, appending `events` to the audit chain in the same transaction when
    a statement changed a row: one hand-over to the writer's thread in all."""
    prepared = _prepared(steps)
    insert, move, head = _sqlite_sql(INSERT), _sqlite_sql(CHAIN_MOVE), _sqlite_sql(CHAIN_HEAD)

    def body(conn: sqlite3.Connection) -> tuple[list[int], list[AuditEvent]]:
        counts = _apply(conn, prepared)
        changed = any(
            (len(step.args) if step.many else n) > 0 and writes(step.sql)
            for n, (_, _, step) in zip(counts, prepared, strict=True)
        )
        if not changed:
            return counts, []
        row = conn.execute(head).fetchone()
        if row is None:
            raise RuntimeError("the audit chain has no head row; run the migrations")
        chain = link(int(row["seq"]), str(row["hash"]), events)
        conn.executemany(insert, [_sqlite_args(r) for r in chain.rows])
        conn.execute(move, _sqlite_args((chain.seq, chain.hash)))
        return counts, chain.events

    return body


class _SqliteConn:
    """Statements of one transaction, each run in the writer's thread."""

    def __init__(self, thread: SqliteThread) -> None:
        self._thread = thread

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._thread.run(job)
        except sqlite3.Error as exc:
            raise _translate_sqlite(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._run(_fetch(_sqlite_sql(sql), _sqlite_args(args)))

    async def read_derived(
        self, header: WalHeader, derive: Callable[[list[Row]], T], sql: str, args: Sequence[Any]
    ) -> tuple[bytes | None, int, T]:
        """`read_job` in this connection's thread: the wal-index header read first, the
        rows' text length, and the value derived from them."""
        statement, values = _sqlite_sql(sql), _sqlite_args(args)

        def job(conn: sqlite3.Connection) -> tuple[bytes | None, int, T]:
            return read_job(header, derive, lambda: conn.execute(statement, values).fetchall())

        return await self._run(job)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> int:
        return await self._run(_execute(_sqlite_sql(sql), _sqlite_args(args)))

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        rows = [_sqlite_args(row) for row in args]
        if rows:
            await self._run(_executemany(_sqlite_sql(sql), rows))

    async def _transact(self, body: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._thread.run_transaction(body)
        except sqlite3.Error as exc:
            raise _translate_sqlite(exc) from exc


class _InThread(_SqliteConn):
    """The writer's own connection as a `Conn`, for a transaction body driven in the
    writer's thread (`SqliteDatabase.atomic`): each statement runs at once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return job(self._conn)
        except sqlite3.Error as exc:
            raise _translate_sqlite(exc) from exc


def _drive(body: Coroutine[Any, Any, T]) -> T:
    """Run to its end a coroutine that never suspends (a transaction body whose awaits
    all finish at once on an `_InThread` connection)."""
    try:
        body.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    body.close()
    raise RuntimeError("a body given to Database.atomic awaited something besides its connection")


_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA temp_store=MEMORY",
)
# Page caches, in KiB. Each connection's cache holds memory it once filled until it closes,
# so its size is RSS the node keeps: with 64 MiB per connection a node that drained 20,000
# one-time tasks peaked 17-23 MB higher (60,000: over 60 MB higher), same CPU per job
# (issue 17); the file's pages stay in the OS's cache either way. The writer keeps its
# pages between transactions (no other connection writes), so it gets the larger cache; a
# reader's cache starts empty after every commit of the writer, so SQLite's default does.
WRITER_CACHE_KIB = 4096
READER_CACHE_KIB = 2048


class SqliteDatabase:
    """SQLite in WAL mode: one writer connection behind a lock, and reader connections
    (WAL readers never wait for the writer), each in a thread of its own, and a
    checkpoint loop that keeps copying the log back off the writer's commits
    (`taskflowd.store.checkpoint`; `checkpoint_interval_s`, `wal_bytes`).

    Statements outside a transaction that change data also take the writer, so a
    transaction never interleaves with another coroutine's statements.
    """

    dialect: Dialect = "sqlite"

    def __init__(
        self,
        url: str,
        busy_timeout_ms: int = 10_000,
        readers: int = 2,
        keyring: Keyring | None = None,
        *,
        checkpoint_interval_s: float = checkpoint.INTERVAL_S,
        wal_bytes: int = checkpoint.WAL_BYTES,
    ) -> None:
        self.path = sqlite_path(url)
        self.codec = RowCodec(self.decode_time, keyring)
        self.journal = Journal(self, sealed=keyring is not None)
        pragmas = (*_PRAGMAS, f"PRAGMA busy_timeout={busy_timeout_ms}")
        # Freed pages go back to the file system when the pruner asks (incremental
        # vacuum); a file made before this setting needs one VACUUM (`taskflowd migrate`).
        writer = (
            "PRAGMA auto_vacuum=INCREMENTAL",
            *pragmas,
            f"PRAGMA cache_size=-{WRITER_CACHE_KIB}",
            *checkpoint.writer_pragmas(),
        )
        self._writer_thread = SqliteThread(self.path, writer, "sqlite-writer")
        self._reader_threads = [
            SqliteThread(
                self.path,
                (*pragmas, f"PRAGMA cache_size=-{READER_CACHE_KIB}", "PRAGMA query_only=ON"),
                f"sqlite-reader-{i}",
            )
            for i in range(readers)
        ]
        self._header = WalHeader(self.path)
        self.checkpointer = checkpoint.Checkpointer(
            self.path,
            self._header,
            self._checkpoint,
            interval_s=checkpoint_interval_s,
            wal_bytes=wal_bytes,
        )
        self._writer: _SqliteConn | None = None
        self._readers: list[_SqliteConn] = []
        self._lock = asyncio.Lock()
        self._cache = ReadCache(self._header)

    async def connect(self) -> None:
        if self.path.parent and not self.path.parent.exists():
            raise StoreUnavailable(f"directory {self.path.parent} does not exist")
        opened: list[SqliteThread] = []
        try:
            # The writer first: it switches the file to WAL before readers open it.
            for thread in (self._writer_thread, *self._reader_threads):
                await thread.open()
                opened.append(thread)
        except sqlite3.Error as exc:
            for thread in opened:
                await thread.close()
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._writer = _SqliteConn(self._writer_thread)
        self._readers = [_SqliteConn(t) for t in self._reader_threads]
        try:
            # The writer has switched the file to WAL: its -shm file exists while it is open.
            await asyncio.to_thread(self._header.open)
        except OSError as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open {self.path}-shm: {exc}") from exc
        try:
            await self.checkpointer.start()  # its loop asks the writer to catch up
        except sqlite3.Error as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    async def close(self) -> None:
        await self.checkpointer.stop()
        self._readers, self._writer = [], None
        for thread in (*self._reader_threads, self._writer_thread):
            await thread.close()
        self._header.close()  # last: closing it drops the process's locks on the file

    def observe_writer(self, observer: Callable[[Span], None] | None) -> None:
        """Have `observer` told, in the writer's thread, how each of its jobs ran (see
        `sqlite_thread`): a benchmark's view of what held the writer; None stops it."""
        self._writer_thread.observer = observer

    def _write_conn(self) -> _SqliteConn:
        if self._writer is None:
            raise StoreUnavailable("the database is not connected")
        return self._writer

    def _read_conn(self) -> _SqliteConn:
        if not self._readers:
            raise StoreUnavailable("the database is not connected")
        return min(self._readers, key=lambda r: r._thread.pending)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._read_conn().fetch(sql, *args)

    async def fetch_derived(self, derive: Callable[[list[Row]], T], sql: str, *args: Any) -> T:
        # A value read since the last commit is answered on the loop (see read_cache).
        key = (sql, args)
        hit, value = self._cache.get(key)
        if hit:
            return cast(T, value)
        seen, chars, derived = await self._read_conn().read_derived(self._header, derive, sql, args)
        self._cache.put(key, seen, chars, derived)
        return derived

    async def fetch_kept(self, derive: Callable[[list[Row]], T], sql: str, *args: Any) -> T:
        # Every commit of any process shows in the wal-index header: nothing lags.
        return await self.fetch_derived(derive, sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._read_conn().fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        if self.journal.pending() is not None:
            (changed,) = await self.script([Step(sql, args)])
            return changed
        async with self._lock:
            return await self._write_conn().execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, args)

    async def script(self, steps: Sequence[Step]) -> list[int]:
        recording = self.journal.pending()
        if recording is not None:
            body = _audited_script_body(steps, recording.events)
            counts, recording.staged = await self._transact(body)
            self.journal.committed()
            return counts
        return await self._transact(_script_body(steps))

    async def _transact(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """`body` as a transaction of the writer's, committed with those queued beside it
        (group commit, `SqliteThread.run_transaction`); never inside an open
        `transaction()`, whose statements come first."""
        while self._lock.locked():
            async with self._lock:
                pass
        return await self._write_conn()._transact(body)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        # A statement runs to its end in the writer's thread even when the awaiting task
        # is cancelled, so BEGIN, ROLLBACK and COMMIT are shielded: a cancellation must
        # never leave the writer inside a transaction nobody will finish.
        async with self._lock:
            conn = self._write_conn()
            begin = asyncio.ensure_future(conn.execute("BEGIN IMMEDIATE"))
            try:
                await asyncio.shield(begin)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await begin
                    await conn.execute("ROLLBACK")
                raise
            try:
                async with self.journal.bound(conn) as audited:
                    yield audited
            except BaseException:
                await asyncio.shield(conn.execute("ROLLBACK"))
                raise
            await asyncio.shield(conn.execute("COMMIT"))
        self.journal.committed()

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        context = contextvars.copy_context()
        journal = self.journal

        async def audited(conn: Conn) -> T:
            async with journal.bound(conn) as bound:
                return await body(bound)

        def job(conn: sqlite3.Connection) -> T:
            return context.run(_drive, audited(_InThread(conn)))

        result = await self._transact(job)
        self.journal.committed()
        return result

    async def incremental_vacuum(self, pages: int, budget_s: float) -> int:
        """Give up to `pages` free pages back to the file system in one write, which
        moves no more pages once it has run `budget_s`: the pages given back.

        A page moved from the end of the file takes a search of the free list and
        rewrites the pages pointing to it, so what a page costs varies; the budget bounds
        how long a step holds the writer whatever the pages cost. (One page a statement:
        a cursor steps `PRAGMA incremental_vacuum(N)` once, which frees a single page.)"""

        def job(conn: sqlite3.Connection) -> int:
            began = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            try:
                free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                for _ in range(min(pages, free)):
                    conn.execute("PRAGMA incremental_vacuum(1)")
                    if time.perf_counter() - began >= budget_s:
                        break
                left = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return free - left

        async with self._lock:
            return await self._write_conn()._run(job)

    async def _checkpoint(self) -> None:
        """A PASSIVE checkpoint on the writer's connection, between two transactions."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

        async with self._lock:
            await self._write_conn()._run(job)

    def decode_time(self, value: Any) -> datetime:
        moment: datetime = _EPOCH + value * _MICRO
        return moment


def _translate_pg(exc: BaseException) -> StoreError:
    import asyncpg

    if isinstance(exc, asyncpg.UniqueViolationError):
        return DuplicateKey(str(exc))
    if isinstance(
        exc,
        OSError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError
        | asyncpg.AdminShutdownError
        | asyncio.TimeoutError,
    ):
        return StoreUnavailable(f"postgresql unreachable: {exc}")
    return StoreError(f"postgresql: {exc}")


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _pg_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    # InternalClientError: the connection's protocol state broke mid-operation (seen when
    # the server shuts down during a COMMIT): the connection is unusable, as when it drops.
    return (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
        asyncio.TimeoutError,
    )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """How the pool resets a connection given back: with no statement of its own (the
    default sends one, a round trip per use of the pool). taskflowd leaves no session
    state behind: no SET, no session advisory lock, no cursor outside a transaction, and
    whoever LISTENs removes its listeners (UNLISTEN); asyncpg itself still ends an open
    transaction and forgets listeners before calling this."""


class _PgConn:
    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return list(await self._conn.fetch(sql, *args))
        except _pg_errors() as exc:
            raise _translate_pg(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        try:
            row: Row | None = await self._conn.fetchrow(sql, *args)
        except _pg_errors() as exc:
            raise _translate_pg(exc) from exc
        return row

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            status = await self._conn.execute(sql, *args)
        except _pg_errors() as exc:
            raise _translate_pg(exc) from exc
        return _rowcount(status)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        rows = list(args)
        if not rows:
            return
        try:
            if len(rows) == 1:  # half the CPU of asyncpg's executemany for one row
                await self._conn.execute(sql, *rows[0])
                return
            await self._conn.executemany(sql, rows)
        except _pg_errors() as exc:
            raise _translate_pg(exc) from exc


class PostgresDatabase:
    """An asyncpg pool; `transaction()` holds one pooled connection for its duration."""

    dialect: Dialect = "postgresql"

    def __init__(
        self, url: str, min_size: int = 2, max_size: int = 10, keyring: Keyring | None = None
    ) -> None:
        self.url = url
        self.codec = RowCodec(self.decode_time, keyring)
        self.journal = Journal(self, sealed=keyring is not None)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._kept = KeptReads()

    async def connect(self) -> None:
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=60,
                timeout=10,
                # Times rendered by the server (JSON built in SQL) read as UTC. No JIT
                # compilation: every statement here is planned for few rows, and one whose
                # estimate crossed jit_above_cost (a claim, as the statistics of a queue that
                # filled up went stale) spent 100 ms and more compiling it, every time.
                server_settings={"timezone": "UTC", "jit": "off"},
                reset=_keep_session,
            )
        except (*_pg_errors(), ValueError) as exc:  # type: ignore[misc]
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("the database is not connected")
        return self._pool

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        if reads_only(sql):
            return await _PgConn(self.pool).fetch(sql, *args)
        with self._kept.writing():  # an UPDATE … RETURNING, a claim
            return await _PgConn(self.pool).fetch(sql, *args)

    async def fetch_derived(self, derive: Callable[[list[Row]], T], sql: str, *args: Any) -> T:
        # Another node may commit at any time, and nothing tells this one without a
        # round trip that costs as much as the read: every read goes to the server.
        return derive(await _PgConn(self.pool).fetch(sql, *args))

    async def fetch_kept(self, derive: Callable[[list[Row]], T], sql: str, *args: Any) -> T:
        key = (sql, args)
        kept = self._kept
        hit, value = kept.get(key)
        if hit:
            return cast(T, value)
        read = kept.reading(key)
        if read is None:
            read = kept.begin(key, self._read_kept(key, derive, sql, args))
        return cast(T, await asyncio.shield(read))

    async def _read_kept(
        self,
        key: tuple[str, tuple[Any, ...]],
        derive: Callable[[list[Row]], T],
        sql: str,
        args: tuple[Any, ...],
    ) -> T:
        kept = self._kept
        began, generation = time.monotonic(), kept.generation
        found = await _PgConn(self.pool).fetch(sql, *args)
        derived = derive(found)
        chars = sum(len(v) for row in found for v in row.values() if isinstance(v, str))
        kept.put(key, began, generation, chars, derived)
        return derived

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        if reads_only(sql):
            return await _PgConn(self.pool).fetchrow(sql, *args)
        with self._kept.writing():
            return await _PgConn(self.pool).fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        if self.journal.pending() is not None:
            async with self.transaction() as conn:
                return await conn.execute(sql, *args)
        with self._kept.writing():
            return await _PgConn(self.pool).execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        if self.journal.pending() is not None:
            async with self.transaction() as conn:
                await conn.executemany(sql, args)
            return
        with self._kept.writing():
            await _PgConn(self.pool).executemany(sql, args)

    async def script(self, steps: Sequence[Step]) -> list[int]:
        async with self.transaction() as conn:
            return await steps_in(conn, steps)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        with self._kept.writing():
            try:
                async with (
                    self.pool.acquire() as conn,
                    conn.transaction(),
                    self.journal.bound(_PgConn(conn)) as audited,
                ):
                    yield audited
            except _pg_errors() as exc:
                raise _translate_pg(exc) from exc
        self.journal.committed()

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        async with self.transaction() as conn:
            return await body(conn)

    def decode_time(self, value: Any) -> datetime:
        result: datetime = value
        return result


def open_database(url: str, keyring: Keyring | None = None) -> Database:
    """The database handle for a URL (sealing sensitive values with `keyring` when given);
    drivers are imported only when connecting."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return SqliteDatabase(url, keyring=keyring)
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url, keyring=keyring)
    raise ValueError(f"unsupported database URL scheme {scheme!r}")
