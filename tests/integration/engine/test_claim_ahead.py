"""The claim-ahead buffer (issue 17): with every slot busy a worker holds a few more jobs
claimed, leased and renewed, to start the moment a slot frees. A buffered job whose lease
was lost never starts, and at shutdown buffered jobs are handed back unstarted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from taskflowd.domain.entities import JSON, Execution, User, utcnow
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.handlers.base import HandlerSpec, JobContext
from taskflowd.handlers.builtin import builtin_specs, validate_echo
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.base import Outcome
from taskflowd.queue.sql import SqlQueue
from tests.integration.engine.harness import Engine, EngineFactory, spec
from tests.integration.queue.polling import eventually


def started_here(engine: Engine) -> list[str]:
    """Ids of the jobs this engine's worker starts from now on."""
    started: list[str] = []

    def on_execution(data: dict[str, Any]) -> None:
        if data.get("status") == "PROCESSING":
            started.append(data["id"])

    engine.events.on("execution", on_execution)
    return started


async def buffered_behind(engine: Engine, admin: User, seconds: float) -> tuple[str, str]:
    """With concurrency 1: a sleeping job running and an echo job claimed behind it."""
    running = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": seconds}))
    waiting = await engine.tasks.create(admin, spec(payload={"n": 1}))
    [first] = await engine.executions(running.id)
    [second] = await engine.executions(waiting.id)
    await engine.wait_for_status(second.id, ExecutionStatus.PROCESSING)
    return first.id, second.id


async def test_a_buffered_job_whose_lease_was_lost_never_starts(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker={"concurrency": 1, "lease_s": 2.0})
    started = started_here(engine)
    # The first job outlasts several lease renewals (every lease_s / 3) after the takeover.
    first, second = await buffered_behind(engine, admin, 3.0)
    assert started == [first], "the second job waits in the buffer"
    # Another node takes the buffered job over (as after an expired lease and a reclaim).
    await engine.store.db.execute(
        "UPDATE job_executions SET fence = fence + 1, lease_owner = $1, "
        "lease_expires_at = $2 WHERE id = $3",
        "other-node",
        utcnow() + timedelta(hours=1),
        second,
    )
    await engine.wait_for_status(first, ExecutionStatus.COMPLETED)
    follower = await engine.tasks.create(admin, spec(payload={"n": 2}))
    [after] = await engine.executions(follower.id)
    await engine.wait_for_status(after.id, ExecutionStatus.COMPLETED)

    assert second not in started
    taken = await engine.execution(second)
    assert (taken.status, taken.lease_owner, taken.attempts) == (
        ExecutionStatus.PROCESSING,
        "other-node",
        1,
    )


async def test_stop_hands_back_buffered_jobs_unstarted(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker={"concurrency": 1, "shutdown_grace_s": 0.1})
    started = started_here(engine)
    first, second = await buffered_behind(engine, admin, 60.0)

    await engine.worker.stop()

    assert started == [first]
    for execution_id in (first, second):
        handed_back = await engine.execution(execution_id)
        assert (handed_back.status, handed_back.attempts, handed_back.lease_owner) == (
            ExecutionStatus.PENDING,
            0,
            None,
        )
        assert await engine.history(execution_id) == []


async def test_a_job_waiting_behind_a_slow_one_is_handed_back_for_another_node(
    make_engine: EngineFactory, admin: User
) -> None:
    # The slow job still runs at the end; the engine's stop need not wait for it.
    engine = await make_engine(worker={"concurrency": 1, "lease_s": 1.5, "shutdown_grace_s": 0.1})
    started = started_here(engine)
    first, second = await buffered_behind(engine, admin, 8.0)

    async def taken_by_another_node() -> list[str]:
        deadline = asyncio.get_running_loop().time() + 6.0
        while asyncio.get_running_loop().time() < deadline:
            jobs = await engine.queue.acquire("other-node", 5, 30.0)
            if jobs:
                return [job.id for job in jobs]
            await asyncio.sleep(0.05)
        return []

    assert await taken_by_another_node() == [second]
    taken = await engine.execution(second)
    assert (taken.lease_owner, taken.attempts) == ("other-node", 1)
    assert started == [first], "the first node never started it"
    assert (await engine.execution(first)).status is ExecutionStatus.PROCESSING


async def test_the_worker_reports_a_backlog_while_a_job_waits_and_none_once_idle(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker={"concurrency": 1})
    first, second = await buffered_behind(engine, admin, 2.0)

    async def backlogged() -> bool:
        # Claimed (PROCESSING) a moment before its claim is handed to the worker.
        return engine.worker.backlogged()

    await engine.wait_for(backlogged, "a claimed job waits for the busy slot")

    await engine.wait_for_status(second, ExecutionStatus.COMPLETED)

    async def idle() -> bool:
        return not engine.worker.backlogged()

    await engine.wait_for(idle, "the worker reports no backlog once its claims come back short")
    assert (await engine.execution(first)).status is ExecutionStatus.COMPLETED


class SlowClaims(SqlQueue):
    """A store so slow that every job claimed before a claim ends (and its outcome is
    committed) while that claim is in flight; records how many jobs each claim asks for."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.limits: list[int] = []
        self.claimed = 0
        self.settled = 0

    async def acquire(self, owner: str, limit: int, lease_s: float) -> list[Execution]:
        self.limits.append(limit)

        async def all_settled() -> bool:
            return self.settled == self.claimed

        await eventually(all_settled, "the outcomes of the jobs claimed before", interval_s=0.005)
        found = await super().acquire(owner, limit, lease_s)
        self.claimed += len(found)
        return found

    async def settle(self, outcomes: Sequence[Outcome]) -> set[str]:
        applied = await super().settle(outcomes)
        self.settled += len(applied)
        return applied


async def test_claims_count_the_slots_that_free_while_a_claim_is_in_flight(
    make_engine: EngineFactory, admin: User
) -> None:
    queues: list[SlowClaims] = []

    async def until_next_claim(payload: JSON, ctx: JobContext) -> JSON:
        """Runs until the worker starts its next claim."""
        [queue] = queues
        claims = len(queue.limits)

        async def next_claim_started() -> bool:
            return len(queue.limits) > claims

        await eventually(next_claim_started, "the next claim", interval_s=0.005)
        return None

    handlers = HandlerRegistry(
        [*builtin_specs(), HandlerSpec("until_next_claim", until_next_claim, validate_echo)]
    )
    # Concurrency 4 and 2 more jobs held ahead: 6 jobs at most when a claim starts.
    engine = await make_engine(
        start=False,
        worker={"concurrency": 4, "batch_size": 4},
        queue_type=SlowClaims,
        handlers=handlers,
    )
    assert isinstance(engine.queue, SlowClaims)
    queues.append(engine.queue)
    tasks = [await engine.tasks.create(admin, spec(handler="until_next_claim")) for _ in range(24)]
    await engine.start()
    for task in tasks:
        await engine.wait_until_final(task.id)

    # The second claim starts with 4 slots busy and asks for the 2 jobs there is room
    # for; those 4 jobs end while it is in flight, so the claims after it ask for 4 more
    # each, rather than for the room left beside the jobs the one before just brought.
    assert queues[0].limits[:2] == [4, 2]
    assert set(queues[0].limits[2:]) == {4}
