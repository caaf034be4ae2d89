"""Workflows end to end on one engine over SQLite and PostgreSQL: each step an ordinary
execution, children queued in the transaction that ends their last upstream step."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from taskflowd.domain.entities import DEFAULT_ORG_ID, JSON, User, utcnow
from taskflowd.domain.enums import Role, RunStatus, Trigger
from taskflowd.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from taskflowd.domain.orgs import Actor, OrgRole
from taskflowd.handlers.base import HandlerSpec, JobContext
from taskflowd.handlers.builtin import builtin_specs, validate_echo
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.store import SqlStore
from taskflowd.store.base import TaskFilter
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.model import WorkflowRun
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.integration.engine.harness import Engine, EngineFactory
from tests.integration.queue.polling import eventually
from tests.integration.store.factories import make_user


async def nap(payload: JSON, ctx: JobContext) -> JSON:
    """Sleeps until cancelled: a step that is running when its run is cancelled."""
    del payload, ctx
    await asyncio.sleep(60)
    return None


@pytest.fixture
async def flows(make_engine: EngineFactory) -> tuple[WorkflowService, Engine]:
    handlers = HandlerRegistry([*builtin_specs(), HandlerSpec("nap", nap, validate_echo)])
    engine = await make_engine(start=False, handlers=handlers)
    service = WorkflowService(
        WorkflowRecords(engine.store.db), engine.queue, engine.handlers, engine.events
    )
    engine.queue.set_final_hook(service.on_final)
    await engine.start()
    return service, engine


@pytest.fixture
async def owner(store: SqlStore) -> User:
    return await store.create_user(make_user(role=Role.USER))


def step(key: str, *deps: str, **fields: Any) -> StepSpec:
    return StepSpec(key, depends_on=deps, **fields)


async def finished(service: WorkflowService, actor: User, run_id: str) -> WorkflowRun:
    async def probe() -> WorkflowRun | None:
        run = await service.get_run(actor, run_id)
        return run if run.status is not RunStatus.RUNNING else None

    return await eventually(probe, f"run {run_id} to finish")


def states(run: WorkflowRun) -> dict[str, str]:
    return {s.key: s.status for s in run.steps}


async def run_of(
    flows: tuple[WorkflowService, Engine], owner: User, steps: Sequence[StepSpec]
) -> WorkflowRun:
    service, _ = flows
    workflow = await service.create(owner, "wf", "", steps)
    started = await service.run(owner, workflow.id)
    return await finished(service, owner, started.id)


async def test_diamond_hands_results_downstream(
    flows: tuple[WorkflowService, Engine], owner: User
) -> None:
    finished_events: list[dict[str, Any]] = []
    flows[1].events.on("workflow_run.finished", finished_events.append)
    run = await run_of(
        flows,
        owner,
        [
            step("a", payload={"n": 1}),
            step("b", "a", payload="b"),
            step("c", "a", payload="c"),
            step("d", "b", "c"),
        ],
    )
    assert run.status is RunStatus.SUCCEEDED
    assert set(states(run).values()) == {"COMPLETED"}
    d = next(s for s in run.steps if s.key == "d")
    upstream = d.result["upstream"]  # type: ignore[index]
    assert upstream["b"] == {
        "payload": "b",
        "upstream": {"a": {"payload": {"n": 1}, "upstream": {}}},
    }
    assert set(upstream) == {"b", "c"}
    starts = {s.key: s.started_at for s in run.steps}
    ends = {s.key: s.finished_at for s in run.steps}
    assert ends["b"] <= starts["d"] and ends["c"] <= starts["d"]  # type: ignore[operator]
    assert [(e["id"], e["status"], e["ownerId"], e["orgId"]) for e in finished_events] == [
        (run.id, "SUCCEEDED", owner.id, run.org_id)
    ]
    assert run.org_id == (owner.default_org_id or DEFAULT_ORG_ID)


async def test_fan_out_fan_in_runs_each_step_once(
    flows: tuple[WorkflowService, Engine], owner: User, store: SqlStore
) -> None:
    wide = [step(f"w{i}", "start") for i in range(50)]
    run = await run_of(flows, owner, [step("start"), *wide, step("join", *(s.key for s in wide))])
    assert run.status is RunStatus.SUCCEEDED
    assert len(run.steps) == 52 and all(s.attempts == 1 for s in run.steps)
    rows = await store.db.fetch(
        "SELECT step_key, COUNT(*) AS n FROM job_executions WHERE workflow_run_id = $1 "
        "GROUP BY step_key",
        run.id,
    )
    assert len(rows) == 52 and {r["n"] for r in rows} == {1}
    join = next(s for s in run.steps if s.key == "join")
    assert len(join.result["upstream"]) == 50  # type: ignore[index]


async def test_run_ids_rise_in_the_order_runs_start(
    flows: tuple[WorkflowService, Engine], owner: User
) -> None:
    service, _ = flows
    workflow = await service.create(owner, "wf", "", [step("a")])
    ids = [(await service.run(owner, workflow.id)).id for _ in range(5)]
    assert ids == sorted(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}
    for run_id in ids:
        assert (await finished(service, owner, run_id)).status is RunStatus.SUCCEEDED


async def test_runs_whose_steps_end_in_one_batch_each_advance_once(
    make_engine: EngineFactory, owner: User, store: SqlStore
) -> None:
    """Runs started with no worker running are drained together, so each batch of
    step ends the worker settles spans many runs: every run still succeeds, with each
    step run once and handed all its upstream results."""
    engine = await make_engine(start=False)
    service = WorkflowService(
        WorkflowRecords(engine.store.db), engine.queue, engine.handlers, engine.events
    )
    engine.queue.set_final_hook(service.on_final)
    parts = [step(f"p{i}", "start") for i in range(3)]
    workflow = await service.create(
        owner, "wide", "", [step("start"), *parts, step("join", *(p.key for p in parts))]
    )
    started = [await service.run(owner, workflow.id) for _ in range(30)]

    await engine.start()

    for run in started:
        done = await finished(service, owner, run.id)
        assert done.status is RunStatus.SUCCEEDED
        assert all(s.attempts == 1 for s in done.steps) and len(done.steps) == 5
        join = next(s for s in done.steps if s.key == "join")
        assert set(join.result["upstream"]) == {"p0", "p1", "p2"}  # type: ignore[index]
    counts = await store.db.fetch(
        "SELECT workflow_run_id, step_key, COUNT(*) AS n FROM job_executions "
        "WHERE workflow_run_id IS NOT NULL GROUP BY workflow_run_id, step_key"
    )
    assert len(counts) == 30 * 5 and {r["n"] for r in counts} == {1}


async def test_built_in_handlers_run_a_step_on_its_own_payload(
    flows: tuple[WorkflowService, Engine], owner: User
) -> None:
    """sleep, fail, http and shell take a payload of a fixed form: as steps they run on the
    step's payload (checked when the workflow is saved), not on the §9 envelope."""
    run = await run_of(
        flows,
        owner,
        [
            step("nap", handler="sleep", payload={"seconds": 0}),
            step("flaky", handler="fail", payload={"untilAttempt": 2}, max_retries=1),
            step("bare", handler="fail", max_retries=0),
            step("report", "nap", "flaky", trigger=Trigger.ALL_DONE),
        ],
    )
    found = {s.key: s for s in run.steps}
    assert found["nap"].status == "COMPLETED" and found["nap"].result == {"seconds": 0}
    assert found["flaky"].status == "COMPLETED" and found["flaky"].result == {"attempt": 2}
    assert found["bare"].status == "FAILED"
    assert "failed on purpose" in str(found["bare"].error)
    assert found["report"].result == {
        "payload": None,
        "upstream": {"nap": {"seconds": 0}, "flaky": {"attempt": 2}},
    }

    service, _ = flows
    with pytest.raises(ValidationFailed) as refused:
        await service.create(
            owner, "bad", "", [step("a"), step("b", "a", handler="sleep", payload={"seconds": "x"})]
        )
    assert [e.field for e in refused.value.errors] == ["steps[1].payload.seconds"]


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (Trigger.ALL_SUCCESS, "SKIPPED"),
        (Trigger.ALL_DONE, "COMPLETED"),
        (Trigger.ONE_SUCCESS, "COMPLETED"),
        (Trigger.ONE_FAILED, "COMPLETED"),
        (Trigger.NONE_FAILED, "SKIPPED"),
    ],
)
async def test_failure_paths_by_trigger(
    flows: tuple[WorkflowService, Engine], owner: User, trigger: Trigger, expected: str
) -> None:
    run = await run_of(
        flows,
        owner,
        [
            step("ok"),
            step("bad", handler="fail"),
            step("after", "ok", "bad", trigger=trigger),
            step("tail", "after"),
        ],
    )
    assert run.status is RunStatus.FAILED
    found = states(run)
    assert found["ok"] == "COMPLETED" and found["bad"] == "FAILED"
    assert found["after"] == expected
    assert found["tail"] == ("SKIPPED" if expected == "SKIPPED" else "COMPLETED")


