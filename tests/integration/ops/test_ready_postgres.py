"""/ready follows the database live: 503 naming it while a private PostgreSQL server is
down, 200 again once it is back, with the same application throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from taskflowd.api.openapi import REGISTRY_KEY, ApiRegistry
from taskflowd.api.routes import ops
from taskflowd.background import Supervisor
from taskflowd.events import EventBus
from taskflowd.metrics import Metrics
from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore, open_store
from tests.integration.ops.private_pg import PrivatePostgres
from tests.integration.queue.polling import eventually

Client = TestClient[Any, Any]
NOT_A_REAL_PASSWORD = "pw-that-must-not-show-up"


@pytest.fixture
async def pg_store(private_pg: PrivatePostgres) -> AsyncIterator[SqlStore]:
    # trust authentication ignores the password; it is here to prove it never leaks
    url = private_pg.url.replace("postgres@", f"postgres:{NOT_A_REAL_PASSWORD}@")
    store = open_store(url)
    await store.start()
    yield store
    await store.stop()


async def test_ready_flips_to_503_and_back_without_a_restart(
    private_pg: PrivatePostgres,
    pg_store: SqlStore,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    queue = SqlQueue(pg_store.db)
    metrics = Metrics(EventBus(), Supervisor(lambda name, exc: None), queue=queue)
    app = web.Application()
    registry = ApiRegistry(app, "taskflowd", "test")
    app[REGISTRY_KEY] = registry
    ops.mount(ops.OpsContext.build(pg_store, queue, metrics, ready_timeout_s=2.0))(registry)
    client = await aiohttp_client(app)

    async def ready_status() -> tuple[int, dict[str, Any]]:
        response = await client.get("/ready")
        return response.status, await response.json()

    status, body = await ready_status()
    assert status == 200, body

    await private_pg.stop()

    async def down() -> dict[str, Any] | None:
        status, body = await ready_status()
        return body if status == 503 else None

    body = await eventually(down, "/ready to answer 503 while PostgreSQL is down")
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["reason"]
    assert NOT_A_REAL_PASSWORD not in str(body)
    # Scrapes go on while the database is down; the depth series is left out, not stale.
    response = await client.get("/metrics")
    assert response.status == 200
    assert "taskflow_queue_depth{" not in await response.text()

    await private_pg.start()

    async def up() -> bool:
        status, _ = await ready_status()
        return status == 200

    await eventually(up, "/ready to answer 200 once PostgreSQL is back", timeout_s=30)

    async def depth_back() -> bool:
        response = await client.get("/metrics")
        return 'taskflow_queue_depth{state="pending"} 0.0' in await response.text()

    await eventually(depth_back, "the queue depth series to return to /metrics")
