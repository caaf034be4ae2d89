"""Mapping between database rows and domain entities, shared by every SQL dialect."""

from __future__ import annotations

import base64
import binascii
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from taskflowd.domain.entities import (
    ApiKey,
    DeadLetterJob,
    Execution,
    Node,
    RefreshToken,
    RetryRecord,
    Task,
    User,
)
from taskflowd.domain.enums import ExecutionStatus, MisfirePolicy, Role, TaskStatus, TaskType
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Row

TimeDecoder = Callable[[Any], datetime]


def _opt(decode: TimeDecoder, value: Any) -> datetime | None:
    return None if value is None else decode(value)


def user_from_row(row: Row, t: TimeDecoder) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        password_hash=row["password_hash"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        role=Role(row["role"]),
        is_active=bool(row["is_active"]),
        token_version=row["token_version"],
        created_at=t(row["created_at"]),
        updated_at=t(row["updated_at"]),
        deleted_at=_opt(t, row["deleted_at"]),
        default_org_id=row["default_org_id"],
    )


def task_from_row(row: Row, t: RowCodec) -> Task:
    return Task(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        type=TaskType(row["type"]),
        status=TaskStatus(row["status"]),
        handler=row["handler"],
        payload=t.load(row["payload"]),
        cron_expression=row["cron_expression"],
        timezone=row["timezone"],
        scheduled_at=_opt(t, row["scheduled_at"]),
        delay_ms=row["delay_ms"],
        priority=row["priority"],
        max_retries=row["max_retries"],
        backoff_ms=row["backoff_ms"],
        timeout_ms=row["timeout_ms"],
        rate_limit=row["rate_limit"],
        concurrency=row["concurrency"],
        misfire_policy=MisfirePolicy(row["misfire_policy"]),
        created_by=row["created_by"],
        created_at=t(row["created_at"]),
        updated_at=t(row["updated_at"]),
        last_run_at=_opt(t, row["last_run_at"]),
        next_run_at=_opt(t, row["next_run_at"]),
        deleted_at=_opt(t, row["deleted_at"]),
        org_id=row["org_id"],
    )


def task_values(task: Task, c: RowCodec) -> tuple[Any, ...]:
    """Column values in the order of `TASK_COLUMNS`."""
    return (
        task.id,
        task.name,
        task.description,
        task.type.value,
        task.status.value,
        task.handler,
        c.dump(task.payload),
        task.cron_expression,
        task.timezone,
        task.scheduled_at,
        task.delay_ms,
        task.priority,
        task.max_retries,
        task.backoff_ms,
        task.timeout_ms,
        task.rate_limit,
        task.concurrency,
        task.misfire_policy.value,
        task.created_by,
        task.created_at,
        task.updated_at,
        task.last_run_at,
        task.next_run_at,
        task.deleted_at,
        task.org_id,
    )


TASK_COLUMNS = (
    "id, name, description, type, status, handler, payload, cron_expression, timezone, "
    "scheduled_at, delay_ms, priority, max_retries, backoff_ms, timeout_ms, rate_limit, "
    "concurrency, misfire_policy, created_by, created_at, updated_at, last_run_at, "
    "next_run_at, deleted_at, org_id"
)


def execution_from_row(row: Row, t: RowCodec) -> Execution:
    return executions_from_rows([row], t)[0]


def executions_from_rows(found: Sequence[Row], t: RowCodec) -> list[Execution]:
    """The executions of `found`, rows of one statement. sqlite3.Row finds a column by
    comparing its name with each column's in turn: the rows are read as dicts with the
    statement's column names, which reads the 28 columns in less than half the time
    (every job a worker claims is read here, on the event loop)."""
    if found and isinstance(found[0], sqlite3.Row):
        names = found[0].keys()
        return [_execution(dict(zip(names, row, strict=True)), t) for row in found]
    return [_execution(row, t) for row in found]


