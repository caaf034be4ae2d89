"""Failed attempts: retries with backoff, retry history, timeouts, and the dead-letter
queue, including a retry from it (DESIGN.md §4 Retries and Timeout)."""

from __future__ import annotations

from itertools import pairwise

from taskflowd.domain.entities import User
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from tests.integration.engine.harness import Engine, spec


async def test_failing_job_is_retried_then_dead_lettered(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(
        admin, spec(handler="fail", payload={"message": "nope"}, max_retries=2, backoff_ms=50)
    )

    [failed] = await engine.wait_until_final(task.id)

    assert failed.status is ExecutionStatus.FAILED
    assert failed.attempts == 3
    assert failed.error == {"type": "fail", "message": "nope"}
    history = await engine.history(failed.id)
    assert [r.attempt for r in history] == [1, 2, 3]
    assert all(r.error == {"type": "fail", "message": "nope"} for r in history)
    assert [r.next_run_at is not None for r in history] == [True, True, False]
    for before, after in pairwise(history):
        assert before.next_run_at is not None and before.next_run_at >= before.failed_at
        assert after.failed_at >= before.next_run_at
    [dead] = await engine.dead_letter()
    assert (dead.execution_id, dead.task_id, dead.attempts) == (failed.id, task.id, 3)
    assert dead.error == {"type": "fail", "message": "nope"}
    assert (await engine.task(task.id)).status is TaskStatus.FAILED


async def test_job_that_fails_until_attempt_two_succeeds_on_it(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(
        admin, spec(handler="fail", payload={"untilAttempt": 2}, max_retries=2, backoff_ms=50)
    )

    [done] = await engine.wait_until_final(task.id)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.attempts == 2
    assert done.result == {"attempt": 2}
    assert done.error is None
    assert [r.attempt for r in await engine.history(done.id)] == [1]
    assert await engine.dead_letter() == []
    assert (await engine.task(task.id)).status is TaskStatus.COMPLETED


async def test_attempt_over_its_timeout_is_cancelled_and_fails_as_timeout(
    engine: Engine, admin: User
) -> None:
    task = await engine.tasks.create(
        admin,
        spec(handler="sleep", payload={"seconds": 30}, timeout_ms=200, max_retries=1),
    )

    [failed] = await engine.wait_until_final(task.id)

    assert failed.status is ExecutionStatus.FAILED
    assert failed.attempts == 2
    assert failed.error["type"] == "timeout"
    assert failed.result is None
    history = await engine.history(failed.id)
    assert [(r.attempt, r.error["type"]) for r in history] == [(1, "timeout"), (2, "timeout")]
    assert [d.execution_id for d in await engine.dead_letter()] == [failed.id]


async def test_dead_letter_retry_that_fails_again_returns_to_the_queue(
    engine: Engine, admin: User
) -> None:
    task = await engine.tasks.create(admin, spec(handler="fail", payload={}, max_retries=1))
    [failed] = await engine.wait_until_final(task.id)
    [entry] = await engine.dead_letter()

    async with engine.events.subscribe() as events:
        retried = await engine.tasks.retry_dead_letter(admin, entry.id)
        seen = events.get_nowait()

    assert retried.id == failed.id
    assert retried.status is ExecutionStatus.PENDING
    assert (seen.data["id"], seen.data["status"]) == (failed.id, "PENDING")

    async def dead_again() -> bool:
        dead = await engine.dead_letter()
        current = await engine.execution(failed.id)
        return bool(dead) and current.status is ExecutionStatus.FAILED

    await engine.wait_for(dead_again, "the retried job to fail into the dead-letter queue")
    again = await engine.execution(failed.id)
    assert again.attempts == 3, "a dead-letter retry gives exactly one more attempt"
    assert [r.attempt for r in await engine.history(failed.id)] == [1, 2, 3]
    [entry_again] = await engine.dead_letter()
    assert entry_again.id != entry.id
    assert (entry_again.execution_id, entry_again.attempts) == (failed.id, 3)
    assert await engine.only_execution(task.id) == again
    assert (await engine.task(task.id)).status is TaskStatus.FAILED


async def test_dead_letter_retry_that_succeeds_completes_the_task(
    engine: Engine, admin: User
) -> None:
    task = await engine.tasks.create(
        admin, spec(handler="fail", payload={"untilAttempt": 2}, max_retries=0)
    )
    [failed] = await engine.wait_until_final(task.id)
    assert failed.status is ExecutionStatus.FAILED
    [entry] = await engine.dead_letter()

    await engine.tasks.retry_dead_letter(admin, entry.id)

    done = await engine.wait_for_status(failed.id, ExecutionStatus.COMPLETED)
    assert (done.attempts, done.result) == (2, {"attempt": 2})
    assert await engine.dead_letter() == []
    assert (await engine.task(task.id)).status is TaskStatus.COMPLETED
