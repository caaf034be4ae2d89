"""The client reads the audit trail: filtered pages and the NDJSON export."""

from __future__ import annotations

from taskflowd.client import AsyncClient, NewTask
from taskflowd.domain.enums import TaskType


async def test_the_trail_through_the_client(admin: AsyncClient) -> None:
    task = await admin.tasks.create(NewTask(name="audited", type=TaskType.ON_DEMAND))
    await admin.tasks.pause(task.id)
    page = await admin.audit.list(target_id=task.id)
    assert [e.action for e in page.items] == ["task.paused", "task.created"]
    paused = page.items[0]
    assert paused.actor.type == "apiKey" and paused.changes == {"status": ["ACTIVE", "PAUSED"]}
    assert paused.prev_hash == page.items[1].hash
    exported = await admin.audit.export(target_type="task", target_id=task.id)
    assert [e.id for e in exported] == [e.id for e in reversed(page.items)]
    since = await admin.audit.list(target_id=task.id, action="task.created", since=paused.at)
    assert since.items == ()
