"""The JobQueue contract: work due now, added or announced on this node, is handed to the
local worker (`set_on_due` starts its claim) before the adding call returns; work due
later is not. Run against every queue and SQL backend."""

from __future__ import annotations

import asyncio

from taskflowd.domain.entities import Execution, Task
from taskflowd.queue.base import JobQueue
from taskflowd.store import SqlStore, rows
from tests.integration.queue.factories import due_job, later
from tests.integration.queue.helpers import OWNER


class LocalWorker:
    """Claims whenever the queue says work is due, as the worker pool does."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.claims: list[asyncio.Future[list[Execution]]] = []
        queue.set_on_due(self.claim_now)

    def claim_now(self) -> asyncio.Future[list[Execution]]:
        claim = asyncio.ensure_future(self.queue.acquire(OWNER, 10, 30.0))
        self.claims.append(claim)
        return claim

    async def claimed(self) -> list[str]:
        """Ids claimed by the claims started so far (waiting for them to commit: the adding
        call waits for a claim only briefly)."""
        return [j.id for c in self.claims for j in await c]


async def test_work_added_due_now_is_claimed_before_add_returns(
    queue: JobQueue, task: Task
) -> None:
    worker = LocalWorker(queue)
    job = due_job(task)

    await queue.add([job])

    assert len(worker.claims) == 1, "a claim started before add returned"
    assert await worker.claimed() == [job.id]


async def test_work_announced_due_now_is_claimed_before_announce_returns(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    worker = LocalWorker(queue)
    job = due_job(task)
    await store.db.executemany(
        rows.EXECUTION_INSERT, [rows.execution_insert_values(job, None, store.db.codec)]
    )

    await queue.announce([job])

    assert len(worker.claims) == 1, "a claim started before announce returned"
    assert await worker.claimed() == [job.id]


async def test_work_due_later_is_left_to_the_claim_loop(queue: JobQueue, task: Task) -> None:
    worker = LocalWorker(queue)

    await queue.add([due_job(task, later(3600))])

    assert worker.claims == []
