"""Every worker loop resumes within a second of the database's return (DESIGN.md §4), however
long the outage lasted: the pause between retries stays short instead of growing with the
outage (outcome group commits) or waiting a whole sweep interval (the lease reaper)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from taskflowd.domain.entities import utcnow
from taskflowd.domain.enums import ExecutionStatus, Role
from taskflowd.store import SqlStore, open_store
from tests.integration.engine.harness import SCHEDULER, WORKER, Engine, LogLines, spec
from tests.integration.ops.private_pg import PrivatePostgres
from tests.integration.queue.polling import eventually
from tests.integration.store.factories import make_user

pytestmark = pytest.mark.slow

BACK_WITHIN_S = 2.0
"""A second for the loop, a second for the connection pool and a loaded machine."""


@pytest.fixture
def warnings() -> Iterator[LogLines]:
    lines = LogLines(logging.WARNING)
    worker = logging.getLogger("taskflowd.worker")
    worker.addHandler(lines)
    yield lines
    worker.removeHandler(lines)


@pytest.fixture
async def store(private_pg: PrivatePostgres) -> AsyncIterator[SqlStore]:
    opened: SqlStore = open_store(private_pg.url)
    await opened.start()
    yield opened
    await opened.stop()


async def _status(engine: Engine, execution_id: str) -> ExecutionStatus | None:
    try:
        return (await engine.execution(execution_id)).status
    except Exception:
        return None  # the pool's connections to the old server are being replaced


async def _final_soon(engine: Engine, execution_id: str) -> ExecutionStatus:
    async def final() -> ExecutionStatus | None:
        status = await _status(engine, execution_id)
        return status if status is not None and status.is_final else None

    found: ExecutionStatus = await eventually(final, "the job to end", BACK_WITHIN_S)
    return found


async def test_outcomes_finished_during_a_long_outage_commit_soon_after_it(
    private_pg: PrivatePostgres, store: SqlStore, warnings: LogLines
) -> None:
    engine = Engine(store, dataclasses.replace(WORKER, lease_s=60.0), SCHEDULER)
    await engine.start()
    try:
        admin = await store.create_user(make_user(role=Role.ADMIN))
        task = await engine.tasks.create(admin, spec(handler="sleep", payload={"seconds": 0.5}))
        job = await engine.only_execution(task.id)
        await engine.wait_for_status(job.id, ExecutionStatus.PROCESSING)
        await private_pg.stop()
        # The job ends meanwhile; its outcome waits through an outage long enough for a
        # growing backoff to reach several seconds.
        await asyncio.sleep(7.0)
        await private_pg.start()
        assert await _final_soon(engine, job.id) is ExecutionStatus.COMPLETED
        outage = [m for m in warnings.messages if m.startswith("recording outcomes:")]
        assert len(outage) == 1, warnings.messages
    finally:
        await engine.stop()


async def test_the_reaper_rescues_expired_leases_soon_after_an_outage(
    private_pg: PrivatePostgres, store: SqlStore, warnings: LogLines
) -> None:
    # A 20 s lease: the reaper sweeps every 5 s while the database answers.
    engine = Engine(store, dataclasses.replace(WORKER, lease_s=20.0), SCHEDULER)
    admin = await store.create_user(make_user(role=Role.ADMIN))
    task = await engine.tasks.create(admin, spec())
    # Another node claimed the job and died; its lease runs out after the reaper's first
    # sweep, and the next sweep meets the outage.
    [claimed] = await engine.queue.acquire("dead-node", 1, 3.0)
    await engine.start()
    try:
        assert claimed.lease_expires_at is not None
        await asyncio.sleep((claimed.lease_expires_at - utcnow()).total_seconds() + 0.1)
        assert (await engine.execution(claimed.id)).lease_owner == "dead-node"
        await private_pg.stop()

        async def reaper_noticed() -> bool:
            return any(m.startswith("reaping expired leases:") for m in warnings.messages)

        await eventually(reaper_noticed, "the reaper to meet the outage", 10.0)
        await private_pg.start()
        assert await _final_soon(engine, claimed.id) is ExecutionStatus.COMPLETED
        [execution] = await engine.executions(task.id)
        assert execution.attempts == 2
    finally:
        await engine.stop()
