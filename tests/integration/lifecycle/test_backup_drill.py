"""The backup drill: `taskflowd backup` of a running, encrypted node restores into a
working node (its data reads back, its users log in) when started with the same keys,
and refuses to start without them."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from taskflowd import commands
from taskflowd.config import AuthSettings, HttpSettings, SecuritySettings, Settings, WorkerSettings
from taskflowd.daemon import Daemon
from taskflowd.lifecycle.keys import KeysMissing
from tests.integration.queue.polling import eventually

EMAIL = "admin@example.com"
PASSWORD = "a long enough admin password"
SECRET = "drill-secret-payload"


def _settings(path: Path, keys: tuple[str, ...]) -> Settings:
    return Settings(
        database=f"sqlite:///{path}",
        admin_email=EMAIL,
        admin_password=PASSWORD,
        http=HttpSettings(host="127.0.0.1", port=0),
        auth=dataclasses.replace(AuthSettings(), bcrypt_rounds=4),
        worker=dataclasses.replace(WorkerSettings(), safety_poll_s=0.2),
        security=SecuritySettings(encryption_keys=keys),
    )


async def _login(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    async with http.post(
        f"{base}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}
    ) as response:
        assert response.status == 200, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['accessToken']}"}


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_a_backup_of_a_running_encrypted_node_restores(tmp_path: Path) -> None:
    keys = (base64.b64encode(os.urandom(32)).decode(),)
    live, copy = tmp_path / "live.db", tmp_path / "restored.db"
    node = Daemon.build(_settings(live, keys))
    await node.start()
    try:
        base = f"http://127.0.0.1:{node.http.port}"
        async with aiohttp.ClientSession() as http:
            auth = await _login(http, base)
            body = {"name": "drill", "handler": "echo", "payload": {"token": SECRET}}
            async with http.post(f"{base}/api/v1/tasks", json=body, headers=auth) as response:
                assert response.status == 201, await response.text()
                task = await response.json()

            async def finished() -> Any:
                page = await _get(http, f"{base}/api/v1/executions?taskId={task['id']}", auth)
                done = [e for e in page["items"] if e["status"] == "COMPLETED"]
                return done or None

            await eventually(finished, "the drill task's job completes")
            # The backup runs while the node serves, as `taskflowd backup FILE` runs it.
            args = argparse.Namespace(file=str(copy))
            assert await asyncio.to_thread(commands.backup, _settings(live, keys), args) == 0
    finally:
        await node.stop()
    assert SECRET.encode() not in copy.read_bytes()

    restored = Daemon.build(_settings(copy, keys))
    await restored.start()
    try:
        base = f"http://127.0.0.1:{restored.http.port}"
        async with aiohttp.ClientSession() as http:
            auth = await _login(http, base)
            got = await _get(http, f"{base}/api/v1/tasks/{task['id']}", auth)
            assert got["payload"] == {"token": SECRET}
            page = await _get(http, f"{base}/api/v1/executions?taskId={task['id']}", auth)
            assert [e["status"] for e in page["items"]] == ["COMPLETED"]
    finally:
        await restored.stop()

    keyless = Daemon.build(_settings(copy, ()))
    with pytest.raises(KeysMissing, match="does not hold"):
        await keyless.start()
