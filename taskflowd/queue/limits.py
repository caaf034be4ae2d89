"""Per-task concurrency and rate limits, decided inside the claiming transaction.

Both queues claim through the database, so the limits hold across every node: the rows
of limited tasks are locked (PostgreSQL) while their running jobs and recent starts
are counted, and jobs over a limit are deferred briefly instead of blocking the head
of the queue.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from taskflowd.domain.enums import ExecutionStatus
from taskflowd.store.db import Conn

CONCURRENCY_RETRY_S = 0.2
"""How long a job held back by its task's concurrency limit waits before it is tried again."""

_PROCESSING = ExecutionStatus.PROCESSING.value


def marks(count: int, start: int = 1) -> str:
    """`count` numbered placeholders from `$start`, comma-separated."""
    return ", ".join(f"${i}" for i in range(start, start + count))


# Claims on several nodes touch the same task rows in no particular order: on PostgreSQL
# rows another claim holds are skipped (that claim records a run as recent), so two
# claims never wait for each other and cannot deadlock.
SKIP_LOCKED_TASKS = "SELECT id FROM tasks WHERE id IN ({ids}) FOR NO KEY UPDATE SKIP LOCKED"


CLAIM = (
    "UPDATE job_executions SET status = $1, attempts = attempts + 1, fence = fence + 1, "
    "lease_owner = $2, lease_expires_at = $3, started_at = $4, completed_at = NULL, "
    "updated_at = $4 WHERE "
)
"""The head of a claim's UPDATE (parameters: status, owner, lease expiry, claim time),
followed by the condition naming the jobs claimed."""


ASYNC_COMMIT = "CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async"
"""Joined into a PostgreSQL claim statement: the claim's commit does not wait for
PostgreSQL to flush it (a flush costs milliseconds, most of an idle job's wait), and
setting that in the statement saves the round trip of a `SET LOCAL`. The setting lasts
until the transaction ends, a single statement's own transaction included. A claim lost
in a PostgreSQL crash leaves its job queued under its old fencing token: the job runs
again, and the outcome of the lost claim is refused as stale; delivery stays
at-least-once. Any later commit that waits for its flush (an outcome, say) flushes the
claim with it."""


def touch_tasks(task_ids: str) -> str:
    """PostgreSQL: record the claim time ($4) as the last run of the tasks `task_ids`
    selects (a task row another transaction holds is skipped)."""
    rows = SKIP_LOCKED_TASKS.format(ids=task_ids)
    return f"UPDATE tasks SET last_run_at = $4 WHERE id IN ({rows})"


def touching(
    claim: str, task_ids: str = "SELECT task_id FROM claimed", *, asynchronous: bool = True
) -> str:
    """`claim` (an UPDATE … RETURNING * whose $4 is the claim time) in one statement with
    recording that time as the last run of the tasks `task_ids` selects from the claimed
    rows (PostgreSQL); `asynchronous`: the transaction commits without waiting for its
    flush (not for one that also adds work)."""
    commit = ASYNC_COMMIT if asynchronous else ""
    return (
        f"WITH claimed AS ({claim}), touched AS ({touch_tasks(task_ids)}) "
        f"SELECT claimed.* FROM claimed {commit}"
    )


async def touch_last_run(conn: Conn, task_ids: set[str], at: datetime, *, postgres: bool) -> None:
    """Record `at` as the last run of the tasks whose jobs were just claimed."""
    if not task_ids:
        return
    ids = marks(len(task_ids), 2)
    rows = SKIP_LOCKED_TASKS.format(ids=ids) if postgres else ids
    await conn.execute(
        f"UPDATE tasks SET last_run_at = $1 WHERE id IN ({rows})", at, *sorted(task_ids)
    )


