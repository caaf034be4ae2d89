"""A claim of a limited task reads the task's running jobs and recent starts, never its
whole history: those reads run inside the claim's transaction, and a task that ran
200,000 times made each of its claims walk 200,000 rows (0.4 s on SQLite, holding the
only writer). Checked on SQLite's query plans: its planner takes the task_id index for
any statement naming task_id unless told otherwise."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from taskflowd.queue import limits
from taskflowd.store import SqlStore
from taskflowd.store.db import Conn, Row
from tests.integration.queue.factories import new_owner, new_task, now


class Recording:
    """A connection that keeps the SELECT statements run through it."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.reads: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        self.reads.append((sql, args))
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        self.reads.append((sql, args))
        return await self.conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        return await self.conn.execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        await self.conn.executemany(sql, args)


async def _plan(store: SqlStore, sql: str, args: tuple[Any, ...]) -> list[str]:
    return [str(r["detail"]) for r in await store.db.fetch(f"EXPLAIN QUERY PLAN {sql}", *args)]


async def test_a_limited_tasks_claim_reads_no_history(sqlite_store: SqlStore) -> None:
    store = sqlite_store
    owner = await new_owner(store)
    task = await new_task(store, owner, concurrency=1, rate_limit=5)
    candidates = [{"id": "candidate", "task_id": task.id, "concurrency": 1, "rate_limit": 5}]
    recording: list[Recording] = []

    async def claim(conn: Conn) -> tuple[list[str], dict[str, Any]]:
        recording.append(Recording(conn))
        return await limits.admit(recording[0], candidates, now(), postgres=False)

    admitted, deferred = await store.db.atomic(claim)

    assert admitted == ["candidate"] and not deferred
    reads = recording[0].reads
    assert len(reads) == 3, reads  # running jobs, starts, failures of the window
    for sql, args in reads:
        plan = await _plan(store, sql, args)
        steps = [step for step in plan if "job_executions" in step]
        assert steps, plan
        assert not any("job_executions_task_id" in step for step in steps), (sql, plan)
        assert not any(step.startswith("SCAN") for step in plan), (sql, plan)
