"""Which outcomes wake an idle claim loop (the database queue, SQLite and PostgreSQL, and
the Redis queue).

A claim that finds nothing holds the database's writer and delays the claim of the next
job to arrive, so settling outcomes leaves an idle loop asleep unless they may give it
work: a freed slot of an org at its cap, or a retry due before the loop looks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from taskflowd.domain.entities import Task
from taskflowd.queue.base import JobQueue, OutcomeKind
from taskflowd.queue.redis import RedisQueue
from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore
from tests.conftest import RedisTarget
from tests.integration.queue.factories import due_job, failure, later, outcome
from tests.integration.queue.helpers import WAKE_BOUND_S, claim, claim_one


async def _idle_waiter(queue: JobQueue, timeout_s: float = 300) -> asyncio.Task[None]:
    """A claim loop asleep in `wait_for_work` (wake-ups left by earlier calls consumed)."""
    await queue.wait_for_work(0)
    waiter = asyncio.create_task(queue.wait_for_work(timeout_s))
    await asyncio.sleep(0)
    assert not waiter.done()
    return waiter


async def _still_asleep(queue: JobQueue, waiter: asyncio.Task[None]) -> bool:
    """Whether `waiter` stayed asleep; a wake-up already set would have ended it within
    one turn of the loop. Ends it either way."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    asleep = not waiter.done()
    queue.wake()
    await asyncio.wait_for(waiter, WAKE_BOUND_S)
    return asleep


async def test_a_finished_job_leaves_an_idle_claim_loop_asleep(store: SqlStore, task: Task) -> None:
    queue = SqlQueue(store.db)
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    waiter = await _idle_waiter(queue)

    await queue.settle([outcome(job, OutcomeKind.COMPLETED)])

    assert await _still_asleep(queue, waiter), "nothing is left to claim"


async def test_a_finished_job_of_an_org_at_its_cap_wakes_the_claim_loop(
    store: SqlStore, task: Task
) -> None:
    queue = SqlQueue(store.db, max_running_jobs=1)
    await queue.add([due_job(task, job_id="first"), due_job(task, job_id="second")])
    job = await claim_one(queue)
    waiter = await _idle_waiter(queue)

    await queue.settle([outcome(job, OutcomeKind.COMPLETED)])

    await asyncio.wait_for(waiter, WAKE_BOUND_S)
    assert [j.job_id for j in await claim(queue)] == ["second"]


async def test_a_retry_wakes_the_claim_loop_only_when_due_before_it_looks_again(
    store: SqlStore, task: Task
) -> None:
    queue = SqlQueue(store.db)
    await queue.add([due_job(task, job_id="soon"), due_job(task, job_id="late")])
    soon, late = sorted(await claim(queue), key=lambda j: j.job_id != "soon")
    waiter = await _idle_waiter(queue, timeout_s=60)

    await queue.settle([outcome(late, OutcomeKind.RETRY, error=failure(), run_at=later(3600))])
    assert await _still_asleep(queue, waiter), "the loop looks again before that retry is due"

    waiter = await _idle_waiter(queue, timeout_s=60)
    await queue.settle([outcome(soon, OutcomeKind.RETRY, error=failure(), run_at=later(5))])
    await asyncio.wait_for(waiter, WAKE_BOUND_S)


RedisQueues = Callable[[int], AbstractAsyncContextManager[RedisQueue]]


@pytest.fixture
def redis_queue(store: SqlStore, redis_target: RedisTarget) -> RedisQueues:
    """A started Redis queue over the test's store, with a cap of running jobs per org."""

    @asynccontextmanager
    async def started(max_running_jobs: int) -> AsyncIterator[RedisQueue]:
        queue = RedisQueue(
            store.db, redis_target.url, keys=redis_target.keys, max_running_jobs=max_running_jobs
        )
        await queue.start()
        try:
            yield queue
        finally:
            await queue.stop()

    return started


async def test_a_finished_job_leaves_an_idle_redis_claim_loop_asleep(
    redis_queue: RedisQueues, task: Task
) -> None:
    async with redis_queue(0) as queue:
        await queue.add([due_job(task)])
        job = await claim_one(queue)
        waiter = await _idle_waiter(queue)

        await queue.settle([outcome(job, OutcomeKind.COMPLETED)])

        assert await _still_asleep(queue, waiter), "nothing is left to claim"


async def test_a_finished_job_of_an_org_at_its_cap_wakes_the_redis_claim_loop(
    redis_queue: RedisQueues, task: Task
) -> None:
    async with redis_queue(1) as queue:
        jobs = [due_job(task, job_id="first"), due_job(task, job_id="second")]
        await queue.add(jobs)
        job = await claim_one(queue)
        waiter = await _idle_waiter(queue)

        await queue.settle([outcome(job, OutcomeKind.COMPLETED)])

        await asyncio.wait_for(waiter, WAKE_BOUND_S)
        assert [j.id for j in await claim(queue)] == [j.id for j in jobs if j.id != job.id]
