"""A run added on a node whose worker has room is claimed in the transaction that adds it
(issue 11): one writer transaction and one commit, not an insert and then a claim of its
own, through the same claim as any other, so priorities and a task's limits still hold."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest

from taskflowd.domain.entities import JSON, Execution, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, RunStatus, TaskType
from taskflowd.domain.errors import Conflict
from taskflowd.domain.rules import RunSpec
from taskflowd.handlers.base import HandlerSpec, JobContext
from taskflowd.handlers.builtin import builtin_specs, validate_echo
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.base import Reservation
from taskflowd.queue.sql import SqlQueue
from taskflowd.store.base import IdempotencyClaim, Replay
from taskflowd.store.db import Conn, SqliteDatabase
from taskflowd.store.sqlite_thread import Span, span_tag
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.integration.engine.harness import Engine, EngineFactory, spec
from tests.integration.engine.test_local_claims import (
    IDLE,
    CountedClaims,
    counted_idle,
    idle,
    one_run,
)
from tests.integration.engine.test_workflows import finished

T = TypeVar("T")


async def test_a_run_added_on_an_idle_node_is_claimed_in_its_own_transaction(
    make_engine: EngineFactory, admin: User
) -> None:
    engine, queue = await counted_idle(make_engine, admin)
    task = await engine.tasks.create(admin, spec())
    await engine.wait_until_final(task.id)
    before = queue.claims_started

    run = await engine.tasks.run_now(admin, task.id)

    claimed = await engine.execution(run.id)
    assert claimed.status in (ExecutionStatus.PROCESSING, ExecutionStatus.COMPLETED)
    assert claimed.attempts == 1, "claimed once the run returned"
    assert queue.claims_started == before, "no claim of its own"
    done = await engine.wait_for_status(run.id, ExecutionStatus.COMPLETED)
    assert done.attempts == 1


class CountedLooks(SqlQueue):
    """Counts how often the claim loop looks for the next job due (before each sleep)."""

    looks = 0

    async def next_due(self) -> datetime | None:
        self.looks += 1
        return await super().next_due()


async def test_a_run_claimed_as_it_was_added_leaves_the_idle_claim_loop_asleep(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker=IDLE, queue_type=CountedLooks)
    queue = engine.queue
    assert isinstance(queue, CountedLooks)
    await idle(engine, admin)
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND))
    before = queue.looks

    run = await engine.tasks.run_now(admin, task.id)
    await engine.wait_for_status(run.id, ExecutionStatus.COMPLETED)

    assert queue.looks == before, "nothing was left for the loop to look for"


async def test_a_run_commits_once_on_sqlite(make_engine: EngineFactory, admin: User) -> None:
    engine = await make_engine(worker=IDLE)
    db = engine.store.db
    if not isinstance(db, SqliteDatabase):
        return
    await idle(engine, admin)
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND))

    async def run_to_its_end() -> Execution:
        run = await engine.tasks.run_now(admin, task.id)
        return await engine.wait_for_status(run.id, ExecutionStatus.COMPLETED)

    done, transactions = await _writer_transactions(db, run_to_its_end())

    assert done.attempts == 1
    assert transactions == 1, "the insert and the claim share one transaction"


async def _writer_transactions(db: SqliteDatabase, act: Awaitable[T]) -> tuple[T, int]:
    """What `act` returns, and how many transactions the SQLite writer committed for the
    work it started while it ran (its claims included: they carry its tag)."""
    tag = object()
    transactions: list[Span] = []

    def observe(span: Span) -> None:
        if span.tag is tag and span.committing is not None:
            transactions.append(span)

    db.observe_writer(observe)
    token = span_tag.set(tag)
    try:
        result = await act
    finally:
        span_tag.reset(token)
    db.observe_writer(None)
    return result, len(transactions)


async def test_a_run_claimed_as_it_was_added_has_started_when_the_call_returns(
    make_engine: EngineFactory, admin: User
) -> None:
    """The claim's jobs are launched as its transaction ends, before the caller goes on
    (to render its response), not a turn of the event loop after it."""
    started: list[JSON] = []

    async def note(payload: JSON, ctx: JobContext) -> JSON:
        started.append(payload)
        return payload

    handlers = HandlerRegistry([*builtin_specs(), HandlerSpec("note", note, validate_echo)])
    engine = await make_engine(worker=IDLE, handlers=handlers)
    await idle(engine, admin)
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND, handler="note"))

    await engine.tasks.run(admin, task.id, [RunSpec(payload="first", has_payload=True)])

    assert started == ["first"]


async def test_a_job_queued_before_with_a_higher_priority_is_claimed_first(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker={**IDLE, "concurrency": 1, "batch_size": 1})
    await idle(engine, admin)
    urgent = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND, priority=9))
    later = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND, priority=1))
    queued = await _queue_quietly(engine, urgent.id)

    added = await engine.tasks.run_now(admin, later.id)

    claimed = await engine.execution(queued.id)
    assert claimed.status is not ExecutionStatus.PENDING, "the adding claim took the urgent job"
    done_urgent = await engine.wait_for_status(queued.id, ExecutionStatus.COMPLETED)
    done_added = await engine.wait_for_status(added.id, ExecutionStatus.COMPLETED)
    assert done_urgent.started_at is not None and done_added.started_at is not None
    assert done_urgent.started_at <= done_added.started_at


async def _queue_quietly(engine: Engine, task_id: str) -> Execution:
    """A run of the task inserted without telling any worker (its claim loop sleeps)."""

    [run], _ = await engine.store.add_runs(task_id, None, one_run)
    return run


async def test_a_run_refused_in_its_transaction_leaves_the_worker_claiming(
    make_engine: EngineFactory, admin: User
) -> None:
    engine, queue = await counted_idle(make_engine, admin)
    paused = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND))
    await engine.tasks.pause(admin, paused.id)
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND))
    before = queue.claims_started

    with pytest.raises(Conflict):
        await engine.tasks.run_now(admin, paused.id)
    run = await engine.tasks.run_now(admin, task.id)

    assert (await engine.execution(run.id)).attempts == 1, "the next run was claimed with it"
    assert queue.claims_started == before
    await engine.wait_for_status(run.id, ExecutionStatus.COMPLETED)


async def test_the_transaction_that_adds_and_claims_commits_synchronously(
    make_engine: EngineFactory, admin: User
) -> None:
    """A claim alone may commit without waiting for PostgreSQL's flush; a run accepted
    with 2xx may not, so the claim in its transaction must leave the flush on."""
    engine = await make_engine(start=False)
    if engine.store.db.dialect != "postgresql":
        return

    adding = await _claim_with_a_run(engine, admin)

    assert adding.synchronous_commit == "on"
    assert [e.id for e in adding.delivered] == [adding.run.id]
    assert adding.delivered[0].status is ExecutionStatus.PROCESSING


@dataclass
class _AddingClaim:
    run: Execution
    delivered: list[Execution]
    """The jobs the worker was handed."""
    statements: list[str]
    """The claim's statements (the notice to other nodes left out)."""
    notices: list[str]
    """The claim's notices to other nodes."""
    synchronous_commit: str
    """The transaction's setting once the claim ran."""