async def test_condition_skips_and_propagates(
    flows: tuple[WorkflowService, Engine], owner: User
) -> None:
    big = {"step": "a", "path": "result.payload.size", "op": "gt", "value": 10}
    run = await run_of(
        flows,
        owner,
        [
            step("a", payload={"size": 3}),
            step("large", "a", when=big),
            step("small", "a", when={**big, "op": "lt"}),
            step("report", "large"),
            step("always", "large", "small", trigger=Trigger.NONE_FAILED),
        ],
    )
    assert run.status is RunStatus.SUCCEEDED
    assert states(run) == {
        "a": "COMPLETED",
        "large": "SKIPPED",
        "small": "COMPLETED",
        "report": "SKIPPED",
        "always": "COMPLETED",
    }
    causes = {s.key: s.skip_cause for s in run.steps}
    assert causes["large"] == "CONDITION" and causes["report"] == "TRIGGER"


async def test_retry_reruns_only_failed_and_their_skips(
    flows: tuple[WorkflowService, Engine], owner: User, store: SqlStore
) -> None:
    service, _ = flows
    flaky = {"message": "not yet"}
    run = await run_of(
        flows,
        owner,
        [
            step("a"),
            step("b", "a", handler="fail", payload=flaky),
            step("c", "a"),
            step("d", "b", "c"),
        ],
    )
    assert run.status is RunStatus.FAILED
    assert states(run) == {"a": "COMPLETED", "b": "FAILED", "c": "COMPLETED", "d": "SKIPPED"}
    before = {s.key: s for s in run.steps}
    # The step now succeeds: swap its handler as a fixed deployment would.
    await store.db.execute(
        "UPDATE job_executions SET handler = 'echo' WHERE id = $1", before["b"].execution_id
    )
    retried = await service.retry_run(owner, run.id)
    assert retried.status is RunStatus.RUNNING
    again = await finished(service, owner, run.id)
    assert again.status is RunStatus.SUCCEEDED
    after = {s.key: s for s in again.steps}
    assert after["b"].execution_id == before["b"].execution_id and after["b"].attempts == 2
    for key in ("a", "c"):
        assert after[key].execution_id == before[key].execution_id
        assert after[key].attempts == 1 and after[key].finished_at == before[key].finished_at
    assert after["d"].status == "COMPLETED"
    with pytest.raises(Conflict):
        await service.retry_run(owner, run.id)


