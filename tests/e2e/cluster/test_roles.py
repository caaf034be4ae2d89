"""Nodes with one role each form one scheduler: the API node accepts work, the worker
node runs it, the scheduler node fires cron ticks. A worker-only node serves probes and
metrics only; without a live scheduler node /ready says so; execution events reach the
API node's WebSocket clients although they happen on the worker node."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.e2e.cluster.conftest import Api, Cluster, jobs_counted
from tests.e2e.conftest import DaemonProcess, Daemons, eventually


async def collect_events(
    session: aiohttp.ClientSession, node: DaemonProcess, token: str, seen: list[dict[str, Any]]
) -> None:
    """Append every execution item node's event stream sends until cancelled."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.ws_connect(node.url("/api/v1/events"), headers=headers) as ws:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = message.json()
            if data.get("type") == "executions":
                seen.extend(data["items"])


async def ready_reason(api: Api, node: DaemonProcess) -> tuple[int, Any]:
    status, body = await api.ready(node)
    return status, body["checks"].get("scheduler")


@pytest.mark.slow
async def test_one_role_per_node(daemons: Daemons, pg_url: str, api: Api) -> None:
    cluster = Cluster(daemons, pg_url, "database")
    front = await cluster.astart("--role", "api")
    worker = await cluster.astart("--role", "worker")

    # No scheduler anywhere: both say why they are not ready.
    for node in (front, worker):
        status, check = await ready_reason(api, node)
        assert status == 503
        assert check["ok"] is False
        assert "no live node has the scheduler role" in check["reason"]

    # The worker node serves probes and metrics, not the API.
    for path in ("/health", "/metrics"):
        assert (await api.call(worker, "GET", path))[0] == 200, path
    for method, path in (
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/tasks"),
        ("GET", "/api/v1/stats"),
        ("GET", "/dashboard"),
    ):
        assert (await api.call(worker, method, path))[0] == 404, path

    token = await api.login(front)
    seen: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(trust_env=False) as session:
        listener = asyncio.create_task(collect_events(session, front, token, seen))
        try:
            status, task = await api.call(
                front, "POST", "/api/v1/tasks", token, {"name": "once", "payload": {"n": 1}}
            )
            assert status == 201, task

            async def completed_event() -> bool:
                return any(
                    i.get("taskId") == task["id"] and i.get("status") == "COMPLETED" for i in seen
                )

            # The job ran on the worker node; its events crossed to the API node.
            await eventually(completed_event, "the API node's socket to see the job complete")
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    assert await jobs_counted(api, [front, worker], "COMPLETED") == [0, 1]

    status, cron = await api.call(
        front,
        "POST",
        "/api/v1/tasks",
        token,
        {"name": "tick", "type": "RECURRING", "cronExpression": "*/1 * * * * *"},
    )
    assert status == 201, cron
    ticker = await cluster.astart("--role", "scheduler")

    async def all_ready() -> bool:
        return [(await api.ready(n))[0] for n in (front, worker, ticker)] == [200] * 3

    await eventually(all_ready, "/ready to answer 200 once a scheduler node runs")

    async def tick_ran() -> bool:
        status, page = await api.call(front, "GET", f"/api/v1/tasks/{cron['id']}/executions", token)
        return status == 200 and any(e["status"] == "COMPLETED" for e in page["items"])

    await eventually(tick_ran, "a cron tick to be enqueued and run")

    status, stats = await api.call(front, "GET", "/api/v1/stats", token)
    assert status == 200, stats
    roles = {n["id"]: (n["roles"], n["alive"]) for n in stats["nodes"]}
    assert roles == {
        front.node_id: (["api"], True),
        worker.node_id: (["worker"], True),
        ticker.node_id: (["scheduler"], True),
    }
    await cluster.stop_all()
