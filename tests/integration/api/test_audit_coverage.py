"""Every state-changing operation of the OpenAPI document writes exactly one audit event,
carrying the request's id; a refused one writes none. A new write operation fails this
test until the walk below calls it."""

from __future__ import annotations

import uuid
from typing import Any

from taskflowd.domain.entities import utcnow
from taskflowd.store import SqlStore
from tests.integration.api.conftest import PASSWORD, Client, Session, bearer, sign_in_admin, sign_up
from tests.integration.api.test_audit_api import client
from tests.integration.store.factories import make_dead_letter

__all__ = ["client"]
WRITES = {"post", "patch", "put", "delete"}


async def write_operations(client: Client) -> set[str]:
    document = await (await client.get("/api/openapi.json")).json()
    return {
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in WRITES
    }


class Walk:
    """Calls operations, each with a request id of its own, and checks their events."""

    def __init__(self, client: Client, admin: Session) -> None:
        self.client = client
        self.admin = admin
        self.called: dict[str, str] = {}

    async def call(
        self,
        op_id: str,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        org: str | None = None,
        expect: int = 200,
    ) -> Any:
        request_id = f"walk-{op_id}-{uuid.uuid4().hex[:8]}"
        headers = {"X-Request-Id": request_id}
        if token:
            headers |= bearer(token)
        if org:
            headers["X-Taskflow-Org"] = org
        response = await self.client.request(method, path, json=body, headers=headers)
        found = await response.json() if response.status != 204 else None
        assert response.status == expect, (op_id, response.status, found)
        self.called[op_id] = request_id
        return found

    async def check(self) -> dict[str, list[str]]:
        """Actions recorded per operation called."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": "500"} | ({"cursor": cursor} if cursor else {})
            response = await self.client.get(
                "/api/v1/audit", params=query, headers=self.admin.headers
            )
            page = await response.json()
            events += page["items"]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        by_request: dict[str, list[str]] = {}
        for event in events:
            by_request.setdefault(event["requestId"], []).append(event["action"])
        return {op: by_request.get(rid, []) for op, rid in self.called.items()}


async def dead_letter(store: SqlStore, execution_id: str, org_id: str) -> str:
    execution = await store.get_execution(execution_id)
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
        org_id,
    )
    return dead.id


async def test_every_write_operation_is_audited(
    client: Client, store: SqlStore, hasher: Any
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    alice = await sign_up(client, "alice@example.com")
    walk = Walk(client, admin)
    a = alice.access

    bob = {"email": "bob@example.com", "password": PASSWORD, "firstName": "B", "lastName": "B"}
    await walk.call("register", "POST", "/api/v1/auth/register", bob, expect=201)
    login = {"email": "bob@example.com", "password": PASSWORD}
    tokens = await walk.call("login", "POST", "/api/v1/auth/login", login)
    tokens = await walk.call(
        "refresh", "POST", "/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}
    )
    password = {"currentPassword": PASSWORD, "newPassword": "a brand new horse battery"}
    await walk.call(
        "change_password",
        "POST",
        "/api/v1/auth/password",
        password,
        tokens["accessToken"],
        expect=204,
    )
    carl = dict(bob, email="carl@example.com")
    carl = await walk.call("create_user", "POST", "/api/v1/users", carl, admin.access, expect=201)
    user = f"/api/v1/users/{carl['id']}"
    await walk.call("update_user", "PATCH", user, {"role": "ADMIN"}, admin.access)

    org = await walk.call("create_org", "POST", "/api/v1/orgs", {"name": "Team"}, a, expect=201)
    o = org["id"]
    await walk.call("update_org", "PATCH", f"/api/v1/orgs/{o}", {"name": "Team 2"}, a)
    members = f"/api/v1/orgs/{o}/members"
    invite = {"email": "bob@example.com", "role": "MEMBER"}
    bob_member = await walk.call("invite_member", "POST", members, invite, a, expect=201)
    one = f"{members}/{bob_member['userId']}"
    await walk.call("update_member", "PATCH", one, {"role": "VIEWER"}, a)
    await walk.call("remove_member", "DELETE", one, None, a, expect=204)
    key = await walk.call("create_api_key", "POST", "/api/v1/api-keys", {"name": "k"}, a, o, 201)
    await walk.call("revoke_api_key", "DELETE", f"/api/v1/api-keys/{key['id']}", None, a, o, 204)

    body = {"name": "t", "type": "ON_DEMAND"}
    task = await walk.call("create_task", "POST", "/api/v1/tasks", body, a, o, 201)
    batch = {"items": [body, body]}
    await walk.call("create_tasks", "POST", "/api/v1/tasks/batch", batch, a, o, 201)
    t = f"/api/v1/tasks/{task['id']}"
    await walk.call("update_task", "PATCH", t, {"name": "t2"}, a, o)
    await walk.call("pause_task", "POST", f"{t}/pause", None, a, o)
    await walk.call("resume_task", "POST", f"{t}/resume", None, a, o)
    later = {"delayMs": 3_600_000}
    run = await walk.call("run_task", "POST", f"{t}/run", later, a, o, 202)
    runs = await walk.call("run_task_many", "POST", f"{t}/runs", {"items": [later]}, a, o, 202)
    cancel = f"/api/v1/executions/{run['id']}/cancel"
    await walk.call("cancel_execution", "POST", cancel, None, a, o)
    retried = await dead_letter(store, runs["items"][0]["id"], o)
    await walk.call(
        "retry_dead_letter", "POST", f"/api/v1/dead-letter/{retried}/retry", None, a, o, 202
    )
    dropped = await dead_letter(store, run["id"], o)
    await walk.call(
        "delete_dead_letter", "DELETE", f"/api/v1/dead-letter/{dropped}", None, a, o, 204
    )

    flow = {"name": "w", "steps": [{"key": "a"}]}
    workflow = await walk.call("create_workflow", "POST", "/api/v1/workflows", flow, a, o, 201)
    w = f"/api/v1/workflows/{workflow['id']}"
    await walk.call("update_workflow", "PATCH", w, {"name": "w2"}, a, o)
    await walk.call("pause_workflow", "POST", f"{w}/pause", None, a, o)
    await walk.call("resume_workflow", "POST", f"{w}/resume", None, a, o)
    started = await walk.call("run_workflow", "POST", f"{w}/run", None, a, o, 202)
    wr = f"/api/v1/workflow-runs/{started['id']}"
    await walk.call("retry_workflow_run", "POST", f"{wr}/retry", None, a, o, 409)
    await walk.call("cancel_workflow_run", "POST", f"{wr}/cancel", None, a, o)
    await walk.call("delete_workflow", "DELETE", w, None, a, o, 204)

    hook = {"url": "https://example.com/hook", "events": ["*"]}
    webhook = await walk.call("create_webhook", "POST", "/api/v1/webhooks", hook, a, o, 201)
    h = f"/api/v1/webhooks/{webhook['id']}"
    await walk.call("update_webhook", "PATCH", h, {"description": "d"}, a, o)
    await walk.call("rotate_webhook_secret", "POST", f"{h}/rotate-secret", None, a, o)
    ping = await walk.call("ping_webhook", "POST", f"{h}/test", None, a, o, 202)
    await store.db.execute(
        "UPDATE webhook_deliveries SET status = 'SUCCEEDED' WHERE id = $1", ping["id"]
    )
    again = f"{h}/deliveries/{ping['id']}/redeliver"
    await walk.call("redeliver_webhook_delivery", "POST", again, None, a, o, 202)
    await walk.call("delete_webhook", "DELETE", h, None, a, o, 204)
    await walk.call("delete_task", "DELETE", t, None, a, o, 204)

    await walk.call(
        "logout",
        "POST",
        "/api/v1/auth/logout",
        {"refreshToken": tokens["refreshToken"]},
        expect=204,
    )
    await walk.call("delete_user", "DELETE", user, None, admin.access, expect=204)
    await walk.call("delete_org", "DELETE", f"/api/v1/orgs/{o}", None, a, expect=204)

    recorded = await walk.check()
    refused = {"retry_workflow_run"}  # a RUNNING run cannot be retried: nothing changed
    assert {op for op, actions in recorded.items() if len(actions) != 1} == refused, recorded
    assert recorded["retry_workflow_run"] == []
    assert recorded["update_user"] == ["user.role_changed"]
    assert recorded["create_tasks"] == ["task.batch"]
    assert recorded["rotate_webhook_secret"] == ["webhook.secret_rotated"]
    assert set(walk.called) == await write_operations(client), "a write operation is not walked"
