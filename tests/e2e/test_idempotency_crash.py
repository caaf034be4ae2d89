"""A create cut by kill -9 leaves no trace of its Idempotency-Key: the key is written in
the create's own transaction, so a retry on a restarted node runs afresh instead of
meeting a key "in progress" (issue 12, item 6, reproduced as it was found)."""

from __future__ import annotations

import asyncio
import signal
import uuid

import aiohttp
import asyncpg
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Daemons, eventually

TASK = {"name": "crash-safe", "type": "ONE_TIME", "handler": "echo", "payload": {"n": 1}}


async def _login(http: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with http.post(
        f"{url}/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    ) as response:
        assert response.status == 200, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['accessToken']}"}


@pytest.mark.slow
async def test_kill_9_between_key_and_task_lets_the_retry_run_afresh(
    daemons: Daemons, pg_url: str
) -> None:
    first = await daemons.astart("--database", pg_url)
    key = {"Idempotency-Key": f"crash-{uuid.uuid4().hex}"}
    blocker = await asyncpg.connect(pg_url)
    try:
        async with aiohttp.ClientSession() as http:
            headers = await _login(http, first.url(""))
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("LOCK TABLE tasks IN SHARE MODE")  # inserts wait on it

            async def create() -> int:
                async with http.post(
                    first.url("/api/v1/tasks"), json=TASK, headers=headers | key
                ) as response:
                    return response.status

            cut = asyncio.create_task(create())

            async def create_waits_on_the_lock() -> bool:
                waiting = await blocker.fetchval(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'tasks' AND NOT l.granted"
                )
                return bool(waiting)

            await eventually(create_waits_on_the_lock, "the create to wait for the table lock")
            assert await asyncio.to_thread(first.kill9) == -signal.SIGKILL
            with pytest.raises(aiohttp.ClientError):
                await cut
            await transaction.rollback()

        second = await daemons.astart("--database", pg_url)
        async with aiohttp.ClientSession() as http:
            headers = await _login(http, second.url(""))
            async with http.post(
                second.url("/api/v1/tasks"), json=TASK, headers=headers | key
            ) as response:
                assert response.status == 201, await response.text()
                assert "Idempotent-Replayed" not in response.headers
                created = await response.json()
            async with http.post(
                second.url("/api/v1/tasks"), json=TASK, headers=headers | key
            ) as response:
                assert response.status == 201
                assert response.headers["Idempotent-Replayed"] == "true"
                assert (await response.json())["id"] == created["id"]
        names = await blocker.fetch("SELECT id FROM tasks WHERE name = $1", TASK["name"])
        assert [row["id"] for row in names] == [created["id"]]
    finally:
        await blocker.close()
