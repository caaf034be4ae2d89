"""The audit trail over the real API and each SQL backend: one event per change with
before/after and the request's origin, secrets redacted, refused logins recorded, who
may read which events, NDJSON export, and nothing written for a change that failed."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
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
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.integration.api.conftest import (
    PASSWORD,
    Client,
    MakeClient,
    Session,
    assert_problem,
    bearer,
    sign_in_admin,
    sign_up,
)

AUDIT = "/api/v1/audit"
TASKS = "/api/v1/tasks"


@pytest.fixture
async def client(make_client: MakeClient, store: SqlStore, handlers: HandlerRegistry) -> Client:
    quotas = QuotaBook(store, Quotas(0, 0, 0, 0), ttl_s=0)
    queue = SqlQueue(store.db)
    return await make_client(
        tasks=TaskService(store, queue, handlers, None, quotas),
        workflows=WorkflowService(WorkflowRecords(store.db), queue, handlers, None, quotas),
        webhooks=WebhookService(WebhookRecords(store.db), WebhookSettings()),
    )


async def events(client: Client, who: Session | str, **query: str) -> list[dict[str, Any]]:
    token = who if isinstance(who, str) else who.access
    response = await client.get(AUDIT, params=query, headers=bearer(token))
    body = await response.json()
    assert response.status == 200, body
    items: list[dict[str, Any]] = body["items"]
    return items


async def new_task(client: Client, who: Session, body: dict[str, Any] | None = None) -> Any:
    body = body or {"name": "nightly report", "type": "ON_DEMAND"}
    response = await client.post(TASKS, json=body, headers=who.headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_a_change_writes_one_event_with_before_after_and_its_origin(client: Client) -> None:
    ada = await sign_up(client, "ada@example.com")
    task = await new_task(client, ada)
    headers = ada.headers | {"X-Request-Id": "req-audit-1", "User-Agent": "audit-test/1.0"}
    response = await client.patch(
        f"{TASKS}/{task['id']}", json={"name": "weekly report", "priority": 7}, headers=headers
    )
    assert response.status == 200, await response.text()

    (event,) = await events(client, ada, targetId=task["id"], action="task.updated")
    assert event["changes"] == {"name": ["nightly report", "weekly report"], "priority": [0, 7]}
    assert event["requestId"] == "req-audit-1"
    assert event["userAgent"] == "audit-test/1.0"
    assert event["ip"]
    assert event["actor"] == {"type": "user", "id": ada.user["id"], "email": "ada@example.com"}
    assert event["target"] == {"type": "task", "id": task["id"]}
    orgs = await (await client.get("/api/v1/orgs", headers=ada.headers)).json()
    assert event["orgId"] == orgs["items"][0]["id"]
    created = await events(client, ada, targetId=task["id"])
    assert [e["action"] for e in created] == ["task.updated", "task.created"]
    assert created[0]["prevHash"] == created[1]["hash"]


async def test_secrets_never_reach_the_trail(client: Client, store: SqlStore, hasher: Any) -> None:
    admin = await sign_in_admin(client, store, hasher)
    ada = await sign_up(client, "ada@example.com")
    payload = {"password": "hunter2", "headers": {"Authorization": "Bearer sekrit"}, "n": 1}
    await new_task(client, ada, {"name": "t", "type": "ON_DEMAND", "payload": payload})
    new_password = "an even better horse battery"
    response = await client.post(
        "/api/v1/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": new_password},
        headers=ada.headers,
    )
    assert response.status == 204, await response.text()
    session = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": new_password}
    )
    token = (await session.json())["accessToken"]
    key = await client.post("/api/v1/api-keys", json={"name": "ci"}, headers=bearer(token))
    raw = (await key.json())["key"]

    trail = await events(client, admin, limit="500")
    text = orjson.dumps(trail).decode()
    for secret in ("hunter2", "sekrit", raw, new_password, PASSWORD, "$2b$"):
        assert secret not in text
    created = next(e for e in trail if e["action"] == "task.created")
    assert created["changes"]["payload"][1] == {
        "password": "[redacted]",
        "headers": {"Authorization": "[redacted]"},
        "n": 1,
    }
    changed = next(e for e in trail if e["action"] == "user.password_changed")
    assert changed["changes"] == {"passwordHash": ["[redacted]", "[redacted]"]}
    minted = next(e for e in trail if e["action"] == "apiKey.created")
    assert minted["changes"]["name"] == [None, "ci"]
    assert raw.startswith(minted["changes"]["prefix"][1])


async def test_refused_logins_and_sessions_are_recorded(
    client: Client, store: SqlStore, hasher: Any
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    ada = await sign_up(client, "ada@example.com")
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": "not the password at all"},
        headers={"X-Request-Id": "req-bad-login"},
    )
    assert response.status == 401
    (failed,) = await events(client, admin, action="auth.login_failed")
    assert failed["actor"]["email"] == "ada@example.com"
    assert failed["target"] == {"type": "user", "id": ada.user["id"]}
    assert failed["requestId"] == "req-bad-login"

    spent = ada.refresh
    response = await client.post("/api/v1/auth/refresh", json={"refreshToken": spent})
    assert response.status == 200
    response = await client.post("/api/v1/auth/refresh", json={"refreshToken": spent})
    assert response.status == 401
    assert await events(client, admin, action="auth.refresh_reuse_detected")
    logins = await events(client, admin, action="auth.login", actorId=ada.user["id"])
    assert len(logins) == 1


async def test_readers_see_their_orgs_events_only(
    client: Client, store: SqlStore, hasher: Any
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    owner = await sign_up(client, "owner@example.com")
    member = await sign_up(client, "member@example.com")
    other = await sign_up(client, "other@example.com")
    org = (await (await client.get("/api/v1/orgs", headers=owner.headers)).json())["items"][0]
    response = await client.post(
        f"/api/v1/orgs/{org['id']}/members",
        json={"email": "member@example.com", "role": "MEMBER"},
        headers=owner.headers,
    )
    assert response.status == 201
    mine = await new_task(client, owner)
    theirs = await new_task(client, other)

    seen = await events(client, owner)
    assert {e["orgId"] for e in seen} == {org["id"]}
    assert {"org.member_added", "task.created"} <= {e["action"] for e in seen}
    assert theirs["id"] not in {e["target"]["id"] for e in seen}

    response = await client.get(AUDIT, headers=member.headers | {"X-Taskflow-Org": org["id"]})
    assert_problem(await response.json(), 403, "forbidden")
    response = await client.get(
        f"{AUDIT}?format=ndjson", headers=member.headers | {"X-Taskflow-Org": org["id"]}
    )
    assert response.status == 403

    everything = await events(client, admin, limit="500")
    targets = {e["target"]["id"] for e in everything}
    assert {mine["id"], theirs["id"]} <= targets

    response = await client.get(AUDIT, params={"limit": "2"}, headers=admin.headers)
    first = await response.json()
    second = await events(client, admin, limit="2", cursor=first["nextCursor"])
    assert first["items"][1]["prevHash"] == second[0]["hash"]
    response = await client.get(AUDIT, params={"cursor": "bm9wZQ"}, headers=admin.headers)
    assert response.status == 422
    response = await client.get(
        AUDIT, params={"since": "0001-01-01T00:00:00+01:00"}, headers=admin.headers
    )
    assert response.status == 422


async def test_ndjson_export_streams_every_event_oldest_first(client: Client) -> None:
    ada = await sign_up(client, "ada@example.com")
    tasks = [await new_task(client, ada) for _ in range(3)]
    response = await client.get(
        AUDIT, params={"format": "ndjson", "action": "task.created"}, headers=ada.headers
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in (await response.read()).splitlines()]
    assert [e["target"]["id"] for e in lines] == [t["id"] for t in tasks]
    assert all(e["action"] == "task.created" for e in lines)


async def test_api_key_requests_act_as_the_key(client: Client) -> None:
    ada = await sign_up(client, "ada@example.com")
    response = await client.post("/api/v1/api-keys", json={"name": "ci"}, headers=ada.headers)
    key = await response.json()
    task = await new_task(client, Session(ada.user, key["key"], ""))
    (event,) = await events(client, ada, targetId=task["id"])
    assert event["actor"] == {"type": "apiKey", "id": key["id"], "email": "ada@example.com"}


async def test_a_failed_change_writes_no_event(client: Client) -> None:
    ada = await sign_up(client, "ada@example.com")
    before = await events(client, ada)
    response = await client.post(TASKS, json={"name": "", "type": "ON_DEMAND"}, headers=ada.headers)
    assert response.status == 422
    gone = "00000000-0000-4000-8000-00000000ffff"
    response = await client.patch(f"{TASKS}/{gone}", json={"name": "x"}, headers=ada.headers)
    assert response.status == 404
    assert await events(client, ada) == before


async def test_the_trail_cannot_be_changed_through_the_api(
    client: Client, store: SqlStore, hasher: Any
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = await client.request(method, AUDIT, json={}, headers=admin.headers)
        assert response.status in (404, 405)


async def test_creates_sent_at_once_each_get_their_own_event(client: Client) -> None:
    ada = await sign_up(client, "ada@example.com")
    bob = await sign_up(client, "bob@example.com")

    async def create(who: Session, i: int) -> Any:
        headers = who.headers | {"X-Request-Id": f"req-at-once-{i}"}
        response = await client.post(
            TASKS, json={"name": f"t{i}", "type": "ON_DEMAND"}, headers=headers
        )
        assert response.status == 201, await response.text()
        return await response.json()

    made = await asyncio.gather(*(create(ada if i % 2 else bob, i) for i in range(12)))

    for who, email in ((ada, "ada@example.com"), (bob, "bob@example.com")):
        mine = {t["id"]: t["name"] for t in made if t["createdBy"] == who.user["id"]}
        listed = await (await client.get(TASKS, headers=who.headers)).json()
        assert {t["id"] for t in listed["items"]} == set(mine)
        trail = await events(client, who, action="task.created")
        assert {e["target"]["id"] for e in trail} == set(mine)
        for event in trail:
            i = int(mine[event["target"]["id"]][1:])
            assert event["requestId"] == f"req-at-once-{i}"
            assert event["actor"]["email"] == email
