"""Advancing workflow runs inside the transactions that change their steps.

`RunProgress.advance` is the queue's final-outcome hook: called in the transaction that
records the end of step executions, it locks each affected run (PostgreSQL row lock;
SQLite has one writer), decides the steps whose upstream steps are now all done, records
each decision under the (run, step) primary key and creates (or, after a retry, queues
again) the executions of the steps that run. Two nodes ending two upstream steps at once
are serialised by the run's lock, so the last of them sees both ends and decides the
child exactly once; a crash rolls back the end and its children together.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskflowd.domain.entities import JSON, Execution, utcnow
from taskflowd.domain.enums import ExecutionStatus, RunStatus
from taskflowd.domain.errors import Conflict
from taskflowd.domain.ids import new_execution_id
from taskflowd.domain.jobs import step_job_id
from taskflowd.store import rows
from taskflowd.store.db import Conn, Database, Row
from taskflowd.store.outbox import Notice, Outbox, iso
from taskflowd.workflows.graph import Graph, StepSpec, build
from taskflowd.workflows.model import steps_from_json
from taskflowd.workflows.rules import (
    UNDECIDED,
    SkipCause,
    StepState,
    StepView,
    advance,
    downstream_of,
    retry_set,
    run_status,
)

_STATE = {
    ExecutionStatus.COMPLETED.value: StepState.SUCCEEDED,
    ExecutionStatus.FAILED.value: StepState.FAILED,
    ExecutionStatus.CANCELLED.value: StepState.CANCELLED,
}
_LIVE = (
    ExecutionStatus.PENDING.value,
    ExecutionStatus.RETRYING.value,
    ExecutionStatus.PROCESSING.value,
)
_EXECUTION_COLUMNS = "id, step_key, status, result, error, attempts, started_at, completed_at"
"""What a run's page shows of each step's execution."""
_STATE_COLUMNS = "step_key, status, result"
"""What deciding a run's steps reads of each step's execution."""
_BARE = {state: StepView(state) for state in StepState}
"""A view without a result for each state (views are immutable: one of each serves all)."""
_INSERT_COUNT = rows.EXECUTION_INSERT_COLUMNS.count(",") + 3
_INSERT_ROWS = 100
"""New step executions per INSERT statement (a few thousand parameters at most)."""
_DECIDE = (
    "INSERT INTO workflow_steps (run_id, step_key, decision, skip_cause, decided_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
)
_SET_STATUS = (
    "UPDATE workflow_runs SET status = $1, finished_at = $2, updated_at = $3 WHERE id = $4"
)
_RUN_COLUMNS = "id, workflow_id, task_id, owner_id, org_id, steps, status, cancelled, created_at"
_REQUEUE = (
    "UPDATE job_executions SET status = $1, run_at = $2, updated_at = $2, payload = $3, "
    "completed_at = NULL, result = NULL, rescues = 0, cancel_requested = $4, "
    "lease_owner = NULL, lease_expires_at = NULL "
    "WHERE workflow_run_id = $5 AND step_key = $6 AND status IN ($7, $8) RETURNING *"
)


@dataclass(frozen=True, slots=True)
class Finished:
    """A run that reached a final status in this transaction."""

    run_id: str
    workflow_id: str
    owner_id: str
    status: RunStatus
    created_at: datetime
    finished_at: datetime
    org_id: str


@dataclass(slots=True)
class Advanced:
    """What one transaction did to runs: executions to announce, runs that finished."""

    spawned: list[Execution]
    finished: list[Finished]


@dataclass(slots=True)
class _Writes:
    """What the runs advanced together write, one statement for each kind."""

    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    executions: list[tuple[Execution, str, str]] = field(default_factory=list)
    """(execution, run id, step key)"""
    statuses: list[tuple[Any, ...]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


@functools.lru_cache(maxsize=_INSERT_ROWS)
def _insert_sql(count: int) -> str:
    """An INSERT of `count` step executions, returning the ids of those inserted."""
    groups = ", ".join(
        "(" + ", ".join(f"${row * _INSERT_COUNT + i}" for i in range(1, _INSERT_COUNT + 1)) + ")"
        for row in range(count)
    )
    return (
        f"INSERT INTO job_executions ({rows.EXECUTION_INSERT_COLUMNS}, workflow_run_id, "
        f"step_key) VALUES {groups} ON CONFLICT DO NOTHING RETURNING id"
    )


class RunProgress:
    """Decides and enqueues the steps of workflow runs (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._t = db.codec
        self._lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
        self._graphs: dict[str, Graph] = {}
        self.outbox: Outbox | None = None
        """Writes `workflow_run.finished` notices in the transaction that ends a run."""
        self.plain_payload: frozenset[str] = frozenset()
        """Handlers that run a step on its own payload rather than the §9 envelope."""

    def _graph(self, steps_json: str) -> Graph:
        graph = self._graphs.get(steps_json)
        if graph is None:
            if len(self._graphs) > 256:
                self._graphs.clear()
            graph = build(steps_from_json(self._t.load(steps_json)))
            self._graphs[steps_json] = graph
        return graph

    async def on_final(self, conn: Conn, execution_ids: Sequence[str]) -> Advanced:
        """The queue's hook: advance the runs of these executions, which just ended. The
        runs are locked in id order and advanced together: a batch of step ends costs a
        handful of statements, however many runs it touches."""
        done = Advanced([], [])
        if not execution_ids:
            return done
        # PostgreSQL takes the ids as one array: one prepared statement for every batch
        # size (every outcome batch of every job passes here, a workflow step or not).
        args: list[Any]
        if self._lock:
            ids, args = "= ANY($1::text[])", [list(execution_ids)]
        else:
            ids = "IN (" + ", ".join(f"${i}" for i in range(1, len(execution_ids) + 1)) + ")"
            args = list(execution_ids)
        runs = await conn.fetch(
            f"SELECT {_RUN_COLUMNS} FROM workflow_runs WHERE id IN (SELECT workflow_run_id "
            f"FROM job_executions WHERE id {ids} AND workflow_run_id IS NOT NULL) "
            f"ORDER BY id{self._lock}",
            *args,
        )
        if runs:
            await self._advance_runs(conn, runs, done)
        return done

    async def lock_run(self, conn: Conn, run_id: str, org_id: str | None = None) -> Row | None:
        org = "" if org_id is None else " AND org_id = $2"
        args = () if org_id is None else (org_id,)
        return await conn.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM workflow_runs WHERE id = $1{org}{self._lock}",
            run_id,
            *args,
        )

    async def views(self, conn: Conn, run_id: str) -> tuple[dict[str, StepView], list[Row]]:
        """Each decided step's view (a step with no decision row is undecided), and the
        run's execution rows."""
        decided, executions = await self._step_rows(conn, [run_id], _EXECUTION_COLUMNS)
        found = executions.get(run_id, [])
        return self._views(decided.get(run_id, []), found, None), found

    async def _step_rows(
        self, conn: Conn, run_ids: Sequence[str], columns: str
    ) -> tuple[dict[str, list[Row]], dict[str, list[Row]]]:
        """The decision rows and execution rows (`columns` of them) of each of `run_ids`,
        in two queries."""
        marks = ", ".join(f"${i}" for i in range(1, len(run_ids) + 1))
        decided: dict[str, list[Row]] = {}
        for d in await conn.fetch(
            "SELECT run_id, step_key, decision, skip_cause FROM workflow_steps "
            f"WHERE run_id IN ({marks})",
            *run_ids,
        ):
            decided.setdefault(d["run_id"], []).append(d)
        executions: dict[str, list[Row]] = {}
        for e in await conn.fetch(
            f"SELECT workflow_run_id, {columns} FROM job_executions "
            f"WHERE workflow_run_id IN ({marks})",
            *run_ids,
        ):
            executions.setdefault(e["workflow_run_id"], []).append(e)
        return decided, executions

    def _views(
        self, decided: Sequence[Row], executions: Sequence[Row], graph: Graph | None
    ) -> dict[str, StepView]:
        """The views of `views`. With `graph`, only the results a `when` condition of an
        undecided step can read (those of its upstream steps) are decoded: trigger rules
        read states alone, and the payloads of the steps decided now take their upstream
        results from the rows (`_payload`)."""
        needed: set[str] | None = None
        if graph is not None:
            keys = {d["step_key"] for d in decided}
            needed = {
                u
                for s in graph.steps
                if s.when is not None and s.key not in keys
                for u in s.depends_on
            }
        by_step = {e["step_key"]: e for e in executions}
        views: dict[str, StepView] = {}
        for d in decided:
            if d["decision"] == "SKIPPED":
                views[d["step_key"]] = StepView(StepState.SKIPPED, cause=SkipCause(d["skip_cause"]))
                continue
            e = by_step.get(d["step_key"])
            state = StepState.QUEUED if e is None else _STATE.get(e["status"], StepState.QUEUED)
            if e is not None and (needed is None or d["step_key"] in needed):
                views[d["step_key"]] = StepView(state, self._t.load(e["result"]))
            else:
                views[d["step_key"]] = _BARE[state]
        return views

    async def advance(
        self, conn: Conn, run_id: str, done: Advanced, run: Row | None = None
    ) -> None:
        """Decide what can be decided in run `run_id` and settle its status."""
        run = run or await self.lock_run(conn, run_id)
        if run is not None:
            await self._advance_runs(conn, [run], done)

    async def _advance_runs(self, conn: Conn, runs: Sequence[Row], done: Advanced) -> None:
        """`advance` for each of `runs` (rows the caller locked): their steps read in two
        queries; their decisions, new executions, statuses and notices written in one
        statement each."""
        decided, executions = await self._step_rows(conn, [r["id"] for r in runs], _STATE_COLUMNS)
        now = utcnow()
        writes = _Writes()
        for run in runs:
            found = executions.get(run["id"], [])
            await self._advance_one(conn, run, decided.get(run["id"], []), found, now, writes, done)
        if writes.decisions:
            await conn.executemany(_DECIDE, writes.decisions)
        if writes.statuses:
            await conn.executemany(_SET_STATUS, writes.statuses)
        if writes.notices and self.outbox is not None:
            await self.outbox.write(conn, writes.notices)
        for start in range(0, len(writes.executions), _INSERT_ROWS):
            chunk = writes.executions[start : start + _INSERT_ROWS]
            values = [
                v
                for execution, run_id, key in chunk
                for v in (*rows.execution_insert_values(execution, None, self._t), run_id, key)
            ]
            inserted = {r["id"] for r in await conn.fetch(_insert_sql(len(chunk)), *values)}
            done.spawned.extend(e for e, _, _ in chunk if e.id in inserted)

    async def _advance_one(
        self,
        conn: Conn,
        run: Row,
        decided: Sequence[Row],
        executions: Sequence[Row],
        now: datetime,
        writes: _Writes,
        done: Advanced,
    ) -> None:
        run_id = run["id"]
        graph = self._graph(run["steps"])
        views = self._views(decided, executions, graph)
        by_step = {e["step_key"]: e for e in executions}
        cancelled = bool(run["cancelled"])
        for decision in [] if cancelled else advance(graph, views):
            step = graph.by_key[decision.key]
            if decision.skip is not None:
                views[step.key] = StepView(StepState.SKIPPED, cause=decision.skip)
                writes.decisions.append((run_id, step.key, "SKIPPED", decision.skip.value, now))
                continue
            views[step.key] = _BARE[StepState.QUEUED]
            writes.decisions.append((run_id, step.key, "RUN", None, now))
            payload = self._payload(step, views, by_step)
            if step.key in by_step:
                requeued = await self._requeue(conn, run_id, step, payload, now)
                if requeued is not None:
                    done.spawned.append(requeued)
                continue
            writes.executions.append((self._execution(run, step, payload, now), run_id, step.key))
        status = run_status(graph, views, cancelled)
        if status.value != run["status"]:
            final = status is not RunStatus.RUNNING
            writes.statuses.append((status.value, now if final else None, now, run_id))
            if final:
                created = self._t(run["created_at"])
                writes.notices.append(_finished_notice(run, status, created, now))
                done.finished.append(
                    Finished(
                        run_id,
                        run["workflow_id"],
                        run["owner_id"],
                        status,
                        created,
                        now,
                        run["org_id"],
                    )
                )

    def _payload(
        self, step: StepSpec, views: dict[str, StepView], executions: dict[str, Row]
    ) -> Any:
        """What the step's execution receives: the §9 envelope with its upstream steps'
        results (decoded from their rows in `executions`; a skipped step has none), or for
        a plain-payload handler its own payload."""
        # A step without a payload runs a plain-payload handler on an empty object.
        payload: Any = {} if step.payload is None else step.payload
        if step.handler not in self.plain_payload:
            upstream = {d: self._result(d, views, executions) for d in step.depends_on}
            payload = {"payload": step.payload, "upstream": upstream}
        return payload

    def _result(self, key: str, views: dict[str, StepView], executions: dict[str, Row]) -> JSON:
        view, row = views[key], executions.get(key)
        if view.result is not None or row is None or view.state is StepState.SKIPPED:
            return view.result
        return self._t.load(row["result"])

    async def _requeue(
        self, conn: Conn, run_id: str, step: StepSpec, payload: Any, now: datetime
    ) -> Execution | None:
        """The step's failed execution in this run queued again (retry), if there is one."""
        requeued = await conn.fetchrow(
            _REQUEUE,
            ExecutionStatus.PENDING.value,
            now,
            self._t.dump(payload),
            False,
            run_id,
            step.key,
            ExecutionStatus.FAILED.value,
            ExecutionStatus.CANCELLED.value,
        )
        if requeued is None:
            return None
        await conn.execute("DELETE FROM dead_letter_jobs WHERE execution_id = $1", requeued["id"])
        return rows.execution_from_row(requeued, self._t)

    def _execution(self, run: Row, step: StepSpec, payload: Any, now: datetime) -> Execution:
        return Execution(
            id=new_execution_id(),
            task_id=run["task_id"],
            job_id=step_job_id(run["task_id"], run["id"], step.key),
            owner_id=run["owner_id"],
            org_id=run["org_id"],
            status=ExecutionStatus.PENDING,
            scheduled_for=now,
            run_at=now,
            priority=step.priority,
            attempts=0,
            handler=step.handler,
            payload=payload,
            max_retries=step.max_retries,
            backoff_ms=step.backoff_ms,
            timeout_ms=step.timeout_ms,
            created_at=now,
            updated_at=now,
        )

    async def reopen(self, conn: Conn, execution_id: str) -> None:
        """A step's execution leaves the dead-letter queue to run again: its run is
        RUNNING again and the steps downstream of it that were skipped because of its
        failure are undecided, so its end decides them anew (as a run retry would).
        Refused (Conflict) for a step of a cancelled run, which starts nothing more."""
        found = await conn.fetchrow(
            "SELECT workflow_run_id, step_key FROM job_executions WHERE id = $1", execution_id
        )
        if found is None or found["workflow_run_id"] is None:
            return
        run = await self.lock_run(conn, found["workflow_run_id"])
        if run is None:
            return
        if run["cancelled"]:
            raise Conflict(
                "this step belongs to a cancelled workflow run, which starts nothing more"
            )
        graph = self._graph(run["steps"])
        views, _ = await self.views(conn, run["id"])
        again = sorted(
            key
            for key in downstream_of(graph, found["step_key"])
            if views.get(key, UNDECIDED).cause is SkipCause.FAILURE
        )
        if again:
            marks = ", ".join(f"${i}" for i in range(2, len(again) + 2))
            await conn.execute(
                f"DELETE FROM workflow_steps WHERE run_id = $1 AND step_key IN ({marks})",
                run["id"],
                *again,
            )
        await conn.execute(
            "UPDATE workflow_runs SET status = $1, finished_at = NULL, updated_at = $2 "
            "WHERE id = $3",
            RunStatus.RUNNING.value,
            utcnow(),
            run["id"],
        )

    # --- user actions on runs ------------------------------------------------------
    async def start(
        self, conn: Conn, run_id: str, workflow: Row, at: datetime, tick_at: datetime | None
    ) -> Advanced:
        """Insert a run of `workflow` (its row) and queue its root steps."""
        inserted = await conn.execute(
            "INSERT INTO workflow_runs (id, workflow_id, owner_id, org_id, task_id, steps, "
            "status, cancelled, tick_at, created_at, started_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10) ON CONFLICT DO NOTHING",
            run_id,
            workflow["id"],
            workflow["created_by"],
            workflow["org_id"],
            workflow["task_id"],
            workflow["steps"],
            RunStatus.RUNNING.value,
            False,
            tick_at,
            at,
        )
        done = Advanced([], [])
        if inserted:
            await self.advance(conn, run_id, done)
        return done

    async def cancel(self, conn: Conn, run: Row) -> list[str]:
        """Mark a running run cancelled (no step starts from now on); returns the ids of
        its executions still queued or running, for the queue to cancel."""
        if run["status"] != RunStatus.RUNNING.value:
            return []
        await conn.execute(
            "UPDATE workflow_runs SET cancelled = $1, updated_at = $2 WHERE id = $3",
            True,
            utcnow(),
            run["id"],
        )
        _, executions = await self.views(conn, run["id"])
        return [e["id"] for e in executions if e["status"] in _LIVE]

    async def retry(self, conn: Conn, run: Row) -> Advanced:
        """Undecide the failed steps of a failed run and those skipped because of them,
        then queue again those whose upstream steps are done."""
        graph = self._graph(run["steps"])
        views, _ = await self.views(conn, run["id"])
        again = sorted(retry_set(graph, views))
        if again:
            marks = ", ".join(f"${i}" for i in range(2, len(again) + 2))
            await conn.execute(
                f"DELETE FROM workflow_steps WHERE run_id = $1 AND step_key IN ({marks})",
                run["id"],
                *again,
            )
        await conn.execute(
            "UPDATE workflow_runs SET status = $1, finished_at = NULL, updated_at = $2 "
            "WHERE id = $3",
            RunStatus.RUNNING.value,
            utcnow(),
            run["id"],
        )
        done = Advanced([], [])
        fresh = await self.lock_run(conn, run["id"])
        await self.advance(conn, run["id"], done, fresh)
        return done


def _finished_notice(run: Row, status: RunStatus, created: datetime, at: datetime) -> Notice:
    data: dict[str, JSON] = {
        "id": run["id"],
        "workflowId": run["workflow_id"],
        "status": status.value,
        "createdAt": iso(created),
        "finishedAt": iso(at),
    }
    return Notice(
        "workflow_run.finished", data, at, org_id=run["org_id"], workflow_id=run["workflow_id"]
    )
