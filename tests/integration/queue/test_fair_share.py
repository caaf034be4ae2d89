"""A fair share of worker slots between orgs (the database queue, SQLite and PostgreSQL):
one org's backlog cannot hold back another's jobs, and `max_running_jobs` caps an org's
running jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskflowd.domain.entities import Task, User
from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore, rows
from tests.integration.queue.factories import ago, due_job, later, new_owner, new_task
from tests.integration.store.factories import make_execution

# Older jobs of one org, as many as issue 13's fairness test names: far more than the
# first claims take (16 each), and more than those claims could reach by reading or
# promoting the oldest jobs in batches (the Redis queue promotes 1,000 at a time), so a
# claim that served the oldest first hands out nothing but backlog.
BACKLOG = 10_000


async def backlog(store: SqlStore, task: Task, count: int) -> None:
    """`count` due jobs of `task`, the oldest first, inserted at once."""
    oldest = ago(3600)
    values = [
        rows.execution_insert_values(
            make_execution(task, run_at=oldest + timedelta(milliseconds=i), created_at=oldest),
            None,
            store.db.codec,
        )
        for i in range(count)
    ]
    await store.db.executemany(rows.EXECUTION_INSERT, values)


async def org_task(store: SqlStore) -> tuple[User, Task]:
    owner = await new_owner(store)
    return owner, await new_task(store, owner)


async def test_a_small_org_is_not_starved_by_a_large_backlog(store: SqlStore) -> None:
    queue = SqlQueue(store.db)
    _, big = await org_task(store)
    _, small = await org_task(store)
    await backlog(store, big, BACKLOG)
    small_jobs = [due_job(small, ago(1), job_id=f"small-{i}") for i in range(10)]
    await queue.add(small_jobs)

    first = await queue.acquire("node-1", 16, 30.0)
    second = await queue.acquire("node-1", 16, 30.0)
    claimed_small = [j for j in first + second if j.task_id == small.id]
    assert {j.id for j in claimed_small} == {j.id for j in small_jobs}, (
        "the small org's jobs start in the first claims, not after the backlog"
    )
    assert len([j for j in first if j.task_id == small.id]) == 8, "an equal share"
    assert sum(j.task_id == big.id for j in first + second) == 32 - 10


@pytest.mark.parametrize(("default", "override"), [(3, None), (0, 2)])
async def test_an_org_alone_in_the_queue_is_capped(
    store: SqlStore, default: int, override: int | None
) -> None:
    """One org's jobs with no task limit: PostgreSQL's one-statement claim must leave them
    to the claim in steps, which holds the org to its cap (the org's override, else the
    configured default)."""
    queue = SqlQueue(store.db, max_running_jobs=default)
    owner, task = await org_task(store)
    await store.db.execute(
        "UPDATE orgs SET max_running_jobs = $1 WHERE id = $2", override, owner.default_org_id
    )
    await queue.add([due_job(task, job_id=f"j-{i}") for i in range(5)])

    assert len(await queue.acquire("node-1", 10, 30.0)) == (override or default)
    assert await queue.acquire("node-1", 10, 30.0) == []


async def test_max_running_jobs_caps_an_org(store: SqlStore) -> None:
    queue = SqlQueue(store.db, max_running_jobs=3)
    capped_owner, capped = await org_task(store)
    _, free = await org_task(store)
    assert capped_owner.default_org_id is not None
    await store.db.execute(
        "UPDATE orgs SET max_running_jobs = 2 WHERE id = $1", capped_owner.default_org_id
    )
    await queue.add([due_job(capped, job_id=f"c-{i}") for i in range(5)])
    await queue.add([due_job(free, job_id=f"f-{i}") for i in range(5)])

    first = await queue.acquire("node-1", 10, 30.0)
    assert sum(j.task_id == capped.id for j in first) == 2, "the org's override"
    assert sum(j.task_id == free.id for j in first) == 3, "the configured default"
    assert await queue.acquire("node-1", 10, 30.0) == [], "both orgs are at their cap"


async def test_each_org_is_read_by_priority_past_what_waits_for_later(store: SqlStore) -> None:
    """An org's best priority waiting for later does not hide its due jobs of lower
    priorities; due jobs go best priority first, then earliest; orgs holding only later
    jobs give none."""
    queue = SqlQueue(store.db)
    _, mixed = await org_task(store)
    for _ in range(3):
        _, waiting = await org_task(store)
        await queue.add([due_job(waiting, later(3600), job_id=f"w-{i}") for i in range(20)])
    urgent_later = due_job(mixed, later(3600), job_id="urgent-later", priority=9)
    low_old = due_job(mixed, ago(30), job_id="low-old", priority=1)
    low_new = due_job(mixed, ago(10), job_id="low-new", priority=1)
    mid = due_job(mixed, ago(5), job_id="mid", priority=5)
    top = due_job(mixed, ago(1), job_id="top", priority=8)
    await queue.add([urgent_later, low_new, mid, low_old, top])

    first = await queue.acquire("node-1", 3, 30.0)
    assert [j.job_id for j in first] == ["top", "mid", "low-old"]
    assert [j.job_id for j in await queue.acquire("node-1", 10, 30.0)] == ["low-new"]
    assert await queue.acquire("node-1", 10, 30.0) == [], "nothing else is due"
