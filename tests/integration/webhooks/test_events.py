"""Which changes become which webhook messages: a failing job's retry, final failure and
dead letter, a workflow run's end, and a ping; each written with its change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from taskflowd.domain.enums import ExecutionStatus, TaskType
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.integration.engine.harness import spec
from tests.integration.webhooks.conftest import MakeHooks
from tests.integration.webhooks.receiver import Receiver, verified_by

Receive = Callable[..., Awaitable[tuple[Receiver, str]]]


async def test_a_failing_job_reports_retry_failure_and_dead_letter(
    make_hooks: MakeHooks, receive: Receive
) -> None:
    hooks = await make_hooks()
    receiver, url = await receive()
    events = ["execution.retrying", "execution.failed", "execution.dead_lettered"]
    endpoint, _ = await hooks.endpoint(url, events)
    task = await hooks.engine.tasks.create(
        hooks.actor, spec(handler="fail", payload={"message": "boom"}, max_retries=1)
    )
    [execution] = await hooks.engine.wait_until_final(task.id)
    assert execution.status is ExecutionStatus.FAILED
    await hooks.settled(endpoint.id, 3)
    retrying = receiver.of_type("execution.retrying")[0].message["data"]
    assert (retrying["status"], retrying["attempts"]) == ("RETRYING", 1)
    assert retrying["nextAttemptAt"] is not None and "boom" in str(retrying["error"])
    for kind in ("execution.failed", "execution.dead_lettered"):
        data = receiver.of_type(kind)[0].message["data"]
        assert (data["id"], data["status"], data["attempts"]) == (execution.id, "FAILED", 2)


async def test_a_workflow_run_reports_its_end(make_hooks: MakeHooks, receive: Receive) -> None:
    hooks = await make_hooks()
    engine = hooks.engine
    workflows = WorkflowService(
        WorkflowRecords(engine.store.db), engine.queue, engine.handlers, engine.events
    )
    workflows.records.progress.outbox = hooks.outbox
    engine.queue.set_final_hook(workflows.on_final)
    receiver, url = await receive()
    workflow = await workflows.create(hooks.actor, "w", "", [StepSpec("a"), StepSpec("b")])
    other = await workflows.create(hooks.actor, "other", "", [StepSpec("a")])
    endpoint, secret = await hooks.endpoint(
        url, ["workflow_run.finished", "execution.completed"], workflow_id=workflow.id
    )
    run = await workflows.run(hooks.actor, workflow.id)
    await workflows.run(hooks.actor, other.id)
    await hooks.settled(endpoint.id, 3)
    [finished] = receiver.of_type("workflow_run.finished")
    assert verified_by(secret, finished)
    data = finished.message["data"]
    assert (data["id"], data["workflowId"], data["status"]) == (run.id, workflow.id, "SUCCEEDED")
    assert len(receiver.of_type("execution.completed")) == 2, "the steps of this workflow only"


async def test_a_ping_reaches_the_endpoint(make_hooks: MakeHooks, receive: Receive) -> None:
    hooks = await make_hooks()
    receiver, url = await receive()
    endpoint, secret = await hooks.endpoint(url, ["task.deleted"])
    ping = await hooks.service.test(hooks.actor, endpoint.id)
    [delivery] = await hooks.settled(endpoint.id, 1)
    assert delivery.id == ping.id and delivery.response_status == 200
    [got] = receiver.got
    assert verified_by(secret, got) and got.webhook_id == ping.message_id
    assert got.message["type"] == "ping" and got.message["data"]["webhookId"] == endpoint.id
    again = await hooks.service.redeliver(hooks.actor, endpoint.id, ping.id)
    assert again.status.value == "PENDING"
    await hooks.settled(endpoint.id, 1)
    assert [r.webhook_id for r in receiver.got] == [ping.message_id] * 2
    await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))
    assert len(await hooks.deliveries(endpoint.id)) == 1, "task.created is not subscribed"
