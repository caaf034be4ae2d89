"""Isolation walked over the whole OpenAPI document: every operation that names a record
answers 404 when the record belongs to another org, and every write is a 403 for a
VIEWER of the org that holds it. A new operation fails this test until it is listed."""

from __future__ import annotations

from typing import Any

from taskflowd.domain.entities import utcnow
from taskflowd.store import SqlStore
from tests.integration.api.conftest import Client, Session, bearer, sign_up
from tests.integration.api.test_orgs import (
    ORG_HEADER,
    ORGS,
    TASKS,
    WORKFLOW,
    WORKFLOWS,
    call,
    client,
)
from tests.integration.store.factories import make_dead_letter

__all__ = ["client"]

# A valid body for each operation that takes one, so validation cannot answer first.
BODIES: dict[str, Any] = {
    "update_task": {"name": "renamed"},
    "run_task": {},
    "run_task_many": {"items": [{}]},
    "update_org": {"name": "renamed"},
    "invite_member": {"email": "carol@example.com"},
    "update_member": {"role": "VIEWER"},
    "create_task": {"name": "t", "type": "ON_DEMAND"},
    "create_tasks": {"items": [{"name": "t", "type": "ON_DEMAND"}]},
    "create_workflow": WORKFLOW,
    "update_workflow": {"name": "renamed"},
    "create_webhook": {"url": "https://example.com/hook", "events": ["*"]},
    "update_webhook": {"description": "renamed"},
}
WRITES = {"POST", "PATCH", "DELETE"}
WEBHOOKS = "/api/v1/webhooks"


SITE = ("/api/v1/users", "/api/v1/auth")
"""Site-wide resources (accounts), not data of an org."""


async def operations(client: Client) -> list[tuple[str, str, str]]:
    """(method, path, operationId) of every authenticated operation on org data."""
    document = await (await client.get("/api/openapi.json")).json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or not operation.get("security"):
                continue
            if path.startswith(SITE) or not path.startswith("/api/v1/"):
                continue
            found.append((method.upper(), path, operation["operationId"]))
    return found


class Victim:
    """Alice's org with one of each record, and Carol, a VIEWER there."""

    def __init__(self, alice: Session, org: dict[str, Any], ids: dict[str, str]) -> None:
        self.alice = alice
        self.org = org
        self.ids = ids

    def fill(self, path: str) -> str:
        """`path` with the ids of Alice's records."""
        kind = path.split("/")[3]
        filled = path.replace("{id}", self.ids[kind]).replace("{userId}", self.ids["user"])
        return filled.replace("{did}", self.ids["delivery"])


async def victim(client: Client, store: SqlStore) -> Victim:
    alice = await sign_up(client, "alice@example.com")
    org = await call(client, alice, "POST", ORGS, {"name": "Alice's Team"}, 201)
    task = await call(client, alice, "POST", TASKS, BODIES["create_task"], 201, org["id"])
    run = await call(client, alice, "POST", f"{TASKS}/{task['id']}/run", None, 202, org["id"])
    execution = await store.get_execution(run["id"])
    assert execution is not None
    dead = make_dead_letter(execution, created_at=utcnow())
    await store.db.execute(
        "INSERT INTO dead_letter_jobs (id, execution_id, task_id, job_id, owner_id, payload, "
        "error, attempts, created_at, org_id) VALUES ($1,$2,$3,$4,$5,'{}','{}',1,$6,$7)",
        dead.id,
        dead.execution_id,
        dead.task_id,
        dead.job_id,
        dead.owner_id,
        dead.created_at,
        org["id"],
    )
    key = await call(client, alice, "POST", "/api/v1/api-keys", {"name": "k"}, 201, org["id"])
    workflow = await call(client, alice, "POST", WORKFLOWS, WORKFLOW, 201, org["id"])
    one = f"{WORKFLOWS}/{workflow['id']}"
    workflow_run = await call(client, alice, "POST", f"{one}/run", None, 202, org["id"])
    hook = await call(client, alice, "POST", WEBHOOKS, BODIES["create_webhook"], 201, org["id"])
    ping = await call(client, alice, "POST", f"{WEBHOOKS}/{hook['id']}/test", None, 202, org["id"])
    ids = {
        "tasks": task["id"],
        "executions": run["id"],
        "dead-letter": dead.id,
        "api-keys": key["id"],
        "workflows": workflow["id"],
        "workflow-runs": workflow_run["id"],
        "webhooks": hook["id"],
        "delivery": ping["id"],
        "orgs": org["id"],
        "user": alice.user["id"],
    }
    return Victim(alice, org, ids)


