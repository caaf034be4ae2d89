"""What every group of SQL records shares: WHERE clauses from fixed fragments and pages."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from taskflowd.store import rows
from taskflowd.store.base import Page
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Database, Row
from taskflowd.store.render import Shape, json_object

if TYPE_CHECKING:
    from taskflowd.audit.journal import Journal
    from taskflowd.audit.records import AuditRecords

T = TypeVar("T")
_MAX_SHAPES = 256  # `?fields=` chooses shapes: keep the cache of their SQL bounded
_MAX_READS = 1024  # statements of list reads, by filters, shape, limit and cursor
_JsonRead = tuple[Callable[[list[Row]], Page[str]], str, tuple[Any, ...]]


class Where:
    """WHERE clauses from fixed fragments; every value is a bound parameter."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, fragment: str, *values: Any) -> None:
        """`fragment` uses `{}` once per value, in order, for the placeholders."""
        marks = []
        for value in values:
            self.args.append(value)
            marks.append(f"${len(self.args)}")
        self.clauses.append(fragment.format(*marks))

    def after(self, cursor: str | None) -> None:
        if cursor is not None:
            created_at, item_id = rows.decode_cursor(cursor)
            self.add(
                "(created_at < {} OR (created_at = {} AND id < {}))",
                created_at,
                created_at,
                item_id,
            )

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""

    def limit(self, limit: int) -> str:
        self.args.append(limit + 1)
        return f" ORDER BY created_at DESC, id DESC LIMIT ${len(self.args)}"


class SqlRecords:
    """Base of the store's record groups: one `Database` handle and its time decoder."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._t = db.codec
        self._shapes: dict[tuple[str, Shape], str] = {}
        self._reads: dict[Hashable, _JsonRead] = {}

    @property
    def journal(self) -> Journal:
        return self.db.journal

    @property
    def audit(self) -> AuditRecords:
        from taskflowd.audit.records import AuditRecords  # it builds on this module

        return AuditRecords(self.db)

    async def _page(
        self,
        table: str,
        columns: str,
        where: Where,
        limit: int,
        build: Callable[[Row, RowCodec], T],
    ) -> Page[T]:
        sql = f"SELECT {columns} FROM {table}{where.sql()}{where.limit(limit)}"
        found = await self.db.fetch(sql, *where.args)
        items = [build(r, self._t) for r in found[:limit]]
        return Page(items, self._next_cursor(found, limit))

    def _json_read(self, table: str, shape: Shape, where: Where, limit: int) -> _JsonRead:
        """The statement of a page of rows rendered by the database as JSON objects in
        `shape`, its arguments, and what makes the page of its rows."""
        sql = f"SELECT {self._render(shape)} AS j, created_at, id FROM {table}"
        sql = f"{sql}{where.sql()}{where.limit(limit)}"
        page = functools.partial(self._rendered_page, shape.json_keys(), limit)
        return page, sql, tuple(where.args)

    async def _json_page(self, table: str, shape: Shape, where: Where, limit: int) -> Page[str]:
        """A page of rows rendered by the database as JSON objects in `shape` (the same
        page again, while nothing was committed, without reading it again)."""
        page, sql, args = self._json_read(table, shape, where, limit)
        return await self.db.fetch_derived(page, sql, *args)

    async def _kept_json_page(
        self, key: Hashable, table: str, shape: Shape, where: Callable[[], Where], limit: int
    ) -> Page[str]:
        """`_json_page` of a read asked again and again (a list's pages, the cursor in
        `key`): its statement is made once per `key`, which must name everything `where`
        depends on, and its page may lag other nodes' commits a little
        (`Database.fetch_kept`)."""
        read = self._reads.get(key)
        if read is None:
            if len(self._reads) >= _MAX_READS:
                self._reads.clear()
            read = self._reads[key] = self._json_read(table, shape, where(), limit)
        page, sql, args = read
        return await self.db.fetch_kept(page, sql, *args)

    def _rendered_page(self, json_keys: tuple[str, ...], limit: int, found: list[Row]) -> Page[str]:
        items = [self._t.open_rendered(str(r["j"]), json_keys) for r in found[:limit]]
        return Page(items, self._next_cursor(found, limit))

    def _opened(self, shape: Shape, document: str) -> str:
        """A rendered `document` with its sealed JSON fields opened (see store.codec)."""
        return self._t.open_rendered(str(document), shape.json_keys())

    def _render(self, shape: Shape) -> str:
        """The SQL of `shape`'s JSON object for this dialect, built once per shape."""
        key = (self.db.dialect, shape)
        sql = self._shapes.get(key)
        if sql is None:
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            sql = self._shapes[key] = json_object(shape, self.db.dialect)
        return sql

    def _next_cursor(self, found: list[Row], limit: int) -> str | None:
        if len(found) <= limit or limit < 1:
            return None
        last = found[limit - 1]
        return rows.encode_cursor(self._t(last["created_at"]), last["id"])
