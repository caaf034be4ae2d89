"""/api/v1/webhooks over the real API and each SQL backend: the secret shown once, the
§10 fields, validation problems, the ADMIN org role for changes, the endpoint limit, the
delivery log with `test` and `redeliver`, rotation and deletion."""

from __future__ import annotations

from typing import Any

import pytest

from taskflowd.config import WebhookSettings
from taskflowd.domain.orgs import Quotas
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.sql import SqlQueue
from taskflowd.services.quotas import QuotaBook
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.service import WebhookService
from tests.integration.api.conftest import Client, MakeClient, Session, assert_problem, sign_up
from tests.integration.api.test_orgs import ORG_HEADER, ORGS

HOOKS = "/api/v1/webhooks"
BODY = {"url": "https://example.com/hook", "events": ["execution.completed", "task.created"]}


@pytest.fixture
async def client(make_client: MakeClient, store: SqlStore, handlers: HandlerRegistry) -> Client:
    quotas = QuotaBook(store, Quotas(0, 0, 0, 0), ttl_s=0)
    return await make_client(
        tasks=TaskService(store, SqlQueue(store.db), handlers, None, quotas),
        webhooks=WebhookService(WebhookRecords(store.db), WebhookSettings(max_endpoints_per_org=2)),
    )


async def call(
    client: Client,
    who: Session,
    method: str,
    path: str,
    body: Any = None,
    expect: int = 200,
    org: str | None = None,
) -> Any:
    headers = who.headers | ({ORG_HEADER: org} if org else {})
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status == expect, await response.text()
    return None if response.status == 204 else await response.json()


async def test_the_secret_is_shown_once(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    created = await call(client, alice, "POST", HOOKS, {**BODY, "description": "ci"}, 201)
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["execution.completed", "task.created"]
    assert (created["status"], created["description"], created["taskId"]) == ("ACTIVE", "ci", None)
    one = f"{HOOKS}/{created['id']}"
    read = await call(client, alice, "GET", one)
    listed = await call(client, alice, "GET", HOOKS)
    assert "secret" not in read and [h["id"] for h in listed["items"]] == [created["id"]]
    assert all("secret" not in h for h in listed["items"])
    assert created["secret"] not in str(read) + str(listed)
    rotated = await call(client, alice, "POST", f"{one}/rotate-secret")
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["previousSecretExpiresAt"] is not None
    assert "secret" not in await call(client, alice, "GET", one)


async def test_change_disable_and_delete(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    created = await call(client, alice, "POST", HOOKS, BODY, 201)
    one = f"{HOOKS}/{created['id']}"
    task = await call(
        client, alice, "POST", "/api/v1/tasks", {"name": "t", "type": "ON_DEMAND"}, 201
    )
    changed = await call(client, alice, "PATCH", one, {"events": ["*"], "taskId": task["id"]})
    assert (changed["events"], changed["taskId"]) == (["*"], task["id"])
    off = await call(client, alice, "PATCH", one, {"enabled": False, "taskId": None})
    assert (off["status"], off["taskId"]) == ("DISABLED", None)
    assert off["disabledReason"]
    problem = await call(client, alice, "POST", f"{one}/test", None, 409)
    assert_problem(problem, 409, "conflict")
    on = await call(client, alice, "PATCH", one, {"enabled": True})
    assert (on["status"], on["disabledReason"]) == ("ACTIVE", None)
    await call(client, alice, "DELETE", one, None, 204)
    await call(client, alice, "GET", one, None, 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "url": "ftp://example.com/x"}, "url"),
        ({**BODY, "url": "https://user:pw@example.com/x"}, "url"),
        ({**BODY, "url": "not a url"}, "url"),
        ({**BODY, "events": []}, "events"),
        ({**BODY, "events": ["job.done"]}, "events[0]"),
        ({**BODY, "taskId": "no-such-task"}, "taskId"),
        ({**BODY, "workflowId": "no-such-workflow"}, "workflowId"),
        ({**BODY, "secret": "whsec_mine"}, "secret"),
    ],
)
async def test_validation(client: Client, body: dict[str, Any], field: str) -> None:
    alice = await sign_up(client, "alice@example.com")
    problem = await call(client, alice, "POST", HOOKS, body, 422)
    assert_problem(problem, 422, "validation_failed")
    assert field in [e["field"] for e in problem["errors"]], problem


async def test_null_url_in_a_change_is_refused(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    created = await call(client, alice, "POST", HOOKS, BODY, 201)
    problem = await call(client, alice, "PATCH", f"{HOOKS}/{created['id']}", {"url": None}, 422)
    assert problem["errors"][0]["field"] == "url"


async def test_changes_need_the_admin_org_role(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    bob = await sign_up(client, "bob@example.com")
    org = await call(client, alice, "POST", ORGS, {"name": "Team"}, 201)
    member = {"email": "bob@example.com", "role": "MEMBER"}
    await call(client, alice, "POST", f"{ORGS}/{org['id']}/members", member, 201)
    created = await call(client, alice, "POST", HOOKS, BODY, 201, org["id"])
    problem = await call(client, bob, "POST", HOOKS, BODY, 403, org["id"])
    assert_problem(problem, 403, "forbidden")
    one = f"{HOOKS}/{created['id']}"
    assert (await call(client, bob, "GET", one, org=org["id"]))["id"] == created["id"]
    await call(client, bob, "DELETE", one, None, 403, org["id"])


async def test_an_org_has_a_limited_number_of_endpoints(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    for _ in range(2):
        await call(client, alice, "POST", HOOKS, BODY, 201)
    problem = await call(client, alice, "POST", HOOKS, BODY, 403)
    assert_problem(problem, 403, "quota_exceeded")


async def test_ping_appears_in_the_delivery_log(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    created = await call(client, alice, "POST", HOOKS, BODY, 201)
    one = f"{HOOKS}/{created['id']}"
    ping = await call(client, alice, "POST", f"{one}/test", None, 202)
    assert (ping["eventType"], ping["status"], ping["attempts"]) == ("ping", "PENDING", 0)
    assert ping["messageId"].startswith("msg_") and ping["webhookId"] == created["id"]
    log = await call(client, alice, "GET", f"{one}/deliveries?limit=1")
    assert [d["id"] for d in log["items"]] == [ping["id"]] and log["nextCursor"] is None
    again = f"{one}/deliveries/{ping['id']}/redeliver"
    assert_problem(await call(client, alice, "POST", again, None, 409), 409, "conflict")
    await call(client, alice, "POST", f"{one}/deliveries/nothing/redeliver", None, 404)
