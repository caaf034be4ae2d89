"""Each task type runs when DESIGN.md §4 says it does: one-time now or at `scheduledAt`,
delayed `delayMs` after creation, recurring on every cron tick."""

from __future__ import annotations

from datetime import timedelta

from taskflowd.domain.entities import User, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from tests.integration.engine.harness import Engine, spec


async def test_one_time_task_runs_now_and_completes(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(admin, spec(payload={"hello": "world"}))

    [done] = await engine.wait_until_final(task.id)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == {"hello": "world"}
    assert done.attempts == 1
    assert done.scheduled_for == task.next_run_at
    assert done.started_at is not None and done.completed_at is not None
    assert done.started_at <= done.completed_at
    finished = await engine.task(task.id)
    assert finished.status is TaskStatus.COMPLETED
    assert finished.last_run_at == done.started_at
    assert await engine.only_execution(task.id) == done


async def test_one_time_task_runs_at_its_scheduled_time(engine: Engine, admin: User) -> None:
    at = utcnow() + timedelta(seconds=1)
    task = await engine.tasks.create(admin, spec(scheduled_at=at))

    [done] = await engine.wait_until_final(task.id)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.scheduled_for == at
    assert done.started_at is not None and done.started_at >= at
    assert (await engine.task(task.id)).status is TaskStatus.COMPLETED


async def test_delayed_task_runs_no_earlier_than_its_delay(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(admin, spec(TaskType.DELAYED, delay_ms=500))
    due = task.created_at + timedelta(milliseconds=500)

    [done] = await engine.wait_until_final(task.id)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.scheduled_for == due
    assert done.started_at is not None and done.started_at >= due
    # DESIGN §4: a delayed task's scheduledAt is set to when it runs.
    assert task.scheduled_at == due
    assert (await engine.task(task.id)).scheduled_at == due


async def test_delayed_task_can_be_edited_and_retimed(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(admin, spec(TaskType.DELAYED, delay_ms=3_600_000))

    renamed = await engine.tasks.update(admin, task.id, {"name": "renamed"})
    assert renamed.scheduled_at == task.scheduled_at
    retimed = await engine.tasks.update(admin, task.id, {"delay_ms": 300})

    due = task.created_at + timedelta(milliseconds=300)
    assert retimed.scheduled_at == due
    assert (await engine.task(task.id)).scheduled_at == due
    [done] = await engine.wait_until_final(task.id)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.scheduled_for == due
    assert done.started_at is not None and done.started_at >= due


async def test_recurring_task_runs_every_tick_once(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(
        admin, spec(TaskType.RECURRING, cron_expression="*/1 * * * * *")
    )

    async def three_done() -> bool:
        found = await engine.executions(task.id)
        return sum(e.status is ExecutionStatus.COMPLETED for e in found) >= 3

    await engine.wait_for(three_done, "three ticks to complete")
    await engine.tasks.pause(admin, task.id)

    found = await engine.executions(task.id)
    ticks = [e.scheduled_for for e in found]
    assert len(set(ticks)) == len(ticks), "a tick was enqueued twice"
    assert all(t.microsecond == 0 for t in ticks), ticks
    assert ticks[0] >= task.created_at
    for execution in found:
        if execution.started_at is not None:
            assert execution.started_at >= execution.scheduled_for
    assert (await engine.task(task.id)).status is TaskStatus.PAUSED
