"""What the API answers, as frozen dataclasses mirroring the OpenAPI response models, and
what the client sends (`NewTask`, `TaskChanges`, `NewRun`).

Attribute names are the API's in snake_case, except where a name says its unit
(`timeout_ms` for `timeout`, `duration_ms` for `duration`, `expires_in_s` for
`expiresIn`). Payloads, results and errors are whatever JSON the job used.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from taskflowd.client.codec import encode
from taskflowd.domain.enums import (
    ExecutionStatus,
    MisfirePolicy,
    OrgRole,
    Role,
    TaskStatus,
    TaskType,
)

T = TypeVar("T")

JsonIn: TypeAlias = "bool | int | float | str | Sequence[JsonIn] | Mapping[str, JsonIn] | None"
"""A JSON value to send (payloads): lists, tuples and dicts of JSON values."""


class Unset(enum.Enum):
    """The type of `UNSET`: "leave this out of the request" (as opposed to `None`, which
    sends null)."""

    UNSET = "UNSET"


UNSET = Unset.UNSET


def _api_name(name: str) -> dict[str, str]:
    return {"json": name}


# --- responses ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next (None: last)."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    name: str
    description: str
    type: TaskType
    status: TaskStatus
    handler: str
    payload: Any
    cron_expression: str | None
    timezone: str
    scheduled_at: datetime | None
    delay_ms: int | None
    priority: int
    max_retries: int
    backoff_ms: int
    timeout_ms: int | None = field(metadata=_api_name("timeout"))
    rate_limit: int | None
    concurrency: int | None
    misfire_policy: MisfirePolicy
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None
    next_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a task; `payload` is what it runs with."""

    id: str
    task_id: str
    job_id: str
    status: ExecutionStatus
    scheduled_for: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None = field(metadata=_api_name("duration"))
    attempts: int
    payload: Any
    result: Any
    error: Any
    created_at: datetime
    updated_at: datetime

    @property
    def is_final(self) -> bool:
        """COMPLETED, FAILED or CANCELLED: the execution will not change by itself."""
        return self.status.is_final


@dataclass(frozen=True, slots=True)
class RetryRecord:
    attempt: int
    error: Any
    failed_at: datetime
    next_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class ExecutionDetail(Execution):
    """An execution with the failed attempts before its current one."""

    retry_history: tuple[RetryRecord, ...]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    task_id: str
    job_id: str
    execution_id: str
    payload: Any
    error: Any
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrgQuotas:
    """The quotas in force in an org; 0 means unlimited."""

    max_tasks: int
    max_workflows: int
    max_running_jobs: int
    api_limit_per_min: int


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    slug: str
    name: str
    role: OrgRole | None
    quotas: OrgQuotas
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    email: str
    first_name: str
    last_name: str
    role: OrgRole
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewApiKey(ApiKey):
    """A key just created: `key` is the secret, shown this once."""

    key: str


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    first_name: str
    last_name: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    token_type: str
    expires_in_s: int = field(metadata=_api_name("expiresIn"))


@dataclass(frozen=True, slots=True)
class Health:
    status: str


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    latency_ms: float
    reason: str | None


