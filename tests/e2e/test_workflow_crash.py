"""kill -9 of the daemon while workflow runs hand steps to each other, restart on the
same database: every run completes, each step ran under exactly one execution."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest

from taskflowd.domain.enums import RunStatus
from taskflowd.queue.sql import SqlQueue
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.e2e.conftest import Daemons, eventually, open_jobs

CHAIN = 25
RUNS = 4
STEP_S = 0.1
ENV = {"TASKFLOW_WORKER__CONCURRENCY": "4"}


@pytest.mark.slow
async def test_kill_9_between_steps_loses_and_repeats_none(daemons: Daemons, db_url: str) -> None:
    first = await daemons.astart("--database", db_url, env=ENV)
    async with open_jobs(db_url) as jobs:
        db = jobs.store.db
        service = WorkflowService(WorkflowRecords(db), SqlQueue(db), jobs.service.handlers)
        # Each step takes 0.1 s, so the first half of the runs lasts over a second and the
        # poll sees the daemon midway even when a loaded machine delays it; with 20 ms steps
        # a CI run once passed that window between two polls.
        nap = {"seconds": STEP_S}
        steps = [
            StepSpec("s0", "sleep", nap),
            *(StepSpec(f"s{i}", "sleep", nap, depends_on=(f"s{i - 1}",)) for i in range(1, CHAIN)),
        ]
        workflow = await service.create(jobs.actor, "chain", "", steps)
        runs = [await service.run(jobs.actor, workflow.id) for _ in range(RUNS)]

        async def midway() -> bool:
            done = await db.fetchrow(
                "SELECT COUNT(*) AS n FROM job_executions WHERE workflow_run_id IS NOT NULL "
                "AND status = 'COMPLETED'"
            )
            return done is not None and 0 < int(done["n"]) < CHAIN * RUNS // 2

        await eventually(midway, "some steps done, most still ahead")
        assert await asyncio.to_thread(first.kill9) == -signal.SIGKILL
        second = await daemons.astart("--database", db_url, env=ENV)

        async def all_done() -> bool:
            found = [await service.get_run(jobs.actor, r.id) for r in runs]
            return all(r.status is not RunStatus.RUNNING for r in found)

        await eventually(all_done, "every run to finish after the restart", 120)
        for run in runs:
            found = await service.get_run(jobs.actor, run.id)
            assert found.status is RunStatus.SUCCEEDED, found
            assert {s.status for s in found.steps} == {"COMPLETED"}
        rows = await db.fetch(
            "SELECT workflow_run_id, step_key FROM job_executions WHERE workflow_run_id IS NOT NULL"
        )
        counts = Counter((r["workflow_run_id"], r["step_key"]) for r in rows)
        assert len(counts) == CHAIN * RUNS and set(counts.values()) == {1}
        assert await asyncio.to_thread(second.terminate) == 0
