"""Real services for tests: PostgreSQL databases cloned from a migrated template, Redis.

A service that does not answer skips its tests with the reason on a laptop, and fails
them under CI (CI=true), where every service must run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_ADMIN_URL = os.environ.get("TASKFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TASKFLOW_TEST_REDIS", "redis://127.0.0.1:6379")


def unavailable(service: str, reason: str) -> None:
    """Skip (laptop) or fail (CI) the current test because `service` is unreachable."""
    message = f"{service} is not reachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI requires it)")
    pytest.skip(message)


def reachable(url: str, default_port: int) -> str | None:
    """None when a TCP connection to the URL's host opens, else the reason."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return None
    except OSError as exc:
        return str(exc)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


# Each DROP DATABASE forces a checkpoint of the whole server (seconds under load);
# drops sent at the same moment share one. So databases are dropped at least this many
# at a time, by a thread of their own (no test waits for a checkpoint at its teardown),
# one batch at a time: what is released while a batch drops goes with the next one.
DROP_BATCH = 10


class PostgresDatabases:
    """Creates per-test databases as copies of one migrated template (fast: no DDL per test)
    and drops them in concurrent batches (fast: one checkpoint per batch, not per test) in
    the background; `drop_all` waits for those drops and fails if one did."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.template = f"taskflowd_tpl_{uuid.uuid4().hex[:10]}"
        self.live: set[str] = set()
        self.released: list[str] = []
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-databases")
        self._drops: list[Future[None]] = []

    async def _admin(self, *statements: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def build_template(self) -> None:
        from taskflowd.store.db import open_database
        from taskflowd.store.migrate import migrate

        await self._admin(f'CREATE DATABASE "{self.template}"')
        db = open_database(with_database(self.admin_url, self.template))
        await db.connect()
        try:
            await migrate(db)
        finally:
            await db.close()

    async def create(self) -> str:
        name = f"taskflowd_t_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.live.add(name)
        return with_database(self.admin_url, name)

    async def drop(self, url: str) -> None:
        """Drop the database at `url` now."""
        name = urlsplit(url).path.lstrip("/")
        self.live.discard(name)
        await self._drop_concurrently([name])

    async def release(self, url: str) -> None:
        """The test using `url` is over: its database goes with the next batch, dropped in
        the background."""
        self.released.append(urlsplit(url).path.lstrip("/"))
        dropping = bool(self._drops) and not self._drops[-1].done()
        if len(self.released) >= DROP_BATCH and not dropping:
            batch, self.released = self.released, []
            self.live.difference_update(batch)
            self._drops.append(self._dropper.submit(asyncio.run, self._drop_concurrently(batch)))

    async def _drop_concurrently(self, names: list[str]) -> None:
        await asyncio.gather(
            *(self._admin(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)') for n in names)
        )

    def drop_all(self) -> None:
        """Wait for the background drops, then drop every database still here."""
        self._dropper.shutdown(wait=True)
        asyncio.run(self._drop_concurrently([*self.live, self.template]))
        self.live.clear()
        for done in self._drops:
            done.result()


async def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete every key under `prefix` (a test's own keys; never the whole server)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        doomed = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(doomed), 500):
            await client.unlink(*doomed[start : start + 500])
        return len(doomed)
    finally:
        await client.aclose()
