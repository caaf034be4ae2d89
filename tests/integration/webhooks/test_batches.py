"""Deliveries claimed and recorded in batches, on each SQL backend: one batch records
each attempt as its own outcome says (a success, a retry, a 410, a claim another node
took meanwhile), and two senders sharing the database never send one delivery twice."""

from __future__ import annotations

import uuid
from datetime import timedelta

from taskflowd.domain.entities import User, utcnow
from taskflowd.domain.enums import TaskType
from taskflowd.webhooks.leases import Outcome, Settled
from taskflowd.webhooks.model import Attempt, Claimed, Endpoint
from taskflowd.webhooks.outbox import message_id
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.rules import (
    FAILING_REASON,
    GONE_REASON,
    DeliveryStatus,
    EndpointStatus,
)
from taskflowd.webhooks.service import WebhookService
from tests.integration.engine.harness import Engine, spec
from tests.integration.webhooks.conftest import FAST, MakeHooks, Receive

UNUSED_URL = "http://127.0.0.1:9/hook"


async def _queued(records: WebhookRecords, endpoint: Endpoint) -> str:
    delivery = await records.add_delivery(
        uuid.uuid4().hex, endpoint, message_id(), '{"type": "ping"}', utcnow()
    )
    assert delivery is not None
    return delivery.id


def _answered(claimed: Claimed, status: int, settled: Settled) -> Outcome:
    return Outcome(claimed, Attempt(status, f"answer {status}", None, 3, "x"), settled)


async def test_one_batch_records_each_outcome_and_audits_each_disabling(
    engine: Engine, admin: User
) -> None:
    db = engine.store.db
    records = WebhookRecords(db)
    service = WebhookService(records, FAST)
    endpoints = [
        (await service.create(admin, UNUSED_URL, ["*"], name))[0]
        for name in ("succeeds", "fails for days", "gone")
    ]
    ok, failing, gone = endpoints
    queued = [await _queued(records, e) for e in (ok, failing, gone, ok)]
    now = utcnow()
    for endpoint in (ok, failing):
        await db.execute(
            "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2",
            now - timedelta(days=6),
            endpoint.id,
        )
    claimed = {c.id: c for c in await records.claim("node-a", {}, 10, 4, 60.0, now)}
    assert set(claimed) == set(queued)
    # Another node took the last one over meanwhile: its fence moved on.
    await db.execute("UPDATE webhook_deliveries SET fence = fence + 1 WHERE id = $1", queued[3])
    retry_at = now + timedelta(minutes=1)
    succeeded = Settled(DeliveryStatus.SUCCEEDED, None, disabled=False)
    batch = [
        _answered(claimed[queued[0]], 204, succeeded),
        _answered(claimed[queued[1]], 503, Settled(DeliveryStatus.PENDING, retry_at, False)),
        _answered(claimed[queued[2]], 410, Settled(DeliveryStatus.FAILED, None, disabled=True)),
        _answered(claimed[queued[3]], 204, succeeded),
    ]

    recorded = await records.finish(batch, now, now - timedelta(days=5))

    assert recorded == [
        succeeded,
        Settled(DeliveryStatus.PENDING, retry_at, disabled=True),
        Settled(DeliveryStatus.FAILED, None, disabled=True),
        None,
    ]
    found = [
        await records.get_delivery(d, c.claimed.endpoint_id)
        for d, c in zip(queued, batch, strict=True)
    ]
    assert [(d.status, d.response_status) for d in found if d is not None] == [
        (DeliveryStatus.SUCCEEDED, 204),
        (DeliveryStatus.PENDING, 503),
        (DeliveryStatus.FAILED, 410),
        (DeliveryStatus.SENDING, None),
    ]
    assert found[1] is not None and found[1].next_attempt_at == retry_at
    after = {e.id: await records.get(e.id, None) for e in endpoints}
    assert [(e.status, e.disabled_reason) for e in after.values() if e is not None] == [
        (EndpointStatus.ACTIVE, None),
        (EndpointStatus.DISABLED, FAILING_REASON),
        (EndpointStatus.DISABLED, GONE_REASON),
    ]
    assert after[ok.id] is not None and after[ok.id].failing_since is None
    rows = await db.fetch(
        "SELECT actor_type, target_id FROM audit_events WHERE action = 'webhook.disabled'"
    )
    assert sorted((r["actor_type"], r["target_id"]) for r in rows) == sorted(
        [("system", failing.id), ("system", gone.id)]
    )


async def test_two_senders_never_send_a_delivery_twice(
    make_hooks: MakeHooks, receive: Receive
) -> None:
    first = await make_hooks()
    second = await make_hooks()
    assert first.engine.node_id != second.engine.node_id
    receivers = [await receive() for _ in range(3)]
    endpoints = [(await first.endpoint(url, ["task.created"]))[0] for _, url in receivers]
    tasks = 40
    for _ in range(tasks):
        await first.engine.tasks.create(first.actor, spec(type=TaskType.ON_DEMAND))
    for endpoint in endpoints:
        found = await first.settled(endpoint.id, tasks)
        assert {(d.status, d.attempts) for d in found} == {(DeliveryStatus.SUCCEEDED, 1)}
    for receiver, _ in receivers:
        assert len(receiver.got) == tasks
        assert len({r.webhook_id for r in receiver.got}) == tasks
    attempts = first.counts.attempts + second.counts.attempts
    assert attempts == ["succeeded"] * len(endpoints) * tasks


async def test_a_claim_skips_endpoints_at_their_bound_and_disabled_ones(
    engine: Engine, admin: User
) -> None:
    records = WebhookRecords(engine.store.db)
    service = WebhookService(records, FAST)
    busy, idle, off = [
        (await service.create(admin, UNUSED_URL, ["*"], name))[0]
        for name in ("busy", "idle", "disabled")
    ]
    backlog = [await _queued(records, busy) for _ in range(6)]
    waiting = await _queued(records, idle)
    await _queued(records, off)
    await engine.store.db.execute(
        "UPDATE webhook_endpoints SET status = 'DISABLED' WHERE id = $1", off.id
    )
    now = utcnow()

    first = await records.claim("node-a", {busy.id: 1}, 10, 2, 60.0, now)
    assert sorted(c.id for c in first) == sorted([backlog[0], waiting])
    again = await records.claim("node-a", {busy.id: 2, idle.id: 1}, 10, 2, 60.0, now)
    assert again == [], "the busy endpoint is at its bound and nothing else is due"
    later = await records.claim("node-b", {}, 3, 2, 60.0, now)
    assert sorted(c.id for c in later) == sorted(backlog[1:3]), "oldest first, two at most"
