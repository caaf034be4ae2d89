"""The audit trail's hash chain on each SQL backend: events join the chain only with a
committed change, `taskflowd audit verify` names the first tampered, deleted or missing
event, pruning keeps the chain verifiable, and concurrent writers on PostgreSQL (two
daemons' pools) still form one chain."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskflowd.audit.model import AuditEvent
from taskflowd.audit.records import AuditFilter
from taskflowd.config import RetentionSettings
from taskflowd.domain.entities import utcnow
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.store import SqlStore, open_store
from taskflowd.store.db import Conn, Row
from taskflowd.store.errors import DuplicateKey
from tests.integration.store.factories import make_task, make_user

ROOT = Path(__file__).resolve().parents[3]
_ALL = AuditFilter()


async def record(store: SqlStore, count: int, age: timedelta = timedelta(0)) -> list[AuditEvent]:
    """`count` events, each with a change of its own (a new setting)."""
    journal = store.journal
    written = []
    for index in range(count):
        event = journal.event("setting.created", None, None, ("setting", str(index)))
        event = dataclasses.replace(event, at=utcnow() - age, changes={"v": [None, index]})
        with journal.recording(event) as recording:
            await store.put_setting_if_absent(f"audit-{uuid.uuid4()}", "x")
        written += recording.written
    return written


async def verify(url: str) -> tuple[int, str]:
    """`taskflowd audit verify` as an operator runs it: exit status and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskflowd",
        "audit",
        "verify",
        "--database",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TASKFLOW_CONFIG": os.devnull},
        cwd=ROOT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_a_change_that_fails_writes_no_event(store: SqlStore) -> None:
    journal = store.journal
    owner = await store.create_user(make_user())
    task = make_task(owner.id)
    with journal.recording(journal.event("task.created", owner, task.org_id, ("task", task.id))):
        await store.create_task(task)
    again = journal.event("task.created", owner, task.org_id, ("task", task.id))
    with pytest.raises(DuplicateKey), journal.recording(again) as recording:
        await store.create_task(task)
    assert recording.written == []
    with pytest.raises(RuntimeError), journal.recording(again):
        async with store.db.transaction() as conn:
            await conn.execute("UPDATE tasks SET name = 'x' WHERE id = $1", task.id)
            raise RuntimeError("the change fails after its first statement")
    nothing = journal.event("task.updated", owner, task.org_id, ("task", "none"))
    with journal.recording(nothing):  # a write that changes no row records nothing
        await store.db.execute("UPDATE tasks SET name = 'y' WHERE id = 'none'")
    events = (await store.audit.page(_ALL, 10)).items
    assert [(e.action, e.target_id) for e in events] == [("task.created", task.id)]
    assert (await store.get_task(task.id)) == task


async def test_verify_names_a_tampered_event(store: SqlStore, db_url: str) -> None:
    events = await record(store, 5)
    assert (await store.audit.verify()).checked == 5
    status, out = await verify(db_url)
    assert status == 0, out
    assert "5 events" in out

    await store.db.execute(
        "UPDATE audit_events SET changes = $1 WHERE id = $2", '{"v":[null,99]}', events[2].id
    )
    status, out = await verify(db_url)
    assert status == 1
    assert f"position 3, event {events[2].id}" in out
    assert "altered" in out


async def test_verify_names_the_event_after_a_deleted_one(store: SqlStore) -> None:
    events = await record(store, 4)
    await store.db.execute("DELETE FROM audit_events WHERE id = $1", events[1].id)
    verdict = await store.audit.verify()
    assert verdict.broken is not None
    assert (verdict.broken.position, verdict.broken.event_id) == (3, events[2].id)
    assert "missing" in verdict.broken.reason

    await store.db.execute("DELETE FROM audit_events WHERE seq >= 2")
    verdict = await store.audit.verify()
    assert verdict.broken is not None and verdict.broken.position == 2
    assert "missing" in verdict.broken.reason


async def test_pruning_keeps_the_chain_verifiable(store: SqlStore, db_url: str) -> None:
    await record(store, 5, age=timedelta(days=3))
    kept = await record(store, 2)
    retention = RetentionSettings(
        executions_s=0, dead_letters_s=0, tasks_s=0, audit_s=86_400, batch_size=2
    )
    counts = await Pruner(store.db, retention, "node-a").run_once()
    assert counts is not None and counts["audit_events"] == 5
    verdict = await store.audit.verify()
    assert verdict.ok and verdict.checked == 2 and verdict.first_position == 6
    after = await record(store, 1)
    status, out = await verify(db_url)
    assert status == 0, out
    remaining = (await store.audit.page(_ALL, 10)).items
    assert [e.id for e in remaining] == [after[0].id, kept[1].id, kept[0].id]


async def test_concurrent_writers_form_one_chain(pg_url: str) -> None:
    stores = [open_store(pg_url), open_store(pg_url)]
    for store in stores:
        await store.start()
    try:
        await asyncio.gather(*(record(store, 15) for store in stores for _ in range(2)))
        verdict = await stores[0].audit.verify()
        assert verdict.ok, verdict.broken
        assert verdict.checked == 60
    finally:
        for store in stores:
            await store.stop()


class _Statements:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn
        self.sent = 0

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        self.sent += 1
        return await self._conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        self.sent += 1
        return await self._conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        self.sent += 1
        return await self._conn.execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        self.sent += 1
        await self._conn.executemany(sql, args)


async def test_postgresql_appends_events_in_one_statement_and_the_chain_verifies(
    pg_url: str,
) -> None:
    store = open_store(pg_url)
    await store.start()
    try:
        await record(store, 2)
        journal = store.journal
        events = [journal.event("setting.created", None, None, ("setting", str(i))) for i in (1, 2)]
        async with store.db.transaction() as conn:
            counted = _Statements(conn)
            written = await journal.append(counted, events)
        assert counted.sent == 1, "the head's read, the events and the head's move at once"
        assert [e.target_id for e in written] == ["1", "2"]
        assert (await store.audit.page(_ALL, 1)).items[0].hash == written[-1].hash
        assert (await store.audit.verify()).checked == 4
    finally:
        await store.stop()
