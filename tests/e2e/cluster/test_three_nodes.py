"""Three daemons behave as one: 5,000 one-time jobs, each completed exactly once; each
node lists the others in /api/v1/stats."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.e2e.cluster.conftest import Api, Cluster, cluster_jobs, create_one_time
from tests.e2e.conftest import Daemons, eventually

JOBS = 5000
NODES = 3
# Not a rescue test: leases long enough that a loaded machine's slow group commit
# cannot look like a dead node (an outcome waiting for its commit is not renewed).
ENV = {"TASKFLOW_WORKER__LEASE_S": "15"}


@pytest.mark.slow
async def test_three_nodes_run_each_job_exactly_once(
    daemons: Daemons, pg_url: str, queue_url: str, api: Api
) -> None:
    cluster = Cluster(daemons, pg_url, queue_url, ENV)
    nodes = await cluster.start_many(NODES)
    token = await api.login(nodes[0])
    status, stats = await api.call(nodes[-1], "GET", "/api/v1/stats", token)
    assert status == 200, stats
    assert {n["id"] for n in stats["nodes"] if n["alive"]} == {n.node_id for n in nodes}

    async with cluster_jobs(pg_url, queue_url) as jobs:
        tasks = await create_one_time(jobs, JOBS)

        async def all_completed() -> bool:
            return await jobs.count_by_status() == {"COMPLETED": JOBS}

        await eventually(all_completed, f"{JOBS} jobs to complete", timeout_s=120)
        executions = await jobs.executions()
        assert Counter(e.task_id for e in executions) == {t.id: 1 for t in tasks}
        assert [e for e in executions if e.attempts != 1] == []
        assert sorted(e.result["i"] for e in executions) == list(range(JOBS))
        retried = await jobs.store.db.fetch("SELECT COUNT(*) AS n FROM retry_history")
        assert retried[0]["n"] == 0

    assert all(d.running for d in nodes)
    await cluster.stop_all()
