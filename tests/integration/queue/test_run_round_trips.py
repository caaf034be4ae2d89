"""Round trips of a run with an Idempotency-Key on PostgreSQL (issue 17): the key's record
and the task are read in one statement, not one each, and the key still answers first."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from taskflowd.domain.entities import Execution, Task, utcnow
from taskflowd.domain.errors import NotFound
from taskflowd.store import SqlStore
from taskflowd.store.base import IdempotencyClaim, Replay, RunPlan
from tests.integration.queue.counting import CountingDatabase
from tests.integration.queue.factories import due_job, new_owner, new_task


def claim(key: str) -> IdempotencyClaim:
    at = utcnow()
    return IdempotencyClaim("o", "u", key, "fp", at, at - timedelta(hours=24), render)


def render(result: list[Execution]) -> tuple[int, str]:
    return 202, orjson.dumps([e.id for e in result]).decode()


def plan(task: Task | None) -> RunPlan:
    if task is None:
        raise NotFound("no such task")
    return RunPlan([due_job(task)])


async def test_a_run_with_a_key_reads_the_key_and_the_task_in_one_round_trip(
    pg_store: SqlStore,
) -> None:
    task = await new_task(pg_store, await new_owner(pg_store))
    db = CountingDatabase(pg_store.db)
    store = SqlStore(db)  # type: ignore[arg-type]

    [run], _ = await store.add_runs(task.id, None, plan, claim("req"))

    assert [t.split()[0] for t in db.trips] == ["BEGIN", "SELECT", "INSERT", "INSERT", "COMMIT"]
    with pytest.raises(Replay) as replayed:
        await store.add_runs(task.id, None, plan, claim("req"))
    assert orjson.loads(replayed.value.response.body) == [run.id]
    stored = await pg_store.db.fetch("SELECT id FROM job_executions")
    assert [r["id"] for r in stored] == [run.id], "the replay queued nothing"


async def test_a_used_key_answers_before_a_missing_task(pg_store: SqlStore) -> None:
    task = await new_task(pg_store, await new_owner(pg_store))
    await pg_store.add_runs(task.id, None, plan, claim("req"))

    with pytest.raises(Replay):
        await pg_store.add_runs("no-such-task", None, plan, claim("req"))
    with pytest.raises(NotFound):
        await pg_store.add_runs("no-such-task", None, plan, claim("other"))
