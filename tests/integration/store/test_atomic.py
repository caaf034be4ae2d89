"""`Database.atomic` on each SQL backend: a transaction body that commits whole or not
at all, with its errors and its audit events, as `transaction()` does; on SQLite the
body runs in the writer's thread in one hand-over, so a body that awaits anything but
its connection is refused and leaves nothing behind."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from taskflowd.domain.entities import utcnow
from taskflowd.store import SqlStore
from taskflowd.store.db import Conn
from taskflowd.store.errors import DuplicateKey

_PUT = "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)"
_GET = "SELECT value FROM settings WHERE key = $1"


def _keys(count: int) -> list[str]:
    prefix = uuid.uuid4().hex
    return [f"atomic-{prefix}-{i}" for i in range(count)]


async def _values(store: SqlStore, keys: list[str]) -> list[str | None]:
    found = []
    for key in keys:
        row = await store.db.fetchrow(_GET, key)
        found.append(None if row is None else row["value"])
    return found


async def test_a_body_commits_every_statement_and_returns_its_result(store: SqlStore) -> None:
    keys = _keys(3)

    async def body(conn: Conn) -> str:
        for index, key in enumerate(keys):
            await conn.execute(_PUT, key, str(index), utcnow())
        row = await conn.fetchrow(_GET, keys[1])
        assert row is not None
        return str(row["value"])

    assert await store.db.atomic(body) == "1"
    assert await _values(store, keys) == ["0", "1", "2"]


async def test_a_failing_body_leaves_nothing_and_its_error_reaches_the_caller(
    store: SqlStore,
) -> None:
    keys = _keys(2)

    async def body(conn: Conn) -> None:
        await conn.execute(_PUT, keys[0], "a", utcnow())
        await conn.execute(_PUT, keys[0], "again", utcnow())

    with pytest.raises(DuplicateKey):
        await store.db.atomic(body)
    assert await _values(store, keys) == [None, None]


async def test_events_recorded_around_a_body_join_the_audit_chain(store: SqlStore) -> None:
    (key,) = _keys(1)
    journal = store.journal
    event = journal.event("setting.created", None, None, ("setting", key))
    event = dataclasses.replace(event, changes={"v": [None, 1]})

    async def body(conn: Conn) -> None:
        await conn.execute(_PUT, key, "x", utcnow())

    with journal.recording(event) as recording:
        await store.db.atomic(body)
    assert [e.target_id for e in recording.written] == [key]


async def test_sqlite_refuses_a_body_that_awaits_something_else(store: SqlStore) -> None:
    if store.db.dialect != "sqlite":
        pytest.skip("PostgreSQL runs a body on the event loop: it may await anything")
    (key,) = _keys(1)

    async def body(conn: Conn) -> None:
        await conn.execute(_PUT, key, "x", utcnow())
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something besides its connection"):
        await store.db.atomic(body)
    assert await _values(store, [key]) == [None]
