"""Organizations over the real API and each SQL backend: personal orgs, members and
roles, acting in an org (header, API keys, default org), isolation (404 across orgs, 403
for a VIEWER's writes), idempotency keys per org, and the principal cache forgetting a
changed membership."""

from __future__ import annotations

from typing import Any

import pytest

from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.principals import PRINCIPAL_EVENT
from taskflowd.config import WebhookSettings
from taskflowd.domain.orgs import Quotas
from taskflowd.events import EventBus
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.sql import SqlQueue
from taskflowd.services.quotas import QuotaBook
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.service import WebhookService
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.integration.api.conftest import (
    Client,
    MakeClient,
    Session,
    assert_problem,
    bearer,
    sign_in_admin,
    sign_up,
)

ORGS = "/api/v1/orgs"
TASKS = "/api/v1/tasks"
WORKFLOWS = "/api/v1/workflows"
WORKFLOW = {"name": "w", "steps": [{"key": "a"}]}
WORKFLOW_QUOTA = {"quotas": {"maxWorkflows": 1, "maxTasks": 1}}
ORG_HEADER = "X-Taskflow-Org"


@pytest.fixture
async def client(make_client: MakeClient, store: SqlStore, handlers: HandlerRegistry) -> Client:
    quotas = QuotaBook(store, Quotas(0, 0, 0, 0), ttl_s=0)
    queue = SqlQueue(store.db)
    return await make_client(
        tasks=TaskService(store, queue, handlers, None, quotas),
        workflows=WorkflowService(WorkflowRecords(store.db), queue, handlers, None, quotas),
        webhooks=WebhookService(WebhookRecords(store.db), WebhookSettings()),
    )


async def call(
    client: Client,
    who: Session | str,
    method: str,
    path: str,
    body: Any = None,
    expect: int = 200,
    org: str | None = None,
) -> Any:
    token = who if isinstance(who, str) else who.access
    headers = bearer(token) | ({ORG_HEADER: org} if org is not None else {})
    response = await client.request(method, path, json=body, headers=headers)
    payload = await response.json() if response.status != 204 else None
    assert response.status == expect, payload
    return payload


async def new_task(client: Client, who: Session | str, org: str | None = None) -> Any:
    body = {"name": "t", "type": "ON_DEMAND"}
    return await call(client, who, "POST", TASKS, body, 201, org)


async def test_registration_makes_a_personal_org(client: Client) -> None:
    carl = await sign_up(client, "carl@example.com")
    assert set(carl.user) >= {"id", "email", "role"} and "defaultOrgId" not in carl.user
    listed = await call(client, carl, "GET", ORGS)
    (org,) = listed["items"]
    assert (org["name"], org["slug"], org["role"]) == ("Ada's Team", "ada-s-team", "OWNER")
    other = await sign_up(client, "other@example.com")
    (second,) = (await call(client, other, "GET", ORGS))["items"]
    assert second["slug"].startswith("ada-s-team-") and second["id"] != org["id"]


