"""The JobQueue contract (taskflowd.queue.base): cron ticks enqueued exactly once,
due recurring tasks, rescheduling.

Run against every queue and SQL backend through the `queue` and `store` fixtures;
nothing is mocked, and waits poll with a deadline: no assertion depends on how long
anything took.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from taskflowd.domain.entities import Execution, Task, User
from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from taskflowd.queue.base import JobQueue, TickBatch
from taskflowd.store import SqlStore
from taskflowd.store.base import ExecutionFilter
from tests.integration.queue.factories import (
    due_job,
    later,
    new_recurring_task,
    new_task,
    now,
    replace,
    tick,
)
from tests.integration.queue.helpers import (
    claim_one,
    read,
)

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
    await store.update_task(replace(paused, status=TaskStatus.PAUSED), paused.status)
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