async def send(
    client: Client, who: Session, method: str, path: str, op_id: str, org: str | None = None
) -> int:
    headers = bearer(who.access) | ({ORG_HEADER: org} if org else {})
    response = await client.request(method, path, json=BODIES.get(op_id), headers=headers)
    return response.status


async def test_every_record_of_another_org_is_404(client: Client, store: SqlStore) -> None:
    target = await victim(client, store)
    bob = await sign_up(client, "bob@example.com")
    await sign_up(client, "carol@example.com")
    walked = []
    for method, path, op_id in await operations(client):
        if "{" not in path:
            continue
        status = await send(client, bob, method, target.fill(path), op_id)
        assert status == 404, (method, path, status)
        walked.append(op_id)
    assert len(walked) >= 20, walked
    one = f"{TASKS}/{target.ids['tasks']}"
    task = await call(client, target.alice, "GET", one, org=target.org["id"])
    assert (task["name"], task["status"]) == ("t", "ACTIVE"), "nothing of Alice's changed"
    members = await call(client, target.alice, "GET", f"{ORGS}/{target.org['id']}/members")
    assert [m["email"] for m in members["items"]] == ["alice@example.com"]
    assert {"get_workflow", "run_workflow", "cancel_workflow_run"} <= set(walked)
    assert {"get_webhook", "rotate_webhook_secret", "redeliver_webhook_delivery"} <= set(walked)
    one = f"{WEBHOOKS}/{target.ids['webhooks']}"
    hook = await call(client, target.alice, "GET", one, org=target.org["id"])
    assert hook["description"] == "", "nothing of Alice's webhook changed"
    one = f"{WORKFLOWS}/{target.ids['workflows']}"
    workflow = await call(client, target.alice, "GET", one, org=target.org["id"])
    assert (workflow["name"], workflow["status"]) == ("w", "ACTIVE")
    run = f"/api/v1/workflow-runs/{target.ids['workflow-runs']}"
    assert (await call(client, target.alice, "GET", run, org=target.org["id"]))["status"] == (
        "RUNNING"
    )


async def test_a_viewer_may_read_but_not_write(client: Client, store: SqlStore) -> None:
    target = await victim(client, store)
    carol = await sign_up(client, "carol@example.com")
    invite = {"email": "carol@example.com", "role": "VIEWER"}
    await call(client, target.alice, "POST", f"{ORGS}/{target.org['id']}/members", invite, 201)
    org = target.org["id"]
    checked = []
    for method, path, op_id in await operations(client):
        kinds = ("tasks", "executions", "dead-letter", "orgs", "workflows", "workflow-runs")
        kinds = (*kinds, "webhooks")
        if path.split("/")[3] not in kinds:
            continue
        if path == ORGS and method == "POST":
            continue  # anyone may create an org of their own
        status = await send(client, carol, method, target.fill(path), op_id, org)
        assert status == (403 if method in WRITES else 200), (method, path, status)
        checked.append(op_id)
    assert {"create_task", "delete_task", "cancel_execution", "delete_org"} <= set(checked)
    assert {"create_workflow", "delete_workflow", "run_workflow", "retry_workflow_run"} <= set(
        checked
    )
    assert {"create_webhook", "ping_webhook", "list_webhook_deliveries"} <= set(checked)
