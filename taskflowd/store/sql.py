"""`SqlStore`: the Store protocol on SQLite or PostgreSQL through one `Database` handle."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from taskflowd.domain.entities import (
    DeadLetterJob,
    Execution,
    Node,
    RefreshToken,
    RetryRecord,
    Task,
    User,
    utcnow,
)
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from taskflowd.store import rows
from taskflowd.store.base import ExecutionFilter, IdempotentResponse, Page, TaskFilter
from taskflowd.store.db import Database, Row
from taskflowd.store.errors import DuplicateKey
from taskflowd.store.migrate import migrate

T = TypeVar("T")

_USER_COLUMNS = (
    "id, email, password_hash, first_name, last_name, role, is_active, token_version, "
    "created_at, updated_at, deleted_at"
)
_QUEUED = (ExecutionStatus.PENDING.value, ExecutionStatus.RETRYING.value)
_OPEN = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RETRYING, ExecutionStatus.PROCESSING})


class _Where:
    """WHERE clauses from fixed fragments; every value is a bound parameter."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, fragment: str, *values: Any) -> None:
        """`fragment` uses `{}` once per value, in order, for the placeholders."""
        marks = []
        for value in values:
            self.args.append(value)
            marks.append(f"${len(self.args)}")
        self.clauses.append(fragment.format(*marks))

    def after(self, cursor: str | None) -> None:
        if cursor is not None:
            created_at, item_id = rows.decode_cursor(cursor)
            self.add(
                "(created_at < {} OR (created_at = {} AND id < {}))",
                created_at,
                created_at,
                item_id,
            )

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""

    def limit(self, limit: int) -> str:
        self.args.append(limit + 1)
        return f" ORDER BY created_at DESC, id DESC LIMIT ${len(self.args)}"


