"""Round trips of a run with an Idempotency-Key on PostgreSQL (issue 17): the key's record
and the task are read in one statement, not one each, and the key still answers first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

import orjson
import pytest

from taskflowd.domain.entities import Execution, Task, utcnow
from taskflowd.domain.errors import NotFound
from taskflowd.store import SqlStore
from taskflowd.store.base import IdempotencyClaim, Replay, RunPlan
from taskflowd.store.db import Conn, Database, Row
from tests.integration.queue.counting import CountingDatabase
from tests.integration.queue.factories import due_job, new_owner, new_task

T = TypeVar("T")


def claim(key: str) -> IdempotencyClaim:
    at = utcnow()
    return IdempotencyClaim("o", "u", key, "fp", at, at - timedelta(hours=24), render)


def render(result: list[Execution]) -> tuple[int, str]:
    return 202, orjson.dumps([e.id for e in result]).decode()


def plan(task: Task | None) -> RunPlan:
    if task is None:
        raise NotFound("no such task")
    return RunPlan([due_job(task)])


async def test_a_run_with_a_key_reads_the_key_and_the_task_in_one_round_trip(
    pg_store: SqlStore,
) -> None:
    task = await new_task(pg_store, await new_owner(pg_store))
    db = CountingDatabase(pg_store.db)
    store = SqlStore(db)  # type: ignore[arg-type]

    [run], _ = await store.add_runs(task.id, None, plan, claim("req"))

    assert [t.split()[0] for t in db.trips] == ["BEGIN", "SELECT", "WITH", "COMMIT"]
    with pytest.raises(Replay) as replayed:
        await store.add_runs(task.id, None, plan, claim("req"))
    assert orjson.loads(replayed.value.response.body) == [run.id]
    stored = await pg_store.db.fetch("SELECT id FROM job_executions")
    assert [r["id"] for r in stored] == [run.id], "the replay queued nothing"


async def test_a_used_key_answers_before_a_missing_task(pg_store: SqlStore) -> None:
    task = await new_task(pg_store, await new_owner(pg_store))
    await pg_store.add_runs(task.id, None, plan, claim("req"))

    with pytest.raises(Replay):
        await pg_store.add_runs("no-such-task", None, plan, claim("req"))
    with pytest.raises(NotFound):
        await pg_store.add_runs("no-such-task", None, plan, claim("other"))


class _Pausing:
    """A connection whose first statement (a run's read of its key) returns only once
    every transaction of the rendezvous has made its own."""

    def __init__(self, conn: Conn, barrier: asyncio.Barrier) -> None:
        self.conn = conn
        self.barrier = barrier
        self.first = True

    async def _met(self) -> None:
        if self.first:
            self.first = False
            await self.barrier.wait()

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        found = await self.conn.fetch(sql, *args)
        await self._met()
        return found

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        found = await self.conn.fetchrow(sql, *args)
        await self._met()
        return found

    async def execute(self, sql: str, *args: Any) -> int:
        changed = await self.conn.execute(sql, *args)
        await self._met()
        return changed

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        await self.conn.executemany(sql, args)
        await self._met()


class Rendezvous:
    """The database, whose transactions all find the key unused before any records it."""

    def __init__(self, db: Database, parties: int) -> None:
        self.db = db
        self.dialect = db.dialect
        self.codec = db.codec
        self.journal = db.journal
        self.barrier = asyncio.Barrier(parties)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self.db.transaction() as conn:
            yield _Pausing(conn, self.barrier)

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        async with self.transaction() as conn:
            return await body(conn)


async def test_concurrent_runs_with_one_key_queue_one_execution(pg_store: SqlStore) -> None:
    task = await new_task(pg_store, await new_owner(pg_store))
    store = SqlStore(Rendezvous(pg_store.db, 2))  # type: ignore[arg-type]

    def audited(found: Task | None) -> RunPlan:
        planned = plan(found)
        event = pg_store.journal.event("task.run", None, task.org_id, ("task", task.id))
        return RunPlan(planned.runs, (event,))

    key = claim("req")
    outcomes = await asyncio.gather(
        *(store.add_runs(task.id, None, audited, key) for _ in range(2)), return_exceptions=True
    )

    stored = await pg_store.db.fetch("SELECT id FROM job_executions")
    assert len(stored) == 1, "exactly one of the two runs queued its execution"
    [winner] = [o for o in outcomes if not isinstance(o, BaseException)]
    [replayed] = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(replayed, Replay), replayed
    assert winner[0][0].id == stored[0]["id"]
    assert orjson.loads(replayed.response.body) == [stored[0]["id"]]
    events = await pg_store.db.fetch("SELECT action FROM audit_events WHERE action = 'task.run'")
    assert len(events) == 1, "only the run that queued its execution is audited"
    assert (await pg_store.audit.verify()).ok
