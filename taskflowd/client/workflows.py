"""Workflow calls of the client: `client.workflows` and `client.workflow_runs` (async),
with blocking mirrors for `Client`. Models mirror the API's workflow schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskflowd.client.blocking import Call, pages
from taskflowd.client.codec import decode, encode
from taskflowd.client.models import JsonIn, Page
from taskflowd.client.resources import (
    DEFAULT_PAGE,
    ITER_PAGE,
    every_item,
    new_idempotency_key,
    page_of,
)
from taskflowd.client.transport import Transport
from taskflowd.domain.enums import RunStatus, Trigger, WorkflowStatus


@dataclass(frozen=True, slots=True)
class Step:
    """A step as sent and as read back; `when` is a condition (data, never code)."""

    key: str
    handler: str = "echo"
    payload: Any = None
    timeout_ms: int | None = field(default=None, metadata={"json": "timeout"})
    max_retries: int = 0
    backoff_ms: int = 1000
    priority: int = 0
    depends_on: tuple[str, ...] = ()
    trigger: Trigger = Trigger.ALL_SUCCESS
    when: Any = None


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    description: str
    status: WorkflowStatus
    steps: tuple[Step, ...]
    created_by: str
    created_at: datetime
    updated_at: datetime
    cron_expression: str | None = None
    timezone: str = "UTC"
    misfire_policy: str = "RUN_ONCE"
    next_run_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StepRun:
    key: str
    status: str
    execution_id: str | None
    attempts: int
    result: Any
    error: Any
    started_at: datetime | None
    finished_at: datetime | None
    skip_cause: str | None


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    """A run; `steps` is empty in lists and filled when read one at a time."""

    id: str
    workflow_id: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: tuple[StepRun, ...] = ()


def _steps(steps: Sequence[Step]) -> list[JsonIn]:
    encoded: list[JsonIn] = encode(tuple(steps))
    return encoded


class Workflows:
    """/api/v1/workflows: DAGs of steps, run as a whole."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    async def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[Workflow]:
        data = await self._http.call(
            "GET", "/api/v1/workflows", params={"limit": limit, "cursor": cursor}
        )
        return page_of(Workflow, data)

    def iter(self, *, page_size: int = ITER_PAGE) -> AsyncIterator[Workflow]:
        return every_item(lambda cursor: self.list(limit=page_size, cursor=cursor))

    async def get(self, workflow_id: str) -> Workflow:
        return decode(Workflow, await self._http.call("GET", f"/api/v1/workflows/{workflow_id}"))

    async def create(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        description: str = "",
        cron_expression: str | None = None,
        timezone: str = "UTC",
        misfire_policy: str = "RUN_ONCE",
        idempotency_key: str | None = None,
    ) -> Workflow:
        """Create a workflow (on a cron schedule with `cron_expression`); retried safely
        under one Idempotency-Key."""
        body: dict[str, Any] = {"name": name, "description": description, "steps": _steps(steps)}
        if cron_expression is not None:
            body.update(
                cronExpression=cron_expression, timezone=timezone, misfirePolicy=misfire_policy
            )
        data = await self._http.call(
            "POST",
            "/api/v1/workflows",
            body=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
            ok=(201,),
        )
        return decode(Workflow, data)

    async def update(
        self,
        workflow_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        steps: Sequence[Step] | None = None,
    ) -> Workflow:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if description is not None:
            body["description"] = description
        if steps is not None:
            body["steps"] = _steps(steps)
        data = await self._http.call("PATCH", f"/api/v1/workflows/{workflow_id}", body=body)
        return decode(Workflow, data)

    async def delete(self, workflow_id: str) -> None:
        await self._http.call("DELETE", f"/api/v1/workflows/{workflow_id}", ok=(204,))

    async def run(self, workflow_id: str, *, idempotency_key: str | None = None) -> WorkflowRun:
        """Start a run; retried safely under one Idempotency-Key."""
        data = await self._http.call(
            "POST",
            f"/api/v1/workflows/{workflow_id}/run",
            idempotency_key=idempotency_key or new_idempotency_key(),
            ok=(202,),
        )
        return decode(WorkflowRun, data)

    async def pause(self, workflow_id: str) -> Workflow:
        data = await self._http.call("POST", f"/api/v1/workflows/{workflow_id}/pause")
        return decode(Workflow, data)

    async def resume(self, workflow_id: str) -> Workflow:
        data = await self._http.call("POST", f"/api/v1/workflows/{workflow_id}/resume")
        return decode(Workflow, data)


