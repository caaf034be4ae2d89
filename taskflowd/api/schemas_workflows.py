"""Request and response models of /api/v1/workflows and /api/v1/workflow-runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, JsonValue, StringConstraints

from taskflowd.api.schemas import ListQuery, RequestModel, ResponseModel
from taskflowd.api.schemas_tasks import (
    BackoffMs,
    CronText,
    Description,
    HandlerName,
    MaxRetries,
    Priority,
    TaskName,
    TimeoutMs,
    Timezone,
)
from taskflowd.domain.enums import MisfirePolicy, RunStatus, Trigger, WorkflowStatus
from taskflowd.domain.rules import DEFAULT_BACKOFF_MS, DEFAULT_MAX_RETRIES, DEFAULT_PRIORITY
from taskflowd.workflows.graph import MAX_STEPS

StepKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
]


class StepIn(RequestModel):
    """One step. `when` is data, never code: `{"step", "path", "op", "value"}` with op
    eq|ne|in|exists|gt|lt, or `{"all": [...]}` / `{"any": [...]}` of those."""

    key: StepKey
    handler: HandlerName = "echo"
    payload: JsonValue = None
    timeout: TimeoutMs | None = Field(default=None, description="Per-attempt timeout in ms")
    max_retries: MaxRetries = DEFAULT_MAX_RETRIES
    backoff_ms: BackoffMs = DEFAULT_BACKOFF_MS
    priority: Priority = DEFAULT_PRIORITY
    depends_on: list[StepKey] = Field(default_factory=list, max_length=MAX_STEPS)
    trigger: Trigger = Trigger.ALL_SUCCESS
    when: dict[str, JsonValue] | None = None


Steps = Annotated[list[StepIn], Field(min_length=1, max_length=MAX_STEPS)]


class WorkflowCreate(RequestModel):
    """A workflow; with `cronExpression` it also runs on that schedule (5 fields, or 6 with
    seconds first), in `timezone`, with `misfirePolicy` for ticks missed while down."""

    name: TaskName
    description: Description = ""
    steps: Steps
    cron_expression: CronText | None = None
    timezone: Timezone = "UTC"
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE


class WorkflowPatch(RequestModel):
    """Fields to change; runs already started keep the steps they started with. A null
    `cronExpression` removes the schedule."""

    name: TaskName | None = None
    description: Description | None = None
    steps: Steps | None = None
    cron_expression: CronText | None = None
    timezone: Timezone | None = None
    misfire_policy: MisfirePolicy | None = None


class StepOut(ResponseModel):
    key: str
    handler: str
    payload: JsonValue
    timeout: int | None
    max_retries: int
    backoff_ms: int
    priority: int
    depends_on: list[str]
    trigger: Trigger
    when: JsonValue


class WorkflowOut(ResponseModel):
    id: str
    name: str
    description: str
    status: WorkflowStatus
    steps: list[StepOut]
    cron_expression: str | None
    timezone: str
    misfire_policy: MisfirePolicy
    next_run_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class WorkflowList(ResponseModel):
    items: list[WorkflowOut]
    next_cursor: str | None


class StepRunOut(ResponseModel):
    key: str
    status: str = Field(description="An execution status, or SKIPPED")
    execution_id: str | None
    attempts: int
    result: JsonValue
    error: JsonValue
    started_at: datetime | None
    finished_at: datetime | None
    skip_cause: str | None = Field(description="FAILURE, TRIGGER or CONDITION when SKIPPED")


class WorkflowRunSummary(ResponseModel):
    id: str
    workflow_id: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class WorkflowRunOut(WorkflowRunSummary):
    steps: list[StepRunOut]


class WorkflowRunList(ResponseModel):
    items: list[WorkflowRunSummary]
    next_cursor: str | None


class WorkflowRunQuery(ListQuery):
    workflow_id: str | None = Field(default=None, max_length=64)