@dataclass(frozen=True, slots=True)
class Readiness:
    """`/ready`: 200 and 503 carry this same body; `ready` says which."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, Check]

    @property
    def ready(self) -> bool:
        return self.status == "ready"


@dataclass(frozen=True, slots=True)
class Throughput:
    seconds: int
    finished: int
    completed: int
    failed: int
    cancelled: int
    per_second: float
    success_rate: float | None


@dataclass(frozen=True, slots=True)
class RunTimes:
    window_s: int
    samples: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    host: str
    roles: tuple[str, ...]
    version: str
    started_at: datetime
    last_heartbeat: datetime
    alive: bool


@dataclass(frozen=True, slots=True)
class OrgStats:
    org_id: str
    slug: str | None
    name: str | None
    depths: dict[str, int]
    last_hour: Throughput


@dataclass(frozen=True, slots=True)
class Stats:
    generated_at: datetime
    scope: Literal["all", "own"]
    depths: dict[str, int]
    throughput: dict[str, Throughput]
    run_time: RunTimes
    nodes: tuple[Node, ...]
    tables: dict[str, int] | None = None
    org_id: str | None = None
    orgs: tuple[OrgStats, ...] | None = None


# --- requests -------------------------------------------------------------------
def _set_only(fields: dict[str, Any]) -> dict[str, Any]:
    """A request body from the API's names: `UNSET` fields left out."""
    return {key: encode(value) for key, value in fields.items() if value is not UNSET}


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to create. Fields left None take the server's defaults; `type` may be left
    out (a `cron_expression` makes it RECURRING, `delay_ms` DELAYED, else ONE_TIME)."""

    name: str
    type: TaskType | None = None
    handler: str | None = None
    payload: JsonIn = None
    description: str | None = None
    cron_expression: str | None = None
    timezone: str | None = None
    scheduled_at: datetime | None = None
    delay_ms: int | None = None
    priority: int | None = None
    max_retries: int | None = None
    backoff_ms: int | None = None
    timeout_ms: int | None = None
    rate_limit: int | None = None
    concurrency: int | None = None
    misfire_policy: MisfirePolicy | None = None

    def to_json(self) -> dict[str, Any]:
        body = {
            "name": self.name,
            "type": self.type,
            "handler": self.handler,
            "payload": self.payload,
            "description": self.description,
            "cronExpression": self.cron_expression,
            "timezone": self.timezone,
            "scheduledAt": self.scheduled_at,
            "delayMs": self.delay_ms,
            "priority": self.priority,
            "maxRetries": self.max_retries,
            "backoffMs": self.backoff_ms,
            "timeout": self.timeout_ms,
            "rateLimit": self.rate_limit,
            "concurrency": self.concurrency,
            "misfirePolicy": self.misfire_policy,
        }
        return {key: encode(value) for key, value in body.items() if value is not None}


@dataclass(frozen=True, slots=True)
class TaskChanges:
    """Fields of a task to change; `UNSET` ones stay as they are, and None clears an
    optional one (payload, cron_expression, scheduled_at, delay_ms, timeout_ms,
    rate_limit, concurrency)."""

    name: str | Unset = UNSET
    description: str | Unset = UNSET
    handler: str | Unset = UNSET
    payload: JsonIn | Unset = UNSET
    cron_expression: str | Unset | None = UNSET
    timezone: str | Unset = UNSET
    scheduled_at: datetime | Unset | None = UNSET
    delay_ms: int | Unset | None = UNSET
    priority: int | Unset = UNSET
    max_retries: int | Unset = UNSET
    backoff_ms: int | Unset = UNSET
    timeout_ms: int | Unset | None = UNSET
    rate_limit: int | Unset | None = UNSET
    concurrency: int | Unset | None = UNSET
    misfire_policy: MisfirePolicy | Unset = UNSET

    def to_json(self) -> dict[str, Any]:
        return _set_only(
            {
                "name": self.name,
                "description": self.description,
                "handler": self.handler,
                "payload": self.payload,
                "cronExpression": self.cron_expression,
                "timezone": self.timezone,
                "scheduledAt": self.scheduled_at,
                "delayMs": self.delay_ms,
                "priority": self.priority,
                "maxRetries": self.max_retries,
                "backoffMs": self.backoff_ms,
                "timeout": self.timeout_ms,
                "rateLimit": self.rate_limit,
                "concurrency": self.concurrency,
                "misfirePolicy": self.misfire_policy,
            }
        )


@dataclass(frozen=True, slots=True)
class NewRun:
    """One run of a task: its own `payload` (`UNSET`: the task's), `priority` (None: the
    task's), when (`run_at` or `delay_ms`; neither: now), and an optional
    `idempotency_key`, unique per task (a run whose key was used is not queued again)."""

    payload: JsonIn | Unset = UNSET
    priority: int | None = None
    run_at: datetime | None = None
    delay_ms: int | None = None
    idempotency_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        body = _set_only({"payload": self.payload})
        for key, value in (
            ("priority", self.priority),
            ("runAt", self.run_at),
            ("delayMs", self.delay_ms),
            ("idempotencyKey", self.idempotency_key),
        ):
            if value is not None:
                body[key] = encode(value)
        return body
