"""Two daemons on one PostgreSQL run 200 runs of a 10-step fan-out/fan-in workflow (start,
8 steps in parallel, join) as one: every step of every run has exactly one execution,
which succeeded, and every run succeeds. Both nodes hand steps to each other: a step
often ends on one node and its child is claimed by the other. (Claims of one uncapped org
no longer take turns on the org's row, and claiming a step no longer rewrites the
workflow's hidden task row.)"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from taskflowd.domain.enums import RunStatus
from taskflowd.queue.sql import SqlQueue
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.e2e.cluster.conftest import Cluster
from tests.e2e.conftest import Daemons, eventually, open_jobs

RUNS = 200
BATCH = 20
MIDDLE = tuple(f"part{i}" for i in range(8))
STEPS = [
    StepSpec("start"),
    *(StepSpec(key, depends_on=("start",)) for key in MIDDLE),
    StepSpec("join", depends_on=MIDDLE),
]
ENV = {"TASKFLOW_WORKER__LEASE_S": "15", "TASKFLOW_WORKER__CONCURRENCY": "8"}


@pytest.mark.slow
async def test_two_nodes_run_every_step_of_200_runs_exactly_once(
    daemons: Daemons, pg_url: str
) -> None:
    cluster = Cluster(daemons, pg_url, "database", ENV)
    nodes = await cluster.start_many(2)
    async with open_jobs(pg_url) as jobs:
        db = jobs.store.db
        service = WorkflowService(WorkflowRecords(db), SqlQueue(db), jobs.service.handlers)
        workflow = await service.create(jobs.actor, "fan out, fan in", "", STEPS)
        runs = []
        for _ in range(0, RUNS, BATCH):
            batch = [service.run(jobs.actor, workflow.id) for _ in range(BATCH)]
            runs += await asyncio.gather(*batch)

        async def all_finished() -> bool:
            found = await db.fetch(
                "SELECT status, COUNT(*) AS n FROM workflow_runs GROUP BY status"
            )
            return {r["status"]: int(r["n"]) for r in found} == {"SUCCEEDED": RUNS}

        await eventually(all_finished, f"{RUNS} runs to succeed", timeout_s=120)
        rows = await db.fetch(
            "SELECT workflow_run_id, step_key, status, attempts, lease_owner "
            "FROM job_executions WHERE workflow_run_id IS NOT NULL"
        )
        per_step = Counter((r["workflow_run_id"], r["step_key"]) for r in rows)
        assert set(per_step) == {(run.id, s.key) for run in runs for s in STEPS}
        assert set(per_step.values()) == {1}
        assert {(r["status"], r["attempts"]) for r in rows} == {("COMPLETED", 1)}
        retried = await db.fetch("SELECT COUNT(*) AS n FROM retry_history")
        assert retried[0]["n"] == 0
        sample = await service.get_run(jobs.actor, runs[-1].id)
        assert sample.status is RunStatus.SUCCEEDED
        upstream = next(s for s in sample.steps if s.key == "join").result
        assert set(upstream["upstream"]) == set(MIDDLE)
    assert all(d.running for d in nodes)
    await cluster.stop_all()
