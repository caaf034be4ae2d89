"""`SqlStore`: the Store protocol on SQLite or PostgreSQL through one `Database` handle."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from taskflowd.audit.model import AuditEvent
from taskflowd.domain.entities import DeadLetterJob, Execution, Node, RetryRecord, Task, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from taskflowd.store import idempotency, pg_runs, rows
from taskflowd.store.base import (
    ExecutionFilter,
    IdempotencyClaim,
    IdempotentResponse,
    Page,
    Planner,
    TaskFilter,
    Then,
)
from taskflowd.store.db import Conn, Step, steps_in
from taskflowd.store.errors import NothingChanged
from taskflowd.store.idempotency import claim_step, replay, stored_response
from taskflowd.store.migrate import migrate
from taskflowd.store.outbox import Notice, Outbox, task_notice
from taskflowd.store.render import Shape, join_objects
from taskflowd.store.sql_accounts import AccountRecords
from taskflowd.store.sql_common import Where

_QUEUED = (ExecutionStatus.PENDING.value, ExecutionStatus.RETRYING.value)
_OPEN = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RETRYING, ExecutionStatus.PROCESSING})
_TASK_INSERT = (
    f"INSERT INTO tasks ({rows.TASK_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 26))})"
)
_RUN_INSERT = rows.EXECUTION_INSERT + pg_runs.CONFLICT


class SqlStore(AccountRecords):
    """Records in SQLite or PostgreSQL; see `taskflowd.store.base.Store` for the contract.

    With an `outbox`, creating, changing and deleting a task writes its `task.*` notice in
    the same transaction."""

    outbox: Outbox | None = None

    async def start(self) -> None:
        await self.db.connect()
        await migrate(self.db)

    async def stop(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        await self.db.fetchrow("SELECT 1 AS ok")

    async def _script(
        self,
        steps: list[Step],
        claim: IdempotencyClaim | None,
        then: Then | None = None,
        added: Sequence[Execution] = (),
    ) -> list[int]:
        """Run `steps` (led by `claim`'s step when there is one), then `then` with the
        executions `added` in the same transaction; a claim that finds its key taken
        raises the first request's Replay."""
        try:
            if then is None:
                return await self.db.script(steps)

            async def body(conn: Conn) -> list[int]:
                counts = await steps_in(conn, steps)
                await then(conn, added)
                return counts

            return await self.db.atomic(body)
        except NothingChanged as exc:
            if claim is None or exc.step != 0:
                raise
            raise await replay(self.db, claim) from None

    # --- tasks -----------------------------------------------------------------
    async def create_task(
        self,
        task: Task,
        first_run: Execution | None = None,
        claim: IdempotencyClaim | None = None,
        then: Then | None = None,
    ) -> Task:
        await self._write_tasks([(task, first_run)], claim, task, then)
        return task

    async def create_tasks(
        self,
        entries: Sequence[tuple[Task, Execution | None]],
        claim: IdempotencyClaim | None = None,
        then: Then | None = None,
    ) -> list[Task]:
        created = [task for task, _ in entries]
        await self._write_tasks(entries, claim, created, then)
        return created

    async def _write_tasks(
        self,
        entries: Sequence[tuple[Task, Execution | None]],
        claim: IdempotencyClaim | None,
        result: Any,
        then: Then | None,
    ) -> None:
        steps = [] if claim is None else [claim_step(claim, *claim.render(result), self._t)]
        steps.append(
            Step(_TASK_INSERT, [rows.task_values(t, self._t) for t, _ in entries], many=True)
        )
        runs = [run for _, run in entries if run is not None]
        if runs:
            values = [rows.execution_insert_values(r, r.scheduled_for, self._t) for r in runs]
            steps.append(Step(rows.EXECUTION_INSERT, values, many=True))
        if self.outbox is not None:
            notices = [task_notice("task.created", t, t.created_at) for t, _ in entries]
            step = self.outbox.step(notices)
            if step is not None:
                steps.append(step)
        await self._script(steps, claim, then, runs)

    async def add_runs(
        self,
        task_id: str,
        org_id: str | None,
        plan: Planner,
        claim: IdempotencyClaim | None = None,
        then: Then | None = None,
    ) -> tuple[list[Execution], list[Execution]]:
        async def body(
            conn: Conn,
        ) -> tuple[Sequence[Execution], Sequence[Execution], list[AuditEvent]]:
            where = self._one_task(task_id, org_id)
            sql = f"SELECT {rows.TASK_COLUMNS} FROM tasks{where.sql()}"
            if claim is not None and self.db.dialect == "postgresql":
                joined, args = idempotency.with_key(sql, where.args, claim)
                row = await conn.fetchrow(joined, *args)
                assert row is not None
                idempotency.refuse_found(row, claim, self._t)
                row = row if row["id"] is not None else None
            else:
                if claim is not None:
                    await idempotency.refuse_used(conn, claim, self._t)
                row = await conn.fetchrow(sql, *where.args)
            planned = plan(rows.task_from_row(row, self._t) if row else None)
            if self._folds(planned.runs):
                written = await pg_runs.write(conn, planned.runs, claim, planned.events, self._t)
                if then is not None:
                    await then(conn, planned.runs)
                return planned.runs, planned.runs, written
            result, inserted = await self._insert_runs(conn, planned.runs)
            if claim is not None:
                await idempotency.record(conn, claim, result, self._t)
            if then is not None:
                await then(conn, inserted)
            if (inserted or claim is not None) and planned.events:
                return result, inserted, await self.journal.append(conn, planned.events)
            return result, inserted, []

        result, inserted, written = await self.db.atomic(body)
        self.journal.appended(written)
        return list(result), list(inserted)

    def _folds(self, runs: Sequence[Execution]) -> bool:
        """Whether `pg_runs` writes these runs: on PostgreSQL, when none has a key of its
        own (a stored execution would then stand for it, read after the insert)."""
        return (
            self.db.dialect == "postgresql"
            and bool(runs)
            and not any(r.idempotency_key for r in runs)
        )

    async def _insert_runs(
        self, conn: Conn, runs: Sequence[Execution]
    ) -> tuple[list[Execution], list[Execution]]:
        """Insert runs of one task: (every execution in order, those inserted now)."""
        values = [rows.execution_insert_values(r, None, self._t) for r in runs]
        if self.db.dialect == "postgresql" and values:
            await conn.execute(pg_runs.INSERT_ARRAYS, *map(list, zip(*values, strict=True)))
        else:
            await conn.executemany(_RUN_INSERT, values)
        keys = [r.idempotency_key for r in runs if r.idempotency_key]
        if not keys:
            return list(runs), list(runs)
        found = await conn.fetch(
            f"SELECT * FROM job_executions WHERE task_id = $1 AND idempotency_key IN "
            f"({', '.join(f'${i}' for i in range(2, len(keys) + 2))})",
            runs[0].task_id,
            *keys,
        )
        stored = {r["idempotency_key"]: rows.execution_from_row(r, self._t) for r in found}
        result = [stored[r.idempotency_key] if r.idempotency_key else r for r in runs]
        inserted = [e for e, r in zip(result, runs, strict=True) if e.id == r.id]
        return result, inserted

    @staticmethod
    def _one_task(task_id: str, org_id: str | None) -> Where:
        where = Where()
        where.add("id = {}", task_id)
        where.clauses.append("deleted_at IS NULL AND workflow_id IS NULL")
        if org_id is not None:
            where.add("org_id = {}", org_id)
        return where

    async def get_task(self, task_id: str, org_id: str | None = None) -> Task | None:
        where = self._one_task(task_id, org_id)
        row = await self.db.fetchrow(
            f"SELECT {rows.TASK_COLUMNS} FROM tasks{where.sql()}", *where.args
        )
        return rows.task_from_row(row, self._t) if row else None

    async def get_task_json(self, task_id: str, org_id: str | None, shape: Shape) -> str | None:
        where = self._one_task(task_id, org_id)
        row = await self.db.fetchrow(
            f"SELECT {self._render(shape)} AS j FROM tasks{where.sql()}", *where.args
        )
        return None if row is None else self._opened(shape, row["j"])

    async def update_task(self, task: Task, expected_status: TaskStatus) -> Task | None:
        values = rows.task_values(task, self._t)
        update = Step(
            "UPDATE tasks SET name = $2, description = $3, type = $4, status = $5, handler = $6, "
            "payload = $7, cron_expression = $8, timezone = $9, scheduled_at = $10, "
            "delay_ms = $11, priority = $12, max_retries = $13, backoff_ms = $14, "
            "timeout_ms = $15, rate_limit = $16, concurrency = $17, misfire_policy = $18, "
            "updated_at = $19, next_run_at = $20 "
            "WHERE id = $1 AND deleted_at IS NULL AND status = $21",
            (*values[:18], task.updated_at, task.next_run_at, expected_status.value),
            required=True,
        )
        notice = self._notice_step([task_notice("task.updated", task, task.updated_at)])
        try:
            await self.db.script([update] if notice is None else [update, notice])
        except NothingChanged:
            return None
        return task

    def _notice_step(self, notices: Sequence[Notice]) -> Step | None:
        return None if self.outbox is None else self.outbox.step(notices)

    async def delete_task(self, task_id: str, org_id: str | None, at: datetime) -> bool:
        owner_clause = "" if org_id is None else " AND org_id = $3"
        owner_args = () if org_id is None else (org_id,)
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
                if self.outbox is not None:
                    await self._deleted_notice(conn, self.outbox, task_id, at)
        return changed > 0

    async def _deleted_notice(self, conn: Conn, outbox: Outbox, task_id: str, at: datetime) -> None:
        row = await conn.fetchrow(f"SELECT {rows.TASK_COLUMNS} FROM tasks WHERE id = $1", task_id)
        if row is not None:
            await outbox.write(
                conn, [task_notice("task.deleted", rows.task_from_row(row, self._t), at)]
            )

    @staticmethod
    def _tasks_where(filters: TaskFilter, cursor: str | None) -> Where:
        where = Where()
        # A workflow's backing task is not the user's task: it is reached through the workflow.
        where.clauses.append("deleted_at IS NULL AND workflow_id IS NULL")
        if filters.org_id is not None:
            where.add("org_id = {}", filters.org_id)
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
        return where

    async def list_tasks(
        self, filters: TaskFilter, limit: int, cursor: str | None = None
    ) -> Page[Task]:
        where = self._tasks_where(filters, cursor)
        return await self._page("tasks", rows.TASK_COLUMNS, where, limit, rows.task_from_row)

    async def list_tasks_json(
        self, filters: TaskFilter, shape: Shape, limit: int, cursor: str | None = None
    ) -> Page[str]:
        return await self._kept_json_page(
            ("tasks", filters, shape, limit, cursor),
            "tasks",
            shape,
            lambda: self._tasks_where(filters, cursor),
            limit,
        )

    # --- executions ------------------------------------------------------------
    @staticmethod
    def _one_execution(execution_id: str, org_id: str | None) -> Where:
        where = Where()
        where.add("id = {}", execution_id)
        if org_id is not None:
            where.add("org_id = {}", org_id)
        return where

    async def get_execution(self, execution_id: str, org_id: str | None = None) -> Execution | None:
        where = self._one_execution(execution_id, org_id)
        row = await self.db.fetchrow(f"SELECT * FROM job_executions{where.sql()}", *where.args)
        return rows.execution_from_row(row, self._t) if row else None

    async def get_execution_json(
        self, execution_id: str, org_id: str | None, shape: Shape, history: Shape
    ) -> str | None:
        where = self._one_execution(execution_id, org_id)
        row = await self.db.fetchrow(
            f"SELECT {self._render(shape)} AS j FROM job_executions{where.sql()}", *where.args
        )
        if row is None:
            return None
        found = await self.db.fetch(
            f"SELECT {self._render(history)} AS j FROM retry_history WHERE execution_id = $1 "
            "ORDER BY attempt, id",
            execution_id,
        )
        tries = join_objects(self._opened(history, r["j"]) for r in found)
        return f'{self._opened(shape, row["j"])[:-1]},"retryHistory":{tries}}}'

    @staticmethod
    def _executions_where(filters: ExecutionFilter, cursor: str | None) -> Where:
        where = Where()
        if filters.org_id is not None:
            where.add("org_id = {}", filters.org_id)
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
        return where

    async def list_executions(
        self, filters: ExecutionFilter, limit: int, cursor: str | None = None
    ) -> Page[Execution]:
        where = self._executions_where(filters, cursor)
        return await self._page("job_executions", "*", where, limit, rows.execution_from_row)

    async def list_executions_json(
        self, filters: ExecutionFilter, shape: Shape, limit: int, cursor: str | None = None
    ) -> Page[str]:
        where = self._executions_where(filters, cursor)
        return await self._json_page("job_executions", shape, where, limit)

    async def retry_history(self, execution_id: str) -> list[RetryRecord]:
        found = await self.db.fetch(
            "SELECT * FROM retry_history WHERE execution_id = $1 ORDER BY attempt, id",
            execution_id,
        )
        return [rows.retry_from_row(r, self._t) for r in found]

    # --- dead letter -----------------------------------------------------------
    async def get_dead_letter(
        self, dead_letter_id: str, org_id: str | None = None
    ) -> DeadLetterJob | None:
        where = Where()
        where.add("id = {}", dead_letter_id)
        if org_id is not None:
            where.add("org_id = {}", org_id)
        row = await self.db.fetchrow(f"SELECT * FROM dead_letter_jobs{where.sql()}", *where.args)
        return rows.dead_letter_from_row(row, self._t) if row else None

    @staticmethod
    def _dead_letter_where(org_id: str | None, cursor: str | None) -> Where:
        where = Where()
        if org_id is not None:
            where.add("org_id = {}", org_id)
        where.after(cursor)
        return where

    async def list_dead_letter(
        self, org_id: str | None, limit: int, cursor: str | None = None
    ) -> Page[DeadLetterJob]:
        where = self._dead_letter_where(org_id, cursor)
        return await self._page("dead_letter_jobs", "*", where, limit, rows.dead_letter_from_row)

    async def list_dead_letter_json(
        self, org_id: str | None, shape: Shape, limit: int, cursor: str | None = None
    ) -> Page[str]:
        where = self._dead_letter_where(org_id, cursor)
        return await self._json_page("dead_letter_jobs", shape, where, limit)

    async def delete_dead_letter(self, dead_letter_id: str, org_id: str | None) -> bool:
        where = Where()
        where.add("id = {}", dead_letter_id)
        if org_id is not None:
            where.add("org_id = {}", org_id)
        return await self.db.execute(f"DELETE FROM dead_letter_jobs{where.sql()}", *where.args) > 0

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

    async def get_idempotent(
        self, org_id: str, user_id: str, key: str
    ) -> IdempotentResponse | None:
        return await stored_response(self.db, org_id, user_id, key)

    async def purge_idempotent(self, before: datetime) -> int:
        return await self.db.execute("DELETE FROM idempotency_keys WHERE created_at < $1", before)
