"""Bodies and queries of the task, execution and dead-letter endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, JsonValue, StringConstraints, WithJsonSchema

from taskflowd.api.schemas import CURSOR_SCHEMA, Cursor, QueryModel, RequestModel, ResponseModel
from taskflowd.api.shapes import shape_of
from taskflowd.domain.enums import ExecutionStatus, MisfirePolicy, TaskStatus, TaskType
from taskflowd.domain.rules import (
    BOUNDS,
    DEFAULT_BACKOFF_MS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    MAX_DELAY_MS,
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
)

TaskName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_LENGTH)]
HandlerName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
CronText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Timezone = Annotated[str, StringConstraints(min_length=1, max_length=64)]
DelayMs = Annotated[int, Field(ge=0, le=MAX_DELAY_MS)]
FieldList = Annotated[str, StringConstraints(min_length=1, max_length=500)]
_OPTIONAL_STRING = {"type": "string", "minLength": 1, "maxLength": 64}
MAX_RUNS = 1000
MAX_BATCH = 500


def _range(attr: str) -> Any:
    low, high = BOUNDS[attr]
    return Field(ge=low, le=high)


Priority = Annotated[int, _range("priority")]
MaxRetries = Annotated[int, _range("max_retries")]
BackoffMs = Annotated[int, _range("backoff_ms")]
TimeoutMs = Annotated[int, _range("timeout_ms")]
RateLimit = Annotated[int, _range("rate_limit")]
Concurrency = Annotated[int, _range("concurrency")]


class TaskCreate(RequestModel):
    """A new task. `type` may be left out: a `cronExpression` makes it RECURRING, a
    `delayMs` DELAYED, anything else ONE_TIME."""

    name: TaskName
    description: Description = ""
    type: TaskType | None = None
    handler: HandlerName = "echo"
    payload: JsonValue = None
    cron_expression: CronText | None = None
    timezone: Timezone = "UTC"
    scheduled_at: AwareDatetime | None = None
    delay_ms: DelayMs | None = None
    priority: Priority = DEFAULT_PRIORITY
    max_retries: MaxRetries = DEFAULT_MAX_RETRIES
    backoff_ms: BackoffMs = DEFAULT_BACKOFF_MS
    timeout: TimeoutMs | None = Field(default=None, description="Per-attempt timeout in ms")
    rate_limit: RateLimit | None = Field(default=None, description="Starts per minute")
    concurrency: Concurrency | None = Field(default=None, description="Runs at once")
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE


class TaskPatch(RequestModel):
    """Fields to change; a field left out stays as it is, and `null` clears an optional one.
    The type of a task cannot change."""

    name: TaskName | None = None
    description: Description | None = None
    handler: HandlerName | None = None
    payload: JsonValue = None
    cron_expression: CronText | None = None
    timezone: Timezone | None = None
    scheduled_at: AwareDatetime | None = None
    delay_ms: DelayMs | None = None
    priority: Priority | None = None
    max_retries: MaxRetries | None = None
    backoff_ms: BackoffMs | None = None
    timeout: TimeoutMs | None = None
    rate_limit: RateLimit | None = None
    concurrency: Concurrency | None = None
    misfire_policy: MisfirePolicy | None = None


NULLABLE_ON_PATCH = frozenset(
    {
        "payload",
        "cron_expression",
        "scheduled_at",
        "delay_ms",
        "timeout",
        "rate_limit",
        "concurrency",
    }
)


class TaskListQuery(QueryModel):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: Annotated[Cursor | None, WithJsonSchema(CURSOR_SCHEMA)] = None
    status: TaskStatus | None = None
    type: TaskType | None = None
    handler: Annotated[HandlerName | None, WithJsonSchema(_OPTIONAL_STRING)] = None
    search: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)] | None,
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}),
    ] = None
    fields: Annotated[FieldList | None, WithJsonSchema({"type": "string", "maxLength": 500})] = None


class TaskExecutionsQuery(QueryModel):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: Annotated[Cursor | None, WithJsonSchema(CURSOR_SCHEMA)] = None
    status: ExecutionStatus | None = None
    fields: Annotated[FieldList | None, WithJsonSchema({"type": "string", "maxLength": 500})] = None


class ExecutionListQuery(TaskExecutionsQuery):
    task_id: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=64)] | None,
        WithJsonSchema(_OPTIONAL_STRING),
    ] = None


class TaskOut(ResponseModel):
    id: str
    name: str
    description: str
    type: TaskType
    status: TaskStatus
    handler: str
    payload: JsonValue
    cron_expression: str | None
    timezone: str
    scheduled_at: datetime | None
    delay_ms: int | None
    priority: int
    max_retries: int
    backoff_ms: int
    timeout: int | None = Field(description="Per-attempt timeout in ms")
    rate_limit: int | None
    concurrency: int | None
    misfire_policy: MisfirePolicy
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None
    next_run_at: datetime | None


TASK_SHAPE = shape_of(TaskOut, {"timeout": "timeout_ms"})


class TaskList(ResponseModel):
    items: list[dict[str, Any]] = Field(description="Tasks (only the `fields` asked for)")
    next_cursor: str | None


class RetryOut(ResponseModel):
    attempt: int
    error: JsonValue
    failed_at: datetime
    next_run_at: datetime | None


class ExecutionOut(ResponseModel):
    id: str
    task_id: str
    job_id: str
    status: ExecutionStatus
    scheduled_for: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration: int | None = Field(description="Run time of the last attempt in ms")
    attempts: int
    payload: JsonValue = Field(description="The payload this execution runs with")
    result: JsonValue
    error: JsonValue
    created_at: datetime
    updated_at: datetime


class ExecutionDetailOut(ExecutionOut):
    retry_history: list[RetryOut]


EXECUTION_SHAPE = shape_of(ExecutionOut, {"duration": "duration_ms"})
RETRY_SHAPE = shape_of(RetryOut)


class ExecutionList(ResponseModel):
    items: list[dict[str, Any]] = Field(description="Executions (only the `fields` asked for)")
    next_cursor: str | None


class DeadLetterOut(ResponseModel):
    id: str
    task_id: str
    job_id: str
    execution_id: str
    payload: JsonValue
    error: JsonValue
    attempts: int
    created_at: datetime


DEAD_LETTER_SHAPE = shape_of(DeadLetterOut)


class DeadLetterList(ResponseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None


class RunRequest(RequestModel):
    """A run of the task: its own `payload` (default: the task's), `priority` (default:
    the task's), and when: `runAt` or `delayMs` (default: now)."""

    payload: JsonValue = None
    priority: Priority | None = None
    run_at: AwareDatetime | None = None
    delay_ms: DelayMs | None = None


IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
]


class RunItem(RunRequest):
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="Unique per task: a run with a used key is not queued again"
    )


class RunsRequest(RequestModel):
    items: list[RunItem] = Field(min_length=1, max_length=MAX_RUNS)


class ExecutionItems(ResponseModel):
    items: list[ExecutionOut]


class TaskBatchRequest(RequestModel):
    items: list[TaskCreate] = Field(min_length=1, max_length=MAX_BATCH)


class TaskItems(ResponseModel):
    items: list[TaskOut]
