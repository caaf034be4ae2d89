"""The JobQueue contract (taskflowd.queue.base), run against every queue and SQL backend.

Each test gets an empty database and a started queue; nothing is mocked. Waits poll
with a deadline; no assertion depends on how long anything took.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from taskflowd.domain.entities import Execution, Task, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from taskflowd.queue.base import JobQueue, OutcomeKind, Reaped, TickBatch
from taskflowd.store import SqlStore, open_store
from taskflowd.store.base import ExecutionFilter
from tests.integration.queue.conftest import open_test_queue
from tests.integration.queue.factories import (
    ago,
    due_job,
    failure,
    later,
    new_owner,
    new_recurring_task,
    new_task,
    now,
    outcome,
    replace,
    tick,
)
from tests.integration.queue.polling import eventually

OWNER = "node-a"
OTHER = "node-b"
WAKE_BOUND_S = 10.0
"""How long a wake-up may take on a loaded machine; the waits themselves are far longer."""


async def claim(
    queue: JobQueue, owner: str = OWNER, limit: int = 10, lease_s: float = 30.0
) -> list[Execution]:
    return await queue.acquire(owner, limit, lease_s)


async def claim_one(queue: JobQueue, owner: str = OWNER, lease_s: float = 30.0) -> Execution:
    found = await claim(queue, owner, 10, lease_s)
    assert len(found) == 1, found
    return found[0]


async def read(store: SqlStore, execution_id: str) -> Execution:
    found = await store.get_execution(execution_id)
    assert found is not None
    return found


async def task_status(store: SqlStore, task_id: str) -> TaskStatus:
    found = await store.get_task(task_id)
    assert found is not None
    return found.status


async def reap_until(queue: JobQueue, execution_id: str, max_rescues: int) -> Reaped:
    """Poll `reap_expired` until it has rescued or dead-lettered `execution_id`."""

    async def probe() -> Reaped | None:
        reaped = await queue.reap_expired(max_rescues)
        hit = execution_id in reaped.rescued or execution_id in reaped.dead
        return reaped if hit else None

    return await eventually(probe, f"the lease of {execution_id} to be reaped")


async def dead_letter_of(store: SqlStore, execution_id: str) -> list[str]:
    page = await store.list_dead_letter(None, 100)
    return [d.id for d in page.items if d.execution_id == execution_id]


@pytest.fixture
async def owner(store: SqlStore) -> User:
    return await new_owner(store)


@pytest.fixture
async def task(store: SqlStore, owner: User) -> Task:
    return await new_task(store, owner)


# --- adding and claiming ----------------------------------------------------------


async def test_acquire_returns_due_jobs_only(queue: JobQueue, store: SqlStore, task: Task) -> None:
    due, future = due_job(task), due_job(task, later(3600))
    await queue.add([due, future])

    claimed = await claim(queue)

    assert [e.id for e in claimed] == [due.id]
    assert (await read(store, future.id)).status is ExecutionStatus.PENDING


@pytest.mark.parametrize("batch", [1, 4])
async def test_acquire_orders_by_priority_then_run_at(
    queue: JobQueue, task: Task, batch: int
) -> None:
    low_oldest = due_job(task, ago(40), priority=1)
    high_newer = due_job(task, ago(10), priority=9)
    high_older = due_job(task, ago(30), priority=9)
    middle = due_job(task, ago(20), priority=5)
    await queue.add([low_oldest, high_newer, high_older, middle])

    order: list[str] = []
    while found := await claim(queue, limit=batch):
        order += [e.id for e in found]

    assert order == [high_older.id, high_newer.id, middle.id, low_oldest.id]


async def test_acquire_claims_with_attempt_fence_and_lease(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    job = due_job(task)
    await queue.add([job])
    before = utcnow()

    claimed = await claim_one(queue, lease_s=30)

    after = utcnow()
    stored = await read(store, job.id)
    for seen in (claimed, stored):
        assert seen.status is ExecutionStatus.PROCESSING
        assert seen.attempts == 1
        assert seen.fence == job.fence + 1
        assert seen.lease_owner == OWNER
        assert seen.lease_expires_at is not None
        assert before + timedelta(seconds=30) <= seen.lease_expires_at
        assert seen.lease_expires_at <= after + timedelta(seconds=30)
        assert seen.started_at is not None and before <= seen.started_at <= after


async def test_claimed_jobs_are_not_claimed_again(queue: JobQueue, task: Task) -> None:
    await queue.add([due_job(task)])
    await claim_one(queue, OWNER)

    assert await claim(queue, OTHER) == []


async def test_acquire_respects_limit(queue: JobQueue, task: Task) -> None:
    await queue.add([due_job(task) for _ in range(5)])

    sizes = [len(await claim(queue, limit=2)) for _ in range(4)]

    assert sizes == [2, 2, 1, 0]


async def test_paused_task_jobs_are_not_claimed(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await store.update_task(replace(task, status=TaskStatus.PAUSED))
    job = due_job(task)
    await queue.add([job])

    assert await claim(queue) == []

    await store.update_task(replace(task, status=TaskStatus.ACTIVE))
    assert [e.id for e in await claim(queue)] == [job.id]


# --- leases ------------------------------------------------------------------------


async def test_renew_extends_held_leases(queue: JobQueue, store: SqlStore, task: Task) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue, lease_s=5)

    status = await queue.renew(OWNER, [(job.id, job.fence)], 600)

    assert status.lost == frozenset() and status.cancel_requested == frozenset()
    renewed = await read(store, job.id)
    assert job.lease_expires_at is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at >= job.lease_expires_at + timedelta(seconds=500)


async def test_renew_reports_claims_of_another_owner_or_fence_as_lost(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue, lease_s=30)

    by_other = await queue.renew(OTHER, [(job.id, job.fence)], 600)

    assert by_other.lost == {job.id}
    untouched = await read(store, job.id)
    assert untouched.lease_expires_at == job.lease_expires_at
    assert untouched.lease_owner == OWNER
    assert (await queue.renew(OWNER, [(job.id, job.fence - 1)], 30)).lost == {job.id}


async def test_renew_reports_finished_jobs_as_lost(queue: JobQueue, task: Task) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    await queue.settle([outcome(job, OutcomeKind.COMPLETED)])

    status = await queue.renew(OWNER, [(job.id, job.fence)], 30)

    assert status.lost == {job.id}


async def test_cancel_of_running_job_reaches_its_worker_through_renew(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)

    asked = await queue.cancel(job.id, None)

    assert asked is not None and asked.status is ExecutionStatus.PROCESSING
    status = await queue.renew(OWNER, [(job.id, job.fence)], 30)
    assert status.cancel_requested == {job.id}
    assert status.lost == frozenset()
    assert (await read(store, job.id)).status is ExecutionStatus.PROCESSING


# --- outcomes ------------------------------------------------------------------------


async def test_settle_completed_applies_once(queue: JobQueue, store: SqlStore, task: Task) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    done = outcome(job, OutcomeKind.COMPLETED, result={"answer": 42})

    assert await queue.settle([done]) == {job.id}
    recorded = await read(store, job.id)
    # Settling the same outcome again (a retried commit) changes nothing; any other
    # outcome for the finished claim is ignored.
    await queue.settle([done])
    assert await read(store, job.id) == recorded
    other = outcome(job, OutcomeKind.COMPLETED, result={"answer": 43})
    assert await queue.settle([other, outcome(job, OutcomeKind.DEAD, error=failure())]) == set()

    stored = await read(store, job.id)
    assert stored == recorded
    assert stored.status is ExecutionStatus.COMPLETED
    assert stored.result == {"answer": 42}
    assert stored.error is None
    assert stored.completed_at == done.finished_at
    assert stored.lease_owner is None and stored.lease_expires_at is None
    finished_task = await store.get_task(task.id)
    assert finished_task is not None
    assert finished_task.status is TaskStatus.COMPLETED
    assert finished_task.last_run_at == job.started_at


async def test_settle_with_a_stale_fence_is_ignored(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)

    stale = outcome(job, OutcomeKind.COMPLETED, fence=job.fence - 1)

    assert await queue.settle([stale]) == set()
    assert (await read(store, job.id)).status is ExecutionStatus.PROCESSING


async def test_lost_lease_cannot_overwrite_the_new_owners_outcome(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    first = await claim_one(queue, OWNER, lease_s=0.2)
    await reap_until(queue, first.id, max_rescues=5)

    second = await claim_one(queue, OTHER)
    assert second.id == first.id
    assert second.fence == first.fence + 1
    assert second.attempts == 2

    late = outcome(first, OutcomeKind.COMPLETED, result={"by": "A"})
    assert await queue.settle([late]) == set()
    assert (await queue.renew(OWNER, [(first.id, first.fence)], 30)).lost == {first.id}
    assert await queue.settle([outcome(second, OutcomeKind.COMPLETED, result={"by": "B"})]) == {
        second.id
    }
    assert await queue.settle([outcome(first, OutcomeKind.DEAD, error=failure())]) == set()

    final = await read(store, first.id)
    assert final.status is ExecutionStatus.COMPLETED
    assert final.result == {"by": "B"}
    assert await dead_letter_of(store, first.id) == []


async def test_settle_retry_queues_the_job_again_at_run_at(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    retry_at = later(3600)

    applied = await queue.settle(
        [outcome(job, OutcomeKind.RETRY, error=failure("try again"), run_at=retry_at)]
    )

    assert applied == {job.id}
    stored = await read(store, job.id)
    assert stored.status is ExecutionStatus.RETRYING
    assert stored.run_at == retry_at
    assert stored.lease_owner is None
    history = await store.retry_history(job.id)
    assert [(r.attempt, r.error, r.next_run_at) for r in history] == [
        (1, failure("try again"), retry_at)
    ]
    assert await claim(queue) == []
    assert await queue.next_due() == retry_at
    assert await task_status(store, task.id) is TaskStatus.ACTIVE


async def test_due_retry_is_claimed_as_the_next_attempt(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)
    await queue.settle([outcome(job, OutcomeKind.RETRY, error=failure(), run_at=now())])

    again = await claim_one(queue)

    assert again.id == job.id
    assert (again.attempts, again.fence) == (2, job.fence + 1)


async def test_settle_dead_fails_and_dead_letters_the_job(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)

    applied = await queue.settle([outcome(job, OutcomeKind.DEAD, error=failure("gave up"))])

    assert applied == {job.id}
    stored = await read(store, job.id)
    assert stored.status is ExecutionStatus.FAILED
    assert stored.completed_at is not None
    assert stored.error == failure("gave up")
    dead = (await store.list_dead_letter(None, 10)).items
    assert [(d.execution_id, d.task_id, d.job_id) for d in dead] == [(job.id, task.id, job.job_id)]
    assert dead[0].error == failure("gave up")
    assert dead[0].attempts == 1
    assert dead[0].payload == job.payload
    history = await store.retry_history(job.id)
    assert [(r.attempt, r.next_run_at) for r in history] == [(1, None)]
    assert await task_status(store, task.id) is TaskStatus.FAILED


async def test_settle_applies_a_mixed_batch(queue: JobQueue, store: SqlStore, task: Task) -> None:
    await queue.add([due_job(task) for _ in range(3)])
    ok, retry, dead = await claim(queue)

    applied = await queue.settle(
        [
            outcome(ok, OutcomeKind.COMPLETED, result=1),
            outcome(retry, OutcomeKind.RETRY, error=failure(), run_at=later(60)),
            outcome(dead, OutcomeKind.DEAD, error=failure()),
            outcome(ok, OutcomeKind.COMPLETED, fence=ok.fence + 7),
        ]
    )

    assert applied == {ok.id, retry.id, dead.id}
    statuses = [(await read(store, e.id)).status for e in (ok, retry, dead)]
    assert statuses == [
        ExecutionStatus.COMPLETED,
        ExecutionStatus.RETRYING,
        ExecutionStatus.FAILED,
    ]


# --- expired leases, hand-back ---------------------------------------------------------


async def test_reap_requeues_a_job_whose_lease_expired(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue, lease_s=0.2)

    reaped = await reap_until(queue, job.id, max_rescues=3)

    assert reaped.rescued == [job.id] and reaped.dead == []
    stored = await read(store, job.id)
    assert stored.status is ExecutionStatus.PENDING
    assert stored.rescues == 1
    assert stored.attempts == 1
    assert stored.lease_owner is None and stored.lease_expires_at is None
    history = await store.retry_history(job.id)
    assert len(history) == 1
    assert history[0].attempt == 1
    assert history[0].error["type"] == "lease_expired"
    again = await claim_one(queue, OTHER)
    assert again.attempts == 2


async def test_reap_leaves_live_leases_alone(queue: JobQueue, store: SqlStore, task: Task) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue, lease_s=60)

    assert await queue.reap_expired(3) == Reaped([], [])
    assert (await read(store, job.id)).status is ExecutionStatus.PROCESSING


async def test_reap_dead_letters_after_max_rescues(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    first = await claim_one(queue, lease_s=0.2)
    assert (await reap_until(queue, first.id, max_rescues=1)).rescued == [first.id]
    second = await claim_one(queue, lease_s=0.2)

    reaped = await reap_until(queue, second.id, max_rescues=1)

    assert reaped.dead == [second.id] and reaped.rescued == []
    stored = await read(store, second.id)
    assert stored.status is ExecutionStatus.FAILED
    assert stored.attempts == 2
    assert len(await dead_letter_of(store, second.id)) == 1
    history = await store.retry_history(second.id)
    assert [r.attempt for r in history] == [1, 2]
    assert {r.error["type"] for r in history} == {"lease_expired"}
    assert await claim(queue) == []
    assert await task_status(store, task.id) is TaskStatus.FAILED


async def test_release_hands_jobs_back_without_counting_the_attempt(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)

    assert await queue.release([(job.id, job.fence)]) == 1

    stored = await read(store, job.id)
    assert stored.status is ExecutionStatus.PENDING
    assert stored.attempts == 0
    assert stored.lease_owner is None and stored.lease_expires_at is None
    again = await claim_one(queue, OTHER)
    assert (again.attempts, again.fence) == (1, job.fence + 1)


async def test_release_with_a_stale_fence_changes_nothing(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    await queue.add([due_job(task)])
    job = await claim_one(queue)

    assert await queue.release([(job.id, job.fence - 1)]) == 0
    assert (await read(store, job.id)).status is ExecutionStatus.PROCESSING


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

    assert await queue.cancel(job.id, stranger.id) is None
    assert await queue.cancel("no-such-execution", None) is None
    assert (await read(store, job.id)).status is ExecutionStatus.PENDING
    mine = await queue.cancel(job.id, owner.id)
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
    assert await queue.retry_dead_letter(entry, stranger.id) is None
    assert await dead_letter_of(store, job.id) == [entry]
    assert (await read(store, job.id)).status is ExecutionStatus.FAILED


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


async def test_wait_for_work_times_out_quietly(queue: JobQueue) -> None:
    await queue.wait_for_work(0)

    await asyncio.wait_for(queue.wait_for_work(0.05), WAKE_BOUND_S)


async def test_work_added_on_another_node_wakes_this_one(
    queue: JobQueue, store: SqlStore, db_url: str, task: Task
) -> None:
    if store.db.dialect == "sqlite":
        pytest.skip("an SQLite database serves a single node: there is no other node to wake")
    other_store = open_store(db_url)
    await other_store.start()
    other = open_test_queue("database", other_store)
    await other.start()
    try:
        await other.wait_for_work(0)
        waiter = asyncio.create_task(other.wait_for_work(300))
        await asyncio.sleep(0)

        await queue.add([due_job(task)])

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


# --- recurring tasks and cron ticks --------------------------------------------------------


def whole_second(seconds_from_now: int) -> datetime:
    return (now() + timedelta(seconds=seconds_from_now)).replace(microsecond=0)


async def tick_executions(store: SqlStore, task: Task) -> list[Execution]:
    page = await store.list_executions(ExecutionFilter(task_id=task.id), 500)
    return sorted(page.items, key=lambda e: e.scheduled_for)


async def test_add_ticks_inserts_ticks_and_advances_next_run(
    queue: JobQueue, store: SqlStore, owner: User
) -> None:
    first = whole_second(60)
    task = await new_recurring_task(store, owner, first)
    ticks = [tick(task, first), tick(task, first + timedelta(seconds=1))]

    added = await queue.add_ticks(TickBatch(task, first, first + timedelta(seconds=2), ticks))

    assert added is True
    stored = await tick_executions(store, task)
    assert [e.scheduled_for for e in stored] == [first, first + timedelta(seconds=1)]
    assert {e.status for e in stored} == {ExecutionStatus.PENDING}
    advanced = await store.get_task(task.id)
    assert advanced is not None and advanced.next_run_at == first + timedelta(seconds=2)


async def test_add_ticks_with_a_stale_next_run_inserts_nothing(
    queue: JobQueue, store: SqlStore, owner: User
) -> None:
    first = whole_second(60)
    second = first + timedelta(seconds=1)
    task = await new_recurring_task(store, owner, first)
    assert await queue.add_ticks(TickBatch(task, first, second, [tick(task, first)]))

    # Another scheduler that read the task before the first batch committed.
    lost_race = await queue.add_ticks(
        TickBatch(task, first, second + timedelta(seconds=5), [tick(task, second)])
    )

    assert lost_race is False
    assert [e.scheduled_for for e in await tick_executions(store, task)] == [first]
    advanced = await store.get_task(task.id)
    assert advanced is not None and advanced.next_run_at == second


async def test_a_tick_is_enqueued_at_most_once(
    queue: JobQueue, store: SqlStore, owner: User
) -> None:
    first = whole_second(60)
    second = first + timedelta(seconds=1)
    task = await new_recurring_task(store, owner, first)
    assert await queue.add_ticks(TickBatch(task, first, second, [tick(task, first)]))

    # A batch that (wrongly) repeats an instant already enqueued, with a new execution id.
    repeat = [tick(task, first), tick(task, second)]
    assert await queue.add_ticks(TickBatch(task, second, second + timedelta(seconds=1), repeat))

    stored = await tick_executions(store, task)
    assert [e.scheduled_for for e in stored] == [first, second]


async def test_due_tasks_and_next_tick_cover_active_recurring_tasks_only(
    queue: JobQueue, store: SqlStore, owner: User
) -> None:
    soon = await new_recurring_task(store, owner, whole_second(10))
    later_task = await new_recurring_task(store, owner, whole_second(100))
    paused = await new_recurring_task(store, owner, whole_second(5))
    await store.update_task(replace(paused, status=TaskStatus.PAUSED))
    deleted = await new_recurring_task(store, owner, whole_second(5))
    await store.delete_task(deleted.id, None, now())
    await new_task(store, owner, type=TaskType.ONE_TIME, next_run_at=whole_second(5))

    due = await queue.due_tasks(now() + timedelta(seconds=50), 100)

    assert [t.id for t in due] == [soon.id]
    assert await queue.next_tick_at() == soon.next_run_at
    assert later_task.next_run_at is not None
    assert [t.id for t in await queue.due_tasks(later_task.next_run_at, 1)] == [soon.id]


async def test_reschedule_updates_queued_jobs_of_a_changed_task(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    queued = [due_job(task, later(600)), due_job(task, later(900))]
    await queue.add([*queued, due_job(task)])
    running = await claim_one(queue)
    changed = replace(task, payload={"v": 2}, priority=9, max_retries=4, timeout_ms=1234)
    new_run_at = later(30)

    assert await queue.reschedule(changed, new_run_at) == 2

    for job in queued:
        stored = await read(store, job.id)
        assert (stored.payload, stored.priority, stored.max_retries, stored.timeout_ms) == (
            {"v": 2},
            9,
            4,
            1234,
        )
        assert stored.run_at == new_run_at
    assert (await read(store, running.id)).payload == task.payload


# --- per-task limits --------------------------------------------------------------------------


async def test_concurrency_limit_admits_one_job_at_a_time(
    queue: JobQueue, store: SqlStore, owner: User
) -> None:
    task = await new_task(store, owner, concurrency=1)
    await queue.add([due_job(task, ago(2)), due_job(task, ago(1))])

    first = await claim_one(queue)
    assert await claim(queue, OTHER) == []

    # Even once the deferred job is due again, it waits while the first one runs.
    async def deferred_due() -> bool:
        due = await queue.next_due()
        return due is not None and due <= utcnow()

    await eventually(deferred_due, "the deferred job to be due again")
    assert await claim(queue, OTHER) == []

    await queue.settle([outcome(first, OutcomeKind.COMPLETED)])

    async def claim_next() -> list[Execution]:
        return await claim(queue, OTHER)

    [second] = await eventually(claim_next, "the second job to be claimable")
    assert second.id != first.id


async def test_concurrency_limit_does_not_hold_back_other_tasks(
    queue: JobQueue, store: SqlStore, owner: User
) -> None:
    limited = await new_task(store, owner, concurrency=1)
    free = await new_task(store, owner)
    first, second = due_job(limited, ago(3), priority=9), due_job(limited, ago(2), priority=9)
    await queue.add([first, second, due_job(free, ago(1), priority=0)])

    claimed = await claim(queue, limit=3)

    assert sorted(e.task_id for e in claimed) == sorted([limited.id, free.id])


async def test_rate_limit_caps_starts_per_minute(
    queue: JobQueue, store: SqlStore, owner: User
) -> None:
    task = await new_task(store, owner, rate_limit=2)
    await queue.add([due_job(task) for _ in range(3)])

    started = await claim(queue)
    assert len(started) == 2
    await queue.settle([outcome(e, OutcomeKind.COMPLETED) for e in started])
    assert await claim(queue) == []

    # Nothing is running now, but the minute's two starts are used up.
    late = due_job(task)
    await queue.add([late])
    assert await claim(queue) == []
    assert (await read(store, late.id)).status is ExecutionStatus.PENDING
    assert (await queue.depths())[ExecutionStatus.PENDING] == 2
