"""A real taskflowd node for the client: the daemon's composition root (API, scheduler,
workers) over real SQLite or PostgreSQL, serving on a real port, in an event loop of its
own thread, so blocking `Client` calls from the test's thread cannot stall it.

`node` runs once per SQL backend; `sqlite_node` on SQLite only. `admin_key` is an API key
of the bootstrap admin, created through the API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from taskflowd.client import AsyncClient, RetryPolicy
from taskflowd.config import (
    AuthSettings,
    HttpSettings,
    SchedulerSettings,
    Settings,
    WorkerSettings,
)
from taskflowd.daemon import Daemon

T = TypeVar("T")

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "a long enough admin password"
TIMEOUT_S = 60.0
# Retries that do not keep a failing test waiting.
QUICK_RETRIES = RetryPolicy(max_attempts=3, backoff_s=0.01, max_backoff_s=0.1)


def node_settings(database: str) -> Settings:
    return Settings(
        database=database,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        http=HttpSettings(host="127.0.0.1", port=0),
        auth=dataclasses.replace(AuthSettings(), bcrypt_rounds=4),
        worker=dataclasses.replace(WorkerSettings(), safety_poll_s=0.2, lease_s=2.0),
        scheduler=dataclasses.replace(SchedulerSettings(), sweep_interval_s=1.0),
    )


@dataclass
class Node:
    """A running node: `url` is its base URL."""

    url: str
    daemon: Daemon
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` in the node's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT_S)

    def stop(self) -> None:
        try:
            self.call(self.daemon.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(TIMEOUT_S)
            self.loop.close()


def start_node(database: str) -> Node:
    """A node on `database`, started in a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="taskflowd-node", daemon=True)
    thread.start()

    async def build() -> Daemon:
        daemon = Daemon.build(node_settings(database))
        await daemon.start()
        return daemon

    try:
        daemon = asyncio.run_coroutine_threadsafe(build(), loop).result(TIMEOUT_S)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT_S)
        loop.close()
        raise
    return Node(f"http://127.0.0.1:{daemon.http.port}", daemon, loop, thread)


@pytest.fixture
def node(db_url: str) -> Iterator[Node]:
    """A node per SQL backend."""
    running = start_node(db_url)
    yield running
    running.stop()


@pytest.fixture
def sqlite_node(sqlite_url: str) -> Iterator[Node]:
    running = start_node(sqlite_url)
    yield running
    running.stop()


async def admin_api_key(url: str) -> str:
    """A new API key of the bootstrap admin (signing in with the password first)."""
    async with AsyncClient(url) as client:
        await client.auth.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        created = await client.api_keys.create("tests")
    return created.key


@pytest.fixture
async def admin_key(node: Node) -> str:
    return await admin_api_key(node.url)


@pytest.fixture
async def admin(node: Node, admin_key: str) -> AsyncIterator[AsyncClient]:
    """The admin's AsyncClient, authenticated with an API key."""
    async with AsyncClient(node.url, api_key=admin_key, retry=QUICK_RETRIES) as client:
        yield client
