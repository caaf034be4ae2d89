"""A thin async database handle over aiosqlite and asyncpg with one SQL dialect for both.

Queries are written with PostgreSQL's `$1` placeholders; SQLite receives them as `?1`.
Times go in as aware datetimes: PostgreSQL keeps `timestamptz`, SQLite integer
microseconds. Driver errors are translated to `taskflowd.store.errors` here and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from urllib.parse import urlsplit

from taskflowd.store.errors import DuplicateKey, StoreError, StoreUnavailable

if TYPE_CHECKING:
    import aiosqlite
    import asyncpg

Row = Mapping[str, Any]
Dialect = Literal["sqlite", "postgresql"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH
_PLACEHOLDER = re.compile(r"\$(\d+)")


class Conn(Protocol):
    """Statements on one connection, inside or outside a transaction."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed."""

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None: ...


class Database(Conn, Protocol):
    dialect: Dialect

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """An async context manager yielding a `Conn` whose statements commit together."""

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


class _SqliteConn:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @staticmethod
    def _sql(sql: str) -> str:
        return _PLACEHOLDER.sub(r"?\1", sql)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            rows = await self._conn.execute_fetchall(
                self._sql(sql), [_encode_sqlite(a) for a in args]
            )
        except sqlite3.Error as exc:
            raise _translate_sqlite(exc) from exc
        return [cast(Row, r) for r in rows]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            cursor = await self._conn.execute(self._sql(sql), [_encode_sqlite(a) for a in args])
        except sqlite3.Error as exc:
            raise _translate_sqlite(exc) from exc
        count = cursor.rowcount
        await cursor.close()
        return count

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        rows = [[_encode_sqlite(a) for a in row] for row in args]
        if not rows:
            return
        try:
            await self._conn.executemany(self._sql(sql), rows)
        except sqlite3.Error as exc:
            raise _translate_sqlite(exc) from exc


class SqliteDatabase:
    """SQLite in WAL mode: one writer connection behind a lock, one reader connection.

    Statements outside a transaction that change data also take the writer, so a
    transaction never interleaves with another coroutine's statements.
    """

    dialect: Dialect = "sqlite"

    def __init__(self, url: str, busy_timeout_ms: int = 10_000) -> None:
        self.path = sqlite_path(url)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def _open(self) -> aiosqlite.Connection:
        import aiosqlite

        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA cache_size=-65536",
            "PRAGMA temp_store=MEMORY",
            f"PRAGMA busy_timeout={self._busy_timeout_ms}",
        ):
            await conn.execute(pragma)
        return conn

    async def connect(self) -> None:
        if self.path.parent and not self.path.parent.exists():
            raise StoreUnavailable(f"directory {self.path.parent} does not exist")
        try:
            self._writer = await self._open()
            self._reader = await self._open()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    def _require(self, conn: aiosqlite.Connection | None) -> _SqliteConn:
        if conn is None:
            raise StoreUnavailable("the database is not connected")
        return _SqliteConn(conn)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._require(self._reader).fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._require(self._reader).fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            return await self._require(self._writer).execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        # aiosqlite runs a statement to its end in its thread even when the awaiting task
        # is cancelled, so BEGIN, ROLLBACK and COMMIT are shielded: a cancellation must
        # never leave the writer inside a transaction nobody will finish.
        async with self._lock:
            conn = self._require(self._writer)
            begin = asyncio.ensure_future(conn.execute("BEGIN IMMEDIATE"))
            try:
                await asyncio.shield(begin)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await begin
                    await conn.execute("ROLLBACK")
                raise
            try:
                yield conn
            except BaseException:
                await asyncio.shield(conn.execute("ROLLBACK"))
                raise
            await asyncio.shield(conn.execute("COMMIT"))

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

    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


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
            await self._conn.executemany(sql, rows)
        except _pg_errors() as exc:
            raise _translate_pg(exc) from exc


class PostgresDatabase:
    """An asyncpg pool; `transaction()` holds one pooled connection for its duration."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def connect(self) -> None:
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=60,
                timeout=10,
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
        return await _PgConn(self.pool).fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await _PgConn(self.pool).fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        return await _PgConn(self.pool).execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        await _PgConn(self.pool).executemany(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield _PgConn(conn)
        except _pg_errors() as exc:
            raise _translate_pg(exc) from exc

    def decode_time(self, value: Any) -> datetime:
        result: datetime = value
        return result


def open_database(url: str) -> Database:
    """The database handle for a URL; drivers are imported only when connecting."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return SqliteDatabase(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    raise ValueError(f"unsupported database URL scheme {scheme!r}")
