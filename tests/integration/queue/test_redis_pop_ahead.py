"""While a backlog lasts, a Redis queue's claim pops the next claim's jobs from the index
as well. Those jobs are the next claim's, or go back to waiting: when no claim comes
soon, at shutdown, and before jobs of a higher priority queued since. A node that dies
holding some loses none of them.

PostgreSQL is the record store here, as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskflowd.domain.entities import Execution, Task, User
from taskflowd.queue.redis import RedisQueue, queued_elsewhere
from taskflowd.store import SqlStore
from tests.conftest import RedisTarget
from tests.integration.queue.factories import ago, due_job, new_owner, new_task
from tests.integration.queue.polling import eventually


@pytest.fixture
async def owner(pg_store: SqlStore) -> User:
    return await new_owner(pg_store)


@pytest.fixture
async def task(pg_store: SqlStore, owner: User) -> Task:
    return await new_task(pg_store, owner)


@pytest.fixture
async def nodes(
    pg_store: SqlStore, redis_target: RedisTarget
) -> AsyncIterator[tuple[RedisQueue, RedisQueue]]:
    """Two started nodes on one index."""
    pair = (
        RedisQueue(pg_store.db, redis_target.url, keys=redis_target.keys),
        RedisQueue(pg_store.db, redis_target.url, keys=redis_target.keys),
    )
    for node in pair:
        await node.start()
    yield pair
    for node in pair:
        await node.stop()


def backlog(task: Task, count: int) -> list[Execution]:
    """Due jobs of `task`, in the order they are claimed (earliest due first)."""
    return [due_job(task, ago(100 - i), job_id=f"run-{i}") for i in range(count)]


async def test_jobs_popped_ahead_go_back_to_waiting_when_no_claim_comes(
    nodes: tuple[RedisQueue, RedisQueue], task: Task
) -> None:
    first, other = nodes
    jobs = backlog(task, 4)
    await first.add(jobs)

    claimed = await first.acquire("first", 2, 30)

    async def taken_by_other() -> list[Execution]:
        # No reaping here: only a hand-back (not the lease's end) queues them again.
        return await other.acquire("other", 10, 30)

    rest = await eventually(taken_by_other, "the jobs popped ahead to go back to waiting")
    assert [j.id for j in claimed] == [j.id for j in jobs[:2]]
    assert [j.id for j in rest] == [j.id for j in jobs[2:]]


async def test_stop_hands_back_jobs_popped_ahead_in_their_order(
    pg_store: SqlStore, redis_target: RedisTarget, nodes: tuple[RedisQueue, RedisQueue], task: Task
) -> None:
    stopping = RedisQueue(pg_store.db, redis_target.url, keys=redis_target.keys)
    await stopping.start()
    jobs = backlog(task, 5)
    await stopping.add(jobs)
    await stopping.acquire("stopping", 2, 30)

    await stopping.stop()
    rest = await nodes[0].acquire("other", 10, 30)

    assert [j.id for j in rest] == [j.id for j in jobs[2:]]


async def test_a_job_queued_with_a_higher_priority_goes_before_jobs_popped_ahead(
    nodes: tuple[RedisQueue, RedisQueue], task: Task
) -> None:
    queue = nodes[0]
    jobs = backlog(task, 6)
    await queue.add(jobs)
    await queue.acquire("node", 2, 30)
    urgent = due_job(task, job_id="urgent", priority=9)

    await queue.add([urgent])
    claimed = await queue.acquire("node", 2, 30)

    assert [j.id for j in claimed] == [urgent.id, jobs[2].id]


async def test_jobs_popped_ahead_by_a_node_that_died_run_elsewhere(
    pg_store: SqlStore, redis_target: RedisTarget, nodes: tuple[RedisQueue, RedisQueue], task: Task
) -> None:
    # Never started nor stopped: nothing of it runs after its claim, as after a kill -9.
    dead = RedisQueue(pg_store.db, redis_target.url, keys=redis_target.keys)
    jobs = backlog(task, 6)
    await dead.add(jobs)
    try:
        held = await dead.acquire("dead", 2, 0.2)
    finally:
        await dead.index.close()
    other = nodes[0]
    claimed: list[Execution] = []

    async def all_claimed() -> bool:
        await other.reap_expired(5)
        claimed.extend(await other.acquire("other", 10, 30))
        return len(claimed) == len(jobs)

    await eventually(all_claimed, "every job of the dead node to run elsewhere")
    assert len(held) == 2
    assert {j.id for j in claimed} == {j.id for j in jobs}
    assert all(j.lease_owner == "other" for j in claimed)


def test_only_jobs_queued_by_others_can_outrank_those_popped_ahead() -> None:
    # A queue's own adds and hand-backs are known to it without a wake-up: were they to
    # count, each hand-back's wake-up would hand back the jobs popped ahead next.
    assert not queued_elsewhere("", "me")
    assert not queued_elsewhere("sync me 1765000000000000", "me")
    assert queued_elsewhere("sync other 1765000000000000", "me")
    assert queued_elsewhere("sync  1765000000000000", "me"), "the reconciler's repairs"
    assert queued_elsewhere("retry", "me")
    assert queued_elsewhere("wake", "me")
