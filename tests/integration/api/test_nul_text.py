"""NUL characters (U+0000), which PostgreSQL cannot store in text or jsonb: every JSON
body and query string that carries one is refused with a 422 naming the field, on both
databases alike, and never reaches the store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from taskflowd.api.app import build_app
from taskflowd.api.context import ApiContext
from taskflowd.api.routes import executions, tasks
from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.ratelimit import GcraRateLimiter
from taskflowd.auth.service import AuthService
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.sql import SqlQueue
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore
from tests.integration.api.conftest import (
    SECRET,
    Client,
    Session,
    assert_problem,
    make_settings,
    sign_in_admin,
)


@pytest.fixture
async def task_client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    store: SqlStore,
    hasher: PasswordHasher,
    handlers: HandlerRegistry,
) -> AsyncIterator[Client]:
    """The API with the task and execution routes over the parametrised store."""
    settings = make_settings()
    auth = AuthService(store, hasher, settings.auth, SECRET)
    ctx = ApiContext(
        settings,
        store,
        auth,
        GcraRateLimiter(),
        extra_routes=(tasks.install, executions.install),
    )
    app = build_app(ctx)
    app[tasks.TASKS_KEY] = TaskService(store, SqlQueue(store.db), handlers)
    yield await aiohttp_client(app)


@pytest.fixture
async def admin(task_client: Client, store: SqlStore, hasher: PasswordHasher) -> Session:
    return await sign_in_admin(task_client, store, hasher)


def errors_of(body: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body["errors"]}


async def refused(client: Client, response: Any) -> dict[str, str]:
    body = await response.json()
    assert response.status == 422, body
    assert_problem(body, 422, "validation_failed")
    return errors_of(body)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "a\u0000b"}, "name"),
        ({"description": "\u0000"}, "description"),
        ({"payload": "a\u0000b"}, "payload"),
        ({"payload": {"headers": {"x": "a\u0000b"}}}, "payload.headers.x"),
        ({"payload": {"items": ["fine", ["deeper\u0000"]]}}, "payload.items[1][0]"),
        ({"payload": {"headers": {"x\u0000y": "fine"}}}, "payload.headers"),
        ({"timezone": "Europe/\u0000"}, "timezone"),
    ],
)
async def test_a_task_with_a_nul_anywhere_is_refused_naming_the_field(
    task_client: Client, admin: Session, change: dict[str, Any], field: str
) -> None:
    body = {"name": "nul", **change}
    response = await task_client.post("/api/v1/tasks", json=body, headers=admin.headers)
    errors = await refused(task_client, response)
    assert field in errors, errors
    assert "NUL" in errors[field]
    listed = await task_client.get("/api/v1/tasks", headers=admin.headers)
    assert (await listed.json())["items"] == []


async def test_every_nul_is_named_at_once(task_client: Client, admin: Session) -> None:
    body = {"name": "\u0000", "payload": {"a": "\u0000", "b": ["\u0000"]}}
    response = await task_client.post("/api/v1/tasks", json=body, headers=admin.headers)
    assert set(await refused(task_client, response)) == {"name", "payload.a", "payload.b[0]"}


async def test_the_text_of_an_escape_is_not_a_nul(task_client: Client, admin: Session) -> None:
    # A backslash followed by "u0000" is six ordinary characters, stored as they are.
    raw = json.dumps({"name": "literal", "payload": {"text": "\\u0000"}})
    response = await task_client.post(
        "/api/v1/tasks",
        data=raw,
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["payload"] == {"text": "\\u0000"}


async def test_a_change_with_a_nul_is_refused(task_client: Client, admin: Session) -> None:
    created = await task_client.post("/api/v1/tasks", json={"name": "fine"}, headers=admin.headers)
    assert created.status == 201
    task_id = (await created.json())["id"]
    response = await task_client.patch(
        f"/api/v1/tasks/{task_id}", json={"payload": {"k": "\u0000"}}, headers=admin.headers
    )
    assert "payload.k" in await refused(task_client, response)
    unchanged = await task_client.get(f"/api/v1/tasks/{task_id}", headers=admin.headers)
    assert (await unchanged.json())["payload"] is None


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/tasks?search=a%00b", "search"),
        ("/api/v1/tasks?handler=%00", "handler"),
        ("/api/v1/executions?taskId=a%00b", "taskId"),
        ("/api/v1/tasks?fields=id,%00", "fields"),
        ("/api/v1/users?cursor=%00", "cursor"),
        ("/api/v1/tasks?x%00=1", "$"),
    ],
)
async def test_a_query_parameter_with_a_nul_is_refused(
    task_client: Client, admin: Session, path: str, field: str
) -> None:
    response = await task_client.get(path, headers=admin.headers)
    errors = await refused(task_client, response)
    assert field in errors, errors
    assert "NUL" in errors[field]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/auth/login", {"email": "a\u0000@example.com", "password": "x"}, "email"),
        (
            "/api/v1/auth/register",
            {
                "email": "n@example.com",
                "password": "long enough password",
                "firstName": "A\u0000",
                "lastName": "B",
            },
            "firstName",
        ),
        ("/api/v1/auth/refresh", {"refreshToken": "\u0000"}, "refreshToken"),
    ],
)
async def test_account_bodies_follow_the_same_rule(
    task_client: Client, path: str, body: dict[str, Any], field: str
) -> None:
    response = await task_client.post(path, json=body)
    assert field in await refused(task_client, response)
