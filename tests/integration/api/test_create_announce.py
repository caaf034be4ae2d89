"""A create is answered by its commit: when telling the queue of the new work fails
afterwards (a notice that could not be sent), the tasks stay created, each caller gets
its 201, and no create of a group is written twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from taskflowd.api.app import build_app
from taskflowd.api.context import ApiContext
from taskflowd.api.routes import tasks
from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.ratelimit import GcraRateLimiter
from taskflowd.auth.service import AuthService
from taskflowd.domain.entities import Execution
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.sql import SqlQueue
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore
from taskflowd.store.errors import StoreError
from tests.integration.api.conftest import SECRET, Client, Session, make_settings, sign_in_admin


class Unannounced(SqlQueue):
    """A queue whose announcement of committed work always fails."""

    async def announce(self, executions: Sequence[Execution]) -> None:
        raise StoreError("postgresql: canceling statement due to statement timeout")


@pytest.fixture
async def task_client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    store: SqlStore,
    hasher: PasswordHasher,
    handlers: HandlerRegistry,
) -> AsyncIterator[Client]:
    settings = make_settings()
    auth = AuthService(store, hasher, settings.auth, SECRET)
    ctx = ApiContext(settings, store, auth, GcraRateLimiter(), extra_routes=(tasks.install,))
    app = build_app(ctx)
    app[tasks.TASKS_KEY] = TaskService(store, Unannounced(store.db), handlers)
    yield await aiohttp_client(app)


@pytest.fixture
async def admin(task_client: Client, store: SqlStore, hasher: PasswordHasher) -> Session:
    return await sign_in_admin(task_client, store, hasher)


async def test_creates_committed_before_a_failed_announcement_are_answered_201(
    task_client: Client, admin: Session
) -> None:
    async def create(i: int) -> Any:
        body = {"name": f"t{i}", "scheduledAt": "2099-01-01T00:00:00Z"}
        response = await task_client.post("/api/v1/tasks", json=body, headers=admin.headers)
        assert response.status == 201, await response.text()
        return (await response.json())["id"]

    made = await asyncio.gather(*(create(i) for i in range(6)))

    listed = await task_client.get("/api/v1/tasks", headers=admin.headers)
    assert sorted(t["id"] for t in (await listed.json())["items"]) == sorted(made)