async def _claim_with_a_run(
    engine: Engine, admin: User, room: int = 10, task_id: str | None = None
) -> _AddingClaim:
    """One run added (of a new task unless `task_id`), on an engine not started, with the
    claim of a worker of node-a (`room` for so many jobs) made in its transaction, as the
    API's run makes it."""
    store, queue = engine.store, engine.queue
    delivered: list[Execution] = []
    queue.set_reserve(lambda: Reservation("node-a", room, 30.0, delivered.extend))
    if task_id is None:
        task_id = (await engine.tasks.create(admin, spec(TaskType.ON_DEMAND))).id
    adding = queue.claim_on_add()
    assert adding is not None
    statements: list[str] = []
    notices: list[str] = []
    settings: list[str] = []

    async def then(conn: Conn, added: Sequence[Execution]) -> None:
        counted = _Statements(conn)
        await adding.claim(counted, added)  # type: ignore[arg-type]
        statements.extend(s for s in counted.sent if "pg_notify" not in s)
        notices.extend(s for s in counted.sent if "pg_notify" in s)
        row = await conn.fetchrow("SELECT current_setting('synchronous_commit') AS s")
        assert row is not None
        settings.append(row["s"])

    [run], _ = await store.add_runs(task_id, None, one_run, None, then)
    adding.ended(True)
    [setting] = settings
    return _AddingClaim(run, delivered, statements, notices, setting)


