"""Work created on a node with an idle worker is claimed by that worker straight from the
create path (issues 11 and 17), through the same claim as any other, so leases, limits
and hand-back at shutdown still hold."""

from __future__ import annotations

from taskflowd.domain.entities import Execution, Task, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskType
from taskflowd.queue.sql import SqlQueue
from taskflowd.services.tasks import RunSpec, TaskService
from taskflowd.store.base import RunPlan
from tests.integration.engine.harness import Engine, EngineFactory, spec
from tests.integration.queue.polling import eventually

IDLE = {"safety_poll_s": 300.0}
"""The claim loop never looks by itself during a test: only the create path wakes it."""


class CountedClaims(SqlQueue):
    """Counts the claims started."""

    claims_started = 0

    async def acquire(self, owner: str, limit: int, lease_s: float) -> list[Execution]:
        self.claims_started += 1
        return await super().acquire(owner, limit, lease_s)


def one_run(task: Task | None) -> RunPlan:
    """One run of `task`, now, as the task defines it."""
    assert task is not None
    return RunPlan(TaskService._build_runs(task, [RunSpec()], [task.payload], utcnow(), None))


async def idle(engine: Engine, admin: User) -> None:
    """Run one job to its end, then wait until the claim loop sleeps in the queue's wait,
    nothing left to claim (a wake-up that came while a claim was in flight sends it
    round once more first)."""
    task = await engine.tasks.create(admin, spec())
    await engine.wait_until_final(task.id)

    async def asleep() -> bool:
        return engine.queue._sleeps_until is not None

    await eventually(asleep, "the claim loop asleep")


async def counted_idle(make_engine: EngineFactory, admin: User) -> tuple[Engine, CountedClaims]:
    """A started engine whose queue counts its claims, its claim loop asleep (`idle`)."""
    engine = await make_engine(worker=IDLE, queue_type=CountedClaims)
    queue = engine.queue
    assert isinstance(queue, CountedClaims)
    await idle(engine, admin)
    return engine, queue


async def test_a_job_announced_on_an_idle_node_is_claimed_by_the_announce_itself(
    make_engine: EngineFactory, admin: User
) -> None:
    engine, queue = await counted_idle(make_engine, admin)
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND))
    [run], _ = await engine.store.add_runs(task.id, None, one_run)
    before = queue.claims_started

    await queue.announce([run])

    assert queue.claims_started == before + 1, "the announce started the worker's claim"
    done = await engine.wait_for_status(run.id, ExecutionStatus.COMPLETED)
    assert done.attempts == 1


async def test_a_job_created_past_its_tasks_concurrency_waits_for_the_running_one(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker=IDLE)
    await idle(engine, admin)
    task = await engine.tasks.create(
        admin, spec(handler="sleep", payload={"seconds": 0.3}, concurrency=1)
    )
    [first] = await engine.executions(task.id)
    await engine.wait_for_status(first.id, ExecutionStatus.PROCESSING)

    second = await engine.tasks.run_now(admin, task.id)

    done = await engine.wait_for_status(second.id, ExecutionStatus.COMPLETED)
    first_done = await engine.execution(first.id)
    assert first_done.completed_at is not None and done.started_at is not None
    assert done.started_at >= first_done.completed_at, "the task's limit held"
