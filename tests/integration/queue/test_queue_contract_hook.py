"""The final-outcome hook of every queue: it runs inside the transaction that records an
execution's end (its failure undoes that end) and what it queues becomes claimable."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from taskflowd.domain.entities import Execution, Task
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.queue.base import HookOutcome, JobQueue, OutcomeKind
from taskflowd.store import SqlStore, rows
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Conn
from taskflowd.store.errors import StoreError
from tests.integration.queue.factories import due_job, failure, outcome
from tests.integration.queue.helpers import claim, claim_one, read


class Chain:
    """A hook that queues `follow` when `first` ends, recording what it saw."""

    def __init__(self, first: Execution, follow: Execution, codec: RowCodec) -> None:
        self.codec = codec
        self.first = first
        self.follow = follow
        self.seen: list[list[str]] = []
        self.fail = False

    async def __call__(self, conn: Conn, ended: Sequence[str]) -> HookOutcome:
        self.seen.append(list(ended))
        if self.fail:
            raise StoreError("the hook failed")
        if self.first.id not in ended:
            return HookOutcome()
        await conn.execute(
            rows.EXECUTION_INSERT, *rows.execution_insert_values(self.follow, None, self.codec)
        )
        return HookOutcome([self.follow])


@pytest.mark.parametrize("kind", [OutcomeKind.COMPLETED, OutcomeKind.DEAD])
async def test_a_final_outcome_queues_what_the_hook_adds(
    queue: JobQueue, store: SqlStore, task: Task, kind: OutcomeKind
) -> None:
    first, follow = due_job(task, job_id="a"), due_job(task, job_id="b")
    chain = Chain(first, follow, store.db.codec)
    queue.set_final_hook(chain)
    await queue.add([first])
    claimed = await claim_one(queue)
    error = failure() if kind is OutcomeKind.DEAD else None
    assert await queue.settle([outcome(claimed, kind, error=error)]) == {first.id}
    assert chain.seen == [[first.id]]
    assert (await claim_one(queue)).id == follow.id


async def test_retries_do_not_call_the_hook_but_cancels_and_reaps_do(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    first, follow = due_job(task, job_id="a"), due_job(task, job_id="b")
    chain = Chain(first, follow, store.db.codec)
    queue.set_final_hook(chain)
    await queue.add([first])
    claimed = await claim_one(queue)
    await queue.settle(
        [outcome(claimed, OutcomeKind.RETRY, error=failure(), run_at=claimed.run_at)]
    )
    assert chain.seen == []
    assert await queue.cancel(first.id, None) is not None
    assert chain.seen == [[first.id]]
    assert (await read(store, follow.id)).status is ExecutionStatus.PENDING


async def test_a_failing_hook_undoes_the_outcome(
    queue: JobQueue, store: SqlStore, task: Task
) -> None:
    first, follow = due_job(task, job_id="a"), due_job(task, job_id="b")
    chain = Chain(first, follow, store.db.codec)
    chain.fail = True
    queue.set_final_hook(chain)
    await queue.add([first])
    claimed = await claim_one(queue)
    with pytest.raises(StoreError):
        await queue.settle([outcome(claimed, OutcomeKind.COMPLETED)])
    assert (await read(store, first.id)).status is ExecutionStatus.PROCESSING
    assert await store.get_execution(follow.id) is None
    chain.fail = False
    assert await queue.settle([outcome(claimed, OutcomeKind.COMPLETED)]) == {first.id}
    assert [e.id for e in await claim(queue)] == [follow.id]
