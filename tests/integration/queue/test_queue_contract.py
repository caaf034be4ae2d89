"""The JobQueue contract (taskflowd.queue.base): claims, leases, outcomes, hand-back
and per-task limits.

Run against every queue and SQL backend through the `queue` and `store` fixtures;
nothing is mocked, and waits poll with a deadline: no assertion depends on how long
anything took.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from taskflowd.domain.entities import Execution, Task, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from taskflowd.domain.jobs import run_job_ids
from taskflowd.queue.base import JobQueue, OutcomeKind, Reaped
from taskflowd.store import SqlStore
from tests.integration.queue.factories import (
    ago,
    due_job,
    failure,
    later,
    new_task,
    now,
    outcome,
    replace,
)
from tests.integration.queue.helpers import (
    OTHER,
    OWNER,
    claim,
    claim_one,
    dead_letter_of,
    read,
    reap_until,
    task_status,
)
from tests.integration.queue.polling import eventually

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


async def test_a_claim_does_not_wait_for_another_transaction_on_the_task(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    """Claims on other nodes (or a task edit) may hold the task's row: recording the last
    run must not make this claim wait for them, or claims touching several tasks in
    different orders could deadlock."""
    if store.db.dialect != "postgresql":
        pytest.skip("SQLite has a single writer: no other transaction can hold the row")
    job = due_job(task)
    await queue.add([job])
    async with store.db.transaction() as conn:
        await conn.execute("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", task.id)
        async with asyncio.timeout(10):
            claimed = await claim_one(queue)
    assert claimed.id == job.id


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
    await store.update_task(replace(task, status=TaskStatus.PAUSED), task.status)
    job = due_job(task)
    await queue.add([job])

    assert await claim(queue) == []

    await store.update_task(replace(task, status=TaskStatus.ACTIVE), TaskStatus.PAUSED)
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


async def test_settle_ends_the_one_time_tasks_of_the_own_jobs_it_applied(
    queue: JobQueue, store: SqlStore, owner: User
) -> None:
    ending, stale, with_run = [await new_task(store, owner) for _ in range(3)]
    run = due_job(with_run, job_id=run_job_ids(with_run.id, 1)[0])
    await queue.add([due_job(ending), due_job(stale), run])
    jobs = {j.task_id: j for j in await claim(queue)}
    applied = {jobs[ending.id].id, jobs[with_run.id].id}

    settled = await queue.settle(
        [
            outcome(jobs[ending.id], OutcomeKind.COMPLETED),
            outcome(jobs[stale.id], OutcomeKind.COMPLETED, fence=jobs[stale.id].fence - 1),
            outcome(jobs[with_run.id], OutcomeKind.COMPLETED),
        ]
    )

    assert settled == applied
    assert await task_status(store, ending.id) is TaskStatus.COMPLETED
    # A stale outcome ends nothing, and a run asked for through the API never ends its task.
    assert await task_status(store, stale.id) is TaskStatus.ACTIVE
    assert await task_status(store, with_run.id) is TaskStatus.ACTIVE


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
