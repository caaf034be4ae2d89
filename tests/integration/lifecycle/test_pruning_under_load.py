"""Pruning while jobs drain: the pruner deletes in many small transactions and claims go
on between them, so the queue never waits for a whole pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from taskflowd.config import RetentionSettings
from taskflowd.domain.entities import utcnow
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.queue.base import Outcome, OutcomeKind
from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore
from taskflowd.store.db import Conn, Database
from tests.integration.lifecycle.helpers import ids, task_at
from tests.integration.queue.factories import due_job
from tests.integration.store.factories import insert_execution, make_execution, make_user, now

OLD_ROWS = 600
JOBS = 150
BATCH = 25
T = TypeVar("T")


class Journal:
    """One timeline of what the pruner's transactions and the worker's claims did."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int]] = []


class _CountingConn:
    def __init__(self, conn: Conn, deleted: list[int]) -> None:
        self._conn = conn
        self._deleted = deleted

    async def fetch(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        changed = await self._conn.execute(sql, *args)
        if sql.startswith("DELETE FROM job_executions"):
            self._deleted.append(changed)
        return changed


class JournalledDatabase:
    """The pruner's view of the database: each transaction (one hand-over to the
    database, so the queue never waits on the event loop while a prune batch holds the
    writer) is written in the journal with the executions it deleted."""

    def __init__(self, db: Database, journal: Journal) -> None:
        self._db = db
        self._journal = journal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        deleted: list[int] = []

        async def counted(conn: Conn) -> T:
            return await body(_CountingConn(conn, deleted))  # type: ignore[arg-type]

        result = await self._db.atomic(counted)
        self._journal.entries.append(("prune", sum(deleted)))
        return result


async def test_claims_go_on_between_small_prune_transactions(store: SqlStore) -> None:
    owner = (await store.create_user(make_user())).id
    old = now() - timedelta(days=3)
    history = await task_at(store, owner, old)
    async with store.db.transaction() as conn:
        for _ in range(OLD_ROWS):
            execution = make_execution(history, created_at=old)
            await insert_execution(conn, execution)
    await store.db.execute(
        "UPDATE job_executions SET status = $1, completed_at = $2",
        ExecutionStatus.COMPLETED.value,
        old,
    )
    live = await task_at(store, owner, now(), handler="echo")
    await store.db.executemany(
        "INSERT INTO job_executions (id, task_id, job_id, owner_id, status, scheduled_for, "
        "run_at, priority, attempts, handler, payload, max_retries, backoff_ms, created_at, "
        "updated_at, org_id) "
        "VALUES ($1, $2, $3, $4, 'PENDING', $5, $5, 0, 0, 'echo', '{}', 0, 0, $5, $5, $6)",
        [(e.id, e.task_id, e.job_id, e.owner_id, e.run_at, e.org_id) for e in
         (due_job(live, job_id=f"job-{i}") for i in range(JOBS))],
    )  # fmt: skip

    journal = Journal()
    retention = RetentionSettings(executions_s=86_400, tasks_s=0, batch_size=BATCH)
    pruner = Pruner(JournalledDatabase(store.db, journal), retention, "pruner")  # type: ignore[arg-type]
    queue = SqlQueue(store.db)
    await queue.start()

    async def drain() -> None:
        while not journal.entries:  # start once the pruner is under way
            await asyncio.sleep(0.001)
        drained = 0
        while drained < JOBS:
            claimed = await queue.acquire("worker", 5, 30)
            if not claimed:
                await asyncio.sleep(0.005)
                continue
            at = utcnow()
            await queue.settle(
                [
                    Outcome(e.id, e.task_id, e.fence, OutcomeKind.COMPLETED, 1, at, at, 1)
                    for e in claimed
                ]
            )
            drained += len(claimed)
            journal.entries.append(("claim", len(claimed)))
            await asyncio.sleep(0)

    try:
        draining = asyncio.create_task(drain())
        counts = await pruner.run_once()
        await asyncio.wait_for(draining, 60)
    finally:
        await queue.stop()

    assert counts is not None and counts["job_executions"] == OLD_ROWS
    prunes = [n for kind, n in journal.entries if kind == "prune"]
    assert len(prunes) >= OLD_ROWS // BATCH
    assert max(prunes) <= BATCH  # no transaction deleted more than a batch
    first = next(i for i, (kind, _) in enumerate(journal.entries) if kind == "prune")
    last = max(i for i, (kind, _) in enumerate(journal.entries) if kind == "prune")
    between = [n for kind, n in journal.entries[first:last] if kind == "claim"]
    assert between, "jobs were claimed while the pruner worked, not only before or after"
    remaining = await ids(store, "job_executions")
    assert len(remaining) == JOBS  # the drained jobs are recent: they stay
