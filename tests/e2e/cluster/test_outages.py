"""Backends go away and come back: while PostgreSQL is down no node exits, /ready says
503 naming the database, nothing new is accepted; once it is back /ready is 200 again
and every job accepted before completes, each exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from tests.e2e.cluster.conftest import Api, Cluster, cluster_jobs, create_one_time
from tests.e2e.conftest import DaemonProcess, Daemons, eventually
from tests.integration.ops.private_pg import PrivatePostgres

JOBS = 600
OUTAGE_S = 10.0
# 2 nodes x 4 slots of 0.1 s jobs: the backlog lasts well past the start of the outage.
ENV = {"TASKFLOW_WORKER__CONCURRENCY": "4"}


async def ready_states(api: Api, nodes: list[DaemonProcess]) -> list[tuple[int, Any]]:
    return [await api.ready(node) for node in nodes]


@pytest.mark.slow
async def test_postgresql_outage_under_load_loses_nothing(
    daemons: Daemons, private_pg: PrivatePostgres, queue_url: str, api: Api
) -> None:
    url = private_pg.url
    cluster = Cluster(daemons, url, queue_url, ENV)
    nodes = await cluster.start_many(2)
    token = await api.login(nodes[0])
    async with cluster_jobs(url, queue_url) as jobs:
        tasks = await create_one_time(jobs, JOBS, "sleep", {"seconds": 0.1})

        async def under_way() -> bool:
            return (await jobs.count_by_status()).get("COMPLETED", 0) >= 100

        await eventually(under_way, "the first jobs to complete")

    await private_pg.stop()
    outage = asyncio.create_task(asyncio.sleep(OUTAGE_S))

    async def not_ready() -> list[tuple[int, Any]] | None:
        states = await ready_states(api, nodes)
        return states if all(status == 503 for status, _ in states) else None

    for _, body in await eventually(not_ready, "/ready to answer 503 on every node"):
        assert body["checks"]["database"]["ok"] is False, body
        assert body["checks"]["database"]["reason"], body
    status, body = await api.call(
        nodes[1], "POST", "/api/v1/tasks", token, {"name": "during", "handler": "echo"}
    )
    assert status == 503, body  # refused, not accepted and lost
    await outage
    assert all(node.running for node in nodes), "no node may exit during an outage"

    await private_pg.start()

    async def ready() -> bool:
        return all(status == 200 for status, _ in await ready_states(api, nodes))

    await eventually(ready, "/ready to answer 200 on every node again")
    async with cluster_jobs(url, queue_url) as jobs:

        async def all_completed() -> bool:
            return await jobs.count_by_status() == {"COMPLETED": JOBS}

        await eventually(all_completed, "every accepted job to complete", timeout_s=90)
        executions = await jobs.executions()
        assert Counter(e.task_id for e in executions) == {t.id: 1 for t in tasks}
    assert all(node.running for node in nodes)
    await cluster.stop_all()
