"""The engine harness: one node's queue, timer, worker pool and task service, assembled
from components as the daemon's composition root would, over a real database.

There is no HTTP server and no admin bootstrap, so these tests exercise job semantics
alone. Settings are tight (short leases, quick polls) to keep the suite fast.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from taskflowd.background import Supervisor
from taskflowd.config import SchedulerSettings, WorkerSettings
from taskflowd.domain.entities import DeadLetterJob, Execution, RetryRecord, Task
from taskflowd.domain.enums import ExecutionStatus, TaskType
from taskflowd.domain.rules import TaskSpec
from taskflowd.events import EventBus
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.sql import SqlQueue
from taskflowd.scheduler.timer import Timer
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore
from taskflowd.store.base import ExecutionFilter
from taskflowd.worker.pool import WorkerPool
from tests.integration.queue.polling import DEADLINE_S, eventually


def spec(type: TaskType = TaskType.ONE_TIME, **fields: Any) -> TaskSpec:
    """A valid task spec: `echo`, no retries unless `fields` say otherwise."""
    fields.setdefault("name", f"engine-test-{uuid.uuid4().hex[:8]}")
    fields.setdefault("max_retries", 0)
    fields.setdefault("backoff_ms", 10)
    return TaskSpec(type=type, **fields)


WORKER = WorkerSettings(
    concurrency=8,
    batch_size=8,
    lease_s=2.0,
    shutdown_grace_s=5.0,
    max_rescues=3,
    backoff_cap_ms=1000,
    safety_poll_s=0.5,
)
SCHEDULER = SchedulerSettings(
    lookahead_ms=500,
    misfire_grace_s=1.0,
    run_all_limit=100,
    sweep_interval_s=1.0,
)


class LogLines(logging.Handler):
    """Collects the messages of the records at or above `level`."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Crashes(LogLines):
    """Collects errors of supervised background loops, which restart quietly otherwise."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)


class Engine:
    """One node's job machinery; `start()` runs the timer and the worker pool."""

    def __init__(
        self,
        store: SqlStore,
        worker: WorkerSettings,
        scheduler: SchedulerSettings,
        queue_type: type[SqlQueue] = SqlQueue,
        handlers: HandlerRegistry | None = None,
    ) -> None:
        self.store = store
        self.queue = queue_type(store.db)
        self.handlers = handlers or HandlerRegistry.build(
            shell_enabled=False,
            http_allow_private=False,
            http_allowed_networks=(),
            http_timeout_s=5,
            http_max_response_bytes=1 << 20,
            shell_max_output_bytes=65536,
            load_plugins=False,
        )
        self.events = EventBus()
        self.fatal: list[str] = []
        self.supervisor = Supervisor(lambda name, exc: self.fatal.append(f"{name}: {exc!r}"))
        self.timer = Timer(self.queue, scheduler, self.events, self.supervisor)
        self.node_id = uuid.uuid4().hex[:16]
        self.worker = WorkerPool(
            self.queue, self.handlers, worker, self.node_id, self.events, self.supervisor
        )
        self.tasks = TaskService(store, self.queue, self.handlers, self.events)
        self._queue_started = False

    async def start(self) -> None:
        if not self._queue_started:
            await self.queue.start()
            self._queue_started = True
        await self.timer.start()
        await self.worker.start()

    async def stop(self) -> None:
        """Stop in reverse order; safe after a component was stopped by the test."""
        await self.worker.stop()
        await self.timer.stop()
        if self._queue_started:
            await self.queue.stop()
            self._queue_started = False
        await self.supervisor.cancel_all()
        await self.handlers.close()

    # --- reading state -----------------------------------------------------------
    async def execution(self, execution_id: str) -> Execution:
        found = await self.store.get_execution(execution_id)
        assert found is not None, f"execution {execution_id} does not exist"
        return found

    async def executions(self, task_id: str) -> list[Execution]:
        """Every execution of the task, earliest scheduled first."""
        found: list[Execution] = []
        cursor: str | None = None
        while True:
            page = await self.store.list_executions(ExecutionFilter(task_id=task_id), 500, cursor)
            found += page.items
            if page.next_cursor is None:
                return sorted(found, key=lambda e: (e.scheduled_for, e.created_at))
            cursor = page.next_cursor

    async def task(self, task_id: str) -> Task:
        found = await self.store.get_task(task_id)
        assert found is not None, f"task {task_id} does not exist"
        return found

    async def history(self, execution_id: str) -> list[RetryRecord]:
        return await self.store.retry_history(execution_id)

    async def dead_letter(self) -> list[DeadLetterJob]:
        return (await self.store.list_dead_letter(None, 500)).items

    # --- waiting -------------------------------------------------------------------
    async def wait_for(
        self,
        probe: Callable[[], Awaitable[Any]],
        what: str,
        timeout_s: float = DEADLINE_S,
    ) -> Any:
        """The first truthy value of `probe`, polled until `timeout_s` (then the test fails)."""
        return await eventually(probe, what, timeout_s)

    async def wait_for_status(
        self, execution_id: str, *statuses: ExecutionStatus, timeout_s: float = DEADLINE_S
    ) -> Execution:
        async def probe() -> Execution | None:
            found = await self.execution(execution_id)
            return found if found.status in statuses else None

        names = "/".join(s.value for s in statuses)
        result: Execution = await self.wait_for(
            probe, f"execution {execution_id} to be {names}", timeout_s
        )
        return result

    async def only_execution(self, task_id: str) -> Execution:
        """The single execution a one-time or delayed task has."""
        found = await self.executions(task_id)
        assert len(found) == 1, found
        return found[0]

    async def wait_until_final(self, task_id: str, count: int = 1) -> list[Execution]:
        """Wait until the task has at least `count` executions and all are final."""

        async def probe() -> list[Execution] | None:
            found = await self.executions(task_id)
            done = len(found) >= count and all(e.status.is_final for e in found)
            return found if done else None

        result: list[Execution] = await self.wait_for(
            probe, f"{count} executions of task {task_id} to finish"
        )
        return result


EngineFactory = Callable[..., Awaitable[Engine]]
