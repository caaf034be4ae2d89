"""Two daemons on one PostgreSQL database share workflow runs: steps end on both nodes at
once, and still every step of every run has exactly one successful execution."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from taskflowd.queue.sql import SqlQueue
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.rules import RunStatus
from taskflowd.workflows.service import WorkflowService
from tests.e2e.conftest import Daemons, eventually, open_jobs

RUNS = 20
WIDE = 8  # start, 8 in parallel, join: a 10-step fan-out / fan-in


@pytest.mark.slow
async def test_two_nodes_run_each_step_once(daemons: Daemons, pg_url: str) -> None:
    pair = await asyncio.gather(
        daemons.astart("--database", pg_url), daemons.astart("--database", pg_url)
    )
    async with open_jobs(pg_url) as jobs:
        db = jobs.store.db
        service = WorkflowService(WorkflowRecords(db), SqlQueue(db), jobs.service.handlers)
        wide = [StepSpec(f"w{i}", depends_on=("start",)) for i in range(WIDE)]
        steps = [StepSpec("start"), *wide, StepSpec("join", depends_on=tuple(s.key for s in wide))]
        workflow = await service.create(jobs.actor, "fan", "", steps)
        runs = [await service.run(jobs.actor, workflow.id) for _ in range(RUNS)]

        async def all_done() -> bool:
            row = await db.fetchrow(
                "SELECT COUNT(*) AS n FROM workflow_runs WHERE status = $1", "RUNNING"
            )
            return row is not None and int(row["n"]) == 0

        try:
            await eventually(all_done, "every run to finish", 100)
        except AssertionError:
            states = await db.fetch(
                "SELECT status, step_key, COUNT(*) AS n FROM job_executions "
                "GROUP BY status, step_key"
            )
            decided = await db.fetch(
                "SELECT decision, COUNT(*) AS n FROM workflow_steps GROUP BY decision"
            )
            raise AssertionError([dict(r) for r in [*states, *decided]]) from None
        for run in runs:
            found = await service.get_run(jobs.actor, run.id)
            assert found.status is RunStatus.SUCCEEDED, found
        rows = await db.fetch(
            "SELECT workflow_run_id, step_key, status, lease_owner FROM job_executions "
            "WHERE workflow_run_id IS NOT NULL"
        )
        counts = Counter((r["workflow_run_id"], r["step_key"]) for r in rows)
        assert len(counts) == RUNS * (WIDE + 2) and set(counts.values()) == {1}
        assert {r["status"] for r in rows} == {"COMPLETED"}
        claimed_by = await db.fetch(
            "SELECT DISTINCT e.lease_owner FROM retry_history h "
            "JOIN job_executions e ON e.id = h.execution_id"
        )
        assert claimed_by == []
    codes = await asyncio.gather(*(asyncio.to_thread(d.terminate) for d in pair))
    assert codes == [0, 0]