class WorkflowRuns:
    """/api/v1/workflow-runs: follow, cancel and retry runs."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    async def list(
        self,
        *,
        workflow_id: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[WorkflowRun]:
        params = {"workflowId": workflow_id, "limit": limit, "cursor": cursor}
        return page_of(
            WorkflowRun, await self._http.call("GET", "/api/v1/workflow-runs", params=params)
        )

    def iter(
        self, *, workflow_id: str | None = None, page_size: int = ITER_PAGE
    ) -> AsyncIterator[WorkflowRun]:
        return every_item(
            lambda cursor: self.list(workflow_id=workflow_id, limit=page_size, cursor=cursor)
        )

    async def get(self, run_id: str) -> WorkflowRun:
        return decode(WorkflowRun, await self._http.call("GET", f"/api/v1/workflow-runs/{run_id}"))

    async def cancel(self, run_id: str) -> WorkflowRun:
        data = await self._http.call("POST", f"/api/v1/workflow-runs/{run_id}/cancel")
        return decode(WorkflowRun, data)

    async def retry(self, run_id: str) -> WorkflowRun:
        data = await self._http.call("POST", f"/api/v1/workflow-runs/{run_id}/retry", ok=(202,))
        return decode(WorkflowRun, data)


# --- blocking mirrors ------------------------------------------------------------------
class SyncWorkflows:
    """Blocking `AsyncClient.workflows`."""

    def __init__(self, aio: Workflows, call: Call) -> None:
        self._aio = aio
        self._call = call

    def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[Workflow]:
        return self._call(self._aio.list(limit=limit, cursor=cursor))

    def iter(self, *, page_size: int = ITER_PAGE) -> Iterator[Workflow]:
        return pages(lambda cursor: self.list(limit=page_size, cursor=cursor))

    def get(self, workflow_id: str) -> Workflow:
        return self._call(self._aio.get(workflow_id))

    def create(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        description: str = "",
        cron_expression: str | None = None,
        timezone: str = "UTC",
        misfire_policy: str = "RUN_ONCE",
        idempotency_key: str | None = None,
    ) -> Workflow:
        return self._call(
            self._aio.create(
                name,
                steps,
                description=description,
                cron_expression=cron_expression,
                timezone=timezone,
                misfire_policy=misfire_policy,
                idempotency_key=idempotency_key,
            )
        )

    def update(
        self,
        workflow_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        steps: Sequence[Step] | None = None,
    ) -> Workflow:
        return self._call(
            self._aio.update(workflow_id, name=name, description=description, steps=steps)
        )

    def delete(self, workflow_id: str) -> None:
        self._call(self._aio.delete(workflow_id))

    def run(self, workflow_id: str, *, idempotency_key: str | None = None) -> WorkflowRun:
        return self._call(self._aio.run(workflow_id, idempotency_key=idempotency_key))

    def pause(self, workflow_id: str) -> Workflow:
        return self._call(self._aio.pause(workflow_id))

    def resume(self, workflow_id: str) -> Workflow:
        return self._call(self._aio.resume(workflow_id))


class SyncWorkflowRuns:
    """Blocking `AsyncClient.workflow_runs`."""

    def __init__(self, aio: WorkflowRuns, call: Call) -> None:
        self._aio = aio
        self._call = call

    def list(
        self,
        *,
        workflow_id: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[WorkflowRun]:
        return self._call(self._aio.list(workflow_id=workflow_id, limit=limit, cursor=cursor))

    def iter(
        self, *, workflow_id: str | None = None, page_size: int = ITER_PAGE
    ) -> Iterator[WorkflowRun]:
        return pages(lambda c: self.list(workflow_id=workflow_id, limit=page_size, cursor=c))

    def get(self, run_id: str) -> WorkflowRun:
        return self._call(self._aio.get(run_id))

    def cancel(self, run_id: str) -> WorkflowRun:
        return self._call(self._aio.cancel(run_id))

    def retry(self, run_id: str) -> WorkflowRun:
        return self._call(self._aio.retry(run_id))