async def test_cancel_stops_queued_and_running_steps(
    flows: tuple[WorkflowService, Engine], owner: User
) -> None:
    service, _ = flows
    workflow = await service.create(
        owner,
        "slow",
        "",
        [step("nap", handler="nap"), step("next", "nap")],
    )
    started = await service.run(owner, workflow.id)

    async def running() -> bool:
        run = await service.get_run(owner, started.id)
        return states(run)["nap"] == "PROCESSING"

    await eventually(running, "the first step to start")
    await service.cancel_run(owner, started.id)
    run = await finished(service, owner, started.id)
    assert run.status is RunStatus.CANCELLED, run
    assert states(run)["nap"] == "CANCELLED" and states(run)["next"] == "SKIPPED"


async def test_org_isolation_roles_and_validation(
    flows: tuple[WorkflowService, Engine], owner: User, store: SqlStore
) -> None:
    service, _ = flows
    home = owner.default_org_id or DEFAULT_ORG_ID
    other = await store.create_user(make_user(role=Role.USER))
    other_org = await store.create_org("Other", other.id, utcnow())
    outsider = Actor(other, other_org.id, OrgRole.OWNER)
    teammate = Actor(await store.create_user(make_user()), home, OrgRole.MEMBER)
    viewer = Actor(await store.create_user(make_user()), home, OrgRole.VIEWER)
    admin = await store.create_user(make_user(role=Role.ADMIN))
    workflow = await service.create(owner, "mine", "", [step("a")])
    assert workflow.org_id == home
    with pytest.raises(NotFound):
        await service.get(outsider, workflow.id)
    with pytest.raises(NotFound):
        await service.run(outsider, workflow.id)
    assert [w.id for w in (await service.list(outsider, 50, None)).items] == []
    assert [w.id for w in (await service.list(teammate, 50, None)).items] == [workflow.id]
    run = await service.run(teammate, workflow.id)
    backing = await store.db.fetchrow("SELECT org_id FROM tasks WHERE id = $1", workflow.task_id)
    assert backing is not None and backing["org_id"] == home
    assert run.steps[0].execution_id is not None
    execution = await store.get_execution(run.steps[0].execution_id)
    assert execution is not None and execution.org_id == home
    with pytest.raises(NotFound):
        await service.get_run(outsider, run.id)
    with pytest.raises(NotFound):
        await service.cancel_run(outsider, run.id)
    assert (await service.get_run(viewer, run.id)).id == run.id
    with pytest.raises(Forbidden):
        await service.run(viewer, workflow.id)
    with pytest.raises(Forbidden):
        await service.create(viewer, "nope", "", [step("a")])
    assert (await service.get(admin, workflow.id)).id == workflow.id
    with pytest.raises(ValidationFailed) as exc:
        await service.create(owner, "loop", "", [step("a", "b"), step("b", "a")])
    assert "→" in exc.value.errors[0].message
    # The hidden task behind a workflow is not one of the user's tasks.
    assert (await store.list_tasks(TaskFilter(org_id=home), 50)).items == []
