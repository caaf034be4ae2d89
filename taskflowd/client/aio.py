"""`AsyncClient`: the whole taskflowd API as coroutines, over one pooled aiohttp session."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from taskflowd.client.audit import Audit
from taskflowd.client.codec import decode
from taskflowd.client.models import Health, Readiness, Stats
from taskflowd.client.orgs import Orgs
from taskflowd.client.resources import ApiKeys, Auth, DeadLetters, Executions, Tasks, Users
from taskflowd.client.transport import RetryPolicy, Transport
from taskflowd.client.webhooks import Webhooks
from taskflowd.client.workflows import WorkflowRuns, Workflows

DEFAULT_URL = "http://127.0.0.1:8080"


class AsyncClient:
    """A client of one taskflowd server.

    Authenticate with an `api_key` (`tfk_…`, for programs) or a `token` (an access token;
    `auth.login()` sets one). Use it as `async with AsyncClient(…) as client:` or call
    `close()`: it keeps one session of keep-alive connections (at most `connections`
    at once), opened on the first request in the running loop and tied to that loop.
    Requests time out after `timeout_s`; `retry` says what is retried and how often.
    `org` (an org's id or slug) is the organization requests act in (`X-Taskflow-Org`);
    without it, the API key's org or the user's default org.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        connections: int = 10,
        org: str | None = None,
    ) -> None:
        if api_key and token:
            raise ValueError("give an api_key or a token, not both")
        self._http = Transport(
            base_url,
            credential=api_key or token,
            timeout_s=timeout_s,
            retry=retry or RetryPolicy(),
            connections=connections,
            org=org,
        )
        self.tasks = Tasks(self._http)
        self.executions = Executions(self._http)
        self.dead_letters = DeadLetters(self._http)
        self.api_keys = ApiKeys(self._http)
        self.auth = Auth(self._http)
        self.users = Users(self._http)
        self.workflows = Workflows(self._http)
        self.workflow_runs = WorkflowRuns(self._http)
        self.webhooks = Webhooks(self._http)
        self.orgs = Orgs(self._http)
        self.audit = Audit(self._http)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        await self._http.close()

    async def health(self) -> Health:
        """Liveness: the server process answers."""
        return decode(Health, await self._http.call("GET", "/health"))

    async def ready(self) -> Readiness:
        """Readiness, checked live; an unready server (503) is a result, not an error,
        and is not retried."""
        data = await self._http.call("GET", "/ready", ok=(200, 503), retry=False)
        return decode(Readiness, data)

    async def stats(self) -> Stats:
        """Queue depths, throughput, run times and nodes (the caller's own executions
        for a USER, everyone's for an ADMIN)."""
        return decode(Stats, await self._http.call("GET", "/api/v1/stats"))

    async def metrics(self, *, token: str = "") -> str:
        """The Prometheus text exposition; `token` is the server's `metrics.token` when
        it sets one (not an API key)."""
        return await self._http.text("/metrics", token=token)

    async def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI 3.1 document."""
        document: dict[str, Any] = await self._http.call("GET", "/api/openapi.json")
        return document
