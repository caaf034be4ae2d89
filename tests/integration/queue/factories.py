"""Users, tasks, jobs and outcomes for queue tests, built on the store suite's factories.

Each test gets an empty database, so nothing made here needs cleaning up.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from taskflowd.domain.entities import JSON, Execution, Task, User
from taskflowd.domain.enums import Role, TaskType
from taskflowd.domain.jobs import new_execution, own_job_id, tick_job_id
from taskflowd.queue.base import Outcome, OutcomeKind
from taskflowd.store import SqlStore
from tests.integration.store.factories import make_execution, make_task, make_user, now

__all__ = ["ago", "due_job", "later", "new_owner", "new_task", "now", "outcome", "tick"]


def ago(seconds: float) -> datetime:
    return now() - timedelta(seconds=seconds)


def later(seconds: float) -> datetime:
    return now() + timedelta(seconds=seconds)


async def new_owner(store: SqlStore, **changes: Any) -> User:
    return await store.create_user(make_user(role=Role.USER, **changes))


async def new_task(store: SqlStore, owner: User, **changes: Any) -> Task:
    """A stored, ACTIVE task of `owner` (one-time, `echo`, no limits unless changed)."""
    changes.setdefault("handler", "echo")
    changes.setdefault("max_retries", 0)
    changes.setdefault("org_id", owner.default_org_id)
    return await store.create_task(make_task(owner.id, **changes))


async def new_recurring_task(store: SqlStore, owner: User, next_run_at: datetime) -> Task:
    return await new_task(
        store,
        owner,
        type=TaskType.RECURRING,
        cron_expression="* * * * * *",
        next_run_at=next_run_at,
    )


def due_job(task: Task, run_at: datetime | None = None, **changes: Any) -> Execution:
    """A PENDING execution of `task`, due at `run_at` (a second ago by default): the
    task's own job, whose end ends a one-time task, unless `job_id` says otherwise."""
    when = run_at or ago(1)
    changes.setdefault("job_id", own_job_id(task.id))
    return make_execution(task, scheduled_for=when, run_at=when, **changes)


def tick(task: Task, at: datetime) -> Execution:
    """The execution of `task`'s cron tick at `at`, as the timer builds it."""
    return new_execution(task, at, tick_job_id(task.id, at))


def outcome(
    job: Execution,
    kind: OutcomeKind,
    *,
    fence: int | None = None,
    result: JSON = None,
    error: JSON = None,
    run_at: datetime | None = None,
) -> Outcome:
    """The end of the attempt `job` (as returned by acquire) is making."""
    finished = now()
    return Outcome(
        execution_id=job.id,
        task_id=job.task_id,
        fence=job.fence if fence is None else fence,
        kind=kind,
        attempt=job.attempts,
        started_at=job.started_at or finished,
        finished_at=finished,
        duration_ms=1,
        result=result,
        error=error,
        run_at=run_at,
    )


def failure(message: str = "boom") -> dict[str, str]:
    return {"type": "fail", "message": message}


def replace(task: Task, **changes: Any) -> Task:
    return dataclasses.replace(task, **changes)
