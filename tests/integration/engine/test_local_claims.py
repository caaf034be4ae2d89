"""Work created on a node with an idle worker is claimed by that worker straight from the
create path (issues 11 and 17): the job starts before the create call returns, through
the same claim as any other, so leases, limits and hand-back at shutdown still hold."""

from __future__ import annotations

from typing import Any

from taskflowd.domain.entities import User
from taskflowd.domain.enums import ExecutionStatus
from tests.integration.engine.harness import Engine, EngineFactory, spec

IDLE = {"safety_poll_s": 300.0}
"""The claim loop never looks by itself during a test: only the create path wakes it."""


def started_here(engine: Engine) -> list[str]:
    """Ids of the jobs this engine's worker starts from now on."""
    started: list[str] = []

    def on_execution(data: dict[str, Any]) -> None:
        if data.get("status") == "PROCESSING":
            started.append(data["id"])

    engine.events.on("execution", on_execution)
    return started


async def idle(engine: Engine, admin: User) -> None:
    """Run one job to its end: the claim loop is then asleep, nothing left to claim."""
    task = await engine.tasks.create(admin, spec())
    await engine.wait_until_final(task.id)


async def test_a_job_created_on_an_idle_node_starts_before_the_create_returns(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker=IDLE)
    await idle(engine, admin)
    started = started_here(engine)

    task = await engine.tasks.create(admin, spec())

    [job] = await engine.executions(task.id)
    assert started == [job.id], "claimed and launched by the create itself"
    [done] = await engine.wait_until_final(task.id)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.attempts == 1


async def test_a_job_created_past_its_tasks_concurrency_waits_for_the_running_one(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker=IDLE)
    await idle(engine, admin)
    started = started_here(engine)
    task = await engine.tasks.create(
        admin, spec(handler="sleep", payload={"seconds": 0.3}, concurrency=1)
    )
    [first] = await engine.executions(task.id)
    assert started == [first.id]

    second = await engine.tasks.run_now(admin, task.id)

    assert started == [first.id], "the task's limit holds on the create path too"
    await engine.wait_for_status(second.id, ExecutionStatus.COMPLETED)
    assert started == [first.id, second.id]
