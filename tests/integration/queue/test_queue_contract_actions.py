"""The JobQueue contract (taskflowd.queue.base): user actions (cancel, dead-letter
retry), observation and wake-ups.

Run against every queue and SQL backend through the `queue` and `store` fixtures;
nothing is mocked, and waits poll with a deadline: no assertion depends on how long
anything took.
"""

from __future__ import annotations

import asyncio

import pytest

from taskflowd.domain.entities import Task, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from taskflowd.queue.base import JobQueue, OutcomeKind
from taskflowd.store import SqlStore, open_store
from tests.integration.queue.conftest import open_test_queue
from tests.integration.queue.factories import (
    ago,
    due_job,
    failure,
    later,
    new_owner,
    now,
    outcome,
)
from tests.integration.queue.helpers import (
    WAKE_BOUND_S,
    claim,
    claim_one,
    dead_letter_of,
    read,
    task_status,
)

# --- user actions -----------------------------------------------------------------------


async def test_cancel_of_queued_job_is_immediate(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    job = due_job(task)
    await queue.add([job])

    cancelled = await queue.cancel(job.id, None)

    assert cancelled is not None and cancelled.status is ExecutionStatus.CANCELLED
    assert (await read(store, job.id)).status is ExecutionStatus.CANCELLED
    assert await claim(queue) == []


async def test_cancel_of_retrying_job_is_immediate(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    await queue.settle([outcome(job, OutcomeKind.RETRY, error=failure(), run_at=now())])

    cancelled = await queue.cancel(job.id, None)

    assert cancelled is not None and cancelled.status is ExecutionStatus.CANCELLED
    assert await claim(queue) == []


async def test_cancel_is_scoped_to_the_owner(
    queue: JobQueue, store: SqlStore, owner: User, task: Task
) -> None:
    job = due_job(task)
    await queue.add([job])
    stranger = await new_owner(store)

    assert await queue.cancel(job.id, stranger.default_org_id) is None
    assert await queue.cancel("no-such-execution", None) is None
    assert (await read(store, job.id)).status is ExecutionStatus.PENDING
    mine = await queue.cancel(job.id, owner.default_org_id)
    assert mine is not None and mine.status is ExecutionStatus.CANCELLED


async def test_retry_dead_letter_gives_one_more_attempt(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    await queue.settle([outcome(job, OutcomeKind.DEAD, error=failure("first"))])
    [entry] = await dead_letter_of(store, job.id)

    retried = await queue.retry_dead_letter(entry, None)

    assert retried is not None and retried.id == job.id
    assert retried.status is ExecutionStatus.PENDING
    assert await dead_letter_of(store, job.id) == []
    assert await task_status(store, task.id) is TaskStatus.ACTIVE
    again = await claim_one(queue)
    assert again.attempts == 2
    await queue.settle([outcome(again, OutcomeKind.DEAD, error=failure("second"))])
    assert len(await dead_letter_of(store, job.id)) == 1
    assert [r.attempt for r in await store.retry_history(job.id)] == [1, 2]
    assert await task_status(store, task.id) is TaskStatus.FAILED


async def test_retry_dead_letter_of_unknown_or_foreign_entry_is_none(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    await queue.settle([outcome(job, OutcomeKind.DEAD, error=failure())])
    [entry] = await dead_letter_of(store, job.id)
    stranger = await new_owner(store)

    assert await queue.retry_dead_letter("no-such-entry", None) is None
    assert await queue.retry_dead_letter(entry, stranger.default_org_id) is None
    assert await dead_letter_of(store, job.id) == [entry]
    assert (await read(store, job.id)).status is ExecutionStatus.FAILED


async def test_retry_dead_letter_of_a_deleted_task_is_none(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    await queue.settle([outcome(job, OutcomeKind.DEAD, error=failure())])
    [entry] = await dead_letter_of(store, job.id)
    assert await store.delete_task(task.id, None, utcnow())

    assert await queue.retry_dead_letter(entry, None) is None
    assert await dead_letter_of(store, job.id) == [entry]
    assert (await read(store, job.id)).status is ExecutionStatus.FAILED
    assert await claim(queue) == []


# --- observation and wake-ups -------------------------------------------------------------


async def test_depths_count_queued_and_running_jobs_by_status(queue: JobQueue, task: Task) -> None:
    jobs = [due_job(task) for _ in range(5)]
    await queue.add([*jobs, due_job(task, later(3600))])
    done, retry, dead, running, handed_back = await claim(queue, limit=5)
    await queue.settle(
        [
            outcome(done, OutcomeKind.COMPLETED),
            outcome(retry, OutcomeKind.RETRY, error=failure(), run_at=later(60)),
            outcome(dead, OutcomeKind.DEAD, error=failure()),
        ]
    )
    await queue.release([(handed_back.id, handed_back.fence)])
    cancel_me = due_job(task, later(3600))
    await queue.add([cancel_me])
    await queue.cancel(cancel_me.id, None)
    assert running.status is ExecutionStatus.PROCESSING

    # Finished jobs are history, not queue depth: they read 0.
    assert await queue.depths() == {
        ExecutionStatus.PENDING: 2,
        ExecutionStatus.PROCESSING: 1,
        ExecutionStatus.RETRYING: 1,
        ExecutionStatus.COMPLETED: 0,
        ExecutionStatus.FAILED: 0,
        ExecutionStatus.CANCELLED: 0,
    }


async def test_next_due_is_the_earliest_queued_run_at(queue: JobQueue, task: Task) -> None:
    assert await queue.next_due() is None
    soon, far = later(50), later(100)
    await queue.add([due_job(task, far), due_job(task, soon)])
    assert await queue.next_due() == soon

    await queue.add([due_job(task, ago(5))])
    running = await claim_one(queue)
    assert await queue.next_due() == soon
    retry_at = later(20)
    await queue.settle([outcome(running, OutcomeKind.RETRY, error=failure(), run_at=retry_at)])
    assert await queue.next_due() == retry_at


async def test_wait_for_work_returns_after_add(queue: JobQueue, task: Task) -> None:
    await queue.wait_for_work(0)  # consume wake-ups left by earlier calls
    waiter = asyncio.create_task(queue.wait_for_work(300))
    await asyncio.sleep(0)
    assert not waiter.done()

    await queue.add([due_job(task)])

    await asyncio.wait_for(waiter, WAKE_BOUND_S)


async def test_wait_for_work_returns_after_wake(queue: JobQueue) -> None:
    await queue.wait_for_work(0)
    waiter = asyncio.create_task(queue.wait_for_work(300))
    await asyncio.sleep(0)

    queue.wake()

    await asyncio.wait_for(waiter, WAKE_BOUND_S)


async def test_work_announced_due_before_the_wait_ends_wakes_the_waiter(
    queue: JobQueue, task: Task
) -> None:
    """An idle worker may sleep through work due after it looks again by itself, never
    through work due before that."""
    await queue.wait_for_work(0)
    waiter = asyncio.create_task(queue.wait_for_work(300))
    await asyncio.sleep(0)
    assert not waiter.done()

    await queue.announce([due_job(task, later(60))])

    await asyncio.wait_for(waiter, WAKE_BOUND_S)


async def test_wait_for_work_times_out_quietly(queue: JobQueue) -> None:
    await queue.wait_for_work(0)

    await asyncio.wait_for(queue.wait_for_work(0.05), WAKE_BOUND_S)


async def test_work_added_on_another_node_wakes_this_one(
    request: pytest.FixtureRequest, queue: JobQueue, store: SqlStore, db_url: str, task: Task
) -> None:
    if store.db.dialect == "sqlite":
        pytest.skip("an SQLite database serves a single node: there is no other node to wake")
    kind = request.node.callspec.params["queue"]
    redis = request.getfixturevalue("redis_target") if kind == "redis" else None
    other_store = open_store(db_url)
    await other_store.start()
    other = open_test_queue(kind, other_store, redis)
    await other.start()
    try:
        await other.wait_for_work(0)
        waiter = asyncio.create_task(other.wait_for_work(300))
        await asyncio.sleep(0)

        await queue.add([due_job(task)])

        await asyncio.wait_for(waiter, WAKE_BOUND_S)

        # Work due later, but before the other node would look again by itself.
        await other.wait_for_work(0)
        waiter = asyncio.create_task(other.wait_for_work(300))
        await asyncio.sleep(0)

        await queue.announce([due_job(task, later(60))])

        await asyncio.wait_for(waiter, WAKE_BOUND_S)
    finally:
        await other.stop()
        await other_store.stop()


async def test_schedule_change_wakes_schedulers(queue: JobQueue) -> None:
    await queue.wait_for_schedule_change(0)
    waiter = asyncio.create_task(queue.wait_for_schedule_change(300))
    await asyncio.sleep(0)

    await queue.schedule_changed()

    await asyncio.wait_for(waiter, WAKE_BOUND_S)
