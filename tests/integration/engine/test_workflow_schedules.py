"""Cron schedules of workflows on SQLite and PostgreSQL: two nodes' timers start exactly one
run per tick, missed ticks follow the misfire policy, and `workflow_run.finished` is
published only after the transaction that ended the run commits (where the metrics of
runs and step waits come from)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from taskflowd.domain.entities import User, utcnow
from taskflowd.domain.enums import ExecutionStatus, MisfirePolicy, Role
from taskflowd.domain.errors import ValidationFailed
from taskflowd.events import Event
from taskflowd.metrics import Metrics
from taskflowd.store import SqlStore
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import Schedule, WorkflowService
from tests.integration.engine.harness import Engine, EngineFactory
from tests.integration.queue.polling import eventually
from tests.integration.store.factories import make_user

STEPS = [StepSpec("a"), StepSpec("b", depends_on=("a",))]
EVERY_SECOND = Schedule("* * * * * *")


async def node(make_engine: EngineFactory) -> tuple[WorkflowService, Engine]:
    engine = await make_engine(start=False, scheduler={"misfire_grace_s": 0.0, "run_all_limit": 3})
    service = WorkflowService(
        WorkflowRecords(engine.store.db), engine.queue, engine.handlers, engine.events
    )
    engine.queue.set_final_hook(service.on_final)
    engine.timer.workflows = service
    return service, engine


@pytest.fixture
async def owner(store: SqlStore) -> User:
    return await store.create_user(make_user(role=Role.USER))


async def ticks_of(store: SqlStore, workflow_id: str) -> list[object]:
    found = await store.db.fetch(
        "SELECT tick_at, status FROM workflow_runs WHERE workflow_id = $1 ORDER BY tick_at",
        workflow_id,
    )
    return [(store.db.codec(r["tick_at"]), r["status"]) for r in found]


async def test_two_nodes_start_one_run_per_tick(
    make_engine: EngineFactory, store: SqlStore, owner: User
) -> None:
    first, engine_a = await node(make_engine)
    _, engine_b = await node(make_engine)
    workflow = await first.create(owner, "every second", "", STEPS, EVERY_SECOND)
    assert workflow.next_run_at is not None and workflow.next_run_at > utcnow()
    await engine_a.start()
    await engine_b.start()

    async def three_done() -> bool:
        runs = await ticks_of(store, workflow.id)
        return sum(1 for _, status in runs if status == "SUCCEEDED") >= 3

    await eventually(three_done, "three ticks' runs to succeed", 30)
    await engine_a.stop()
    await engine_b.stop()
    ticks = [t for t, _ in await ticks_of(store, workflow.id)]
    assert len(ticks) == len(set(ticks)) >= 3
    # One run per instant, no instant left out between the first and the last.
    assert ticks == [ticks[0] + timedelta(seconds=i) for i in range(len(ticks))]
    assert engine_a.timer.ticks_fired + engine_b.timer.ticks_fired == len(ticks)
    steps = await store.db.fetch(
        "SELECT e.workflow_run_id, COUNT(*) AS n FROM job_executions e "
        "WHERE e.workflow_run_id IS NOT NULL GROUP BY e.workflow_run_id"
    )
    assert {int(r["n"]) for r in steps} <= {1, 2}


@pytest.mark.parametrize(
    ("policy", "catch_up"),
    [(MisfirePolicy.RUN_ONCE, 1), (MisfirePolicy.SKIP, 0), (MisfirePolicy.RUN_ALL, 3)],
)
async def test_missed_ticks_follow_the_misfire_policy(
    make_engine: EngineFactory,
    store: SqlStore,
    owner: User,
    policy: MisfirePolicy,
    catch_up: int,
) -> None:
    service, engine = await node(make_engine)
    workflow = await service.create(
        owner, "hourly", "", STEPS, Schedule("0 * * * *", "Europe/Berlin", policy)
    )
    missed_from = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
    await service.records.update(dataclasses.replace(workflow, next_run_at=missed_from))
    await engine.timer.run_due(utcnow())
    runs = await ticks_of(store, workflow.id)
    assert len(runs) == catch_up
    moved = await service.get(owner, workflow.id)
    assert moved.next_run_at is not None and moved.next_run_at > utcnow()
    # A second pass (another node, or later) starts nothing more.
    await engine.timer.run_due(utcnow())
    assert len(await ticks_of(store, workflow.id)) == catch_up


async def test_schedules_are_validated_changed_paused_and_removed(
    make_engine: EngineFactory, owner: User
) -> None:
    service, _ = await node(make_engine)
    with pytest.raises(ValidationFailed) as bad:
        await service.create(owner, "bad", "", STEPS, Schedule("61 * * * *", "Mars/Olympus"))
    assert {e.field for e in bad.value.errors} == {"cronExpression", "timezone"}
    workflow = await service.create(owner, "nightly", "", STEPS, Schedule("0 3 * * *", "UTC"))
    assert workflow.next_run_at is not None and workflow.next_run_at.hour == 3
    moved = await service.update(owner, workflow.id, {"timezone": "America/New_York"})
    assert moved.next_run_at is not None and moved.next_run_at.hour in (7, 8)
    paused = await service.pause(owner, workflow.id)
    assert await service.due(paused.next_run_at or utcnow(), 10) == []
    resumed = await service.resume(owner, workflow.id)
    assert resumed.next_run_at is not None and resumed.next_run_at > utcnow()
    removed = await service.update(owner, workflow.id, {"cron_expression": None})
    assert removed.next_run_at is None
    assert await service.next_tick_at() is None


async def test_run_finished_is_published_after_the_commit_only(
    make_engine: EngineFactory, store: SqlStore, owner: User
) -> None:
    service, engine = await node(make_engine)
    workflow = await service.create(owner, "one step", "", [StepSpec("only")])
    run = await service.run(owner, workflow.id)
    execution_id = run.steps[0].execution_id
    assert execution_id is not None

    class Undo(Exception):
        pass

    async with engine.events.subscribe() as heard:
        with pytest.raises(Undo):
            async with store.db.transaction() as conn:
                await conn.execute(
                    "UPDATE job_executions SET status = $1, completed_at = $2 WHERE id = $3",
                    ExecutionStatus.COMPLETED.value,
                    utcnow(),
                    execution_id,
                )
                outcome = await service.on_final(conn, [execution_id])
                assert len(outcome.after_commit) == 1
                raise Undo
        assert heard.empty()
        assert (await service.get_run(owner, run.id)).status.value == "RUNNING"

        await engine.start()
        event: Event = await asyncio.wait_for(heard.get(), 30)
        while event.kind != "workflow_run.finished":
            event = await asyncio.wait_for(heard.get(), 30)
        assert event.data["id"] == run.id and event.data["status"] == "SUCCEEDED"
        # By the time it is heard, every reader sees the run finished.
        assert (await service.get_run(owner, run.id)).status.value == "SUCCEEDED"


async def test_runs_and_step_waits_reach_the_metrics(
    make_engine: EngineFactory, owner: User
) -> None:
    service, engine = await node(make_engine)
    metrics = Metrics(engine.events, engine.supervisor)
    await metrics.start()
    try:
        await engine.start()
        workflow = await service.create(owner, "chain", "", STEPS)
        await service.run(owner, workflow.id)

        def value(name: str, **labels: str) -> float:
            return metrics.registry.get_sample_value(name, labels) or 0.0

        async def counted() -> bool:
            return value("taskflow_workflow_runs_total", status="SUCCEEDED") == 1

        await eventually(counted, "the run in the metrics")
        assert value("taskflow_workflow_run_duration_seconds_count") == 1
        assert value("taskflow_workflow_step_wait_seconds_count") == len(STEPS)
    finally:
        await metrics.stop()
