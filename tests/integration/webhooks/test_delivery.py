"""Webhook delivery against real receivers on each SQL backend: Standard Webhooks
signatures checked by an independent verifier, retries under one `webhook-id`, 410
disabling the endpoint, both signatures during a secret rotation, the SSRF guard, filters,
and job execution going on at full speed while a receiver takes 10 s per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson

from taskflowd.domain.entities import utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskType
from taskflowd.domain.rules import RunSpec
from taskflowd.handlers.ssrf import AddressPolicy
from taskflowd.webhooks.rules import DeliveryStatus, EndpointStatus
from tests.integration.engine.harness import spec
from tests.integration.queue.polling import eventually
from tests.integration.webhooks.conftest import MakeHooks
from tests.integration.webhooks.receiver import Receiver, verified_by

Receive = Callable[..., Awaitable[tuple[Receiver, str]]]


async def test_a_completed_job_is_delivered_signed(make_hooks: MakeHooks, receive: Receive) -> None:
    hooks = await make_hooks()
    receiver, url = await receive()
    endpoint, secret = await hooks.endpoint(url, ["execution.completed"])
    assert secret.startswith("whsec_")
    task = await hooks.engine.tasks.create(hooks.actor, spec(payload={"n": 1}))
    execution = await hooks.engine.wait_until_final(task.id)
    [delivery] = await hooks.settled(endpoint.id, 1)
    [got] = receiver.got
    assert verified_by(secret, got)
    assert not verified_by("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", got)
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - delivery.created_at.timestamp()) < 60
    message = got.message
    assert message["type"] == "execution.completed"
    assert message["data"]["id"] == execution[0].id
    assert message["data"]["taskId"] == task.id
    assert message["data"]["result"] == {"n": 1}
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SUCCEEDED,
        1,
        200,
    )
    assert delivery.message_id == got.webhook_id
    assert delivery.response_body == "answer 0"


async def test_retries_keep_the_webhook_id(make_hooks: MakeHooks, receive: Receive) -> None:
    hooks = await make_hooks()
    receiver, url = await receive(answer=lambda n: 500 if n < 2 else 204)
    endpoint, secret = await hooks.endpoint(url, ["task.created"])
    await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))
    [delivery] = await hooks.settled(endpoint.id, 1)
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SUCCEEDED,
        3,
        204,
    )
    assert len({r.webhook_id for r in receiver.got}) == 1
    assert len(receiver.got) == 3
    assert hooks.counts.attempts == ["failed", "failed", "succeeded"]
    assert all(verified_by(secret, r) for r in receiver.got)
    found = await hooks.service.get(hooks.actor, endpoint.id)
    assert found.failing_since is None, "a success ends the failure streak"


async def test_410_gone_disables_the_endpoint(make_hooks: MakeHooks, receive: Receive) -> None:
    hooks = await make_hooks()
    receiver, url = await receive(answer=lambda n: 410)
    endpoint, _ = await hooks.endpoint(url, ["*"])
    await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))
    [delivery] = await hooks.settled(endpoint.id, 1)
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.FAILED,
        1,
        410,
    )
    found = await hooks.service.get(hooks.actor, endpoint.id)
    assert found.status is EndpointStatus.DISABLED
    assert "410" in (found.disabled_reason or "")
    await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))
    assert len(await hooks.deliveries(endpoint.id)) == 1, "a disabled endpoint gets nothing"
    assert len(receiver.got) == 1
    assert (hooks.counts.attempts, hooks.counts.disabled) == (["gone"], ["gone"])
    assert await _disabled_events(hooks, endpoint.id) == [
        ("system", "the receiver answered 410 Gone")
    ]


async def _disabled_events(hooks: Any, endpoint_id: str) -> list[tuple[str, str]]:
    """(actor type, reason) of the audit trail's `webhook.disabled` events of an endpoint."""
    rows = await hooks.engine.store.db.fetch(
        "SELECT actor_type, changes FROM audit_events WHERE action = 'webhook.disabled' "
        "AND target_id = $1",
        endpoint_id,
    )
    return [(r["actor_type"], orjson.loads(r["changes"])["disabledReason"][1]) for r in rows]


