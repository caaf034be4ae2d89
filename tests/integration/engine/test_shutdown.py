"""Nothing accepted is lost when workers stop or die (DESIGN.md §4 Delivery and
Graceful shutdown): running jobs finish within the grace period or are handed back, and
a dead node's jobs are reclaimed once their lease expires."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from taskflowd.domain.entities import Execution, User
from taskflowd.domain.enums import ExecutionStatus, TaskType
from taskflowd.queue.base import AddClaim
from taskflowd.queue.sql import SqlQueue
from taskflowd.store.db import Conn, Database
from tests.integration.engine.harness import Engine, EngineFactory, spec
from tests.integration.engine.test_local_claims import idle
from tests.integration.queue.polling import DEADLINE_S


class _Holding(SqlQueue):
    """A queue that holds claims until `release_claims` is set (`claimed` once it holds
    one): a stop can then arrive in the middle of a claim."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.claimed = asyncio.Event()
        self.release_claims = asyncio.Event()


class HeldClaims(_Holding):
    """Holds each successful claim between its commit and the worker seeing it."""

    def claim_on_add(self) -> None:
        """The claims held are `acquire`'s: none is made with the work added."""
        return None

    async def acquire(self, owner: str, limit: int, lease_s: float) -> list[Execution]:
        found = await super().acquire(owner, limit, lease_s)
        if found:
            self.claimed.set()
            await self.release_claims.wait()
        return found


class HeldAddClaims(_Holding):
    """Once `holding`, holds the hand-over of each claim made with the work added
    (between its transaction's end and the worker seeing its jobs)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._held: set[asyncio.Task[None]] = set()
        self.holding = False

    def claim_on_add(self) -> AddClaim | None:
        adding = super().claim_on_add()
        return _Held(adding, self) if adding is not None and self.holding else adding

    def hold(self, adding: AddClaim, committed: bool) -> None:
        self.claimed.set()

        async def hand_over() -> None:
            await self.release_claims.wait()
            adding.ended(committed)

        held = asyncio.create_task(hand_over())
        self._held.add(held)
        held.add_done_callback(self._held.discard)


class _Held:
    def __init__(self, adding: AddClaim, queue: HeldAddClaims) -> None:
        self._adding = adding
        self._queue = queue

    async def claim(self, conn: Conn, added: Sequence[Execution]) -> None:
        await self._adding.claim(conn, added)

    def ended(self, committed: bool) -> None:
        self._queue.hold(self._adding, committed)

    @property
    def claimed(self) -> bool:
        return self._adding.claimed


async def test_stop_lets_a_running_job_finish_within_the_grace_period(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker={"shutdown_grace_s": 30.0})
    task = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": 0.5}))
    [job] = await engine.executions(task.id)
    await engine.wait_for_status(job.id, ExecutionStatus.PROCESSING)

    # Claimed is not yet running: a claim the worker has not launched when it stops is
    # handed back (test_claim_ahead), so wait for the job to run here.
    async def running() -> bool:
        return engine.worker.active == 1

    await engine.wait_for(running, "the job to run")
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
    task = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": 2.5}))
    [job] = await engine.executions(task.id)

    done = await engine.wait_for_status(job.id, ExecutionStatus.COMPLETED, ExecutionStatus.FAILED)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.attempts == 1, "a renewed lease must not expire under a running job"
    assert await engine.history(job.id) == []


async def test_stop_during_a_claim_does_not_strand_the_claimed_jobs(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(queue_type=HeldClaims, worker={"shutdown_grace_s": 30.0})
    queue = engine.queue
    assert isinstance(queue, HeldClaims)
    task = await engine.tasks.create(admin, spec(payload={"n": 1}))

    await _stop_while_the_claim_is_held(engine, queue)

    # The job was claimed as shutdown began: it must be run within the grace period or
    # handed back, not left under a lease nobody renews (an attempt burnt, a delay).
    [job] = await engine.executions(task.id)
    assert job.status in (ExecutionStatus.COMPLETED, ExecutionStatus.PENDING), job
    assert job.lease_owner is None


async def _stop_while_the_claim_is_held(engine: Engine, queue: _Holding) -> None:
    """Once `queue` holds a claim, stop the worker, releasing the claim as stop() begins."""
    await asyncio.wait_for(queue.claimed.wait(), DEADLINE_S)
    stopping = asyncio.create_task(engine.worker.stop())
    await asyncio.sleep(0)  # let stop() begin while the claim is in flight
    queue.release_claims.set()
    await stopping


async def test_stop_while_work_added_with_its_claim_is_handed_over_strands_no_job(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(queue_type=HeldAddClaims, worker={"shutdown_grace_s": 30.0})
    queue = engine.queue
    assert isinstance(queue, HeldAddClaims)
    # The claim loop asleep (a claim of its own in flight leaves the worker no room for
    # a claim with the run added), and the run's claim the one held, not the create's.
    await idle(engine, admin)
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND, payload={"n": 1}))
    queue.holding = True
    await engine.tasks.run_now(admin, task.id)

    await _stop_while_the_claim_is_held(engine, queue)

    [job] = await engine.executions(task.id)
    assert job.status in (ExecutionStatus.COMPLETED, ExecutionStatus.PENDING), job
    assert job.lease_owner is None