async def admit(
    conn: Conn, candidates: Sequence[Any], now: datetime, *, postgres: bool
) -> tuple[list[str], dict[str, datetime]]:
    """Split `candidates` (rows with `id`, `task_id`, `concurrency`, `rate_limit`) into the
    ids their tasks' limits admit now and the ids deferred, with their new `run_at`
    (already written). On PostgreSQL, concurrent claims of the same limited tasks are
    serialised by row locks; SQLite's single writer already does."""
    limited = {c["task_id"] for c in candidates if c["concurrency"] or c["rate_limit"]}
    if not limited:
        return [c["id"] for c in candidates], {}
    task_ids = sorted(limited)
    if postgres:
        await conn.fetch(
            f"SELECT id FROM tasks WHERE id IN ({marks(len(task_ids))}) ORDER BY id FOR UPDATE",
            *task_ids,
        )
    # Running jobs through the status index (SQLite) or the open rows' (PostgreSQL): a
    # task's running jobs are few; read by task_id, the rows would be its whole history
    # (0.4 s a claim with 200,000 of them). A running job has no completed_at.
    hint = "" if postgres else " INDEXED BY job_executions_status"
    usage = await conn.fetch(
        f"SELECT task_id, COUNT(*) AS n FROM job_executions{hint} "
        f"WHERE status = '{_PROCESSING}' AND completed_at IS NULL "
        f"AND task_id IN ({marks(len(task_ids))}) GROUP BY task_id",
        *task_ids,
    )
    running = {u["task_id"]: int(u["n"]) for u in usage}
    rated = sorted({c["task_id"] for c in candidates if c["rate_limit"]})
    starts = {}
    if rated:
        starts = await _starts(conn, rated, now - timedelta(minutes=1), postgres=postgres)
    admitted: list[str] = []
    deferred: dict[datetime, list[str]] = defaultdict(list)
    for c in candidates:
        task_id = c["task_id"]
        if task_id not in limited:
            admitted.append(c["id"])
            continue
        concurrency, rate = c["concurrency"], c["rate_limit"]
        if rate and starts.get(task_id, 0) >= rate:
            deferred[now + timedelta(seconds=60 / rate)].append(c["id"])
        elif concurrency and running.get(task_id, 0) >= concurrency:
            deferred[now + timedelta(seconds=CONCURRENCY_RETRY_S)].append(c["id"])
        else:
            admitted.append(c["id"])
            running[task_id] = running.get(task_id, 0) + 1
            starts[task_id] = starts.get(task_id, 0) + 1
    for run_at, ids in deferred.items():
        await conn.execute(
            f"UPDATE job_executions SET run_at = $1 WHERE id IN ({marks(len(ids), 2)})",
            run_at,
            *ids,
        )
    return admitted, {i: run_at for run_at, ids in deferred.items() for i in ids}


async def _starts(
    conn: Conn, task_ids: Sequence[str], window_start: datetime, *, postgres: bool
) -> dict[str, int]:
    """Starts since `window_start` of each of the rate-limited `task_ids`, never reading
    the tasks' whole history (migration 0013). A job started in the window is still open
    or ended in it: PostgreSQL reads the task's open rows and the window's completions
    (its claims must not change an indexed column); SQLite, started rows by task."""
    started = "" if postgres else " INDEXED BY job_executions_task_started"
    usage = await conn.fetch(
        f"SELECT task_id, COUNT(*) AS n FROM job_executions{started} "
        f"WHERE task_id IN ({marks(len(task_ids), 2)}) AND started_at >= $1 "
        "AND (completed_at IS NULL OR completed_at >= $1) GROUP BY task_id",
        window_start,
        *task_ids,
    )
    # A retried job's row shows only its latest start; its earlier attempts are in the
    # retry history. One that failed within the window is counted as a start in it (it
    # may have started just before: the limit errs on the side of fewer starts). The
    # latest attempt's own entry is not counted again. The window's failures first
    # (SQLite's CROSS JOIN keeps that order), then their executions by key.
    join = "JOIN" if postgres else "CROSS JOIN"
    retried = await conn.fetch(
        f"SELECT e.task_id, COUNT(*) AS n FROM retry_history r {join} job_executions e "
        f"ON e.id = r.execution_id WHERE r.failed_at >= $1 "
        f"AND e.task_id IN ({marks(len(task_ids), 2)}) AND r.attempt < e.attempts "
        "GROUP BY e.task_id",
        window_start,
        *task_ids,
    )
    starts = {u["task_id"]: int(u["n"]) for u in usage}
    for r in retried:
        starts[r["task_id"]] = starts.get(r["task_id"], 0) + int(r["n"])
    return starts
