"""The worker rides out a database outage (DESIGN.md §4, issue 7 "Outages"): its claim,
lease and reaper loops wait for the database instead of crashing, say so once, and work
resumes by itself when the database returns."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from taskflowd.domain.enums import ExecutionStatus, Role
from taskflowd.store import SqlStore, open_store
from tests.integration.engine.harness import SCHEDULER, WORKER, Crashes, Engine, LogLines, spec
from tests.integration.ops.private_pg import PrivatePostgres
from tests.integration.queue.polling import eventually
from tests.integration.store.factories import make_user


@pytest.fixture
def logs() -> Iterator[tuple[Crashes, LogLines]]:
    crashes, warnings = Crashes(), LogLines(logging.WARNING)
    supervised, worker = (
        logging.getLogger("taskflowd.background"),
        logging.getLogger("taskflowd.worker"),
    )
    supervised.addHandler(crashes)
    worker.addHandler(warnings)
    yield crashes, warnings
    supervised.removeHandler(crashes)
    worker.removeHandler(warnings)


@pytest.fixture
async def engine(private_pg: PrivatePostgres) -> AsyncIterator[Engine]:
    store: SqlStore = open_store(private_pg.url)
    await store.start()
    node = Engine(store, WORKER, SCHEDULER)
    await node.start()
    yield node
    await node.stop()
    await store.stop()


async def test_the_worker_waits_out_a_database_outage_and_resumes(
    private_pg: PrivatePostgres, engine: Engine, logs: tuple[Crashes, LogLines]
) -> None:
    crashes, warnings = logs
    admin = await engine.store.create_user(make_user(role=Role.ADMIN))
    before = await engine.tasks.create(admin, spec(payload={"n": 1}))
    await engine.wait_until_final(before.id)

    await private_pg.stop()

    async def noticed() -> list[str] | None:
        seen = [m for m in warnings.messages if "the store is unavailable" in m]
        return seen or None

    await eventually(noticed, "the worker to notice the outage")
    await private_pg.start()

    async def created() -> str | None:
        try:
            return (await engine.tasks.create(admin, spec(payload={"n": 2}))).id
        except Exception:
            return None  # the pool's connections to the old server are being replaced

    after = await eventually(created, "the database to accept a task again")
    [done] = await engine.wait_until_final(after)
    assert done.status is ExecutionStatus.COMPLETED
    assert crashes.messages == []
    claim_warnings = [m for m in warnings.messages if m.startswith("claiming jobs:")]
    assert len(claim_warnings) == 1, claim_warnings