def _execution(row: Row, t: RowCodec) -> Execution:
    return Execution(
        id=row["id"],
        task_id=row["task_id"],
        job_id=row["job_id"],
        owner_id=row["owner_id"],
        status=ExecutionStatus(row["status"]),
        scheduled_for=t(row["scheduled_for"]),
        run_at=t(row["run_at"]),
        priority=row["priority"],
        attempts=row["attempts"],
        handler=row["handler"],
        payload=t.load(row["payload"]),
        max_retries=row["max_retries"],
        backoff_ms=row["backoff_ms"],
        timeout_ms=row["timeout_ms"],
        started_at=_opt(t, row["started_at"]),
        completed_at=_opt(t, row["completed_at"]),
        duration_ms=row["duration_ms"],
        result=t.load(row["result"]),
        error=t.load(row["error"]),
        request_id=row["request_id"],
        lease_owner=row["lease_owner"],
        lease_expires_at=_opt(t, row["lease_expires_at"]),
        fence=row["fence"],
        rescues=row["rescues"],
        idempotency_key=row["idempotency_key"],
        org_id=row["org_id"],
        created_at=t(row["created_at"]),
        updated_at=t(row["updated_at"]),
    )


EXECUTION_INSERT_COLUMNS = (
    "id, task_id, job_id, owner_id, status, scheduled_for, run_at, tick_at, priority, "
    "attempts, handler, payload, max_retries, backoff_ms, timeout_ms, request_id, "
    "created_at, updated_at, idempotency_key, org_id"
)
EXECUTION_INSERT_TYPES = (
    "text", "text", "text", "text", "text", "timestamptz", "timestamptz", "timestamptz",
    "integer", "integer", "text", "text", "integer", "bigint", "bigint", "text",
    "timestamptz", "timestamptz", "text", "text",
)  # fmt: skip
"""The PostgreSQL type of each of `EXECUTION_INSERT_COLUMNS`."""
EXECUTION_INSERT = (
    f"INSERT INTO job_executions ({EXECUTION_INSERT_COLUMNS}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, 21))})"
)


def execution_insert_values(e: Execution, tick_at: datetime | None, c: RowCodec) -> tuple[Any, ...]:
    """Values for `EXECUTION_INSERT_COLUMNS` of a new, not yet claimed execution."""
    return (
        e.id,
        e.task_id,
        e.job_id,
        e.owner_id,
        e.status.value,
        e.scheduled_for,
        e.run_at,
        tick_at,
        e.priority,
        e.attempts,
        e.handler,
        c.dump(e.payload),
        e.max_retries,
        e.backoff_ms,
        e.timeout_ms,
        e.request_id,
        e.created_at,
        e.updated_at,
        e.idempotency_key,
        e.org_id,
    )


def retry_from_row(row: Row, t: RowCodec) -> RetryRecord:
    return RetryRecord(
        id=row["id"],
        execution_id=row["execution_id"],
        attempt=row["attempt"],
        error=t.load(row["error"]),
        failed_at=t(row["failed_at"]),
        next_run_at=_opt(t, row["next_run_at"]),
    )


def dead_letter_from_row(row: Row, t: RowCodec) -> DeadLetterJob:
    return DeadLetterJob(
        id=row["id"],
        execution_id=row["execution_id"],
        task_id=row["task_id"],
        job_id=row["job_id"],
        owner_id=row["owner_id"],
        payload=t.load(row["payload"]),
        error=t.load(row["error"]),
        attempts=row["attempts"],
        created_at=t(row["created_at"]),
        org_id=row["org_id"],
    )


def refresh_token_from_row(row: Row, t: TimeDecoder) -> RefreshToken:
    return RefreshToken(
        id=row["id"],
        user_id=row["user_id"],
        token_hash=row["token_hash"],
        family_id=row["family_id"],
        expires_at=t(row["expires_at"]),
        created_at=t(row["created_at"]),
        used_at=_opt(t, row["used_at"]),
        revoked_at=_opt(t, row["revoked_at"]),
    )


def api_key_from_row(row: Row, t: TimeDecoder) -> ApiKey:
    return ApiKey(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        prefix=row["prefix"],
        key_hash=row["key_hash"],
        created_at=t(row["created_at"]),
        expires_at=_opt(t, row["expires_at"]),
        last_used_at=_opt(t, row["last_used_at"]),
        revoked_at=_opt(t, row["revoked_at"]),
        org_id=row["org_id"],
    )


def node_from_row(row: Row, t: TimeDecoder) -> Node:
    return Node(
        id=row["id"],
        host=row["host"],
        roles=tuple(r for r in row["roles"].split(",") if r),
        version=row["version"],
        started_at=t(row["started_at"]),
        last_heartbeat=t(row["last_heartbeat"]),
    )


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed([FieldError("cursor", "the cursor is not one this server issued")])


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, item_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad_cursor() from None
    if created_at.tzinfo is None or not item_id or not item_id.isprintable():
        raise _bad_cursor()
    return created_at, item_id
