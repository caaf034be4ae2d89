"""Executions as jobs: how a new one is built and what its job id says about it.

A job id names what the execution is for: a task's own job (`<task>@once`, the one that
ends a one-time or delayed task), a cron tick (`<task>@<instant in ms>`, unique per
task), or a run asked for through the API (`<task>@run-<random>`).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from taskflowd.domain.entities import Execution, Task, utcnow
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.domain.ids import new_execution_id

OWN_JOB_SUFFIX = "@once"
RUN_MARK = "@run-"


def own_job_id(task_id: str) -> str:
    """The job id of a one-time or delayed task's own job."""
    return f"{task_id}{OWN_JOB_SUFFIX}"


def tick_job_id(task_id: str, instant: datetime) -> str:
    """The job id of a cron tick: the tick's identity, (task, scheduled instant)."""
    return f"{task_id}@{int(instant.timestamp() * 1000)}"


def run_job_ids(task_id: str, count: int) -> list[str]:
    """`count` fresh job ids for runs of a task asked for through the API, 48 random
    bits each, from one draw."""
    digits = secrets.token_hex(6 * count)
    return [f"{task_id}{RUN_MARK}{digits[i : i + 12]}" for i in range(0, 12 * count, 12)]


def step_job_id(task_id: str, run_id: str, step_key: str) -> str:
    """The job id of a workflow step's execution (`task_id`: the workflow's hidden task)."""
    return f"{task_id}{RUN_MARK}{run_id}/{step_key}"


def is_step_job(job_id: str) -> bool:
    """Whether `job_id` is a workflow step's (a plain run's id has no slash after the mark)."""
    _, mark, rest = job_id.partition(RUN_MARK)
    return bool(mark) and "/" in rest


def new_execution(
    task: Task, run_at: datetime, job_id: str, request_id: str | None = None
) -> Execution:
    """A PENDING execution of `task` due at `run_at`, with the task's settings copied."""
    return pending_execution(
        task, new_execution_id(), job_id, run_at, task.payload, task.priority, request_id, utcnow()
    )


def pending_execution(
    task: Task,
    execution_id: str,
    job_id: str,
    run_at: datetime,
    payload: Any,
    priority: int,
    request_id: str | None,
    created: datetime,
    idempotency_key: str | None = None,
) -> Execution:
    """A PENDING execution of `task` with the task's other settings copied: what
    `new_execution` makes, with its id, payload, priority and creation time given (the
    runs of a batch are built together)."""
    return Execution(
        id=execution_id,
        task_id=task.id,
        job_id=job_id,
        owner_id=task.created_by,
        org_id=task.org_id,
        status=ExecutionStatus.PENDING,
        scheduled_for=run_at,
        run_at=run_at,
        priority=priority,
        attempts=0,
        handler=task.handler,
        payload=payload,
        max_retries=task.max_retries,
        backoff_ms=task.backoff_ms,
        timeout_ms=task.timeout_ms,
        request_id=request_id,
        created_at=created,
        updated_at=created,
        idempotency_key=idempotency_key,
    )
