"""The webhook outbox of every queue (SQL and Redis, over each SQL backend): an applied
outcome writes its messages in the transaction that applies it, one per matching
endpoint; a stale outcome, or one nobody subscribes to, writes none."""

from __future__ import annotations

import orjson
import pytest

from taskflowd.domain.entities import Task, utcnow
from taskflowd.queue.base import JobQueue, OutcomeKind
from taskflowd.store import SqlStore
from taskflowd.webhooks.model import Endpoint
from taskflowd.webhooks.outbox import WebhookOutbox
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.rules import EndpointStatus
from tests.integration.queue.factories import due_job, failure, outcome
from tests.integration.queue.helpers import claim_one


async def subscribe(store: SqlStore, task: Task, events: tuple[str, ...]) -> Endpoint:
    now = utcnow()
    endpoint = Endpoint(
        id=f"hook-{len(events)}-{events[0]}",
        org_id=task.org_id,
        url="https://example.com/hook",
        description="",
        events=events,
        task_id=None,
        workflow_id=None,
        status=EndpointStatus.ACTIVE,
        disabled_reason=None,
        failing_since=None,
        previous_secret_until=None,
        created_by=task.created_by,
        created_at=now,
        updated_at=now,
    )
    return await WebhookRecords(store.db).create(endpoint, "whsec_c2VjcmV0")


async def messages(store: SqlStore) -> list[tuple[str, str, dict[str, object]]]:
    found = await store.db.fetch(
        "SELECT endpoint_id, event_type, body FROM webhook_deliveries ORDER BY event_type"
    )
    return [(r["endpoint_id"], r["event_type"], orjson.loads(r["body"])) for r in found]


@pytest.mark.parametrize(
    ("kind", "events"),
    [
        (OutcomeKind.COMPLETED, ["execution.completed"]),
        (OutcomeKind.RETRY, ["execution.retrying"]),
        (OutcomeKind.DEAD, ["execution.dead_lettered", "execution.failed"]),
    ],
)
async def test_an_outcome_writes_its_messages(
    queue: JobQueue, store: SqlStore, task: Task, kind: OutcomeKind, events: list[str]
) -> None:
    queue.set_outbox(WebhookOutbox(store.db))
    everything = await subscribe(store, task, ("*",))
    await subscribe(store, task, ("task.created",))
    job = due_job(task)
    await queue.add([job])
    claimed = await claim_one(queue)
    error = None if kind is OutcomeKind.COMPLETED else failure()
    run_at = claimed.run_at if kind is OutcomeKind.RETRY else None
    stale = outcome(claimed, kind, fence=claimed.fence - 1, error=error, run_at=run_at)
    assert await queue.settle([stale]) == set()
    assert await messages(store) == []
    await queue.settle([outcome(claimed, kind, result={"ok": 1}, error=error, run_at=run_at)])
    found = await messages(store)
    assert [(e, t) for e, t, _ in found] == [(everything.id, t) for t in events]
    for _, event_type, body in found:
        assert body["type"] == event_type
        data = body["data"]
        assert isinstance(data, dict) and (data["id"], data["taskId"]) == (job.id, task.id)
