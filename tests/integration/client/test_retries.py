"""Retries against real servers: a flaky proxy in front of a real node answers 503 or 429
or breaks the connection as a script says, then forwards; and a port that refuses
connections until a server starts listening on it."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from taskflowd.client import (
    ApiError,
    AsyncClient,
    NewTask,
    RetryPolicy,
    TaskType,
    TransportError,
)
from tests.integration.client.conftest import Node, admin_api_key

FORWARDED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
PATIENT = RetryPolicy(max_attempts=4, backoff_s=0.01, max_backoff_s=0.05)


@dataclass
class Attempt:
    method: str
    path: str
    idempotency_key: str | None
    at: float


@dataclass
class FlakyProxy:
    """Plays `script` (one step per request: "503", "429:<seconds>", "502-html", "drop",
    "forward-then-drop"), then forwards every request to `upstream`."""

    upstream: str
    script: list[str]
    attempts: list[Attempt] = field(default_factory=list)
    replayed: list[str | None] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> tuple[int, bytes, str]:
        assert self.session is not None
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            self.replayed.append(answer.headers.get("Idempotent-Replayed"))
            return answer.status, await answer.read(), answer.content_type

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts.append(
            Attempt(
                request.method,
                request.path,
                request.headers.get("Idempotency-Key"),
                asyncio.get_running_loop().time(),
            )
        )
        step = self.script.pop(0) if self.script else "forward"
        if step == "503":
            return problem(503, "unavailable")
        if step.startswith("429:"):
            return problem(429, "rate_limited", {"Retry-After": step[4:]})
        if step == "502-html":
            return web.Response(
                status=502, text="<html>bad gateway</html>", content_type="text/html"
            )
        if step == "drop":
            return drop(request)
        status, body, content_type = await self._forward(request)
        if step == "forward-then-drop":
            return drop(request)
        return web.Response(status=status, body=body, content_type=content_type)


def problem(status: int, code: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "type": f"https://taskflowd.dev/problems/{code}",
        "title": code,
        "status": status,
        "detail": f"scripted {code}",
        "code": code,
        "requestId": "proxy",
    }
    return web.json_response(
        body, status=status, headers=headers, content_type="application/problem+json"
    )


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer, as a crashing server or proxy would."""
    assert request.transport is not None
    request.transport.close()
    return web.Response(status=204)


MakeProxy = Callable[[list[str]], Awaitable[tuple[FlakyProxy, str]]]


@pytest.fixture
async def make_proxy(sqlite_node: Node) -> AsyncIterator[MakeProxy]:
    servers: list[TestServer] = []
    session = aiohttp.ClientSession()

    async def make(script: list[str]) -> tuple[FlakyProxy, str]:
        proxy = FlakyProxy(sqlite_node.url, list(script), session=session)
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", proxy.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return proxy, str(server.make_url("")).rstrip("/")

    yield make
    for server in servers:
        await server.close()
    await session.close()


@pytest.fixture
async def api_key(sqlite_node: Node) -> str:
    return await admin_api_key(sqlite_node.url)


async def tasks_named(node: Node, api_key: str, name: str) -> list[str]:
    async with AsyncClient(node.url, api_key=api_key) as direct:
        return [t.id async for t in direct.tasks.iter(search=name) if t.name == name]


def task_named(name: str) -> NewTask:
    return NewTask(name, type=TaskType.ON_DEMAND)


async def test_503_and_429_are_retried_under_one_idempotency_key(
    sqlite_node: Node, api_key: str, make_proxy: MakeProxy
) -> None:
    proxy, url = await make_proxy(["503", "429:1"])
    name = f"retried-{uuid.uuid4().hex[:8]}"
    async with AsyncClient(url, api_key=api_key, retry=PATIENT) as client:
        task = await client.tasks.create(task_named(name))

    assert [(a.method, a.path) for a in proxy.attempts] == [("POST", "/api/v1/tasks")] * 3
    keys = {a.idempotency_key for a in proxy.attempts}
    assert len(keys) == 1 and None not in keys
    assert proxy.attempts[2].at - proxy.attempts[1].at >= 0.9, "Retry-After: 1 was honoured"
    assert await tasks_named(sqlite_node, api_key, name) == [task.id]


