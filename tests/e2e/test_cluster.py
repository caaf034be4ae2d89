"""Two daemons on one PostgreSQL database: each job runs once, each cron tick is
enqueued once."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from taskflowd.domain.entities import utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskType
from tests.e2e.conftest import Daemons, eventually, open_jobs

JOBS = 500
WINDOW_S = 10


async def _start_pair(daemons: Daemons, url: str) -> list[str]:
    pair = await asyncio.gather(
        daemons.astart("--database", url), daemons.astart("--database", url)
    )
    ids = [d.node_id for d in pair]
    assert all(ids) and len(set(ids)) == 2, ids
    return [i for i in ids if i]


async def _stop_all(daemons: Daemons) -> None:
    codes = await asyncio.gather(*(asyncio.to_thread(d.terminate) for d in daemons.started))
    assert codes == [0] * len(codes), [d.stderr for d in daemons.started]


@pytest.mark.slow
async def test_two_nodes_run_each_job_exactly_once(daemons: Daemons, pg_url: str) -> None:
    nodes = await _start_pair(daemons, pg_url)
    async with open_jobs(pg_url) as jobs:
        assert await jobs.node_ids() == set(nodes)
        tasks = []
        for start in range(0, JOBS, 25):
            tasks += await asyncio.gather(
                *(jobs.create(f"echo {i}", "echo", {"i": i}) for i in range(start, start + 25))
            )

        async def all_completed() -> bool:
            return await jobs.count_by_status() == {"COMPLETED": JOBS}

        await eventually(all_completed, f"{JOBS} jobs to complete")
        executions = await jobs.executions()
        assert Counter(e.task_id for e in executions) == {t.id: 1 for t in tasks}
        assert [e for e in executions if e.attempts != 1] == []
        assert sorted(e.result["i"] for e in executions) == list(range(JOBS))
        retried = await jobs.store.db.fetch("SELECT COUNT(*) AS n FROM retry_history")
        assert retried[0]["n"] == 0

    await _stop_all(daemons)


def _whole_seconds(start: datetime, end: datetime) -> list[datetime]:
    first = math.ceil(start.timestamp())
    return [datetime.fromtimestamp(s, UTC) for s in range(first, math.floor(end.timestamp()) + 1)]


@pytest.mark.slow
async def test_two_nodes_enqueue_each_cron_tick_once(daemons: Daemons, pg_url: str) -> None:
    nodes = await _start_pair(daemons, pg_url)
    async with open_jobs(pg_url) as jobs:
        task = await jobs.create(
            "every second", payload={"tick": True}, type=TaskType.RECURRING, cron="*/1 * * * * *"
        )
        # The window starts after the task's first tick, so its edges are whole seconds
        # both schedulers were already timing.
        t0 = datetime.fromtimestamp(math.ceil(utcnow().timestamp()) + 1, UTC)
        t1 = t0 + timedelta(seconds=WINDOW_S)

        async def past_window() -> bool:
            return any(e.scheduled_for >= t1 for e in await jobs.executions(task.id))

        await eventually(past_window, "the tick at the end of the window", WINDOW_S + 30)
        assert all(d.running for d in daemons.started), "both schedulers must run throughout"
        assert await jobs.node_ids() == set(nodes)

        window = sorted(
            e.scheduled_for for e in await jobs.executions(task.id) if t0 <= e.scheduled_for <= t1
        )
        assert window == _whole_seconds(t0, t1)

        async def window_completed() -> bool:
            found = [e for e in await jobs.executions(task.id) if t0 <= e.scheduled_for <= t1]
            return all(e.status is ExecutionStatus.COMPLETED for e in found)

        await eventually(window_completed, "every tick in the window to run")
        ran = [e for e in await jobs.executions(task.id) if t0 <= e.scheduled_for <= t1]
        assert [e.attempts for e in ran] == [1] * len(ran)

    await _stop_all(daemons)
