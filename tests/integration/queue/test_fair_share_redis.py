"""A fair share of worker slots between orgs on the Redis queue: one org's backlog
cannot hold back another's jobs, `max_running_jobs` caps an org's running jobs (the
index counts them through claims, outcomes, hand-backs and reaped leases), and jobs an
earlier release queued in its single waiting zset still run after the upgrade.

PostgreSQL is the record store here, as in production; the contract suite covers SQLite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from taskflowd.domain.entities import Execution, Task
from taskflowd.queue.base import OutcomeKind
from taskflowd.queue.redis import RedisQueue
from taskflowd.queue.redis_index import to_us
from taskflowd.store import SqlStore, open_store, rows
from tests.conftest import RedisTarget
from tests.integration.queue.factories import ago, due_job, outcome
from tests.integration.queue.test_fair_share import BACKLOG, org_task
from tests.integration.store.factories import make_execution


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[SqlStore]:
    opened = open_store(pg_url)
    await opened.start()
    yield opened
    await opened.stop()


@pytest.fixture
async def started() -> AsyncIterator[list[RedisQueue]]:
    """Queues a test starts; stopped afterwards."""
    queues: list[RedisQueue] = []
    yield queues
    for queue in queues:
        await queue.stop()


async def start(
    queues: list[RedisQueue], store: SqlStore, redis: RedisTarget, max_running_jobs: int = 0
) -> RedisQueue:
    queue = RedisQueue(store.db, redis.url, keys=redis.keys, max_running_jobs=max_running_jobs)
    await queue.start()
    queues.append(queue)
    return queue


async def backlog(store: SqlStore, task: Task, count: int) -> list[Execution]:
    """`count` due jobs of `task`, the oldest first, committed at once."""
    oldest = ago(3600)
    jobs = [
        make_execution(task, run_at=oldest + timedelta(milliseconds=i), created_at=oldest)
        for i in range(count)
    ]
    values = [rows.execution_insert_values(e, None, store.db.codec) for e in jobs]
    await store.db.executemany(rows.EXECUTION_INSERT, values)
    return jobs


async def test_a_small_org_is_not_starved_by_a_large_backlog(
    store: SqlStore, redis_target: RedisTarget, started: list[RedisQueue]
) -> None:
    queue = await start(started, store, redis_target)
    _, big = await org_task(store)
    _, small = await org_task(store)
    big_jobs = await backlog(store, big, BACKLOG)
    await queue.announce(big_jobs)
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
    third = await queue.acquire("node-1", 16, 30.0)
    assert [j.id for j in third] == [j.id for j in big_jobs[22:38]], (
        "the backlog goes on alone, the earliest due first"
    )


async def test_max_running_jobs_caps_an_org(
    store: SqlStore, redis_target: RedisTarget, started: list[RedisQueue]
) -> None:
    capped_owner, capped = await org_task(store)
    _, free = await org_task(store)
    assert capped_owner.default_org_id is not None
    await store.db.execute(
        "UPDATE orgs SET max_running_jobs = 2 WHERE id = $1", capped_owner.default_org_id
    )
    queue = await start(started, store, redis_target, max_running_jobs=3)
    await queue.add([due_job(capped, job_id=f"c-{i}") for i in range(5)])
    await queue.add([due_job(free, job_id=f"f-{i}") for i in range(5)])

    first = await queue.acquire("node-1", 10, 30.0)
    assert sum(j.task_id == capped.id for j in first) == 2, "the org's override"
    assert sum(j.task_id == free.id for j in first) == 3, "the configured default"
    assert await queue.acquire("node-1", 10, 30.0) == [], "both orgs are at their cap"

    done = next(j for j in first if j.task_id == capped.id)
    await queue.settle([outcome(done, OutcomeKind.COMPLETED)])
    after_outcome = await queue.acquire("node-1", 10, 30.0)
    assert [j.task_id for j in after_outcome] == [capped.id], "an ended job frees its slot"

    handed_back = [j for j in first if j.task_id == free.id][:2]
    await queue.release([(j.id, j.fence) for j in handed_back])
    after_release = await queue.acquire("node-1", 10, 30.0)
    assert [j.task_id for j in after_release] == [free.id] * 2, "hand-backs free slots"


async def test_expired_leases_free_their_orgs_slots(
    store: SqlStore, redis_target: RedisTarget, started: list[RedisQueue]
) -> None:
    queue = await start(started, store, redis_target, max_running_jobs=2)
    _, task = await org_task(store)
    await queue.add([due_job(task, job_id=f"j-{i}") for i in range(4)])
    lost = await queue.acquire("dead-node", 10, 0.001)
    assert len(lost) == 2

    reaped = await queue.reap_expired(5)
    assert sorted(reaped.rescued) == sorted(j.id for j in lost)
    again = await queue.acquire("node-1", 10, 30.0)
    assert len(again) == 2, "the reaped jobs no longer count as running"
    assert await queue.index.running() == {task.org_id: 2}


async def test_a_lost_index_is_rebuilt_with_the_running_jobs_counted(
    store: SqlStore, redis_target: RedisTarget, started: list[RedisQueue]
) -> None:
    queue = await start(started, store, redis_target, max_running_jobs=2)
    _, task = await org_task(store)
    await queue.add([due_job(task, job_id=f"j-{i}") for i in range(4)])
    running = await queue.acquire("node-1", 10, 30.0)
    assert len(running) == 2
    client = queue.index.client
    await client.delete(*[k async for k in client.scan_iter(match=f"{redis_target.keys.prefix}*")])

    assert await queue.reconciler.rebuild_if_lost()
    assert await queue.index.running() == {task.org_id: 2}
    assert await queue.acquire("node-1", 10, 30.0) == [], "still at the cap after the rebuild"


async def test_jobs_queued_in_the_earlier_layout_still_run(
    store: SqlStore, redis_target: RedisTarget, started: list[RedisQueue]
) -> None:
    """An earlier release kept every waiting job in one zset and each job's priority
    alone in the jobs hash; those entries are served until they are gone."""
    _, task = await org_task(store)
    waiting = [due_job(task, job_id=f"w-{i}") for i in range(3)]
    delayed = [due_job(task, job_id=f"d-{i}") for i in range(2)]
    await store.db.executemany(
        rows.EXECUTION_INSERT,
        [rows.execution_insert_values(e, None, store.db.codec) for e in waiting + delayed],
    )
    keys = redis_target.keys
    queue = RedisQueue(store.db, redis_target.url, keys=keys)
    client = queue.index.client
    await client.set(keys.key("epoch"), "earlier-release")
    span = 1 << 42
    await client.zadd(
        keys.key("waiting"), {e.id: 10 * span + to_us(e.run_at) // 1000 for e in waiting}
    )
    await client.zadd(keys.key("delayed"), {e.id: to_us(e.run_at) for e in delayed})
    await client.hset(keys.key("jobs"), mapping={e.id: "0" for e in waiting + delayed})
    await queue.start()
    started.append(queue)

    claimed = await queue.acquire("node-1", 10, 30.0)
    assert sorted(j.id for j in claimed) == sorted(e.id for e in waiting + delayed)
    await queue.settle([outcome(j, OutcomeKind.COMPLETED) for j in claimed])
    assert await client.exists(keys.key("waiting")) == 0
    assert await queue.index.running() == {}


async def test_orgs_at_their_cap_do_not_leave_a_claim_empty(
    store: SqlStore, redis_target: RedisTarget, started: list[RedisQueue]
) -> None:
    queue = await start(started, store, redis_target, max_running_jobs=1)
    capped = [await org_task(store) for _ in range(3)]
    for _, task in capped:
        await queue.add([due_job(task, ago(60), job_id=f"{task.id}-{i}") for i in range(2)])
    running = [await queue.acquire("node-1", 1, 30.0) for _ in capped]
    assert sorted(j.task_id for (j,) in running) == sorted(t.id for _, t in capped)
    _, free = await org_task(store)
    await queue.add([due_job(free, job_id="free")])

    assert [j.task_id for j in await queue.acquire("node-1", 1, 30.0)] == [free.id], (
        "the orgs at their cap are passed over"
    )


async def test_a_full_reconcile_pass_corrects_the_running_counts(
    store: SqlStore, redis_target: RedisTarget, started: list[RedisQueue]
) -> None:
    queue = await start(started, store, redis_target, max_running_jobs=2)
    _, task = await org_task(store)
    await queue.add([due_job(task, job_id=f"j-{i}") for i in range(3)])
    assert len(await queue.acquire("node-1", 10, 30.0)) == 2
    await queue.index.client.hset(redis_target.keys.key("running"), task.org_id, 7)

    await queue.reconciler.reconcile(full=True)
    assert await queue.index.running() == {task.org_id: 2}
