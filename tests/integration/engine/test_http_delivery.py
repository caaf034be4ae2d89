"""The `http` handler, run by the worker against a real local server, tells the receiver
which attempt of which execution it sees: the delivery id is stable within an attempt
and new for the next one (DESIGN.md §4), so a receiver can stay idempotent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

from taskflowd.domain.entities import User
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.handlers.registry import HandlerRegistry
from tests.integration.engine.harness import EngineFactory, spec

ServerFactory = Callable[..., Awaitable[TestServer]]


async def test_each_attempt_carries_its_delivery_id(
    make_engine: EngineFactory, admin: User, aiohttp_server: ServerFactory
) -> None:
    seen: list[dict[str, str | None]] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append(
            {
                name: request.headers.get(f"X-Taskflow-{name}")
                for name in ("Delivery-Id", "Execution-Id", "Attempt")
            }
        )
        # The first attempt fails after the receiver got it: at-least-once redelivers.
        return web.Response(status=503 if len(seen) == 1 else 200, text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app, host="127.0.0.1")
    handlers = HandlerRegistry.build(
        shell_enabled=False,
        http_allow_private=False,
        http_allowed_networks=("127.0.0.1/32",),
        http_timeout_s=10,
        http_max_response_bytes=1024,
        shell_max_output_bytes=1024,
        load_plugins=False,
    )
    engine = await make_engine(handlers=handlers)
    payload = {"url": f"http://127.0.0.1:{server.port}/hook", "method": "POST"}
    task = await engine.tasks.create(
        admin, spec(handler="http", payload=payload, max_retries=1, backoff_ms=10)
    )

    [done] = await engine.wait_until_final(task.id)

    assert done.status is ExecutionStatus.COMPLETED and done.attempts == 2
    assert seen == [
        {"Delivery-Id": f"{done.id}:1", "Execution-Id": done.id, "Attempt": "1"},
        {"Delivery-Id": f"{done.id}:2", "Execution-Id": done.id, "Attempt": "2"},
    ]
