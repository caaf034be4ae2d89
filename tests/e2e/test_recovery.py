"""kill -9 while jobs run, restart on the same database: every job completes, none is
lost, and the jobs that were running when the node died count the rescue as an attempt."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import aiohttp
import pytest

from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from tests.e2e.conftest import Daemons, Jobs, eventually, open_jobs
from tests.e2e.test_idempotency_crash import _login

SLEEPERS = 50
ECHOES = 10
# Few slots, so the 50 half-second jobs take seconds to drain and the kill lands while
# some are done, some run and some wait.
ENV = {"TASKFLOW_WORKER__CONCURRENCY": "8"}


async def _sessions_settled(jobs: Jobs) -> bool:
    """No other session of the database is running a statement or inside a transaction."""
    row = await jobs.store.db.fetchrow(
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
        "AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"
    )
    return row is not None and int(row["n"]) == 0


@pytest.mark.slow
async def test_kill_9_while_jobs_run_loses_nothing(daemons: Daemons, db_url: str) -> None:
    first = await daemons.astart("--database", db_url, env=ENV)
    async with open_jobs(db_url) as jobs:
        tasks = [
            await jobs.create(f"sleep {i}", "sleep", {"seconds": 0.5}) for i in range(SLEEPERS)
        ]
        tasks += [await jobs.create(f"echo {i}", "echo", {"i": i}) for i in range(ECHOES)]

        async def busy() -> dict[str, int] | None:
            counts = await jobs.count_by_status()
            running = counts.get("PROCESSING", 0) and counts.get("COMPLETED", 0)
            return counts if running else None

        await eventually(busy, "some jobs done and some running")
        assert await asyncio.to_thread(first.kill9) == -signal.SIGKILL
        if jobs.store.db.dialect == "postgresql":
            # A COMMIT the node sent just before it died is still carried out by its
            # server session: the state at the kill is the one after those end.
            await eventually(
                lambda: _sessions_settled(jobs), "the killed node's last transactions to end"
            )

        at_kill = await jobs.executions()
        running = {e.id for e in at_kill if e.status is ExecutionStatus.PROCESSING}
        assert running, "the kill should land while jobs run"
        assert len(at_kill) == len(tasks)

        second = await daemons.astart("--database", db_url, env=ENV)

        async def all_completed() -> bool:
            return await jobs.count_by_status() == {"COMPLETED": len(tasks)}

        await eventually(all_completed, "every job to complete after the restart")
        executions = await jobs.executions()
        assert Counter(e.task_id for e in executions) == {t.id: 1 for t in tasks}
        for execution in executions:
            if execution.id in running:
                history = await jobs.store.retry_history(execution.id)
                assert execution.attempts >= 2, execution
                assert "lease_expired" in [h.error["type"] for h in history], history
            else:
                assert execution.attempts == 1, execution
        echo_results = {e.task_id: e.result for e in executions if e.handler == "echo"}
        assert sorted(r["i"] for r in echo_results.values()) == list(range(ECHOES))
        statuses = await jobs.store.db.fetch("SELECT status FROM tasks")
        assert {r["status"] for r in statuses} == {TaskStatus.COMPLETED.value}

        assert await asyncio.to_thread(second.terminate) == 0


@pytest.mark.slow
async def test_kill_9_right_after_a_run_claimed_as_it_was_added_still_runs_it(
    daemons: Daemons, db_url: str
) -> None:
    """The run's claim commits with its insert (issue 11): the job holds a lease the dead
    node never renews, and the next node runs it once the lease expires."""
    env = {"TASKFLOW_WORKER__LEASE_S": "2"}
    first = await daemons.astart("--database", db_url, env=env)
    async with open_jobs(db_url) as jobs:
        task = await jobs.create("held", "sleep", {"seconds": 30}, type=TaskType.ON_DEMAND)
        async with aiohttp.ClientSession() as http:
            headers = await _login(http, first.url(""))
            async with http.post(
                first.url(f"/api/v1/tasks/{task.id}/run"), json={}, headers=headers
            ) as response:
                assert response.status == 202, await response.text()
                run_id = (await response.json())["id"]
        assert await asyncio.to_thread(first.kill9) == -signal.SIGKILL
        if jobs.store.db.dialect == "postgresql":
            await eventually(
                lambda: _sessions_settled(jobs), "the killed node's last transactions to end"
            )
        [claimed] = await jobs.executions(task.id)
        assert (claimed.id, claimed.status) == (run_id, ExecutionStatus.PROCESSING)

        await jobs.store.db.execute(
            "UPDATE job_executions SET payload = $1 WHERE id = $2",
            jobs.store.db.codec.dump({"seconds": 0}),
            run_id,
        )
        second = await daemons.astart("--database", db_url, env=env)

        async def completed() -> bool:
            return await jobs.count_by_status() == {"COMPLETED": 1}

        await eventually(completed, "the run to complete after the restart")
        [done] = await jobs.executions(task.id)
        assert done.attempts == 2
        history = await jobs.store.retry_history(run_id)
        assert [h.error["type"] for h in history] == ["lease_expired"]
        assert await asyncio.to_thread(second.terminate) == 0
