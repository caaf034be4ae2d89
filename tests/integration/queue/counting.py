"""Database and connection wrappers that record each statement sent (and a transaction's
BEGIN and COMMIT) as the round trip it takes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from taskflowd.store.db import Conn, Database, Row

T = TypeVar("T")


class Counting:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: Conn, trips: list[str]) -> None:
        self.conn = conn
        self.trips = trips

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        self.trips.append(sql)
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        self.trips.append(sql)
        return await self.conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        self.trips.append(sql)
        return await self.conn.execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        self.trips.append(sql)
        await self.conn.executemany(sql, args)


class CountingDatabase(Counting):
    """The database, counting each statement and a transaction's BEGIN and COMMIT as the
    round trips they take."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, [])
        self.db = db
        self.dialect = db.dialect
        self.codec = db.codec
        self.journal = db.journal

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        self.trips.append("BEGIN")
        async with self.db.transaction() as conn:
            yield Counting(conn, self.trips)
        self.trips.append("COMMIT")

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        async with self.transaction() as conn:
            return await body(conn)
