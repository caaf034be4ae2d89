"""The client's webhook calls against a real node (the daemon's composition root, whose
sender runs with the default address policy) on each SQL backend."""

from __future__ import annotations

import pytest

from taskflowd.client import AsyncClient
from taskflowd.client.errors import ApiError
from taskflowd.client.webhooks import Delivery
from tests.integration.queue.polling import eventually

# Loopback: the node's sender refuses it (private addresses are not allowed by default),
# so nothing leaves the machine and the refusal shows in the delivery log.
URL = "http://127.0.0.1:9/hook"


async def test_create_test_rotate_and_delete(admin: AsyncClient) -> None:
    created = await admin.webhooks.create(URL, ["execution.completed"], description="ops")
    assert created.secret.startswith("whsec_") and created.status == "ACTIVE"
    assert (await admin.webhooks.get(created.id)).events == ("execution.completed",)
    assert [w.id async for w in admin.webhooks.iter()] == [created.id]
    changed = await admin.webhooks.update(created.id, events=["*"], description="all")
    assert (changed.events, changed.description) == (("*",), "all")
    ping = await admin.webhooks.test(created.id)
    assert (ping.event_type, ping.status) == ("ping", "PENDING")

    async def refused() -> Delivery | None:
        found = (await admin.webhooks.deliveries(created.id)).items
        tried = found and found[0].attempts >= 1 and found[0].status != "SENDING"
        return found[0] if tried else None

    attempt = await eventually(refused, "the sender to try the ping")
    assert attempt.id == ping.id and attempt.message_id == ping.message_id
    assert attempt.error is not None and "refused" in attempt.error
    assert attempt.response_status is None
    assert [d.id async for d in admin.webhooks.iter_deliveries(created.id)] == [ping.id]
    with pytest.raises(ApiError) as queued:
        await admin.webhooks.redeliver(created.id, ping.id)
    assert queued.value.status == 409
    rotated = await admin.webhooks.rotate_secret(created.id)
    assert rotated.secret != created.secret and rotated.previous_secret_expires_at is not None
    off = await admin.webhooks.update(created.id, enabled=False)
    assert off.status == "DISABLED"
    await admin.webhooks.delete(created.id)
    with pytest.raises(ApiError):
        await admin.webhooks.get(created.id)
