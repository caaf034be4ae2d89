"""The Redis queue beyond the shared contract: Redis holds only a rebuildable copy, so
losing it (a restart without persistence, deleted keys), a node dying between commit
and index, or between pop and claim, never loses or duplicates an accepted job.

PostgreSQL is the record store here, as in production; the contract suite covers SQLite.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
from redis.crc import key_slot

from taskflowd.config import Settings
from taskflowd.domain.entities import Execution, Task, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from taskflowd.queue import open_queue
from taskflowd.queue.base import OutcomeKind
from taskflowd.queue.redis import RedisQueue
from taskflowd.queue.redis_index import RedisKeys, to_us
from taskflowd.store import SqlStore, open_store, rows
from taskflowd.store.base import ExecutionFilter
from taskflowd.store.errors import StoreUnavailable
from tests.conftest import RedisTarget
from tests.integration.queue.factories import (
    ago,
    due_job,
    failure,
    later,
    new_owner,
    new_task,
    outcome,
    replace,
)
from tests.integration.queue.polling import eventually
from tests.integration.queue.redis_server import PrivateRedis, private_redis
from tests.services import delete_redis_keys

__all__ = ["private_redis"]


@pytest.fixture
async def owner(pg_store: SqlStore) -> User:
    return await new_owner(pg_store)


@pytest.fixture
async def task(pg_store: SqlStore, owner: User) -> Task:
    return await new_task(pg_store, owner)


def redis_queue(store: SqlStore, url: str, keys: RedisKeys, **options: float) -> RedisQueue:
    return RedisQueue(store.db, url, keys=keys, **options)


@pytest.fixture
async def queue(pg_store: SqlStore, redis_target: RedisTarget) -> AsyncIterator[RedisQueue]:
    opened = redis_queue(pg_store, redis_target.url, redis_target.keys)
    await opened.start()
    yield opened
    await opened.stop()


async def drain(queues: Sequence[RedisQueue], expected: int) -> list[Execution]:
    """Claim and complete jobs on `queues` until `expected` outcomes were applied; returns
    every claim made (a job claimed twice shows up twice)."""
    claims: list[Execution] = []
    applied: set[str] = set()

    async def round_trip() -> bool:
        for q in queues:
            found = await q.acquire("node", 50, 30)
            claims.extend(found)
            applied.update(await q.settle([outcome(e, OutcomeKind.COMPLETED) for e in found]))
            await q.reap_expired(5)
        return len(applied) >= expected

    await eventually(round_trip, f"{expected} jobs to complete", interval_s=0.02)
    return claims


async def statuses(store: SqlStore, task: Task) -> list[ExecutionStatus]:
    page = await store.list_executions(ExecutionFilter(task_id=task.id), 500)
    return [e.status for e in page.items]


# --- keys ------------------------------------------------------------------------------


def test_default_key_names_follow_the_design_with_a_hash_tag() -> None:
    keys = RedisKeys()

    assert keys.fixed[:3] == [
        "taskflow:{tasks}:waiting",
        "taskflow:{tasks}:delayed",
        "taskflow:{tasks}:active",
    ]
    assert "taskflow:{tasks}:dead-letter" in keys.fixed
    assert {"taskflow:{tasks}:completed", "taskflow:{tasks}:failed"} <= set(keys.fixed)


async def test_every_key_of_a_queue_lives_in_one_cluster_slot(
    queue: RedisQueue, pg_store: SqlStore, owner: User, task: Task, redis_target: RedisTarget
) -> None:
    paused = await new_task(pg_store, owner, status=TaskStatus.PAUSED)
    jobs = [due_job(task), due_job(task), due_job(task, later(600)), due_job(paused)]
    await queue.add(jobs)
    claimed = await queue.acquire("node", 10, 30)
    done, dead = claimed
    await queue.settle(
        [outcome(done, OutcomeKind.COMPLETED), outcome(dead, OutcomeKind.DEAD, error=failure())]
    )

    client = queue.index.client
    names = [k async for k in client.scan_iter(match=f"{redis_target.keys.prefix}*")]

    assert len(names) >= 7  # waiting/delayed, active, jobs, parking, counters, dead letter…
    assert all("{tasks}" in name for name in names), names
    assert len({key_slot(name.encode()) for name in names}) == 1


def test_open_queue_builds_a_redis_queue_for_a_redis_url() -> None:
    store = open_store("sqlite:///unused.db")
    settings = dataclasses.replace(Settings(), queue="redis://127.0.0.1:6379/0")

    assert isinstance(open_queue(settings, store), RedisQueue)


# --- losing Redis ----------------------------------------------------------------------


async def test_jobs_survive_the_loss_of_every_key(
    pg_store: SqlStore, task: Task, redis_target: RedisTarget
) -> None:
    queue = redis_queue(pg_store, redis_target.url, redis_target.keys)
    await queue.start()
    try:
        due = [due_job(task) for _ in range(40)]
        soon = [due_job(task, later(0.5)) for _ in range(10)]
        await queue.add([*due, *soon])
        running = await queue.acquire("node", 5, 30)
        epoch = await queue.index.epoch()

        # As after a restart without persistence: the index and its epoch are gone.
        await delete_redis_keys(redis_target.url, redis_target.keys.prefix)

        async def rebuilt() -> bool:
            found = await queue.index.epoch()
            return found is not None and found != epoch

        await eventually(rebuilt, "the reconciler to rebuild the index")
        assert await queue.settle([outcome(e, OutcomeKind.COMPLETED) for e in running]) == {
            e.id for e in running
        }
        claims = await drain([queue], len(due) + len(soon) - len(running))
    finally:
        await queue.stop()

    assert len({e.id for e in claims}) == len(claims), "a job was claimed twice"
    assert {e.id for e in claims} | {e.id for e in running} == {e.id for e in [*due, *soon]}
    assert set(await statuses(pg_store, task)) == {ExecutionStatus.COMPLETED}


async def test_jobs_survive_a_redis_restart_without_persistence(
    pg_store: SqlStore, task: Task, private_redis: PrivateRedis
) -> None:
    keys = RedisKeys(prefix="taskflow:")
    queue = redis_queue(pg_store, private_redis.url, keys)
    await queue.start()
    try:
        due = [due_job(task) for _ in range(60)]
        delayed = [due_job(task, later(1)) for _ in range(20)]
        await queue.add([*due, *delayed])
        running = await queue.acquire("node", 10, 30)

        await asyncio.to_thread(private_redis.restart)

        # The running jobs finish while Redis is empty; their outcomes still count.
        async def settled() -> bool:
            done = [outcome(e, OutcomeKind.COMPLETED) for e in running]
            return len(await queue.settle(done)) == len(running)

        await eventually(settled, "outcomes to be recorded after the restart")
        claims = await drain([queue], len(due) + len(delayed) - len(running))
        assert queue.reconciler.rebuilds >= 2  # the first start, and after the restart
    finally:
        await queue.stop()

    assert len({e.id for e in claims}) == len(claims), "a job was claimed twice"
    assert all(e.attempts == 1 for e in claims)
    assert set(await statuses(pg_store, task)) == {ExecutionStatus.COMPLETED}


@pytest.mark.parametrize("down_at_start", [False, True], ids=["running", "starting"])
async def test_a_redis_outage_fails_claims_cleanly_and_loses_nothing(
    pg_store: SqlStore,
    task: Task,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
    down_at_start: bool,
) -> None:
    """Redis goes away while the node runs, or is away when it starts: the node runs on,
    accepts jobs, and catches up once Redis answers."""
    queue = redis_queue(pg_store, private_redis.url, RedisKeys())
    if down_at_start:
        private_redis.kill()
    await queue.start()
    try:
        private_redis.kill()
        accepted = [due_job(task) for _ in range(10)]
        # The database accepts the jobs; indexing them waits for Redis.
        with caplog.at_level(logging.WARNING, logger="taskflowd.queue.redis"):
            for job in accepted:
                await queue.add([job])
        missed = [r for r in caplog.records if "index not updated" in r.getMessage()]
        assert len(missed) == 1, "an outage is logged once, not once per change"
        with pytest.raises(StoreUnavailable):
            await queue.acquire("node", 10, 30)

        await asyncio.to_thread(private_redis.start)
        claims = await drain([queue], len(accepted))
    finally:
        await queue.stop()

    assert sorted(e.id for e in claims) == sorted(e.id for e in accepted)


# --- dying between two steps -------------------------------------------------------------


async def test_a_job_committed_but_never_indexed_is_found_by_the_reconciler(
    pg_store: SqlStore, owner: User, redis_target: RedisTarget
) -> None:
    queue = redis_queue(pg_store, redis_target.url, redis_target.keys, reconcile_interval_s=0.2)
    await queue.start()
    try:
        task = await new_task(pg_store, owner)
        first = due_job(task)
        # store.create_task(task, first) then a crash before `announce`:
        await pg_store.db.execute(
            "UPDATE tasks SET status = $1 WHERE id = $2", TaskStatus.ACTIVE.value, task.id
        )
        await pg_store.db.execute(
            rows.EXECUTION_INSERT, *rows.execution_insert_values(first, None, pg_store.db.codec)
        )
        assert await queue.acquire("node", 10, 30) == []

        async def claimed() -> list[Execution]:
            return await queue.acquire("node", 10, 30)

        [found] = await eventually(claimed, "the reconciler to index the job")
    finally:
        await queue.stop()

    assert found.id == first.id


async def test_a_job_popped_by_a_node_that_died_before_claiming_it_runs_elsewhere(
    queue: RedisQueue, pg_store: SqlStore, task: Task
) -> None:
    job = due_job(task)
    await queue.add([job])
    now = utcnow()
    # The dead node's pop: into the active set with a short deadline, never claimed.
    popped = await queue.index.acquire(to_us(now), 10, to_us(now + timedelta(seconds=0.2)))
    assert popped.ids == [job.id]
    assert await queue.acquire("other", 10, 30) == []

    async def reclaimed() -> list[Execution]:
        await queue.reap_expired(5)
        return await queue.acquire("other", 10, 30)

    [again] = await eventually(reclaimed, "the orphaned job to be queued again")
    assert (again.id, again.attempts, again.lease_owner) == (job.id, 1, "other")


async def test_a_stale_outcome_changes_neither_the_record_nor_the_index(
    queue: RedisQueue, pg_store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    [first] = await queue.acquire("node-a", 10, 0.2)

    async def rescued() -> bool:
        return first.id in (await queue.reap_expired(5)).rescued

    await eventually(rescued, "the expired lease to be reaped")
    [second] = await queue.acquire("node-b", 10, 30)

    assert await queue.settle([outcome(first, OutcomeKind.RETRY, run_at=later(60))]) == set()
    active = await queue.index.client.zscore(queue.index.keys.key("active"), second.id)
    assert active is not None  # still the new owner's claim, not queued for a retry
    assert await queue.index.client.zscore(queue.index.keys.key("delayed"), second.id) is None
    stored = await pg_store.get_execution(second.id)
    assert stored is not None and stored.status is ExecutionStatus.PROCESSING


# --- many nodes, paused tasks, stale entries --------------------------------------------


async def test_two_nodes_claim_every_job_exactly_once(
    pg_store: SqlStore, task: Task, redis_target: RedisTarget
) -> None:
    nodes = [redis_queue(pg_store, redis_target.url, redis_target.keys) for _ in range(2)]
    for node in nodes:
        await node.start()
    claims: list[Execution] = []
    stop = asyncio.Event()

    async def work(node: RedisQueue, name: str) -> None:
        while not stop.is_set():
            found = await node.acquire(name, 20, 30)
            claims.extend(found)
            await node.settle([outcome(e, OutcomeKind.COMPLETED) for e in found])
            if not found:
                await asyncio.sleep(0.01)

    async def all_done() -> bool:
        return set(await statuses(pg_store, task)) == {ExecutionStatus.COMPLETED}

    workers = [asyncio.create_task(work(n, f"node-{i}")) for i, n in enumerate(nodes)]
    try:
        await nodes[0].add([due_job(task, ago(i % 7), priority=i % 3) for i in range(300)])
        await eventually(all_done, "every job to complete")
    finally:
        stop.set()
        await asyncio.gather(*workers)
        for node in nodes:
            await node.stop()

    assert len({e.id for e in claims}) == len(claims) == 300
    assert {e.lease_owner for e in claims} <= {"node-0", "node-1"}


async def test_jobs_of_a_paused_task_are_parked_until_it_resumes(
    queue: RedisQueue, pg_store: SqlStore, task: Task
) -> None:
    await pg_store.update_task(replace(task, status=TaskStatus.PAUSED), TaskStatus.ACTIVE)
    jobs = [due_job(task) for _ in range(5)]
    await queue.add(jobs)

    assert await queue.acquire("node", 10, 30) == []
    # Parked, not waiting: idle workers do not spin on jobs they cannot claim.
    assert await queue.next_due() is None
    assert await queue.index.client.zcard(queue.index.keys.parked(task.id)) == 5

    await pg_store.update_task(replace(task, status=TaskStatus.ACTIVE), TaskStatus.PAUSED)
    claimed = await queue.acquire("node", 10, 30)
    assert sorted(e.id for e in claimed) == sorted(e.id for e in jobs)
    assert await queue.index.client.exists(queue.index.keys.parked(task.id)) == 0


async def test_a_full_reconcile_drops_entries_of_jobs_no_longer_queued(
    queue: RedisQueue, pg_store: SqlStore, task: Task
) -> None:
    kept = due_job(task, later(600))
    await queue.add([kept])
    other = await new_task(pg_store, await new_owner(pg_store))
    gone = [due_job(other, later(600)) for _ in range(3)]
    await queue.add(gone)
    # Deleting a task cancels its queued jobs in the store, behind the queue's back.
    await pg_store.delete_task(other.id, None, utcnow())

    done = await queue.reconciler.reconcile(full=True)

    assert (done.added, done.dropped) == (0, 3)
    delayed = await queue.index.client.zrange(queue.index.keys.key("delayed"), 0, -1)
    assert delayed == [kept.id]
