"""Entities of the data model as frozen dataclasses; times are aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskflowd.domain.enums import ExecutionStatus, MisfirePolicy, Role, TaskStatus, TaskType

JSON = Any
"""A JSON-serialisable value: dict, list, str, int, float, bool or None."""


DEFAULT_ORG_ID = "00000000-0000-4000-8000-000000000001"
"""The org that existing data moved into on upgrade (slug `default`)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    password_hash: str
    first_name: str
    last_name: str
    role: Role
    is_active: bool
    token_version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    default_org_id: str | None = None
    """The org the user acts in when a request names none (set by the store)."""


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    name: str
    description: str
    type: TaskType
    status: TaskStatus
    handler: str
    payload: JSON
    cron_expression: str | None
    timezone: str
    scheduled_at: datetime | None
    delay_ms: int | None
    priority: int
    max_retries: int
    backoff_ms: int
    timeout_ms: int | None
    rate_limit: int | None
    concurrency: int | None
    misfire_policy: MisfirePolicy
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None
    deleted_at: datetime | None = None
    org_id: str = DEFAULT_ORG_ID


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a task: the record users see, and the job the queue delivers."""

    id: str
    task_id: str
    job_id: str
    status: ExecutionStatus
    scheduled_for: datetime
    run_at: datetime
    priority: int
    attempts: int
    handler: str
    payload: JSON
    max_retries: int
    backoff_ms: int
    timeout_ms: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    result: JSON = None
    error: JSON = None
    owner_id: str = ""
    request_id: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    fence: int = 0
    rescues: int = 0
    idempotency_key: str | None = None
    org_id: str = DEFAULT_ORG_ID


@dataclass(frozen=True, slots=True)
class RetryRecord:
    """One failed attempt of an execution."""

    id: int
    execution_id: str
    attempt: int
    error: JSON
    failed_at: datetime
    next_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeadLetterJob:
    id: str
    execution_id: str
    task_id: str
    job_id: str
    payload: JSON
    error: JSON
    attempts: int
    owner_id: str
    created_at: datetime
    org_id: str = DEFAULT_ORG_ID


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A stored refresh token: only its hash is kept; `family_id` groups rotations."""

    id: str
    user_id: str
    token_hash: str
    family_id: str
    expires_at: datetime
    created_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A program's credential: only `key_hash` (SHA-256 of the key) is stored; `prefix`
    is the key's visible start, to tell keys apart."""

    id: str
    user_id: str
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    org_id: str = DEFAULT_ORG_ID
    """The org the key acts in: that of the request that created it."""

    def usable_at(self, moment: datetime) -> bool:
        """Not revoked and not expired at `moment`."""
        return self.revoked_at is None and (self.expires_at is None or moment < self.expires_at)


@dataclass(frozen=True, slots=True)
class Node:
    """A running daemon in the cluster; `id` is random per process start."""

    id: str
    host: str
    roles: tuple[str, ...]
    version: str
    started_at: datetime
    last_heartbeat: datetime