async def test_two_users_see_nothing_of_each_other(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    bob = await sign_up(client, "bob@example.com")
    task = await new_task(client, alice)
    assert (await call(client, bob, "GET", TASKS))["items"] == []
    await call(client, bob, "GET", f"{TASKS}/{task['id']}", expect=404)
    (alice_org,) = (await call(client, alice, "GET", ORGS))["items"]
    await call(client, bob, "GET", f"{ORGS}/{alice_org['id']}", expect=404)
    problem = await call(client, bob, "GET", TASKS, expect=404, org=alice_org["id"])
    assert_problem(problem, 404, "org_not_found")
    await call(client, bob, "GET", TASKS, expect=404, org=alice_org["slug"])


async def test_members_share_the_org_by_role(client: Client) -> None:
    owner = await sign_up(client, "owner@example.com")
    viewer = await sign_up(client, "viewer@example.com")
    member = await sign_up(client, "member@example.com")
    org = await call(client, owner, "POST", ORGS, {"name": "Carl's Team"}, 201)
    assert (org["slug"], org["role"]) == ("carl-s-team", "OWNER")
    for email, role in (("viewer@example.com", "VIEWER"), ("member@example.com", "MEMBER")):
        invite = {"email": email, "role": role}
        added = await call(client, owner, "POST", f"{ORGS}/{org['id']}/members", invite, 201)
        assert added["role"] == role
    task = await new_task(client, owner, org["slug"])

    seen = await call(client, viewer, "GET", f"{TASKS}/{task['id']}", org=org["id"])
    assert seen["id"] == task["id"]
    problem = await call(
        client, viewer, "POST", f"{TASKS}/{task['id']}/pause", None, 403, org["id"]
    )
    assert_problem(problem, 403, "forbidden")
    await call(client, viewer, "POST", TASKS, {"name": "x"}, 403, org["id"])
    paused = await call(client, member, "POST", f"{TASKS}/{task['id']}/pause", org=org["id"])
    assert paused["status"] == "PAUSED"
    # Without the header the member acts in its own default org, where the task is not.
    await call(client, member, "GET", f"{TASKS}/{task['id']}", expect=404)

    members = await call(client, viewer, "GET", f"{ORGS}/{org['id']}/members")
    assert {m["email"]: m["role"] for m in members["items"]} == {
        "owner@example.com": "OWNER",
        "viewer@example.com": "VIEWER",
        "member@example.com": "MEMBER",
    }
    await call(
        client, member, "POST", f"{ORGS}/{org['id']}/members", {"email": "x@example.com"}, 403
    )
    unknown = {"email": "nobody@example.com"}
    await call(client, owner, "POST", f"{ORGS}/{org['id']}/members", unknown, 422)
    again = {"email": "viewer@example.com"}
    await call(client, owner, "POST", f"{ORGS}/{org['id']}/members", again, 409)


async def test_the_last_owner_stays(client: Client) -> None:
    owner = await sign_up(client, "owner@example.com")
    admin = await sign_up(client, "admin@example.com")
    org = await call(client, owner, "POST", ORGS, {"name": "Team"}, 201)
    members = f"{ORGS}/{org['id']}/members"
    await call(client, owner, "POST", members, {"email": "admin@example.com", "role": "ADMIN"}, 201)
    me = owner.user["id"]
    problem = await call(client, owner, "PATCH", f"{members}/{me}", {"role": "ADMIN"}, 409)
    assert_problem(problem, 409, "last_owner")
    await call(client, owner, "DELETE", f"{members}/{me}", expect=409)
    await call(client, admin, "PATCH", f"{members}/{me}", {"role": "MEMBER"}, 403)
    await call(client, admin, "DELETE", f"{ORGS}/{org['id']}", expect=403)
    await call(client, owner, "PATCH", f"{members}/{admin.user['id']}", {"role": "OWNER"})
    demoted = await call(client, admin, "PATCH", f"{members}/{me}", {"role": "VIEWER"})
    assert demoted["role"] == "VIEWER"
    await call(client, owner, "DELETE", f"{members}/{me}", expect=204)
    await call(client, owner, "GET", f"{ORGS}/{org['id']}", expect=404)
    await call(client, admin, "DELETE", f"{ORGS}/{org['id']}", expect=204)
    await call(client, admin, "GET", f"{ORGS}/{org['id']}", expect=404)


async def test_org_names_and_quotas_are_checked(client: Client) -> None:
    owner = await sign_up(client, "owner@example.com")
    org = await call(client, owner, "POST", ORGS, {"name": "Team"}, 201)
    for bad in ("", "two\nlines", "x" * 201, "bell\x07"):
        await call(client, owner, "POST", ORGS, {"name": bad}, 422)
        await call(client, owner, "PATCH", f"{ORGS}/{org['id']}", {"name": bad}, 422)
    renamed = await call(client, owner, "PATCH", f"{ORGS}/{org['id']}", {"name": "Renamed"})
    assert renamed["name"] == "Renamed" and renamed["slug"] == org["slug"]
    quotas = {"quotas": {"maxTasks": 5}}
    problem = await call(client, owner, "PATCH", f"{ORGS}/{org['id']}", quotas, 403)
    assert_problem(problem, 403, "forbidden")
    await call(client, owner, "PATCH", f"{ORGS}/{org['id']}", {"quotas": {"maxTasks": -1}}, 422)


async def test_api_keys_act_in_the_org_that_made_them(client: Client) -> None:
    owner = await sign_up(client, "owner@example.com")
    team = await call(client, owner, "POST", ORGS, {"name": "Team"}, 201)
    key = await call(client, owner, "POST", "/api/v1/api-keys", {"name": "ci"}, 201, team["id"])
    made = await new_task(client, key["key"])
    in_team = await call(client, owner, "GET", TASKS, org=team["id"])
    assert [t["id"] for t in in_team["items"]] == [made["id"]]
    assert (await call(client, owner, "GET", TASKS))["items"] == [], "not in the default org"
    orgs = (await call(client, owner, "GET", ORGS))["items"]
    (personal,) = [o for o in orgs if o["id"] != team["id"]]
    await call(client, key["key"], "GET", TASKS, expect=404, org=personal["id"])
    keys = await call(client, owner, "GET", "/api/v1/api-keys")
    assert keys["items"] == [], "keys are listed in their org"


async def test_idempotency_keys_are_spent_per_org(client: Client) -> None:
    owner = await sign_up(client, "owner@example.com")
    team = await call(client, owner, "POST", ORGS, {"name": "Team"}, 201)
    headers = bearer(owner.access) | {"Idempotency-Key": "k-1"}
    body = {"name": "t", "type": "ON_DEMAND"}
    first = await client.post(TASKS, json=body, headers=headers)
    again = await client.post(TASKS, json=body, headers=headers)
    elsewhere = await client.post(TASKS, json=body, headers=headers | {ORG_HEADER: team["id"]})
    assert (first.status, again.status, elsewhere.status) == (201, 201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert elsewhere.headers.get("Idempotent-Replayed") is None
    assert (await elsewhere.json())["id"] != (await first.json())["id"]


async def test_a_role_change_reaches_cached_principals(client: Client) -> None:
    owner = await sign_up(client, "owner@example.com")
    other = await sign_up(client, "other@example.com")
    org = await call(client, owner, "POST", ORGS, {"name": "Team"}, 201)
    members = f"{ORGS}/{org['id']}/members"
    await call(client, owner, "POST", members, {"email": "other@example.com"}, 201)
    await new_task(client, other, org["id"])
    await call(client, owner, "PATCH", f"{members}/{other.user['id']}", {"role": "VIEWER"})
    await call(client, other, "POST", TASKS, {"name": "x"}, 403, org["id"])
    await call(client, owner, "DELETE", f"{members}/{other.user['id']}", expect=204)
    await call(client, other, "GET", TASKS, expect=404, org=org["id"])


async def test_max_workflows_refuses_a_workflow_beyond_it(
    client: Client, store: SqlStore, hasher: PasswordHasher
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    owner = await sign_up(client, "owner@example.com")
    org = await call(client, owner, "POST", ORGS, {"name": "Team"}, 201)
    patched = await call(client, admin, "PATCH", f"{ORGS}/{org['id']}", WORKFLOW_QUOTA)
    assert (patched["quotas"]["maxWorkflows"], patched["quotas"]["maxTasks"]) == (1, 1)
    await call(client, owner, "POST", WORKFLOWS, WORKFLOW, 201, org["id"])
    problem = await call(client, owner, "POST", WORKFLOWS, WORKFLOW, 403, org["id"])
    assert_problem(problem, 403, "quota_exceeded")
    assert "max_workflows" in problem["detail"]
    listed = await call(client, owner, "GET", WORKFLOWS, org=org["id"])
    assert len(listed["items"]) == 1
    # A workflow's hidden backing task is not one of the org's tasks (maxTasks is 1).
    await new_task(client, owner, org["id"])
    # Other orgs are not limited.
    await call(client, owner, "POST", WORKFLOWS, WORKFLOW, 201)


async def test_quotas_refuse_with_a_problem_naming_them(
    client: Client, store: SqlStore, hasher: PasswordHasher
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    owner = await sign_up(client, "owner@example.com")
    org = await call(client, owner, "POST", ORGS, {"name": "Team"}, 201)
    quotas = {"quotas": {"maxTasks": 2, "apiLimitPerMin": 6}}
    patched = await call(client, admin, "PATCH", f"{ORGS}/{org['id']}", quotas)
    assert patched["quotas"] == {
        "maxTasks": 2,
        "maxWorkflows": 0,
        "maxRunningJobs": 0,
        "apiLimitPerMin": 6,
    }
    await new_task(client, owner, org["id"])
    batch = {"items": [{"name": "a"}, {"name": "b"}]}
    problem = await call(client, owner, "POST", f"{TASKS}/batch", batch, 403, org["id"])
    assert_problem(problem, 403, "quota_exceeded")
    assert "max_tasks" in problem["detail"]
    await new_task(client, owner, org["id"])
    problem = await call(client, owner, "POST", TASKS, {"name": "c"}, 403, org["id"])
    assert "max_tasks" in problem["detail"]
    statuses = []
    for _ in range(4):
        response = await client.get(TASKS, headers=bearer(owner.access) | {ORG_HEADER: org["id"]})
        statuses.append(response.status)
    assert statuses[-1] == 429 and 200 in statuses
    limited = await response.json()
    assert_problem(limited, 429, "org_rate_limited")
    assert "api_limit_per_min" in limited["detail"]
    assert (await call(client, owner, "GET", TASKS))["items"] == [], "other orgs are not limited"
    reset = {"quotas": {"maxTasks": None}}
    assert (await call(client, admin, "PATCH", f"{ORGS}/{org['id']}", reset))["quotas"][
        "maxTasks"
    ] == 0


async def test_a_quota_override_applies_at_once_where_quotas_are_cached(
    make_client: MakeClient, store: SqlStore, hasher: PasswordHasher, handlers: HandlerRegistry
) -> None:
    events = EventBus()
    quotas = QuotaBook(store, Quotas(0, 0, 0, 0), ttl_s=3600)
    events.on(PRINCIPAL_EVENT, quotas.on_event)
    tasks = TaskService(store, SqlQueue(store.db), handlers, None, quotas)
    client = await make_client(tasks=tasks, events=events)
    admin = await sign_in_admin(client, store, hasher)
    owner = await sign_up(client, "cached@example.com")
    org = await call(client, owner, "POST", ORGS, {"name": "Cached"}, 201)
    await new_task(client, owner, org["id"])  # the book now holds the org's quotas
    await call(client, admin, "PATCH", f"{ORGS}/{org['id']}", {"quotas": {"maxTasks": 1}})
    problem = await call(client, owner, "POST", TASKS, {"name": "b"}, 403, org["id"])
    assert "max_tasks" in problem["detail"]
