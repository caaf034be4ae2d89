"""The real API application over the real store (SQLite and PostgreSQL), bcrypt cost 4.

`make_client(**settings)` builds an app with `auth.*` / `http.*` overrides; helpers
register and log in users through the API itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from taskflowd.api.app import build_app
from taskflowd.api.context import ApiContext, RouteInstaller
from taskflowd.api.routes import executions
from taskflowd.api.routes import tasks as tasks_routes
from taskflowd.api.routes import webhooks as webhook_routes
from taskflowd.api.routes import workflows as workflow_routes
from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.ratelimit import GcraRateLimiter
from taskflowd.auth.service import AuthService, ensure_admin
from taskflowd.config import AuthSettings, HttpSettings, Settings
from taskflowd.events import EventBus
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore
from taskflowd.webhooks.service import WebhookService
from taskflowd.workflows.service import WorkflowService

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery"
ADMIN_EMAIL = "root@example.com"

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(rounds=4, threads=2)
    yield hasher
    hasher.close()


@pytest.fixture
async def handlers() -> AsyncIterator[HandlerRegistry]:
    """The built-in handlers, the shell off, no plugins."""
    registry = HandlerRegistry.build(
        shell_enabled=False,
        http_allow_private=False,
        http_allowed_networks=(),
        http_timeout_s=5.0,
        http_max_response_bytes=1024,
        shell_max_output_bytes=1024,
        load_plugins=False,
    )
    yield registry
    await registry.close()


def make_settings(**overrides: Any) -> Settings:
    """Test settings; keys are `auth_<name>` or `http_<name>`."""
    auth = {k[5:]: v for k, v in overrides.items() if k.startswith("auth_")}
    http = {k[5:]: v for k, v in overrides.items() if k.startswith("http_")}
    return Settings(
        auth=dataclasses.replace(AuthSettings(), bcrypt_rounds=4, jwt_secret=SECRET, **auth),
        http=dataclasses.replace(HttpSettings(), **http),
    )


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[Client]], store: SqlStore, hasher: PasswordHasher
) -> MakeClient:
    """`make(extra_routes, tasks=None, events=None, workflows=None, **settings)`: the API
    over the test's store; with `tasks` (a TaskService) the task and execution routes are
    mounted too, with `workflows` (a WorkflowService) the workflow routes, with `webhooks`
    (a WebhookService) the webhook routes."""

    async def make(
        extra_routes: Sequence[RouteInstaller] = (),
        tasks: TaskService | None = None,
        events: EventBus | None = None,
        workflows: WorkflowService | None = None,
        webhooks: WebhookService | None = None,
        **overrides: Any,
    ) -> Client:
        settings = make_settings(**overrides)
        auth = AuthService(store, hasher, settings.auth, SECRET, events=events)
        routes = (*extra_routes, *((tasks_routes.install, executions.install) if tasks else ()))
        routes = (*routes, *((workflow_routes.install,) if workflows else ()))
        routes = (*routes, *((webhook_routes.install,) if webhooks else ()))
        ctx = ApiContext(settings, store, auth, GcraRateLimiter(), routes)
        app = build_app(ctx)
        if tasks is not None:
            app[tasks_routes.TASKS_KEY] = tasks
        if workflows is not None:
            app[workflow_routes.WORKFLOWS_KEY] = workflows
        if webhooks is not None:
            app[webhook_routes.WEBHOOKS_KEY] = webhooks
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> AsyncIterator[Client]:
    yield await make_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Session:
    """A logged-in user as the tests see it."""

    user: dict[str, Any]
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access)


async def register(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    body = {"email": email, "password": password, "firstName": "Ada", "lastName": "Lovelace"}
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status == 201, await response.text()
    user: dict[str, Any] = await response.json()
    return user


async def login(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    tokens: dict[str, Any] = await response.json()
    return tokens


async def sign_up(client: Client, email: str, password: str = PASSWORD) -> Session:
    user = await register(client, email, password)
    tokens = await login(client, email, password)
    return Session(user, tokens["accessToken"], tokens["refreshToken"])


async def sign_in_admin(client: Client, store: SqlStore, hasher: PasswordHasher) -> Session:
    created = await ensure_admin(store, hasher, ADMIN_EMAIL, PASSWORD)
    assert created is not None
    tokens = await login(client, ADMIN_EMAIL)
    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["accessToken"]))
    return Session(await me.json(), tokens["accessToken"], tokens["refreshToken"])


def assert_problem(body: dict[str, Any], status: int, code: str) -> None:
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"] and body["detail"] and body["requestId"]
