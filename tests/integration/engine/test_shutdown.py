"""Nothing accepted is lost when workers stop or die (DESIGN.md §4 Delivery and
Graceful shutdown): running jobs finish within the grace period or are handed back, and
a dead node's jobs are reclaimed once their lease expires."""

from __future__ import annotations

from taskflowd.domain.entities import User
from taskflowd.domain.enums import ExecutionStatus
from tests.integration.engine.harness import EngineFactory, spec


async def test_stop_lets_a_running_job_finish_within_the_grace_period(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker={"shutdown_grace_s": 30.0})
    task = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": 0.5}))
    [job] = await engine.executions(task.id)
    await engine.wait_for_status(job.id, ExecutionStatus.PROCESSING)

    await engine.worker.stop()

    done = await engine.execution(job.id)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == {"seconds": 0.5}
    assert done.attempts == 1


async def test_stop_hands_back_a_job_that_outlasts_the_grace_period(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker={"shutdown_grace_s": 0.1})
    task = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": 60}))
    [job] = await engine.executions(task.id)
    await engine.wait_for_status(job.id, ExecutionStatus.PROCESSING)

    await engine.worker.stop()

    handed_back = await engine.execution(job.id)
    assert handed_back.status is ExecutionStatus.PENDING
    assert handed_back.attempts == 0
    assert handed_back.lease_owner is None
    assert await engine.history(job.id) == []
    # It is not lost: the next worker claims it at once, as its first attempt.
    [again] = await engine.queue.acquire("next-node", 10, 30)
    assert (again.id, again.attempts) == (job.id, 1)


async def test_job_of_a_dead_node_is_reclaimed_after_its_lease(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(start=False)
    task = await engine.tasks.create(admin, spec(payload={"n": 7}))
    # A node claims the job and dies at once: it never renews the lease.
    [claimed] = await engine.queue.acquire("dead-node", 10, 0.5)

    await engine.start()

    done = await engine.wait_for_status(claimed.id, ExecutionStatus.COMPLETED)
    assert done.attempts == 2, "the dead node's attempt counts"
    assert done.result == {"n": 7}
    [rescue] = await engine.history(done.id)
    assert (rescue.attempt, rescue.error["type"]) == (1, "lease_expired")
    assert await engine.only_execution(task.id) == done


async def test_running_job_keeps_its_lease_past_the_lease_time(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker={"lease_s": 2.0})
    task = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": 3}))
    [job] = await engine.executions(task.id)

    done = await engine.wait_for_status(job.id, ExecutionStatus.COMPLETED, ExecutionStatus.FAILED)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.attempts == 1, "a renewed lease must not expire under a running job"
    assert await engine.history(job.id) == []
