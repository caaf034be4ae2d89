"""Records at chosen ages, written directly (the worker and the API would need days)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskflowd.domain.entities import Execution, Task
from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from taskflowd.store import SqlStore
from tests.integration.store.factories import (
    insert_dead_letter,
    insert_execution,
    insert_retry,
    make_dead_letter,
    make_execution,
    make_task,
)


async def task_at(
    store: SqlStore,
    owner_id: str,
    at: datetime,
    *,
    kind: TaskType = TaskType.ONE_TIME,
    status: TaskStatus = TaskStatus.ACTIVE,
    deleted_at: datetime | None = None,
    **changes: Any,
) -> Task:
    cron = "0 * * * *" if kind is TaskType.RECURRING else None
    task = make_task(owner_id, created_at=at, type=kind, cron_expression=cron, **changes)
    await store.create_task(task)
    await store.db.execute(
        "UPDATE tasks SET status = $1, updated_at = $2, deleted_at = $3 WHERE id = $4",
        status.value,
        at,
        deleted_at,
        task.id,
    )
    return task


async def execution_at(
    store: SqlStore,
    task: Task,
    at: datetime,
    status: ExecutionStatus,
    *,
    retries: int = 0,
    dead: bool = False,
) -> Execution:
    """An execution created at `at`, and (unless it is still open) finished then."""
    execution = make_execution(task, created_at=at)
    async with store.db.transaction() as conn:
        await insert_execution(conn, execution)
        finished = status in (
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        )
        await conn.execute(
            "UPDATE job_executions SET status = $1, completed_at = $2 WHERE id = $3",
            status.value,
            at if finished else None,
            execution.id,
        )
        for attempt in range(1, retries + 1):
            await insert_retry(conn, execution.id, attempt, at)
        if dead:
            await insert_dead_letter(conn, make_dead_letter(execution, created_at=at))
    return execution


async def ids(store: SqlStore, table: str, column: str = "id") -> set[Any]:
    return {r["k"] for r in await store.db.fetch(f"SELECT {column} AS k FROM {table}")}
