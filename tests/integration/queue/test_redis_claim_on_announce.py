"""The Redis queue's claim of work added on a node whose worker has room (issue 11): the
jobs are indexed and popped in one Redis round trip and claimed for the worker's
reservation, without a turn through its claim loop; as any claim, best jobs first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from taskflowd.domain.entities import Execution, Task
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.queue.base import Reservation
from taskflowd.queue.redis import RedisQueue
from taskflowd.queue.redis_index import RedisKeys
from taskflowd.store import SqlStore, rows
from tests.conftest import RedisTarget
from tests.integration.queue.factories import due_job
from tests.integration.queue.helpers import OWNER
from tests.integration.queue.polling import eventually
from tests.integration.queue.redis_server import PrivateRedis, private_redis

__all__ = ["private_redis"]


class Room:
    """A worker's reservations, and the jobs delivered to them."""

    def __init__(self, queue: RedisQueue, limit: int = 10) -> None:
        self.limit = limit
        self.delivered: list[list[Execution]] = []
        self.on_due_claims = 0
        queue.set_reserve(self.reserve)
        queue.set_on_due(self.claim_now)

    def reserve(self) -> Reservation:
        return Reservation(OWNER, self.limit, 30.0, self.delivered.append)

    def claim_now(self) -> None:
        self.on_due_claims += 1

    async def jobs(self) -> list[str]:
        async def delivered() -> list[list[Execution]] | None:
            return self.delivered or None

        [jobs] = await eventually(delivered, "the reserved claim's jobs")
        return [j.id for j in jobs]


async def _started(store: SqlStore, url: str, keys: RedisKeys) -> RedisQueue:
    queue = RedisQueue(store.db, url, keys=keys)
    await queue.start()
    return queue


@pytest.fixture
async def queue(store: SqlStore, redis_target: RedisTarget) -> AsyncIterator[RedisQueue]:
    queue = await _started(store, redis_target.url, redis_target.keys)
    yield queue
    await queue.stop()


async def _inserted(store: SqlStore, *jobs: Execution) -> None:
    values = [rows.execution_insert_values(j, None, store.db.codec) for j in jobs]
    await store.db.executemany(rows.EXECUTION_INSERT, values)


async def test_a_job_announced_is_claimed_for_the_reserved_room(
    queue: RedisQueue, store: SqlStore, task: Task
) -> None:
    room = Room(queue)
    job = due_job(task)
    await _inserted(store, job)

    await queue.announce([job])

    assert await room.jobs() == [job.id]
    assert room.on_due_claims == 0, "no claim of the claim loop's own"
    claimed = await store.get_execution(job.id)
    assert claimed is not None and claimed.status is ExecutionStatus.PROCESSING
    assert claimed.fence == 1


async def test_the_reserved_claim_takes_the_best_due_job_first(
    queue: RedisQueue, store: SqlStore, task: Task
) -> None:
    urgent = due_job(task, job_id="urgent", priority=9)
    await _inserted(store, urgent)
    await queue.announce([urgent])  # no room yet: indexed for the claim loop
    room = Room(queue, limit=1)
    added = due_job(task, job_id="added", priority=1)
    await _inserted(store, added)

    await queue.announce([added])

    assert await room.jobs() == [urgent.id]
    left = await store.get_execution(added.id)
    assert left is not None and left.status is ExecutionStatus.PENDING


async def test_a_redis_that_lost_its_scripts_still_indexes_and_claims(
    store: SqlStore, task: Task, private_redis: PrivateRedis
) -> None:
    queue = await _started(store, private_redis.url, RedisKeys())
    try:
        client = aioredis.Redis.from_url(private_redis.url)
        await client.script_flush()
        await client.aclose()
        room = Room(queue)
        job = due_job(task)
        await _inserted(store, job)

        await queue.announce([job])

        assert await room.jobs() == [job.id]
    finally:
        await queue.stop()
