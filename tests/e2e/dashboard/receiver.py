"""A real webhook receiver for the dashboard tests: an aiohttp server on loopback that
records what it is sent and answers each request with the next of its planned answers
(200 "ok" once they run out). `ThreadedReceiver` runs one on a loop of its own, for the
browser tests, whose Playwright API holds the test's thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.integration.webhooks.receiver import Received

PATH = "/hook"
DELIVERING_ENV = {
    "TASKFLOW_HANDLERS__HTTP_ALLOW_PRIVATE": "true",
    "TASKFLOW_WEBHOOKS__RETRY_SCHEDULE_S": "0.5",
    "TASKFLOW_WEBHOOKS__POLL_INTERVAL_S": "0.2",
}
"""Daemon settings that let it deliver to a receiver on loopback, retrying fast."""


@dataclass
class Answers:
    """What the receiver got and what it answers next, safe to read from any thread."""

    planned: list[tuple[int, str]] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: web.Request) -> web.Response:
        received = Received(
            {k.lower(): v for k, v in request.headers.items()}, await request.read()
        )
        with self.lock:
            self.got.append(received)
            status, text = self.planned.pop(0) if self.planned else (200, "ok")
        return web.Response(status=status, text=text)

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.got)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self.handle)
        return app


@contextmanager
def threaded_receiver(answers: Answers) -> Iterator[str]:
    """Serve `answers` on 127.0.0.1 from a thread of its own; yields the receiver's URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(answers.app())

    async def start() -> str:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}{PATH}"

    thread = threading.Thread(target=loop.run_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
