"""A step whose execution went to the dead-letter queue and is retried from there reopens
its workflow run: the steps skipped because of its failure are decided again when it
ends, and the run finishes with the new outcome (SQLite and PostgreSQL). A step of a
cancelled run is not retried (409)."""

from __future__ import annotations

import asyncio

import pytest

from taskflowd.domain.entities import JSON, DeadLetterJob, User
from taskflowd.domain.enums import Role, RunStatus, Trigger
from taskflowd.domain.errors import Conflict
from taskflowd.handlers.base import HandlerSpec, JobContext, JobError
from taskflowd.handlers.builtin import builtin_specs, validate_echo
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.store import SqlStore
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.model import WorkflowRun
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.integration.engine.harness import Engine, EngineFactory
from tests.integration.queue.polling import eventually
from tests.integration.store.factories import make_user


async def first_attempt_fails(payload: JSON, ctx: JobContext) -> JSON:
    """Fails for good on attempt 1 (straight to the dead-letter queue), then succeeds."""
    del payload
    if ctx.attempt == 1:
        raise JobError("not yet", "flaky", retryable=False)
    return {"attempt": ctx.attempt}


async def nap(payload: JSON, ctx: JobContext) -> JSON:
    """Runs until cancelled: keeps a run RUNNING while another branch fails."""
    del payload, ctx
    await asyncio.Event().wait()
    return None


@pytest.fixture
async def flows(make_engine: EngineFactory) -> tuple[WorkflowService, Engine]:
    handlers = HandlerRegistry(
        [
            *builtin_specs(),
            HandlerSpec("flaky", first_attempt_fails, validate_echo),
            HandlerSpec("nap", nap, validate_echo),
        ]
    )
    engine = await make_engine(start=False, handlers=handlers)
    service = WorkflowService(
        WorkflowRecords(engine.store.db), engine.queue, engine.handlers, engine.events
    )
    engine.queue.set_final_hook(service.on_final)
    engine.queue.set_reopen_hook(service.on_reopen)
    await engine.start()
    return service, engine


@pytest.fixture
async def owner(store: SqlStore) -> User:
    return await store.create_user(make_user(role=Role.USER))


async def ended(service: WorkflowService, owner: User, run_id: str) -> WorkflowRun:
    async def probe() -> WorkflowRun | None:
        run = await service.get_run(owner, run_id)
        return run if run.status is not RunStatus.RUNNING else None

    return await eventually(probe, f"run {run_id} to end")


STEPS = [
    StepSpec("fetch", handler="flaky"),
    StepSpec("store", depends_on=("fetch",)),
    StepSpec("report", depends_on=("store",)),
    StepSpec("alert", depends_on=("fetch",), trigger=Trigger.ONE_FAILED),
]


async def test_a_dead_letter_retry_of_a_step_reopens_and_finishes_its_run(
    flows: tuple[WorkflowService, Engine], owner: User
) -> None:
    service, engine = flows
    workflow = await service.create(owner, "flaky", "", STEPS)
    run = await ended(service, owner, (await service.run(owner, workflow.id)).id)
    assert run.status is RunStatus.FAILED
    states = {s.key: (s.status, s.skip_cause) for s in run.steps}
    assert states["store"] == ("SKIPPED", "FAILURE") and states["report"][0] == "SKIPPED"
    assert states["alert"][0] == "COMPLETED"

    [entry] = (await engine.tasks.list_dead_letter(owner, 10, None)).items
    await engine.tasks.retry_dead_letter(owner, entry.id)
    assert (await service.get_run(owner, run.id)).status is RunStatus.RUNNING
    again = await ended(service, owner, run.id)
    assert again.status is RunStatus.SUCCEEDED
    states = {s.key: s.status for s in again.steps}
    assert states == {
        "fetch": "COMPLETED",
        "store": "COMPLETED",
        "report": "COMPLETED",
        "alert": "COMPLETED",  # it ran when fetch failed; that stays
    }
    assert next(s for s in again.steps if s.key == "fetch").attempts == 2


async def test_a_step_of_a_cancelled_run_stays_dead(
    flows: tuple[WorkflowService, Engine], owner: User
) -> None:
    service, engine = flows
    steps = [StepSpec("fetch", handler="flaky"), StepSpec("wait", handler="nap")]
    workflow = await service.create(owner, "two branches", "", steps)
    run = await service.run(owner, workflow.id)

    async def dead() -> list[DeadLetterJob] | None:
        found = (await engine.tasks.list_dead_letter(owner, 10, None)).items
        return list(found) or None

    [entry] = await eventually(dead, "the failed step in the dead-letter queue")
    await service.cancel_run(owner, run.id)
    assert (await ended(service, owner, run.id)).status is RunStatus.CANCELLED
    with pytest.raises(Conflict):
        await engine.tasks.retry_dead_letter(owner, entry.id)
    assert len((await engine.tasks.list_dead_letter(owner, 10, None)).items) == 1
