"""Retention on every SQL backend: what a pruning pass deletes and what it keeps."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from taskflowd.config import RetentionSettings
from taskflowd.domain.entities import DEFAULT_ORG_ID
from taskflowd.domain.enums import ExecutionStatus as X
from taskflowd.domain.enums import TaskStatus, TaskType
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.store import SqlStore, open_store
from tests.integration.lifecycle.helpers import execution_at, ids, task_at
from tests.integration.store.factories import insert_execution, make_execution, make_user, now

DAY = 86_400
RETENTION = RetentionSettings(
    executions_s=DAY, dead_letters_s=DAY, tasks_s=DAY, workflow_runs_s=DAY, batch_size=2
)
"""A batch of two rows: every sweep takes several batches."""


async def test_a_pass_deletes_what_is_finished_and_old_and_nothing_else(store: SqlStore) -> None:
    owner = (await store.create_user(make_user())).id
    old, recent = now() - timedelta(days=3), now() - timedelta(hours=1)
    recurring = await task_at(store, owner, old, kind=TaskType.RECURRING)
    done_once = await task_at(store, owner, old, status=TaskStatus.COMPLETED)
    deleted = await task_at(store, owner, old, deleted_at=old)
    fresh_done = await task_at(store, owner, recent, status=TaskStatus.COMPLETED)
    still_due = await task_at(store, owner, old)  # one-time, not run yet: unfinished

    gone_with_retries = await execution_at(store, done_once, old, X.COMPLETED, retries=2)
    gone_failed = await execution_at(store, recurring, old, X.FAILED)
    gone_cancelled = await execution_at(store, recurring, old, X.CANCELLED)
    more_old = [await execution_at(store, recurring, old, X.COMPLETED) for _ in range(3)]
    kept_recent = await execution_at(store, recurring, recent, X.COMPLETED)
    kept_open = await execution_at(store, recurring, old, X.PENDING)
    kept_running = await execution_at(store, recurring, old, X.PROCESSING)
    kept_retrying = await execution_at(store, still_due, old, X.RETRYING, retries=1)
    kept_unhandled = await execution_at(store, recurring, old, X.FAILED, dead=True)
    gone_handled = await execution_at(store, deleted, old, X.FAILED, dead=True, retries=1)

    pruner = Pruner(store.db, RETENTION, "node-a", idempotency_keep=timedelta(hours=24))
    counts = await pruner.run_once()

    executions = await ids(store, "job_executions")
    assert executions == {
        kept_recent.id,
        kept_open.id,
        kept_running.id,
        kept_retrying.id,
        kept_unhandled.id,
    }
    for e in (gone_with_retries, gone_failed, gone_cancelled, *more_old, gone_handled):
        assert e.id not in executions
    assert await ids(store, "retry_history", "execution_id") == {kept_retrying.id}
    assert await ids(store, "dead_letter_jobs", "execution_id") == {kept_unhandled.id}
    assert await ids(store, "tasks") == {recurring.id, fresh_done.id, still_due.id}
    assert counts == {
        "dead_letter_jobs": 1,
        "job_executions": 7,
        "retry_history": 3,
        "tasks": 2,
        "idempotency_keys": 0,
        "audit_events": 0,
    }
    nothing = {"idempotency_keys": 0, "audit_events": 0}
    assert await pruner.run_once() == nothing  # nothing left to do


async def test_zero_keeps_forever(store: SqlStore) -> None:
    owner = (await store.create_user(make_user())).id
    ancient = now() - timedelta(days=3000)
    task = await task_at(store, owner, ancient, status=TaskStatus.COMPLETED)
    execution = await execution_at(store, task, ancient, X.COMPLETED)
    forever = dataclasses.replace(RETENTION, executions_s=0, tasks_s=0)
    await Pruner(store.db, forever, "node-a").run_once()
    assert await ids(store, "job_executions") == {execution.id}
    assert await ids(store, "tasks") == {task.id}


async def test_one_node_prunes_at_a_time(store: SqlStore) -> None:
    first = Pruner(store.db, RETENTION, "node-a")
    second = Pruner(store.db, RETENTION, "node-b")
    assert await first.run_once() is not None
    assert await second.run_once() is None
    assert await first.lease.holder() == "node-a"
    await first.stop()  # releases the lease: the other node takes over at once
    assert await second.run_once() is not None
    assert await second.lease.holder() == "node-b"


async def test_stale_idempotency_records_go(store: SqlStore) -> None:
    owner = (await store.create_user(make_user())).id
    for age_h, key in ((30, "old-1"), (26, "old-2"), (1, "fresh")):
        await store.db.execute(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, created_at, "
            "org_id) VALUES ($1, $2, 'f', 201, '{}', $3, $4)",
            owner,
            key,
            now() - timedelta(hours=age_h),
            DEFAULT_ORG_ID,
        )
    pruner = Pruner(store.db, RETENTION, "node-a", idempotency_keep=timedelta(hours=24))
    counts = await pruner.run_once()
    assert counts is not None and counts["idempotency_keys"] == 2
    assert await ids(store, "idempotency_keys", "key") == {"fresh"}


async def test_the_sqlite_file_shrinks_after_a_prune(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'shrinks.db'}")
    await store.start()
    try:
        owner = (await store.create_user(make_user())).id
        old = now() - timedelta(days=3)
        task = await task_at(store, owner, old, payload={"blob": "x" * 4000})
        async with store.db.transaction() as conn:
            for _ in range(1500):
                await insert_execution(conn, make_execution(task, created_at=old))
        await store.db.execute(
            "UPDATE job_executions SET status = 'COMPLETED', completed_at = $1", old
        )
        before = await _checkpointed_size(tmp_path / "shrinks.db")
        retention = dataclasses.replace(RETENTION, batch_size=500)
        counts = await Pruner(store.db, retention, "node-a").run_once()
        assert counts is not None and counts["job_executions"] == 1500
        free = await store.db.fetchrow("PRAGMA freelist_count")
        assert free is not None and free["freelist_count"] == 0
        after = await _checkpointed_size(tmp_path / "shrinks.db")
    finally:
        await store.stop()
    assert after < before / 4, (before, after)


async def _checkpointed_size(path: Path) -> int:
    """The file's size once all of its log is copied into it. A TRUNCATE checkpoint
    answers "busy" at once, without waiting, while the node's checkpoint loop runs one,
    so it is asked again until it is done."""

    def truncate() -> bool:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return not busy
        finally:
            conn.close()

    deadline = time.monotonic() + 30
    while not await asyncio.to_thread(truncate):
        assert time.monotonic() < deadline, "the log was never all copied"
        await asyncio.sleep(0.01)
    return path.stat().st_size


async def _workflow_run(
    store: SqlStore, task_id: str, owner: str, at: datetime, status: str, *, finished: bool
) -> str:
    """A run of a fresh workflow backed by `task_id`, created at `at` (and finished then),
    with one decided step."""
    workflow_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
    await store.db.execute(
        "INSERT INTO workflows (id, name, steps, status, task_id, created_by, created_at, "
        "updated_at) VALUES ($1, 'wf', '[]', 'ACTIVE', $2, $3, $4, $4)",
        workflow_id,
        task_id,
        owner,
        at,
    )
    await store.db.execute(
        "INSERT INTO workflow_runs (id, workflow_id, owner_id, task_id, steps, status, "
        "created_at, finished_at, updated_at) VALUES ($1, $2, $3, $4, '[]', $5, $6, $7, $6)",
        run_id,
        workflow_id,
        owner,
        task_id,
        status,
        at,
        at if finished else None,
    )
    await store.db.execute(
        "INSERT INTO workflow_steps (run_id, step_key, decision, decided_at) "
        "VALUES ($1, 'a', 'RUN', $2)",
        run_id,
        at,
    )
    return run_id


async def test_finished_workflow_runs_go_once_their_steps_are_gone(store: SqlStore) -> None:
    owner = (await store.create_user(make_user())).id
    old, recent = now() - timedelta(days=3), now() - timedelta(hours=1)
    backing = await task_at(store, owner, old, kind=TaskType.ON_DEMAND)
    await _workflow_run(store, backing.id, owner, old, "SUCCEEDED", finished=True)
    gone_with_step = await _workflow_run(store, backing.id, owner, old, "FAILED", finished=True)
    step = await execution_at(store, backing, old, X.FAILED)
    kept_dead_step = await _workflow_run(store, backing.id, owner, old, "FAILED", finished=True)
    dead_step = await execution_at(store, backing, old, X.FAILED, dead=True)
    for run_id, execution in ((gone_with_step, step), (kept_dead_step, dead_step)):
        await store.db.execute(
            "UPDATE job_executions SET workflow_run_id = $1, step_key = 'a' WHERE id = $2",
            run_id,
            execution.id,
        )
    kept_running = await _workflow_run(store, backing.id, owner, old, "RUNNING", finished=False)
    kept_recent = await _workflow_run(store, backing.id, owner, recent, "CANCELLED", finished=True)

    forever = dataclasses.replace(RETENTION, workflow_runs_s=0)
    await Pruner(store.db, forever, "node-a").run_once()
    assert len(await ids(store, "workflow_runs")) == 5

    counts = await Pruner(store.db, RETENTION, "node-a").run_once()
    kept = {kept_dead_step, kept_running, kept_recent}
    assert await ids(store, "workflow_runs") == kept
    assert await ids(store, "workflow_steps", "run_id") == kept
    assert counts is not None
    assert counts["workflow_runs"] == 2 and counts["workflow_steps"] == 2


async def test_old_webhook_deliveries_go_unless_being_sent(store: SqlStore) -> None:
    old, recent = now() - timedelta(days=15), now() - timedelta(days=13)
    rows = {
        "old-done": (old, "SUCCEEDED"),
        "old-failed": (old, "FAILED"),
        "old-queued": (old, "PENDING"),
        "old-sending": (old, "SENDING"),
        "recent": (recent, "FAILED"),
    }
    for delivery_id, (at, status) in rows.items():
        await store.db.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, org_id, message_id, event_type, "
            "body, status, created_at, updated_at) VALUES ($1, 'e', $2, 'msg_1', 'ping', '{}', "
            "$3, $4, $4)",
            delivery_id,
            DEFAULT_ORG_ID,
            status,
            at,
        )
    pruner = Pruner(store.db, RetentionSettings(batch_size=2), "node-a")
    counts = await pruner.run_once()
    assert await ids(store, "webhook_deliveries") == {"old-sending", "recent"}
    assert counts is not None and counts["webhook_deliveries"] == 3
