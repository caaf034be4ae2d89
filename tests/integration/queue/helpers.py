"""Queue operations the contract tests repeat: claiming, reading back, waiting for reaps."""

from __future__ import annotations

from taskflowd.domain.entities import Execution
from taskflowd.domain.enums import TaskStatus
from taskflowd.queue.base import JobQueue, Reaped
from taskflowd.store import SqlStore
from tests.integration.queue.polling import eventually

OWNER = "node-a"
OTHER = "node-b"
WAKE_BOUND_S = 10.0
"""How long a wake-up may take on a loaded machine; the waits themselves are far longer."""


async def claim(
    queue: JobQueue, owner: str = OWNER, limit: int = 10, lease_s: float = 30.0
) -> list[Execution]:
    return await queue.acquire(owner, limit, lease_s)


async def claim_one(queue: JobQueue, owner: str = OWNER, lease_s: float = 30.0) -> Execution:
    found = await claim(queue, owner, 10, lease_s)
    assert len(found) == 1, found
    return found[0]


async def read(store: SqlStore, execution_id: str) -> Execution:
    found = await store.get_execution(execution_id)
    assert found is not None
    return found


async def task_status(store: SqlStore, task_id: str) -> TaskStatus:
    found = await store.get_task(task_id)
    assert found is not None
    return found.status


async def reap_until(queue: JobQueue, execution_id: str, max_rescues: int) -> Reaped:
    """Poll `reap_expired` until it has rescued or dead-lettered `execution_id`."""

    async def probe() -> Reaped | None:
        reaped = await queue.reap_expired(max_rescues)
        hit = execution_id in reaped.rescued or execution_id in reaped.dead
        return reaped if hit else None

    return await eventually(probe, f"the lease of {execution_id} to be reaped")


async def dead_letter_of(store: SqlStore, execution_id: str) -> list[str]:
    page = await store.list_dead_letter(None, 100)
    return [d.id for d in page.items if d.execution_id == execution_id]
