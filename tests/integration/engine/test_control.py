"""What users do to tasks and jobs: pause and resume, cancel, run now."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskflowd.domain.entities import Execution, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from taskflowd.domain.errors import Conflict
from tests.integration.engine.harness import Engine, spec

EVERY_SECOND = "* * * * * *"
NEW_YEAR = "0 0 1 1 *"


async def completed(engine: Engine, task_id: str) -> list[Execution]:
    return [e for e in await engine.executions(task_id) if e.status is ExecutionStatus.COMPLETED]


async def test_paused_recurring_task_starts_nothing_until_resumed(
    engine: Engine, admin: User
) -> None:
    task = await engine.tasks.create(admin, spec(TaskType.RECURRING, cron_expression=EVERY_SECOND))
    canary = await engine.tasks.create(
        admin, spec(TaskType.RECURRING, cron_expression=EVERY_SECOND)
    )

    async def task_ran() -> bool:
        return bool(await completed(engine, task.id))

    await engine.wait_for(task_ran, "the recurring task to run")

    await engine.tasks.pause(admin, task.id)
    paused_at = utcnow()
    before = {e.id: e for e in await engine.executions(task.id)}
    canary_runs = len(await completed(engine, canary.id))

    async def canary_ran_twice() -> bool:
        return len(await completed(engine, canary.id)) >= canary_runs + 2

    await engine.wait_for(canary_ran_twice, "two more ticks of an active task")
    during = await engine.executions(task.id)
    assert {e.id for e in during} == set(before), "a paused task got new executions"
    started_while_paused = [
        e for e in during if e.started_at is not None and e.started_at > paused_at
    ]
    assert started_while_paused == []

    resumed = await engine.tasks.resume(admin, task.id)
    assert resumed.status is TaskStatus.ACTIVE
    assert resumed.next_run_at is not None and resumed.next_run_at > paused_at

    async def new_tick_ran() -> bool:
        return any(e.id not in before for e in await completed(engine, task.id))

    await engine.wait_for(new_tick_ran, "a tick after the resume to run")
    after = await engine.executions(task.id)
    new_ticks = [e.scheduled_for for e in after if e.id not in before]
    assert min(new_ticks) >= resumed.next_run_at, "ticks that fell into the pause were replayed"


async def test_retimed_paused_one_time_task_runs_at_its_new_time(
    engine: Engine, admin: User
) -> None:
    task = await engine.tasks.create(admin, spec(scheduled_at=utcnow() + timedelta(hours=1)))
    await engine.tasks.pause(admin, task.id)

    new_time = utcnow() + timedelta(milliseconds=500)
    await engine.tasks.update(admin, task.id, {"scheduled_at": new_time})
    resumed = await engine.tasks.resume(admin, task.id)

    assert resumed.next_run_at == new_time
    [done] = await engine.wait_until_final(task.id)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.scheduled_for == new_time
    assert done.started_at is not None and done.started_at >= new_time


async def test_cancelling_a_running_job_stops_it(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": 60}))
    [job] = await engine.executions(task.id)
    await engine.wait_for_status(job.id, ExecutionStatus.PROCESSING)

    asked = await engine.tasks.cancel(admin, job.id)

    assert asked.id == job.id
    cancelled = await engine.wait_for_status(job.id, ExecutionStatus.CANCELLED)
    assert cancelled.attempts == 1
    assert cancelled.error["type"] == "cancelled"
    assert cancelled.completed_at is not None
    assert await engine.history(job.id) == []
    assert await engine.dead_letter() == []
    assert engine.worker.active == 0


async def test_cancelling_a_queued_job_means_it_never_runs(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(
        admin, spec(TaskType.DELAYED, delay_ms=1000, handler="fail", payload={})
    )
    [job] = await engine.executions(task.id)

    async with engine.events.subscribe() as events:
        cancelled = await engine.tasks.cancel(admin, job.id)
        seen = events.get_nowait()

    assert cancelled.status is ExecutionStatus.CANCELLED
    assert seen.data["id"] == job.id and seen.data["status"] == "CANCELLED"
    assert seen.data["ownerId"] == admin.id
    # A job queued behind it has run: the worker had every chance to start it.
    later = await engine.tasks.create(admin, spec(TaskType.DELAYED, delay_ms=1100))
    await engine.wait_until_final(later.id)
    final = await engine.execution(job.id)
    assert final.status is ExecutionStatus.CANCELLED
    assert final.started_at is None and final.attempts == 0
    with pytest.raises(Conflict):
        await engine.tasks.cancel(admin, job.id)


async def test_run_now_runs_a_recurring_task_between_ticks(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(
        admin, spec(TaskType.RECURRING, cron_expression=NEW_YEAR, payload={"n": 1})
    )

    first = await engine.tasks.run_now(admin, task.id)
    second = await engine.tasks.run_now(admin, task.id)

    assert first.job_id != second.job_id
    for execution in (first, second):
        done = await engine.wait_for_status(execution.id, ExecutionStatus.COMPLETED)
        assert done.result == {"n": 1}
    assert len(await engine.executions(task.id)) == 2
    after = await engine.task(task.id)
    assert after.status is TaskStatus.ACTIVE
    assert after.next_run_at == task.next_run_at


async def test_run_now_of_a_paused_task_is_refused(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(admin, spec(TaskType.RECURRING, cron_expression=NEW_YEAR))
    await engine.tasks.pause(admin, task.id)

    with pytest.raises(Conflict):
        await engine.tasks.run_now(admin, task.id)
    assert await engine.executions(task.id) == []
