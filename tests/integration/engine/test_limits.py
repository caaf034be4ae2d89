"""Per-task limits (DESIGN.md §4): `rateLimit` starts per minute and `concurrency`."""

from __future__ import annotations

from itertools import pairwise

from taskflowd.domain.entities import Execution, User
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.queue.sql import SqlQueue
from taskflowd.store.db import Database
from tests.integration.engine.harness import Engine, EngineFactory, spec


async def test_rate_limit_caps_starts_per_minute(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(admin, spec(rate_limit=2))
    for _ in range(2):
        await engine.tasks.run_now(admin, task.id)

    async def two_done() -> list[Execution] | None:
        found = await engine.executions(task.id)
        done = [e for e in found if e.status is ExecutionStatus.COMPLETED]
        return found if len(found) == 3 and len(done) == 2 else None

    await engine.wait_for(two_done, "two of three jobs to complete")
    # A job of an unlimited task queued after them has run: the worker has been
    # claiming since, so the third job was passed over, not merely not reached yet.
    canary = await engine.tasks.create(admin, spec())
    await engine.wait_until_final(canary.id)

    found = await engine.executions(task.id)
    [held_back] = [e for e in found if e.status is not ExecutionStatus.COMPLETED]
    assert held_back.status is ExecutionStatus.PENDING
    assert held_back.started_at is None
    assert held_back.attempts == 0


async def test_a_retried_attempt_counts_as_a_start(engine: Engine, admin: User) -> None:
    """rateLimit 2: a job that failed and was retried has started twice, so another job
    of the task must wait for the next minute."""
    task = await engine.tasks.create(
        admin, spec(handler="fail", payload={"message": "no"}, rate_limit=2, max_retries=1)
    )
    [failed] = await engine.wait_until_final(task.id)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.attempts == 2

    await engine.tasks.run_now(admin, task.id)
    canary = await engine.tasks.create(admin, spec())
    await engine.wait_until_final(canary.id)

    [held_back] = [e for e in await engine.executions(task.id) if e.id != failed.id]
    assert held_back.status is ExecutionStatus.PENDING
    assert held_back.attempts == 0


async def test_concurrency_limit_runs_one_job_of_the_task_at_a_time(
    engine: Engine, admin: User
) -> None:
    task = await engine.tasks.create(
        admin, spec(handler="sleep", payload={"seconds": 0.2}, concurrency=1)
    )
    for _ in range(3):
        await engine.tasks.run_now(admin, task.id)
    most_running = 0

    async def all_done() -> list[Execution] | None:
        nonlocal most_running
        found = await engine.executions(task.id)
        running = sum(e.status is ExecutionStatus.PROCESSING for e in found)
        most_running = max(most_running, running)
        return found if all(e.status.is_final for e in found) else None

    found: list[Execution] = await engine.wait_for(all_done, "four sleep jobs to finish")

    assert most_running <= 1
    assert [e.status for e in found] == [ExecutionStatus.COMPLETED] * 4
    spans = sorted((e.started_at, e.completed_at) for e in found)
    for (_, first_end), (second_start, _) in pairwise(spans):
        assert first_end is not None and second_start is not None
        assert second_start >= first_end, f"two jobs of the task overlapped: {spans}"


class _CappedQueue(SqlQueue):
    """A database queue whose orgs may each run one job at a time, counting its claims."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, max_running_jobs=1)
        self.claims = 0

    async def acquire(self, owner: str, limit: int, lease_s: float) -> list[Execution]:
        self.claims += 1
        return await super().acquire(owner, limit, lease_s)


async def test_jobs_held_back_at_their_orgs_cap_leave_the_claim_loop_at_rest(
    make_engine: EngineFactory, admin: User
) -> None:
    """A job that is due but held back by its org's cap of running jobs is not claimed
    again and again while the org's running job lasts (the loop polled the queue
    without a pause, a core's worth of claims); the freed slot starts it."""
    engine = await make_engine(queue_type=_CappedQueue)
    queue = engine.queue
    assert isinstance(queue, _CappedQueue)
    task = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": 0.5}))
    await engine.tasks.run_now(admin, task.id)

    async def one_running() -> list[Execution] | None:
        found = await engine.executions(task.id)
        running = [e for e in found if e.status is ExecutionStatus.PROCESSING]
        return found if len(found) == 2 and running else None

    both = await engine.wait_for(one_running, "the first job to run, the second held back")
    [first] = [e for e in both if e.status is ExecutionStatus.PROCESSING]
    claims_before = queue.claims
    found = await engine.wait_for_status(first.id, ExecutionStatus.COMPLETED)
    claims_during = queue.claims - claims_before

    assert found.completed_at is not None
    assert claims_during < 40, f"{claims_during} claims while the org was at its cap"
    finals = await engine.wait_until_final(task.id, count=2)
    assert [e.status for e in finals] == [ExecutionStatus.COMPLETED] * 2
