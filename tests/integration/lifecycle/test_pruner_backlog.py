"""The pruner yields to the node's worker: while the worker has work due that it has not
started, the pruner rests longer between batches, consulting the worker again every
quiet rest; once the worker is idle it goes on at its quiet pace; and under a backlog
that never ends it still deletes everything past retention."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from taskflowd.config import RetentionSettings
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.store import SqlStore
from taskflowd.store.db import Conn, Database
from tests.integration.lifecycle.helpers import execution_at, ids, task_at
from tests.integration.queue.polling import DEADLINE_S
from tests.integration.store.factories import make_user, now

BATCH = 2
OLD_ROWS = 12
T = TypeVar("T")


class Worker:
    """The worker's side of the signal: backlogged or idle as the test says, noting in
    the journal each time the pruner asks."""

    def __init__(self, journal: list[tuple[str, bool]], backlogged: bool) -> None:
        self._journal = journal
        self.backlog = backlogged

    def backlogged(self) -> bool:
        self._journal.append(("asked", self.backlog))
        return self.backlog


class JournalledDatabase:
    """The pruner's database, noting each of its prune transactions in the journal and
    calling `after_batch` with the count of them so far."""

    def __init__(
        self,
        db: Database,
        journal: list[tuple[str, bool]],
        after_batch: Callable[[int], None] = lambda batches: None,
    ) -> None:
        self._db = db
        self._journal = journal
        self._after_batch = after_batch
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def atomic(self, body: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        result = await self._db.atomic(body)
        self.batches += 1
        self._journal.append(("batch", False))
        self._after_batch(self.batches)
        return result


async def _old_executions(store: SqlStore) -> None:
    owner = (await store.create_user(make_user())).id
    old = now() - timedelta(days=3)
    task = await task_at(store, owner, old)
    for _ in range(OLD_ROWS):
        await execution_at(store, task, old, ExecutionStatus.COMPLETED)


def _asks_between_batches(journal: list[tuple[str, bool]]) -> list[list[bool]]:
    """The pruner's questions to the worker (their answers) between consecutive batches."""
    rests: list[list[bool]] = []
    for kind, answer in journal:
        if kind == "batch":
            rests.append([])
        elif rests:
            rests[-1].append(answer)
    return rests[:-1]


async def _prune(store: SqlStore, db: JournalledDatabase, worker: Worker) -> dict[str, int]:
    retention = RetentionSettings(executions_s=86_400, tasks_s=0, batch_size=BATCH)
    pruner = Pruner(db, retention, "pruner", busy=worker.backlogged)  # type: ignore[arg-type]
    counts = await asyncio.wait_for(pruner.run_once(), DEADLINE_S)
    assert counts is not None
    return counts


async def test_the_pruner_rests_longer_while_the_worker_has_a_backlog_and_not_once_idle(
    store: SqlStore,
) -> None:
    await _old_executions(store)
    journal: list[tuple[str, bool]] = []
    worker = Worker(journal, backlogged=True)
    half = OLD_ROWS // BATCH // 2

    def backlog_ends(batches: int) -> None:
        if batches == half:
            worker.backlog = False

    counts = await _prune(store, JournalledDatabase(store.db, journal, backlog_ends), worker)

    assert counts["job_executions"] == OLD_ROWS
    rests = _asks_between_batches(journal)
    busy, idle = rests[: half - 1], rests[half - 1 :]
    assert busy and idle
    # Backlogged: after its quiet rest the pruner found the worker busy and rested on,
    # asking again before its next batch.
    assert all(len(asked) >= 2 and asked[0] for asked in busy)
    # Idle: one question after each quiet rest, and the next batch at once.
    assert all(asked == [False] for asked in idle)


async def test_the_pruner_deletes_everything_under_a_backlog_that_never_ends(
    store: SqlStore,
) -> None:
    await _old_executions(store)
    journal: list[tuple[str, bool]] = []
    worker = Worker(journal, backlogged=True)

    counts = await _prune(store, JournalledDatabase(store.db, journal), worker)

    assert counts["job_executions"] == OLD_ROWS
    assert await ids(store, "job_executions") == set()
    assert all(answer for kind, answer in journal if kind == "asked")