class SqlStore:
    """Records in SQLite or PostgreSQL; see `taskflowd.store.base.Store` for the contract."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._t = db.decode_time

    async def start(self) -> None:
        await self.db.connect()
        await migrate(self.db)

    async def stop(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        await self.db.fetchrow("SELECT 1 AS ok")

    async def _page(
        self,
        table: str,
        columns: str,
        where: _Where,
        limit: int,
        build: Callable[[Row, rows.TimeDecoder], T],
    ) -> Page[T]:
        sql = f"SELECT {columns} FROM {table}{where.sql()}{where.limit(limit)}"
        found = await self.db.fetch(sql, *where.args)
        items = [build(r, self._t) for r in found[:limit]]
        next_cursor = None
        if len(found) > limit and items:
            last = found[limit - 1]
            next_cursor = rows.encode_cursor(self._t(last["created_at"]), last["id"])
        return Page(items, next_cursor)

    # --- users -----------------------------------------------------------------
    async def create_user(self, user: User) -> User:
        """Emails are kept in lower case, so uniqueness and look-up ignore case."""
        await self.db.execute(
            f"INSERT INTO users ({_USER_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
            user.id,
            user.email.lower(),
            user.password_hash,
            user.first_name,
            user.last_name,
            user.role.value,
            user.is_active,
            user.token_version,
            user.created_at,
            user.updated_at,
            user.deleted_at,
        )
        return dataclasses.replace(user, email=user.email.lower())

    async def _one_user(self, where: str, value: str) -> User | None:
        row = await self.db.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE {where} = $1 AND deleted_at IS NULL", value
        )
        return rows.user_from_row(row, self._t) if row else None

    async def get_user(self, user_id: str) -> User | None:
        return await self._one_user("id", user_id)

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._one_user("email", email.lower())

    async def update_user(self, user: User) -> User | None:
        changed = await self.db.execute(
            "UPDATE users SET email = $2, password_hash = $3, first_name = $4, last_name = $5, "
            "role = $6, is_active = $7, token_version = $8, updated_at = $9 "
            "WHERE id = $1 AND deleted_at IS NULL",
            user.id,
            user.email.lower(),
            user.password_hash,
            user.first_name,
            user.last_name,
            user.role.value,
            user.is_active,
            user.token_version,
            user.updated_at,
        )
        return user if changed else None

    async def delete_user(self, user_id: str, at: datetime) -> bool:
        changed = await self.db.execute(
            "UPDATE users SET deleted_at = $2, updated_at = $2, is_active = $3, "
            "token_version = token_version + 1 WHERE id = $1 AND deleted_at IS NULL",
            user_id,
            at,
            False,
        )
        return changed > 0

    async def list_users(self, limit: int, cursor: str | None = None) -> Page[User]:
        where = _Where()
        where.clauses.append("deleted_at IS NULL")
        where.after(cursor)
        return await self._page("users", _USER_COLUMNS, where, limit, rows.user_from_row)

    async def count_users(self) -> int:
        row = await self.db.fetchrow("SELECT COUNT(*) AS n FROM users WHERE deleted_at IS NULL")
        return int(row["n"]) if row else 0

    # --- tasks -----------------------------------------------------------------
    async def create_task(self, task: Task, first_run: Execution | None = None) -> Task:
        marks = ",".join(f"${i}" for i in range(1, 25))
        async with self.db.transaction() as conn:
            await conn.execute(
                f"INSERT INTO tasks ({rows.TASK_COLUMNS}) VALUES ({marks})", *rows.task_values(task)
            )
            if first_run is not None:
                await conn.execute(
                    f"INSERT INTO job_executions ({rows.EXECUTION_INSERT_COLUMNS}) "
                    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)",
                    *rows.execution_insert_values(first_run, first_run.scheduled_for),
                )
        return task

    async def get_task(self, task_id: str, owner_id: str | None = None) -> Task | None:
        where = _Where()
        where.add("id = {}", task_id)
        where.clauses.append("deleted_at IS NULL")
        if owner_id is not None:
            where.add("created_by = {}", owner_id)
        row = await self.db.fetchrow(
            f"SELECT {rows.TASK_COLUMNS} FROM tasks{where.sql()}", *where.args
        )
        return rows.task_from_row(row, self._t) if row else None

    async def update_task(self, task: Task, expected_status: TaskStatus) -> Task | None:
        values = rows.task_values(task)
        changed = await self.db.execute(
            "UPDATE tasks SET name = $2, description = $3, type = $4, status = $5, handler = $6, "
            "payload = $7, cron_expression = $8, timezone = $9, scheduled_at = $10, "
            "delay_ms = $11, priority = $12, max_retries = $13, backoff_ms = $14, "
            "timeout_ms = $15, rate_limit = $16, concurrency = $17, misfire_policy = $18, "
            "updated_at = $19, next_run_at = $20 "
            "WHERE id = $1 AND deleted_at IS NULL AND status = $21",
            *values[:18],
            task.updated_at,
            task.next_run_at,
            expected_status.value,
        )
        return task if changed else None

    async def delete_task(self, task_id: str, owner_id: str | None, at: datetime) -> bool:
        owner_clause = "" if owner_id is None else " AND created_by = $3"
        owner_args = () if owner_id is None else (owner_id,)
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE tasks SET deleted_at = $2, updated_at = $2, next_run_at = NULL "
                f"WHERE id = $1 AND deleted_at IS NULL{owner_clause}",
                task_id,
                at,
                *owner_args,
            )
            if changed:
                await conn.execute(
                    "UPDATE job_executions SET status = $2, updated_at = $3, completed_at = $3 "
                    "WHERE task_id = $1 AND status IN ($4, $5) AND completed_at IS NULL",
                    task_id,
                    ExecutionStatus.CANCELLED.value,
                    at,
                    *_QUEUED,
                )
        return changed > 0

    async def list_tasks(
        self, filters: TaskFilter, limit: int, cursor: str | None = None
    ) -> Page[Task]:
        where = _Where()
        where.clauses.append("deleted_at IS NULL")
        if filters.owner_id is not None:
            where.add("created_by = {}", filters.owner_id)
        if filters.status is not None:
            where.add("status = {}", filters.status.value)
        if filters.type is not None:
            where.add("type = {}", filters.type.value)
        if filters.handler is not None:
            where.add("handler = {}", filters.handler)
        if filters.name_contains:
            pattern = (
                "%"
                + filters.name_contains.lower()
                .replace("\\", "\\\\")
                .replace("%", "\\%")
                .replace("_", "\\_")
                + "%"
            )
            where.add("LOWER(name) LIKE {} ESCAPE '\\'", pattern)
        where.after(cursor)
        return await self._page("tasks", rows.TASK_COLUMNS, where, limit, rows.task_from_row)

    # --- executions ------------------------------------------------------------
    async def get_execution(
        self, execution_id: str, owner_id: str | None = None
    ) -> Execution | None:
        where = _Where()
        where.add("id = {}", execution_id)
        if owner_id is not None:
            where.add("owner_id = {}", owner_id)
        row = await self.db.fetchrow(f"SELECT * FROM job_executions{where.sql()}", *where.args)
        return rows.execution_from_row(row, self._t) if row else None

    async def list_executions(
        self, filters: ExecutionFilter, limit: int, cursor: str | None = None
    ) -> Page[Execution]:
        where = _Where()
        if filters.owner_id is not None:
            where.add("owner_id = {}", filters.owner_id)
        if filters.task_id is not None:
            where.add("task_id = {}", filters.task_id)
        if filters.status is not None:
            where.add("status = {}", filters.status.value)
        if filters.statuses:
            marks = ", ".join("{}" for _ in filters.statuses)
            where.add(f"status IN ({marks})", *(s.value for s in filters.statuses))
        wanted = {filters.status} if filters.status is not None else set(filters.statuses)
        if wanted and wanted <= _OPEN:
            where.add("completed_at IS NULL")  # lets PostgreSQL read the open-row indexes
        where.after(cursor)
        return await self._page("job_executions", "*", where, limit, rows.execution_from_row)

    async def retry_history(self, execution_id: str) -> list[RetryRecord]:
        found = await self.db.fetch(
            "SELECT * FROM retry_history WHERE execution_id = $1 ORDER BY attempt, id",
            execution_id,
        )
        return [rows.retry_from_row(r, self._t) for r in found]

    # --- dead letter -----------------------------------------------------------
    async def get_dead_letter(
        self, dead_letter_id: str, owner_id: str | None = None
    ) -> DeadLetterJob | None:
        where = _Where()
        where.add("id = {}", dead_letter_id)
        if owner_id is not None:
            where.add("owner_id = {}", owner_id)
        row = await self.db.fetchrow(f"SELECT * FROM dead_letter_jobs{where.sql()}", *where.args)
        return rows.dead_letter_from_row(row, self._t) if row else None

    async def list_dead_letter(
        self, owner_id: str | None, limit: int, cursor: str | None = None
    ) -> Page[DeadLetterJob]:
        where = _Where()
        if owner_id is not None:
            where.add("owner_id = {}", owner_id)
        where.after(cursor)
        return await self._page("dead_letter_jobs", "*", where, limit, rows.dead_letter_from_row)

    async def delete_dead_letter(self, dead_letter_id: str, owner_id: str | None) -> bool:
        where = _Where()
        where.add("id = {}", dead_letter_id)
        if owner_id is not None:
            where.add("owner_id = {}", owner_id)
        return await self.db.execute(f"DELETE FROM dead_letter_jobs{where.sql()}", *where.args) > 0

    # --- refresh tokens --------------------------------------------------------
    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self.db.execute(
            "INSERT INTO refresh_tokens (id, user_id, token_hash, family_id, expires_at, "
            "created_at, used_at, revoked_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            token.id,
            token.user_id,
            token.token_hash,
            token.family_id,
            token.expires_at,
            token.created_at,
            token.used_at,
            token.revoked_at,
        )

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self.db.fetchrow(
            "SELECT * FROM refresh_tokens WHERE token_hash = $1", token_hash
        )
        return rows.refresh_token_from_row(row, self._t) if row else None

    async def spend_refresh_token(self, token_id: str, at: datetime) -> bool:
        changed = await self.db.execute(
            "UPDATE refresh_tokens SET used_at = $2 "
            "WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL",
            token_id,
            at,
        )
        return changed > 0

    async def revoke_token_family(self, family_id: str, at: datetime) -> None:
        await self.db.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
            family_id,
            at,
        )

    async def revoke_user_tokens(self, user_id: str, at: datetime) -> None:
        await self.db.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            user_id,
            at,
        )

    # --- settings, nodes, idempotency -----------------------------------------
    async def get_setting(self, key: str) -> str | None:
        row = await self.db.fetchrow("SELECT value FROM settings WHERE key = $1", key)
        return str(row["value"]) if row else None

    async def put_setting_if_absent(self, key: str, value: str) -> str:
        await self.db.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (key) DO NOTHING",
            key,
            value,
            utcnow(),
        )
        stored = await self.get_setting(key)
        return value if stored is None else stored

    async def upsert_node(self, node: Node) -> None:
        await self.db.execute(
            "INSERT INTO nodes (id, host, roles, version, started_at, last_heartbeat) "
            "VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (id) DO UPDATE SET "
            "last_heartbeat = excluded.last_heartbeat, roles = excluded.roles",
            node.id,
            node.host,
            ",".join(node.roles),
            node.version,
            node.started_at,
            node.last_heartbeat,
        )

    async def delete_node(self, node_id: str) -> None:
        await self.db.execute("DELETE FROM nodes WHERE id = $1", node_id)

    async def list_nodes(self, alive_since: datetime | None = None) -> list[Node]:
        if alive_since is None:
            found = await self.db.fetch("SELECT * FROM nodes ORDER BY started_at, id")
        else:
            found = await self.db.fetch(
                "SELECT * FROM nodes WHERE last_heartbeat >= $1 ORDER BY started_at, id",
                alive_since,
            )
        return [rows.node_from_row(r, self._t) for r in found]

    async def expire_nodes(self, before: datetime) -> int:
        return await self.db.execute("DELETE FROM nodes WHERE last_heartbeat < $1", before)

    async def get_idempotent(self, user_id: str, key: str) -> IdempotentResponse | None:
        row = await self.db.fetchrow(
            "SELECT fingerprint, status, body, created_at FROM idempotency_keys "
            "WHERE user_id = $1 AND key = $2",
            user_id,
            key,
        )
        if row is None:
            return None
        return IdempotentResponse(
            row["fingerprint"], row["status"], row["body"], self._t(row["created_at"])
        )

    async def put_idempotent(self, user_id: str, key: str, response: IdempotentResponse) -> bool:
        try:
            await self.db.execute(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, "
                "created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                user_id,
                key,
                response.fingerprint,
                response.status,
                response.body,
                response.created_at,
            )
        except DuplicateKey:
            return False
        return True

    async def finish_idempotent(self, user_id: str, key: str, status: int, body: str) -> None:
        await self.db.execute(
            "UPDATE idempotency_keys SET status = $3, body = $4 WHERE user_id = $1 AND key = $2",
            user_id,
            key,
            status,
            body,
        )

    async def drop_idempotent(self, user_id: str, key: str) -> None:
        await self.db.execute(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2", user_id, key
        )

    async def purge_idempotent(self, before: datetime) -> int:
        return await self.db.execute("DELETE FROM idempotency_keys WHERE created_at < $1", before)