async def test_a_lost_answer_is_sent_again_and_replayed(
    sqlite_node: Node, api_key: str, make_proxy: MakeProxy
) -> None:
    proxy, url = await make_proxy(["forward-then-drop"])
    name = f"lost-{uuid.uuid4().hex[:8]}"
    async with AsyncClient(url, api_key=api_key, retry=PATIENT) as client:
        task = await client.tasks.create(task_named(name))
        run = await client.tasks.run(task.id, {"n": 1})

    assert proxy.replayed == [None, "true", None], "the repeat got the first answer again"
    assert await tasks_named(sqlite_node, api_key, name) == [task.id]
    async with AsyncClient(sqlite_node.url, api_key=api_key) as direct:
        assert [e.id for e in (await direct.tasks.executions(task.id)).items] == [run.id]


async def test_a_broken_connection_is_retried_only_when_repeating_is_harmless(
    api_key: str, make_proxy: MakeProxy
) -> None:
    proxy, url = await make_proxy([])
    async with AsyncClient(url, api_key=api_key, retry=PATIENT) as client:
        task = await client.tasks.create(task_named(f"pausable-{uuid.uuid4().hex[:8]}"))
        proxy.attempts.clear()

        proxy.script[:] = ["drop"]
        assert (await client.tasks.get(task.id)).id == task.id
        assert len(proxy.attempts) == 2, "a GET is repeated"

        proxy.attempts.clear()
        proxy.script[:] = ["drop"]
        with pytest.raises(TransportError, match="closed the connection"):
            await client.tasks.pause(task.id)
        assert len(proxy.attempts) == 1, "a POST without Idempotency-Key is not repeated"


async def test_retries_stop_after_max_attempts(api_key: str, make_proxy: MakeProxy) -> None:
    proxy, url = await make_proxy(["503"] * 10)
    policy = RetryPolicy(max_attempts=3, backoff_s=0.01, max_backoff_s=0.01)
    async with AsyncClient(url, api_key=api_key, retry=policy) as client:
        with pytest.raises(ApiError) as unavailable:
            await client.tasks.list()
    assert (unavailable.value.status, unavailable.value.code) == (503, "unavailable")
    assert unavailable.value.detail == "scripted unavailable"
    assert unavailable.value.request_id == "proxy"
    assert len(proxy.attempts) == 3


async def test_a_long_retry_after_is_raised_at_once(api_key: str, make_proxy: MakeProxy) -> None:
    proxy, url = await make_proxy(["429:3600", "502-html"])
    async with AsyncClient(url, api_key=api_key, retry=PATIENT) as client:
        with pytest.raises(ApiError) as limited:
            await client.tasks.list()
        assert (limited.value.status, limited.value.retry_after_s) == (429, 3600.0)
        assert len(proxy.attempts) == 1

        with pytest.raises(ApiError) as gateway:
            await client.tasks.list()
    assert (gateway.value.status, gateway.value.code) == (502, "http_502")


class Retries(logging.Handler):
    """Sets `seen` when the client logs a retry after a failed connection."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.seen.set()


@pytest.fixture
def refusing_socket() -> Iterator[socket.socket]:
    """A bound port nobody listens on yet: connections to it are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


async def test_a_refused_connection_is_retried_until_the_server_listens(
    refusing_socket: socket.socket,
) -> None:
    port = refusing_socket.getsockname()[1]
    retries = Retries()
    logger = logging.getLogger("taskflowd.client")
    logger.addHandler(retries)
    logger.setLevel(logging.INFO)
    app = web.Application()

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    policy = RetryPolicy(max_attempts=50, backoff_s=0.05, max_backoff_s=0.2)
    try:
        async with AsyncClient(f"http://127.0.0.1:{port}", retry=policy) as client:
            answer = asyncio.create_task(client.health())
            await asyncio.wait_for(retries.seen.wait(), 30)
            assert not answer.done()
            await runner.setup()
            await web.SockSite(runner, refusing_socket).start()
            assert (await asyncio.wait_for(answer, 30)).status == "ok"
    finally:
        logger.removeHandler(retries)
        logger.setLevel(logging.NOTSET)
        await runner.cleanup()
    assert "Connection refused" in retries.messages[0]


def test_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(backoff_s=-1)
