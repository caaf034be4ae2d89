"""Bench set-up: rows written straight into the database, many per statement.

The fill is what a bench stands on, not what it measures, so it stays inside the database
(a recursive CTE on SQLite, `generate_series` on PostgreSQL): a million executions take
seconds, not the minutes of one INSERT per row.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from taskflowd.domain.entities import Task, User, utcnow
from taskflowd.domain.enums import MisfirePolicy, Role, TaskStatus, TaskType
from taskflowd.store import SqlStore
from taskflowd.store.db import Database

CHUNK = 100_000
"""Executions per statement (and per transaction)."""

_COLUMNS = (
    "id, task_id, job_id, owner_id, status, scheduled_for, run_at, priority, attempts, "
    "handler, payload, max_retries, backoff_ms, started_at, completed_at, duration_ms, "
    "result, created_at, updated_at, org_id"
)
# Rows numbered $1..$2 of task $4 (owner $5, org $7), due at $3 plus n microseconds, with
# status $8; a COMPLETED one ran and finished at that moment, with $6 as payload and result.
_VALUES = (
    "'{prefix}' || i, $5, $8, {at}, {at}, 0, CASE WHEN $8 = 'COMPLETED' THEN 1 ELSE 0 END, "
    "'echo', $6, 0, 0, CASE WHEN $8 = 'COMPLETED' THEN {at} END, "
    "CASE WHEN $8 = 'COMPLETED' THEN {at} END, CASE WHEN $8 = 'COMPLETED' THEN 1 END, "
    "CASE WHEN $8 = 'COMPLETED' THEN $6 END, {at}, {at}, $7"
)
_SQLITE = (
    "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) "
    f"INSERT INTO job_executions ({_COLUMNS}) SELECT lower(hex(randomblob(16))), $4, "
    + _VALUES.format(prefix="fill-", at="$3 + i")
    + " FROM n"
)
_POSTGRES = (
    f"INSERT INTO job_executions ({_COLUMNS}) SELECT gen_random_uuid()::text, $4, "
    + _VALUES.format(prefix="fill-", at="t.at")
    + " FROM generate_series($1::bigint, $2::bigint) AS n(i), "
    "LATERAL (SELECT $3::timestamptz + i * interval '1 microsecond' AS at) AS t"
)


async def fill_executions(
    db: Database, task: Task, count: int, at: datetime, status: str = "COMPLETED"
) -> None:
    """Write `count` executions of `task` with `status` ("COMPLETED": finished at `at`
    onwards, a microsecond apart; "PENDING": due then)."""
    sql = _SQLITE if db.dialect == "sqlite" else _POSTGRES
    body = db.codec.dump({"n": 1})
    for start in range(0, count, CHUNK):
        last = min(count, start + CHUNK) - 1
        await db.execute(sql, start, last, at, task.id, task.created_by, body, task.org_id, status)


def _task(user: User, org_id: str, name: str) -> Task:
    now = utcnow()
    return Task(
        id=str(uuid.uuid4()), name=name, description="taskflowd bench", type=TaskType.ON_DEMAND,
        status=TaskStatus.ACTIVE, handler="echo", payload={}, cron_expression=None,
        timezone="UTC", scheduled_at=None, delay_ms=None, priority=0, max_retries=0,
        backoff_ms=0, timeout_ms=None, rate_limit=None, concurrency=None,
        misfire_policy=MisfirePolicy.RUN_ONCE, created_by=user.id, created_at=now,
        updated_at=now, org_id=org_id,
    )  # fmt: skip


async def populate_orgs(
    store: SqlStore, orgs: int, tasks: int, finished: int, pending: int
) -> list[str]:
    """`orgs` organizations, each with its owner, `tasks` on-demand tasks, `finished`
    executions finished in the last hour and `pending` due tomorrow (queued, but never
    claimed while a bench runs). Returns the owners' ids (`forget_orgs` deletes it all)."""
    owners: list[str] = []
    hour_ago, tomorrow = utcnow() - timedelta(hours=1), utcnow() + timedelta(days=1)
    for i in range(orgs):
        now = utcnow()
        email = f"bench-org-{i}-{uuid.uuid4().hex[:8]}@bench.invalid"
        user = User(str(uuid.uuid4()), email, "!", "bench", "", Role.USER, True, 0, now, now)
        user = await store.create_user(user)
        owners.append(user.id)
        assert user.default_org_id is not None
        made = [_task(user, user.default_org_id, f"bench-org-{n}") for n in range(tasks)]
        await store.create_tasks([(task, None) for task in made])
        if made:
            await fill_executions(store.db, made[0], finished, hour_ago)
            await fill_executions(store.db, made[-1], pending, tomorrow, "PENDING")
    return owners


async def forget_orgs(db: Database, owners: list[str]) -> None:
    """Delete what `populate_orgs` made for `owners` (on a database that outlives a bench)."""
    orgs = "SELECT default_org_id FROM users WHERE id = $1"
    for owner in owners:
        for statement in (
            f"DELETE FROM job_executions WHERE org_id IN ({orgs})",
            f"DELETE FROM tasks WHERE org_id IN ({orgs})",
            "DELETE FROM org_members WHERE user_id = $1",
            f"DELETE FROM orgs WHERE id IN ({orgs})",
            "DELETE FROM users WHERE id = $1",
        ):
            await db.execute(statement, owner)
