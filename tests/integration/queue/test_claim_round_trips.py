"""Round trips of a claim on PostgreSQL. A worker has one claim in flight at a time, and
while its jobs keep the event loop busy each round trip waits its turn: a claim of one
org's jobs with no limits is one statement (PostgreSQL's own transaction), not BEGIN, the
candidates, SET LOCAL, the UPDATE and COMMIT. Jobs that need the claim in steps (several
orgs, a task's limits) still get it, and their limits still hold."""

from __future__ import annotations

from datetime import datetime

from taskflowd.queue import fair
from taskflowd.queue.redis_claims import RecordClaims
from taskflowd.queue.sql import _PLAIN_CLAIM, SqlQueue
from taskflowd.store import SqlStore
from tests.integration.queue.counting import CountingDatabase
from tests.integration.queue.factories import due_job, new_owner, new_task, now
from tests.integration.queue.test_fair_share import backlog


def counted(store: SqlStore) -> tuple[SqlQueue, CountingDatabase]:
    db = CountingDatabase(store.db)
    return SqlQueue(db), db  # type: ignore[arg-type]


async def test_a_claim_of_one_orgs_plain_jobs_is_one_round_trip(pg_store: SqlStore) -> None:
    task = await new_task(pg_store, await new_owner(pg_store))
    jobs = [due_job(task, job_id=f"run-{i}") for i in range(5)]
    await SqlQueue(pg_store.db).add(jobs)
    queue, db = counted(pg_store)

    first = await queue.acquire("node-1", 3, 30.0)
    second = await queue.acquire("node-1", 3, 30.0)
    third = await queue.acquire("node-1", 3, 30.0)

    assert len(first) == 3 and len(second) == 2 and third == []
    assert {j.id for j in first + second} == {j.id for j in jobs}
    assert len(db.trips) == 3, db.trips
    stored = await pg_store.db.fetch("SELECT status, fence, lease_owner FROM job_executions")
    assert {(r["status"], r["fence"], r["lease_owner"]) for r in stored} == {
        ("PROCESSING", 1, "node-1")
    }


async def test_jobs_of_a_limited_task_are_claimed_in_steps_within_the_limit(
    pg_store: SqlStore,
) -> None:
    owner = await new_owner(pg_store)
    limited = await new_task(pg_store, owner, concurrency=2)
    await SqlQueue(pg_store.db).add([due_job(limited, job_id=f"run-{i}") for i in range(4)])
    queue, db = counted(pg_store)

    claimed = await queue.acquire("node-1", 4, 30.0)
    again = await queue.acquire("node-1", 4, 30.0)

    assert len(claimed) == 2 and again == []
    assert "BEGIN" in db.trips


async def test_plain_claims_resume_once_the_limited_jobs_are_gone(pg_store: SqlStore) -> None:
    owner = await new_owner(pg_store)
    limited = await new_task(pg_store, owner, concurrency=1)
    plain = await new_task(pg_store, owner)
    await SqlQueue(pg_store.db).add([due_job(limited)])
    queue, db = counted(pg_store)
    assert len(await queue.acquire("node-1", 4, 30.0)) == 1
    await SqlQueue(pg_store.db).add([due_job(plain, job_id=f"run-{i}") for i in range(2)])
    assert len(await queue.acquire("node-1", 4, 30.0)) == 2  # found plain, in steps
    db.trips.clear()

    await SqlQueue(pg_store.db).add([due_job(plain, job_id="run-last")])
    assert len(await queue.acquire("node-1", 4, 30.0)) == 1
    assert len(db.trips) == 1, db.trips


async def test_a_redis_queue_claim_in_postgresql_is_one_round_trip(pg_store: SqlStore) -> None:
    task = await new_task(pg_store, await new_owner(pg_store))
    jobs = [due_job(task, job_id=f"run-{i}") for i in range(3)]
    await SqlQueue(pg_store.db).add(jobs)
    db = CountingDatabase(pg_store.db)
    claims = RecordClaims(db)  # type: ignore[arg-type]
    at: datetime = now()

    result = await claims.claim([j.id for j in jobs], "node-1", at, 30.0)

    assert {e.id for e in result.claimed} == {j.id for j in jobs}
    assert len(db.trips) == 1, db.trips


async def test_jobs_added_in_postgresql_are_one_round_trip_and_then_a_notice(
    pg_store: SqlStore,
) -> None:
    """Not BEGIN, insert, pg_notify and COMMIT: the insert is atomic on its own, and the
    other nodes are told once it committed (the Redis queue tells them through Redis)."""
    task = await new_task(pg_store, await new_owner(pg_store))
    jobs = [due_job(task, job_id=f"run-{i}") for i in range(4)]
    told, untold = CountingDatabase(pg_store.db), CountingDatabase(pg_store.db)

    await SqlQueue(told).add(jobs[:2])  # type: ignore[arg-type]
    await SqlQueue(untold, notifies=False).add(jobs[2:])  # type: ignore[arg-type]

    assert [t.split()[0] for t in told.trips] == ["INSERT", "SELECT"], told.trips
    assert "pg_notify" in told.trips[1]
    assert len(untold.trips) == 1, untold.trips
    stored = await pg_store.db.fetch("SELECT id, status FROM job_executions")
    assert {(r["id"], r["status"]) for r in stored} == {(j.id, "PENDING") for j in jobs}


async def test_a_claim_reads_a_tasks_backlog_in_claim_order(pg_store: SqlStore) -> None:
    """All the queued jobs of one task, analysed: the planner took every task as paused
    for its anti-join estimate (one task, one row), read every queued row and sorted
    them for each claim (20,000 jobs: 11 ms a claim, and JIT compilation for some)."""
    task = await new_task(pg_store, await new_owner(pg_store))
    await backlog(pg_store, task, 5000)
    await pg_store.db.execute("ANALYZE")
    for sql in (fair.CANDIDATES["postgresql"], _PLAIN_CLAIM):
        args = (now(), 50) if sql is not _PLAIN_CLAIM else ("PROCESSING", "x", now(), now(), 50, 0)
        plan = "\n".join(r[0] for r in await pg_store.db.fetch(f"EXPLAIN {sql}", *args))
        assert "Seq Scan on job_executions" not in plan and "Sort" not in plan, plan


async def test_statements_are_not_jit_compiled(pg_store: SqlStore) -> None:
    """A claim whose cost estimate crossed jit_above_cost (2,000 runs due at one instant,
    stale statistics) was compiled at every execution: 100 ms and more a claim."""
    row = await pg_store.db.fetchrow("SELECT current_setting('jit') AS jit")
    assert row is not None and row["jit"] == "off"