async def test_a_task_created_with_a_job_due_now_is_claimed_in_its_transaction(
    make_engine: EngineFactory, admin: User
) -> None:
    engine, queue = await counted_idle(make_engine, admin)
    before = queue.claims_started

    task = await engine.tasks.create(admin, spec())

    [first] = await engine.executions(task.id)
    assert first.attempts == 1, "claimed once the create returned"
    assert queue.claims_started == before, "no claim of its own"
    [done] = await engine.wait_until_final(task.id)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.attempts == 1


async def test_tasks_created_in_a_batch_are_claimed_in_its_transaction(
    make_engine: EngineFactory, admin: User
) -> None:
    engine, queue = await counted_idle(make_engine, admin)
    before = queue.claims_started

    tasks = await engine.tasks.create_many(admin, [spec(), spec(), spec()])

    firsts = [e for task in tasks for e in await engine.executions(task.id)]
    assert [e.attempts for e in firsts] == [1, 1, 1], "claimed once the batch returned"
    assert queue.claims_started == before, "no claim of its own"
    for task in tasks:
        [done] = await engine.wait_until_final(task.id)
        assert done.attempts == 1


async def test_a_task_created_with_its_first_job_commits_once_on_sqlite(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(worker=IDLE)
    db = engine.store.db
    if not isinstance(db, SqliteDatabase):
        return
    await idle(engine, admin)

    async def create_to_its_end() -> Execution:
        # With a key, so it is written in this request's context: a create without one
        # joins a group whose writer runs in a context of its own, which the tag misses.
        task = await engine.tasks.create(admin, spec(), claim=_idempotency("once", admin))
        [done] = await engine.wait_until_final(task.id)
        return done

    done, transactions = await _writer_transactions(db, create_to_its_end())

    assert done.attempts == 1
    assert transactions == 1, "the insert and the claim share one transaction"


def _idempotency(key: str, admin: User) -> IdempotencyClaim:
    now = utcnow()

    def render(result: Any) -> tuple[int, str]:
        return 201, "{}"

    return IdempotencyClaim("o", admin.id, key, "fp", now, now - timedelta(hours=24), render)


async def test_a_replayed_create_hands_the_reserved_claim_back(
    make_engine: EngineFactory, admin: User
) -> None:
    engine, queue = await counted_idle(make_engine, admin)
    await engine.tasks.create(admin, spec(), claim=_idempotency("k1", admin))
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND))
    before = queue.claims_started

    with pytest.raises(Replay):
        await engine.tasks.create(admin, spec(), claim=_idempotency("k1", admin))
    run = await engine.tasks.run_now(admin, task.id)

    assert (await engine.execution(run.id)).attempts == 1, "the next run was claimed with it"
    assert queue.claims_started == before
    await engine.wait_for_status(run.id, ExecutionStatus.COMPLETED)


async def _workflows(make_engine: EngineFactory) -> tuple[WorkflowService, Engine, CountedClaims]:
    engine = await make_engine(start=False, worker=IDLE, queue_type=CountedClaims)
    service = WorkflowService(
        WorkflowRecords(engine.store.db), engine.queue, engine.handlers, engine.events
    )
    engine.queue.set_final_hook(service.on_final)
    await engine.start()
    queue = engine.queue
    assert isinstance(queue, CountedClaims)
    return service, engine, queue


