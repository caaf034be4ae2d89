"""Workflows on every queue a node can run: with the Redis queue (and with the database
queue, for comparison), two nodes run a diamond workflow through the HTTP API, each step
of each run once, and the last step sees its upstream results."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.e2e.cluster.conftest import Api, Cluster
from tests.e2e.conftest import Daemons, eventually, open_jobs

RUNS = 30
STEPS = [
    {"key": "fetch", "handler": "echo", "payload": {"n": 1}},
    {"key": "left", "handler": "echo", "dependsOn": ["fetch"]},
    {"key": "right", "handler": "sleep", "payload": {"seconds": 0}, "dependsOn": ["fetch"]},
    {"key": "join", "handler": "echo", "dependsOn": ["left", "right"]},
]


@pytest.mark.slow
async def test_two_nodes_run_a_diamond_workflow_on_the_queue(
    daemons: Daemons, pg_url: str, queue_url: str, api: Api
) -> None:
    cluster = Cluster(daemons, pg_url, queue_url)
    nodes = await cluster.start_many(2)
    token = await api.login(nodes[0])
    body = {"name": "diamond", "steps": STEPS}
    status, workflow = await api.call(nodes[0], "POST", "/api/v1/workflows", token, body)
    assert status == 201, workflow
    path = f"/api/v1/workflows/{workflow['id']}/run"
    started = await asyncio.gather(
        *(api.call(nodes[i % 2], "POST", path, token) for i in range(RUNS))
    )
    assert {s for s, _ in started} == {202}, started

    async with open_jobs(pg_url) as jobs:
        db = jobs.store.db

        async def all_succeeded() -> bool:
            found = await db.fetch(
                "SELECT status, COUNT(*) AS n FROM workflow_runs GROUP BY status"
            )
            return {r["status"]: int(r["n"]) for r in found} == {"SUCCEEDED": RUNS}

        await eventually(all_succeeded, f"{RUNS} runs to succeed", timeout_s=90)
        rows = await db.fetch(
            "SELECT workflow_run_id, step_key, status FROM job_executions "
            "WHERE workflow_run_id IS NOT NULL"
        )
    per_step = Counter((r["workflow_run_id"], r["step_key"]) for r in rows)
    assert len(per_step) == RUNS * len(STEPS) and set(per_step.values()) == {1}
    assert {r["status"] for r in rows} == {"COMPLETED"}
    status, run = await api.call(
        nodes[1], "GET", f"/api/v1/workflow-runs/{started[0][1]['id']}", token
    )
    assert status == 200, run
    join = next(s for s in run["steps"] if s["key"] == "join")
    assert join["result"]["upstream"]["right"] == {"seconds": 0}
    assert join["result"]["upstream"]["left"]["upstream"] == {
        "fetch": {"payload": {"n": 1}, "upstream": {}}
    }
    await cluster.stop_all()
