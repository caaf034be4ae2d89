"""Workflows and their runs in SQLite or PostgreSQL; every change to a run's steps goes
through `RunProgress`, in one transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from taskflowd.domain.entities import Task
from taskflowd.domain.enums import (
    ExecutionStatus,
    MisfirePolicy,
    RunStatus,
    TaskStatus,
    WorkflowStatus,
)
from taskflowd.domain.ids import new_run_id
from taskflowd.store import idempotency, rows
from taskflowd.store.base import IdempotencyClaim, Page, Then
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Conn, Database, Row
from taskflowd.store.errors import NothingChanged
from taskflowd.store.sql_common import SqlRecords, Where
from taskflowd.workflows.model import StepRun, Workflow, WorkflowRun, steps_from_json, steps_to_json
from taskflowd.workflows.progress import Advanced, RunProgress
from taskflowd.workflows.rules import StepState, StepView

COLUMNS = (
    "id, name, description, steps, status, task_id, cron_expression, timezone, "
    "misfire_policy, next_run_at, created_by, org_id, created_at, updated_at"
)
RUN_COLUMNS = "id, workflow_id, owner_id, org_id, status, created_at, started_at, finished_at"
_TASK_INSERT = (
    f"INSERT INTO tasks ({rows.TASK_COLUMNS}, workflow_id) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, rows.TASK_COLUMNS.count(',') + 3))})"
)


def workflow_from_row(row: Row, t: RowCodec) -> Workflow:
    return Workflow(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        steps=steps_from_json(t.load(row["steps"])),
        status=WorkflowStatus(row["status"]),
        task_id=row["task_id"],
        cron_expression=row["cron_expression"],
        timezone=row["timezone"],
        misfire_policy=MisfirePolicy(row["misfire_policy"]),
        next_run_at=None if row["next_run_at"] is None else t(row["next_run_at"]),
        created_by=row["created_by"],
        org_id=row["org_id"],
        created_at=t(row["created_at"]),
        updated_at=t(row["updated_at"]),
    )


def run_from_row(row: Row, t: RowCodec) -> WorkflowRun:
    return WorkflowRun(
        id=row["id"],
        workflow_id=row["workflow_id"],
        owner_id=row["owner_id"],
        org_id=row["org_id"],
        status=RunStatus(row["status"]),
        created_at=t(row["created_at"]),
        started_at=None if row["started_at"] is None else t(row["started_at"]),
        finished_at=None if row["finished_at"] is None else t(row["finished_at"]),
    )


class WorkflowRecords(SqlRecords):
    """Workflow and run records; `org_id` None means every org (a site admin across orgs)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.progress = RunProgress(db)

    # --- workflows -------------------------------------------------------------------
    async def create(
        self, workflow: Workflow, task: Task, claim: IdempotencyClaim | None = None
    ) -> Workflow:
        """Insert the workflow and its hidden backing task together (and `claim`'s key:
        a key used before raises the first request's Replay instead)."""
        try:
            async with self.db.transaction() as conn:
                if claim is not None:
                    await idempotency.hold(conn, claim, self._t)
                await conn.execute(_TASK_INSERT, *rows.task_values(task, self._t), workflow.id)
                await conn.execute(
                    f"INSERT INTO workflows ({COLUMNS}) VALUES "
                    f"({', '.join(f'${i}' for i in range(1, 15))})",
                    *self._values(workflow),
                )
                if claim is not None:
                    await idempotency.keep(conn, claim, workflow, self._t)
        except NothingChanged:
            assert claim is not None
            raise await idempotency.replay(self.db, claim) from None
        return workflow

    def _values(self, w: Workflow) -> tuple[object, ...]:
        return (
            w.id,
            w.name,
            w.description,
            self._t.dump(steps_to_json(w.steps)),
            w.status.value,
            w.task_id,
            w.cron_expression,
            w.timezone,
            w.misfire_policy.value,
            w.next_run_at,
            w.created_by,
            w.org_id,
            w.created_at,
            w.updated_at,
        )

    @staticmethod
    def _one(workflow_id: str, org_id: str | None) -> Where:
        where = Where()
        where.add("id = {}", workflow_id)
        where.clauses.append("deleted_at IS NULL")
        if org_id is not None:
            where.add("org_id = {}", org_id)
        return where

    async def get(self, workflow_id: str, org_id: str | None) -> Workflow | None:
        where = self._one(workflow_id, org_id)
        row = await self.db.fetchrow(f"SELECT {COLUMNS} FROM workflows{where.sql()}", *where.args)
        return None if row is None else workflow_from_row(row, self._t)

    async def list_workflows(
        self, org_id: str | None, limit: int, cursor: str | None
    ) -> Page[Workflow]:
        where = Where()
        where.clauses.append("deleted_at IS NULL")
        if org_id is not None:
            where.add("org_id = {}", org_id)
        where.after(cursor)
        return await self._page("workflows", COLUMNS, where, limit, workflow_from_row)

    async def update(self, workflow: Workflow) -> Workflow | None:
        """Save changed fields; the backing task is paused or resumed with the workflow,
        so the steps of its runs wait while it is paused."""
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE workflows SET name = $2, description = $3, steps = $4, status = $5, "
                "cron_expression = $6, timezone = $7, misfire_policy = $8, next_run_at = $9, "
                "updated_at = $10 WHERE id = $1 AND org_id = $11 AND deleted_at IS NULL",
                workflow.id,
                workflow.name,
                workflow.description,
                self._t.dump(steps_to_json(workflow.steps)),
                workflow.status.value,
                workflow.cron_expression,
                workflow.timezone,
                workflow.misfire_policy.value,
                workflow.next_run_at,
                workflow.updated_at,
                workflow.org_id,
            )
            if not changed:
                return None
            paused = workflow.status is WorkflowStatus.PAUSED
            await conn.execute(
                "UPDATE tasks SET status = $1, updated_at = $2 WHERE id = $3",
                (TaskStatus.PAUSED if paused else TaskStatus.ACTIVE).value,
                workflow.updated_at,
                workflow.task_id,
            )
        return workflow

    async def delete(self, workflow_id: str, org_id: str | None, at: datetime) -> list[str] | None:
        """Soft-delete a workflow and its backing task and cancel its running runs;
        returns the ids of their executions still queued or running (for the queue to
        cancel), or None when the workflow is not found."""
        async with self.db.transaction() as conn:
            where = self._one(workflow_id, org_id)
            row = await conn.fetchrow(f"SELECT task_id FROM workflows{where.sql()}", *where.args)
            if row is None:
                return None
            await conn.execute(
                "UPDATE workflows SET deleted_at = $1, updated_at = $1, next_run_at = NULL "
                "WHERE id = $2",
                at,
                workflow_id,
            )
            await conn.execute(
                "UPDATE tasks SET deleted_at = $1, updated_at = $1 WHERE id = $2",
                at,
                row["task_id"],
            )
            live: list[str] = []
            running = await conn.fetch(
                "SELECT id FROM workflow_runs WHERE workflow_id = $1 AND status = $2",
                workflow_id,
                RunStatus.RUNNING.value,
            )
            for run in running:
                locked = await self.progress.lock_run(conn, run["id"])
                if locked is not None:
                    live += await self.progress.cancel(conn, locked)
        return live

    # --- schedules -----------------------------------------------------------------------
    async def due(self, horizon: datetime, limit: int) -> list[Workflow]:
        """Active scheduled workflows whose `next_run_at` is at or before `horizon`."""
        found = await self.db.fetch(
            f"SELECT {COLUMNS} FROM workflows WHERE deleted_at IS NULL AND status = $1 "
            "AND next_run_at <= $2 ORDER BY next_run_at LIMIT $3",
            WorkflowStatus.ACTIVE.value,
            horizon,
            limit,
        )
        return [workflow_from_row(r, self._t) for r in found]

    async def next_tick_at(self) -> datetime | None:
        row = await self.db.fetchrow(
            "SELECT MIN(next_run_at) AS due FROM workflows WHERE deleted_at IS NULL "
            "AND status = $1",
            WorkflowStatus.ACTIVE.value,
        )
        return self._t(row["due"]) if row and row["due"] is not None else None

    async def fire_ticks(
        self,
        workflow: Workflow,
        ticks: Sequence[datetime],
        following: datetime,
        at: datetime,
    ) -> Advanced | None:
        """Start one run per tick and advance `next_run_at` to `following`, atomically, if
        `next_run_at` still is what `workflow` says (else another node won: None). A
        tick's run exists at most once whatever happens (unique (workflow, tick))."""
        done = Advanced([], [])
        async with self.db.transaction() as conn:
            advanced = await conn.execute(
                "UPDATE workflows SET next_run_at = $1 WHERE id = $2 AND next_run_at = $3 "
                "AND deleted_at IS NULL AND status = $4",
                following,
                workflow.id,
                workflow.next_run_at,
                WorkflowStatus.ACTIVE.value,
            )
            if not advanced:
                return None
            row = await conn.fetchrow(
                "SELECT id, created_by, org_id, task_id, steps FROM workflows WHERE id = $1",
                workflow.id,
            )
            assert row is not None  # the update above found it in this transaction
            for tick in ticks:
                started = await self.progress.start(conn, new_run_id(), row, at, tick)
                done.spawned += started.spawned
                done.finished += started.finished
        return done

    # --- runs --------------------------------------------------------------------------
    async def start_run(
        self,
        workflow_id: str,
        org_id: str | None,
        run_id: str,
        at: datetime,
        claim: IdempotencyClaim | None = None,
        then: Then | None = None,
    ) -> Advanced | None:
        """Insert a run and queue its root steps, then call `then` with those steps in the
        same transaction; None when the workflow is gone. With `claim`, the run as it
        stands at the commit is the response kept for the key."""
        try:
            async with self.db.transaction() as conn:
                if claim is not None:
                    await idempotency.hold(conn, claim, self._t)
                where = self._one(workflow_id, org_id)
                row = await conn.fetchrow(
                    f"SELECT id, created_by, org_id, task_id, steps FROM workflows{where.sql()}",
                    *where.args,
                )
                if row is None:
                    return None
                started = await self.progress.start(conn, run_id, row, at, None)
                if then is not None:
                    await then(conn, started.spawned)
                if claim is not None:
                    await idempotency.keep(conn, claim, await self._read_run(conn, run_id), self._t)
                return started
        except NothingChanged:
            assert claim is not None
            raise await idempotency.replay(self.db, claim) from None

    async def get_run(self, run_id: str, org_id: str | None) -> WorkflowRun | None:
        return await self._read_run(self.db, run_id, org_id)

    async def _read_run(
        self, conn: Conn, run_id: str, org_id: str | None = None
    ) -> WorkflowRun | None:
        where = Where()
        where.add("id = {}", run_id)
        if org_id is not None:
            where.add("org_id = {}", org_id)
        row = await conn.fetchrow(
            f"SELECT {RUN_COLUMNS}, steps FROM workflow_runs{where.sql()}", *where.args
        )
        if row is None:
            return None
        run = run_from_row(row, self._t)
        views, executions = await self.progress.views(conn, run_id)
        by_step = {e["step_key"]: e for e in executions}
        specs = steps_from_json(self._t.load(row["steps"]))
        steps = []
        for spec in specs:
            steps.append(self._step_run(spec.key, views.get(spec.key), by_step.get(spec.key), run))
        return dataclasses.replace(run, steps=tuple(steps), graph=specs)

    def _step_run(
        self, key: str, view: StepView | None, e: Row | None, run: WorkflowRun
    ) -> StepRun:
        if view is not None and view.state is StepState.SKIPPED:
            cause = None if view.cause is None else view.cause.value
            return StepRun(key, "SKIPPED", skip_cause=cause)
        if e is None or view is None:
            ended = run.status is not RunStatus.RUNNING
            status = "SKIPPED" if ended else ExecutionStatus.PENDING.value
            return StepRun(key, status)
        t = self._t
        return StepRun(
            key=key,
            status=e["status"],
            execution_id=e["id"],
            attempts=e["attempts"],
            result=self._t.load(e["result"]),
            error=self._t.load(e["error"]),
            started_at=None if e["started_at"] is None else t(e["started_at"]),
            finished_at=None if e["completed_at"] is None else t(e["completed_at"]),
        )

    async def list_runs(
        self, org_id: str | None, workflow_id: str | None, limit: int, cursor: str | None
    ) -> Page[WorkflowRun]:
        where = Where()
        if org_id is not None:
            where.add("org_id = {}", org_id)
        if workflow_id is not None:
            where.add("workflow_id = {}", workflow_id)
        where.after(cursor)
        return await self._page("workflow_runs", RUN_COLUMNS, where, limit, run_from_row)

    async def cancel_run(
        self, run_id: str, org_id: str | None
    ) -> tuple[list[str], Advanced] | None:
        """Cancel a run; (the ids of its executions to cancel, the run if it ended now),
        or None when not found."""
        done = Advanced([], [])
        async with self.db.transaction() as conn:
            run = await self.progress.lock_run(conn, run_id, org_id)
            if run is None:
                return None
            live = await self.progress.cancel(conn, run)
            if run["status"] == RunStatus.RUNNING.value:
                await self.progress.advance(conn, run_id, done)
        return live, done

    async def retry_run(
        self, run_id: str, org_id: str | None, then: Then | None = None
    ) -> tuple[str, Advanced, WorkflowRun] | None:
        """Re-run the failed steps of a failed run, then call `then` with the steps queued
        in the same transaction; (the run's status before, what was queued, the run as the
        retry left it), or None when not found. Only a FAILED run changes. The run is read
        in the retry's transaction: once it commits, a worker may run the queued steps
        before anyone reads the run again."""
        async with self.db.transaction() as conn:
            run = await self.progress.lock_run(conn, run_id, org_id)
            if run is None:
                return None
            advanced = Advanced([], [])
            if run["status"] == RunStatus.FAILED.value:
                advanced = await self.progress.retry(conn, run)
            after = await self._read_run(conn, run_id)
            assert after is not None  # locked above
            if then is not None:
                await then(conn, advanced.spawned)
            return run["status"], advanced, after