async def test_rotation_signs_with_old_and_new_secret(
    make_hooks: MakeHooks, receive: Receive
) -> None:
    hooks = await make_hooks()
    receiver, url = await receive()
    endpoint, old = await hooks.endpoint(url, ["task.created"])
    rotated, new = await hooks.service.rotate_secret(hooks.actor, endpoint.id)
    assert new != old and new.startswith("whsec_")
    assert rotated.previous_secret_until is not None
    await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))
    await hooks.settled(endpoint.id, 1)
    [got] = receiver.got
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert verified_by(new, got) and verified_by(old, got)
    assert all(s.startswith("v1,") for s in got.headers["webhook-signature"].split(" "))


async def test_private_addresses_are_refused_by_default(
    make_hooks: MakeHooks, receive: Receive
) -> None:
    hooks = await make_hooks(policy=AddressPolicy(), retry_schedule_s=(3600.0,))
    receiver, url = await receive()
    endpoint, _ = await hooks.endpoint(url.replace("127.0.0.1", "localhost"), ["*"])
    await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))

    async def refused() -> bool:
        found = await hooks.deliveries(endpoint.id)
        return bool(found) and found[0].attempts == 1 and found[0].error is not None

    await eventually(refused, "the delivery to be refused")
    [delivery] = await hooks.deliveries(endpoint.id)
    assert delivery.error is not None and "refused" in delivery.error
    assert delivery.response_status is None
    assert delivery.status is DeliveryStatus.PENDING and delivery.next_attempt_at is not None
    assert receiver.got == []


async def test_filters_by_task_and_event(make_hooks: MakeHooks, receive: Receive) -> None:
    hooks = await make_hooks()
    receiver, url = await receive()
    watched = await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))
    other = await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))
    endpoint, _ = await hooks.endpoint(url, ["task.updated", "task.deleted"], task_id=watched.id)
    for task in (watched, other):
        await hooks.engine.tasks.pause(hooks.actor, task.id)
        await hooks.engine.tasks.delete(hooks.actor, task.id)
    found = await hooks.settled(endpoint.id, 2)
    assert sorted(d.event_type for d in found) == ["task.deleted", "task.updated"]
    assert {r.message["data"]["id"] for r in receiver.got} == {watched.id}
    assert receiver.of_type("task.updated")[0].message["data"]["status"] == "PAUSED"


async def test_a_slow_receiver_does_not_slow_jobs(make_hooks: MakeHooks, receive: Receive) -> None:
    hooks = await make_hooks()
    receiver, url = await receive(answer=lambda n: -10.0)
    endpoint, _ = await hooks.endpoint(url, ["*"])
    tasks = [
        await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))
        for _ in range(3)
    ]
    runs = [
        e for t in tasks for e in await hooks.engine.tasks.run(hooks.actor, t.id, [RunSpec()] * 10)
    ]
    for run in runs:
        await hooks.engine.wait_for_status(run.id, ExecutionStatus.COMPLETED)

    async def sending() -> bool:
        return receiver.in_flight == 2

    await eventually(sending, "the sender to reach its per-endpoint bound")
    assert receiver.most_in_flight == 2, "no more requests at once than the bound"
    assert len(receiver.got) == 2, "every job finished while the first two requests hang"
    found = await hooks.deliveries(endpoint.id)
    assert len(found) == 3 + len(runs)


async def test_an_endpoint_failing_for_days_is_disabled(
    make_hooks: MakeHooks, receive: Receive
) -> None:
    hooks = await make_hooks(retry_schedule_s=(3600.0,))
    receiver, url = await receive(answer=lambda n: 503)
    endpoint, _ = await hooks.endpoint(url, ["task.created"])
    await hooks.engine.store.db.execute(
        "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2",
        utcnow() - timedelta(days=5, minutes=1),
        endpoint.id,
    )
    await hooks.engine.tasks.create(hooks.actor, spec(type=TaskType.ON_DEMAND))

    async def disabled() -> bool:
        found = await hooks.service.get(hooks.actor, endpoint.id)
        return found.status is EndpointStatus.DISABLED

    await eventually(disabled, "the endpoint to be disabled")
    found = await hooks.service.get(hooks.actor, endpoint.id)
    assert found.disabled_reason == "every delivery failed for too long"
    assert hooks.counts.disabled == ["failing"] and len(receiver.got) == 1
    reason = "every delivery failed for too long"
    assert await _disabled_events(hooks, endpoint.id) == [("system", reason)]
    [delivery] = await hooks.deliveries(endpoint.id)
    assert (delivery.response_status, delivery.status) == (503, DeliveryStatus.PENDING)
