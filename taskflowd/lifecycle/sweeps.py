"""What pruning deletes, table by table, and how one batch of it is deleted.

Each sweep walks an index on a time column in order (`mark`), reading a batch of
candidate keys outside any transaction, then deletes those of them that are still
eligible in one short transaction: a row that changed in between (a dead letter retried,
a task revived) is left alone, and no claim ever waits on more than one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from taskflowd.store.db import Conn, Database

# Conditions checked on rows already found by primary key. `{x}` before a column is
# SQLite's unary plus (nothing on PostgreSQL): it keeps the planner from walking an index
# on that column (e.g. every COMPLETED execution by status) instead of the batch's keys.
_FINISHED_EXECUTION = (
    "{x}status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND {x}completed_at < $1 "
    "AND NOT EXISTS (SELECT 1 FROM dead_letter_jobs d WHERE d.execution_id = job_executions.id)"
)
_FINISHED_TASK = (
    "(({x}type IN ('ONE_TIME', 'DELAYED') AND {x}status IN ('COMPLETED', 'FAILED') "
    "AND {x}updated_at < $1) OR ({x}deleted_at IS NOT NULL AND {x}deleted_at < $1)) "
    "AND NOT EXISTS (SELECT 1 FROM job_executions e WHERE e.task_id = tasks.id) "
    "AND NOT EXISTS (SELECT 1 FROM dead_letter_jobs d WHERE d.task_id = tasks.id)"
)
# A run goes once it finished before the cutoff and its step executions are gone (they
# follow the executions' own retention); its step decisions go with it.
_FINISHED_RUN = (
    "{x}status IN ('SUCCEEDED', 'FAILED', 'CANCELLED') AND {x}finished_at < $1 "
    "AND NOT EXISTS (SELECT 1 FROM job_executions e WHERE e.workflow_run_id = workflow_runs.id)"
)
_HANDLED_DEAD_LETTER = (
    "{x}created_at < $1 AND {x}task_id IN (SELECT id FROM tasks WHERE deleted_at IS NOT NULL)"
)


# A delivery being sent is left to its sender (its outcome is about to be written).
_SENDING = "SENDING"


@dataclass(frozen=True, slots=True)
class Sweep:
    """Rows of `table` whose `mark` is older than a cutoff and that match `eligible` (an
    SQL condition on the row, with the cutoff as $1 and `{x}` as above); `children` are
    tables whose rows referencing the deleted keys (`child_key` = the parent's `key`) go
    with them."""

    table: str
    key: str
    mark: str
    eligible: str
    children: tuple[tuple[str, str], ...] = ()

    def scan_sql(self, *, first: bool) -> str:
        m, k = self.mark, self.key
        after = "" if first else f" AND ({m} > $3 OR ({m} = $3 AND {k} > $4))"
        return (
            f"SELECT {k} AS k, {m} AS m FROM {self.table} "
            f"WHERE {m} < $1{after} ORDER BY {m}, {k} LIMIT $2"
        )


EXECUTIONS = Sweep(
    "job_executions",
    "id",
    "completed_at",
    _FINISHED_EXECUTION,
    children=(("retry_history", "execution_id"),),
)
DEAD_LETTERS = Sweep("dead_letter_jobs", "id", "created_at", _HANDLED_DEAD_LETTER)
TASKS = Sweep("tasks", "id", "created_at", _FINISHED_TASK)
WORKFLOW_RUNS = Sweep(
    "workflow_runs",
    "id",
    "created_at",
    _FINISHED_RUN,
    children=(("workflow_steps", "run_id"),),
)
WEBHOOK_DELIVERIES = Sweep(
    "webhook_deliveries",
    "id",
    "created_at",
    f"{{x}}created_at < $1 AND {{x}}status <> '{_SENDING}'",
)
IDEMPOTENCY_KEYS = "idempotency_keys"


@dataclass
class Batch:
    """The outcome of one batch: rows deleted per table, and the (mark, key) the next one
    starts after (None when the sweep reached its cutoff)."""

    deleted: dict[str, int]
    after: tuple[object, object] | None


def _marks(start: int, count: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


async def sweep_batch(
    db: Database,
    sweep: Sweep,
    cutoff: datetime,
    after: tuple[object, object] | None,
    limit: int,
) -> Batch:
    """Delete one batch of `sweep`'s eligible rows marked before `cutoff`, in (mark, key)
    order after `after`."""
    args: list[object] = [cutoff, limit] if after is None else [cutoff, limit, *after]
    found = await db.fetch(sweep.scan_sql(first=after is None), *args)
    if not found:
        return Batch({}, None)
    keys = [r["k"] for r in found]
    postgres = db.dialect == "postgresql"

    async def body(conn: Conn) -> dict[str, int]:
        return await _delete(conn, postgres, sweep, cutoff, keys)

    deleted = await db.atomic(body)
    last = found[-1]
    return Batch(deleted, (last["m"], last["k"]) if len(found) == limit else None)


async def _delete(
    conn: Conn, postgres: bool, sweep: Sweep, cutoff: datetime, keys: Sequence[object]
) -> dict[str, int]:
    if not postgres:
        return await _delete_sqlite(conn, sweep, cutoff, keys)
    eligible = sweep.eligible.format(x="")
    rows = await conn.fetch(
        f"SELECT {sweep.key} AS k FROM {sweep.table} WHERE {sweep.key} IN "
        f"({_marks(2, len(keys))}) AND {eligible} FOR UPDATE SKIP LOCKED",
        cutoff,
        *keys,
    )
    doomed = [r["k"] for r in rows]
    if not doomed:
        return {}
    deleted: dict[str, int] = {}
    placeholders = _marks(1, len(doomed))
    for child, child_key in sweep.children:
        deleted[child] = await conn.execute(
            f"DELETE FROM {child} WHERE {child_key} IN ({placeholders})", *doomed
        )
    deleted[sweep.table] = await conn.execute(
        f"DELETE FROM {sweep.table} WHERE {sweep.key} IN ({placeholders})", *doomed
    )
    return deleted


async def _delete_sqlite(
    conn: Conn, sweep: Sweep, cutoff: datetime, keys: Sequence[object]
) -> dict[str, int]:
    """`_delete` in one statement a table, each choosing the eligible rows itself: the
    writer runs a statement without taking Python's lock back in between, whereas a
    SELECT handing the keys over takes it back for every row, and each time waits for
    the event loop's thread to let go of it (up to 5 ms) while the transaction holds the
    writer."""
    chosen = f"{sweep.key} IN ({_marks(2, len(keys))}) AND {sweep.eligible.format(x='+')}"
    deleted: dict[str, int] = {}
    for child, child_key in sweep.children:
        deleted[child] = await conn.execute(
            f"DELETE FROM {child} WHERE {child_key} IN "
            f"(SELECT {sweep.key} FROM {sweep.table} WHERE {chosen})",
            cutoff,
            *keys,
        )
    deleted[sweep.table] = await conn.execute(
        f"DELETE FROM {sweep.table} WHERE {chosen}", cutoff, *keys
    )
    return deleted if deleted[sweep.table] else {}


async def idempotency_batch(db: Database, cutoff: datetime, limit: int) -> int:
    """Delete up to about `limit` idempotency records older than `cutoff` (oldest first)."""
    row = await db.fetchrow(
        "SELECT created_at AS m FROM idempotency_keys WHERE created_at < $1 "
        "ORDER BY created_at LIMIT 1 OFFSET $2",
        cutoff,
        limit - 1,
    )
    bound = cutoff if row is None else row["m"]
    op = "<" if row is None else "<="
    return await db.execute(
        f"DELETE FROM idempotency_keys WHERE created_at < $1 AND created_at {op} $2",
        cutoff,
        bound,
    )
