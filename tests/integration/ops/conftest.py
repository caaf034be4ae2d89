"""The operations stack over the real store: an engine (queue, timer, workers), its
Metrics, and the real API application with the ops routes and the metrics middleware
mounted the way the daemon mounts them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from taskflowd.api.app import build_app
from taskflowd.api.context import ApiContext
from taskflowd.api.routes import ops
from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.ratelimit import GcraRateLimiter
from taskflowd.auth.service import AuthService
from taskflowd.config import AuthSettings, MetricsSettings, Settings
from taskflowd.domain.entities import User
from taskflowd.metrics import Metrics, http_report
from taskflowd.store import SqlStore
from tests.integration.engine.harness import SCHEDULER, WORKER, Engine
from tests.integration.queue.isolation import _pg_reused_url, pg_url

__all__ = ["_pg_reused_url", "pg_url"]

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery staple"

Client = TestClient[Any, Any]


@dataclass
class OpsStack:
    store: SqlStore
    engine: Engine
    metrics: Metrics
    client: Client

    async def sign_up(self, email: str, password: str = PASSWORD) -> tuple[User, str]:
        """Register and log in through the API; returns the user and an access token."""
        body = {"email": email, "password": password, "firstName": "Ada", "lastName": "L"}
        response = await self.client.post("/api/v1/auth/register", json=body)
        assert response.status == 201, await response.text()
        response = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status == 200, await response.text()
        token: str = (await response.json())["accessToken"]
        user = await self.store.get_user_by_email(email)
        assert user is not None
        return user, token


MakeStack = Callable[..., Awaitable[OpsStack]]


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(rounds=4, threads=2)
    yield hasher
    hasher.close()


@pytest.fixture
async def make_stack(
    store: SqlStore,
    hasher: PasswordHasher,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> AsyncIterator[MakeStack]:
    """`make_stack(metrics_token="", worker={...})` builds and starts one stack."""
    stacks: list[OpsStack] = []

    async def make(metrics_token: str = "", worker: dict[str, Any] | None = None) -> OpsStack:
        engine = Engine(store, dataclasses.replace(WORKER, **(worker or {})), SCHEDULER)
        metrics = Metrics(
            engine.events,
            engine.supervisor,
            queue=engine.queue,
            org_depths=engine.queue.depths_by_org,
            running_jobs=lambda: engine.worker.active,
            handler_names=engine.handlers.names(),
        )
        await metrics.start()
        await engine.start()
        settings = Settings(
            auth=dataclasses.replace(AuthSettings(), bcrypt_rounds=4, jwt_secret=SECRET),
            metrics=MetricsSettings(token=metrics_token),
        )
        auth = AuthService(store, hasher, settings.auth, SECRET)
        ops_ctx = ops.OpsContext.build(
            store, engine.queue, metrics, metrics_token=metrics_token, ready_timeout_s=2.0
        )
        ctx = ApiContext(
            settings,
            store,
            auth,
            GcraRateLimiter(),
            (ops.mount(ops_ctx),),
            reports=(http_report(metrics),),
        )
        app = build_app(ctx)
        stack = OpsStack(store, engine, metrics, await aiohttp_client(app))
        stacks.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in reversed(stacks):
            await stack.engine.stop()
            await stack.metrics.stop()