async def test_a_workflow_run_started_is_claimed_in_its_transaction(
    make_engine: EngineFactory, admin: User
) -> None:
    service, engine, queue = await _workflows(make_engine)
    await idle(engine, admin)
    workflow = await service.create(admin, "wf", "", [StepSpec("a"), StepSpec("b")])
    before = queue.claims_started

    started = await service.run(admin, workflow.id)

    rows = await engine.store.db.fetch(
        "SELECT attempts FROM job_executions WHERE workflow_run_id = $1", started.id
    )
    assert [r["attempts"] for r in rows] == [1, 1], "claimed once the start returned"
    assert queue.claims_started == before, "no claim of its own"
    done = await finished(service, admin, started.id)
    assert done.status is RunStatus.SUCCEEDED


class _Statements:
    """A connection that records the text of every statement sent through it."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn
        self.sent: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._conn, name)

        async def sent(sql: str, *args: Any) -> Any:
            self.sent.append(sql)
            return await method(sql, *args)

        return sent


async def test_a_plain_claim_made_with_the_work_added_is_one_statement_on_postgresql(
    make_engine: EngineFactory, admin: User
) -> None:
    """As `acquire` claims jobs of one org without limits: in one statement, with the
    flush left on since the transaction adds work too."""
    engine = await make_engine(start=False)
    if engine.store.db.dialect != "postgresql":
        return

    adding = await _claim_with_a_run(engine, admin)

    assert [e.id for e in adding.delivered] == [adding.run.id]
    assert len(adding.statements) == 1, adding.statements
    assert adding.synchronous_commit == "on"


async def test_a_run_of_a_limited_task_is_left_to_the_claim_loop_on_postgresql(
    make_engine: EngineFactory, admin: User
) -> None:
    """A claim in steps waits for task and org locks, which must not happen while the
    adding transaction holds the audit chain's head: the run is announced instead."""
    engine = await make_engine(start=False)
    if engine.store.db.dialect != "postgresql":
        return
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND, concurrency=1))

    adding = await _claim_with_a_run(engine, admin, task_id=task.id)

    assert adding.delivered == []
    assert not any("FOR UPDATE" in s and "SKIP LOCKED" not in s for s in adding.statements)
    assert (await engine.execution(adding.run.id)).status is ExecutionStatus.PENDING


async def test_a_run_the_claim_takes_is_not_announced_to_other_nodes(
    make_engine: EngineFactory, admin: User
) -> None:
    """Other nodes would wake to claim nothing: the NOTIFY's round trip is spared."""
    engine = await make_engine(start=False)
    if engine.store.db.dialect != "postgresql":
        return

    adding = await _claim_with_a_run(engine, admin)

    assert [e.id for e in adding.delivered] == [adding.run.id]
    assert adding.notices == []


async def test_a_run_the_claim_leaves_is_announced_to_other_nodes(
    make_engine: EngineFactory, admin: User
) -> None:
    engine = await make_engine(start=False)
    if engine.store.db.dialect != "postgresql":
        return
    task = await engine.tasks.create(admin, spec(TaskType.ON_DEMAND))
    earlier = await engine.tasks.run_now(admin, task.id)

    adding = await _claim_with_a_run(engine, admin, room=1, task_id=task.id)

    assert [e.id for e in adding.delivered] == [earlier.id], "the earliest due first"
    assert len(adding.notices) == 1, adding.notices
    assert (await engine.execution(adding.run.id)).status is ExecutionStatus.PENDING


async def test_a_workflow_run_retried_is_claimed_in_its_transaction(
    make_engine: EngineFactory, admin: User
) -> None:
    service, engine, queue = await _workflows(make_engine)
    await idle(engine, admin)
    steps = [StepSpec("a", handler="fail", payload={"message": "not yet"})]
    workflow = await service.create(admin, "wf", "", steps)
    failed = await finished(service, admin, (await service.run(admin, workflow.id)).id)
    assert failed.status is RunStatus.FAILED
    [step] = failed.steps
    await engine.store.db.execute(
        "UPDATE job_executions SET handler = 'echo' WHERE id = $1", step.execution_id
    )
    before = queue.claims_started

    await service.retry_run(admin, failed.id)

    assert step.execution_id is not None
    assert (await engine.execution(step.execution_id)).attempts == 2, "claimed with the retry"
    assert queue.claims_started == before, "no claim of its own"
    done = await finished(service, admin, failed.id)
    assert done.status is RunStatus.SUCCEEDED
