"""The outbox seam: changes that webhook endpoints may subscribe to, written by the store,
the queue and the workflow engine inside the transaction of the change they report.

Whoever records a change builds `Notice`s; an `Outbox` (the webhooks package) turns each
into one delivery row per matching endpoint in the same transaction, so a crash after the
commit loses no delivery and a rollback sends none. Without an outbox nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from taskflowd.domain.entities import JSON, Task
from taskflowd.store.db import Conn, Step


@dataclass(frozen=True, slots=True)
class Notice:
    """One change: its event `type` (`task.created`, `execution.completed`, …), its
    `data`, and what it is about. An execution's org, task and workflow are looked up
    from `execution_id` when `org_id` is None."""

    type: str
    data: dict[str, JSON]
    at: datetime
    org_id: str | None = None
    task_id: str | None = None
    workflow_id: str | None = None
    execution_id: str | None = None


class Outbox(Protocol):
    def step(self, notices: Sequence[Notice]) -> Step | None:
        """The statement that writes `notices`' deliveries, for a `Database.script`;
        None when there is nothing to write."""

    async def write(self, conn: Conn, notices: Iterable[Notice]) -> None:
        """Write `notices`' deliveries inside the caller's transaction; `notices` is read
        only when some endpoint may want them."""


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def task_notice(event_type: str, task: Task, at: datetime) -> Notice:
    """A `task.*` notice: the task's fields, without its payload (which may be large)."""
    data: dict[str, JSON] = {
        "id": task.id,
        "name": task.name,
        "type": task.type.value,
        "status": task.status.value,
        "handler": task.handler,
        "cronExpression": task.cron_expression,
        "createdBy": task.created_by,
        "createdAt": iso(task.created_at),
        "updatedAt": iso(task.updated_at),
        "nextRunAt": iso(task.next_run_at),
    }
    return Notice(event_type, data, at, org_id=task.org_id, task_id=task.id)


def execution_notice(
    event_type: str,
    execution_id: str,
    status: str,
    at: datetime,
    **fields: JSON,
) -> Notice:
    """An `execution.*` notice; its org, task and workflow come from the execution row.
    `fields` are more of the execution's fields (camelCase), e.g. `result`, `error`."""
    data: dict[str, JSON] = {"id": execution_id, "status": status, **fields}
    return Notice(event_type, data, at, execution_id=execution_id)
