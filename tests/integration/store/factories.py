"""Entities with sensible defaults for store tests, and inserts the Store protocol lacks.

Every id is a fresh uuid4; every time is an aware UTC datetime (microsecond precision,
the finest both backends keep). Each test gets its own database, so nothing here needs
cleaning up.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from taskflowd.domain.entities import (
    DeadLetterJob,
    Execution,
    Node,
    RefreshToken,
    Task,
    User,
)
from taskflowd.domain.enums import (
    ExecutionStatus,
    MisfirePolicy,
    Role,
    TaskStatus,
    TaskType,
)
from taskflowd.store import rows
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Conn


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    """The current time, aware UTC, already at microsecond precision."""
    return datetime.now(UTC)


def make_user(**changes: Any) -> User:
    at = changes.pop("created_at", None) or now()
    user = User(
        id=new_id(),
        email=f"user-{uuid.uuid4().hex[:12]}@example.com",
        password_hash="$2b$04$" + "x" * 53,
        first_name="Ada",
        last_name="Lovelace",
        role=Role.USER,
        is_active=True,
        token_version=0,
        created_at=at,
        updated_at=at,
    )
    return dataclasses.replace(user, **changes)


def make_task(owner_id: str, **changes: Any) -> Task:
    at = changes.pop("created_at", None) or now()
    task = Task(
        id=new_id(),
        name=f"task-{uuid.uuid4().hex[:8]}",
        description="a task made by a test",
        type=TaskType.ONE_TIME,
        status=TaskStatus.ACTIVE,
        handler="noop",
        payload={"n": 1},
        cron_expression=None,
        timezone="UTC",
        scheduled_at=None,
        delay_ms=None,
        priority=0,
        max_retries=3,
        backoff_ms=1000,
        timeout_ms=30_000,
        rate_limit=None,
        concurrency=None,
        misfire_policy=MisfirePolicy.RUN_ONCE,
        created_by=owner_id,
        created_at=at,
        updated_at=at,
    )
    return dataclasses.replace(task, **changes)


def make_execution(task: Task, **changes: Any) -> Execution:
    """A new, unclaimed execution of `task`, owned by the task's creator."""
    at = changes.pop("created_at", None) or now()
    execution = Execution(
        id=new_id(),
        task_id=task.id,
        job_id=new_id(),
        status=ExecutionStatus.PENDING,
        scheduled_for=at,
        run_at=at,
        priority=task.priority,
        attempts=0,
        handler=task.handler,
        payload=task.payload,
        max_retries=task.max_retries,
        backoff_ms=task.backoff_ms,
        timeout_ms=task.timeout_ms,
        created_at=at,
        updated_at=at,
        owner_id=task.created_by,
        org_id=task.org_id,
    )
    return dataclasses.replace(execution, **changes)


def make_dead_letter(execution: Execution, **changes: Any) -> DeadLetterJob:
    dead = DeadLetterJob(
        id=new_id(),
        execution_id=execution.id,
        task_id=execution.task_id,
        job_id=execution.job_id,
        payload=execution.payload,
        error={"type": "Boom", "message": "it failed"},
        attempts=execution.max_retries + 1,
        owner_id=execution.owner_id,
        created_at=changes.pop("created_at", None) or now(),
        org_id=execution.org_id,
    )
    return dataclasses.replace(dead, **changes)


def make_refresh_token(user_id: str, **changes: Any) -> RefreshToken:
    at = changes.pop("created_at", None) or now()
    token = RefreshToken(
        id=new_id(),
        user_id=user_id,
        token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        family_id=new_id(),
        expires_at=at + timedelta(days=30),
        created_at=at,
    )
    return dataclasses.replace(token, **changes)


def make_node(**changes: Any) -> Node:
    at = changes.pop("started_at", None) or now()
    node = Node(
        id=new_id(),
        host="node-1.example.internal",
        roles=("api", "scheduler", "worker"),
        version="0.1.0",
        started_at=at,
        last_heartbeat=at,
    )
    return dataclasses.replace(node, **changes)


# Rows written the way a database without encryption keys writes them.
_PLAIN = RowCodec(datetime.fromisoformat, None)


def _marks(count: int) -> str:
    return ",".join(f"${i}" for i in range(1, count + 1))


async def insert_execution(db: Conn, execution: Execution, tick_at: datetime | None = None) -> None:
    """Insert an execution directly (the protocol only inserts a task's first run)."""
    values = rows.execution_insert_values(execution, tick_at, _PLAIN)
    await db.execute(
        f"INSERT INTO job_executions ({rows.EXECUTION_INSERT_COLUMNS}) "
        f"VALUES ({_marks(len(values))})",
        *values,
    )


async def insert_dead_letter(db: Conn, dead: DeadLetterJob) -> None:
    """Insert a dead-letter row directly (the worker writes these, not the protocol)."""
    await db.execute(
        "INSERT INTO dead_letter_jobs (id, execution_id, task_id, job_id, owner_id, payload, "
        f"error, attempts, created_at, org_id) VALUES ({_marks(10)})",
        dead.id,
        dead.execution_id,
        dead.task_id,
        dead.job_id,
        dead.owner_id,
        _PLAIN.dump(dead.payload),
        _PLAIN.dump(dead.error),
        dead.attempts,
        dead.created_at,
        dead.org_id,
    )


async def insert_retry(
    db: Conn,
    execution_id: str,
    attempt: int,
    failed_at: datetime,
    error: Any = None,
    next_run_at: datetime | None = None,
) -> None:
    """Insert one retry_history row directly (the worker writes these)."""
    await db.execute(
        "INSERT INTO retry_history (execution_id, attempt, error, failed_at, next_run_at) "
        f"VALUES ({_marks(5)})",
        execution_id,
        attempt,
        _PLAIN.dump(error if error is not None else {"message": f"attempt {attempt}"}),
        failed_at,
        next_run_at,
    )
