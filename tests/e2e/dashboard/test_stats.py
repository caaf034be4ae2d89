"""The overview's numbers on both databases: the event stream's statistics and the
per-minute series count what really finished, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Daemons


async def _stats(session: aiohttp.ClientSession, url: str, token: str) -> dict[str, Any]:
    async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "hello"
        while True:
            message = await ws.receive_json(timeout=10)
            if message["type"] == "stats":
                return dict(message)


async def test_statistics_count_finished_executions(daemons: Daemons, db_url: str) -> None:
    daemon = await daemons.astart("--database", db_url)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            daemon.url("/api/v1/auth/login"),
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        ) as response:
            token = (await response.json())["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        for handler, payload in (("echo", {"n": 1}), ("echo", {"n": 2}), ("fail", {})):
            async with session.post(
                daemon.url("/api/v1/tasks"),
                json={"name": handler, "handler": handler, "payload": payload, "maxRetries": 0},
                headers=headers,
            ) as response:
                assert response.status == 201
        deadline = time.monotonic() + 30
        while True:
            message = await _stats(session, daemon.url("/api/v1/events"), token)
            series, hour = message["series"], message["stats"]["throughput"]["1h"]
            counted = (sum(series["completed"]), sum(series["failed"]))
            if counted == (2, 1) and (hour["completed"], hour["failed"]) == (2, 1):
                break
            assert time.monotonic() < deadline, message
        assert series["completed"][-1] + series["completed"][-2] == 2  # this minute or the last
        assert len(series["completed"]) == len(series["failed"]) == 60
