"""The client's workflow calls against a real node on each SQL backend."""

from __future__ import annotations

import pytest

from taskflowd.client import AsyncClient
from taskflowd.client.errors import ApiError
from taskflowd.client.workflows import Step, WorkflowRun
from taskflowd.domain.enums import RunStatus, Trigger, WorkflowStatus
from tests.integration.queue.polling import eventually


async def test_define_run_follow_and_retry(admin: AsyncClient) -> None:
    steps = [
        Step("extract", payload={"rows": 2}),
        Step("fail", handler="fail", depends_on=("extract",)),
        Step("page", depends_on=("fail",), trigger=Trigger.ONE_FAILED),
    ]
    workflow = await admin.workflows.create("etl", steps, description="nightly")
    assert workflow.steps == tuple(steps) and workflow.status is WorkflowStatus.ACTIVE
    paused = await admin.workflows.pause(workflow.id)
    assert paused.status is WorkflowStatus.PAUSED
    await admin.workflows.resume(workflow.id)
    renamed = await admin.workflows.update(workflow.id, name="etl-2")
    assert renamed.name == "etl-2"
    run = await admin.workflows.run(workflow.id)

    async def done() -> WorkflowRun | None:
        found = await admin.workflow_runs.get(run.id)
        return found if found.status is not RunStatus.RUNNING else None

    finished = await eventually(done, "the run to finish")
    assert finished.status is RunStatus.FAILED
    assert [s.status for s in finished.steps] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert [r.id for r in (await admin.workflow_runs.list(workflow_id=workflow.id)).items] == [
        run.id
    ]
    retried = await admin.workflow_runs.retry(run.id)
    assert retried.status is RunStatus.RUNNING
    again = await eventually(done, "the retried run to finish")
    assert [s.attempts for s in again.steps] == [1, 2, 1]
    assert [w.id async for w in admin.workflows.iter()] == [workflow.id]
    await admin.workflows.delete(workflow.id)
    with pytest.raises(ApiError):
        await admin.workflows.get(workflow.id)
