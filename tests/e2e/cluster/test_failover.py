"""Any node can die: a cron task ticks exactly once per second while one node is killed
with SIGKILL and another restarted, and jobs running on a killed node are rescued by the
others once their lease expires."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from taskflowd.domain.entities import utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from tests.e2e.cluster.conftest import Api, Cluster, cluster_jobs, create_one_time
from tests.e2e.conftest import Daemons, eventually

WINDOW_S = 20


def whole_seconds(start: datetime, end: datetime) -> list[datetime]:
    first = math.ceil(start.timestamp())
    return [datetime.fromtimestamp(s, UTC) for s in range(first, math.floor(end.timestamp()) + 1)]


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - utcnow()).total_seconds()))


@pytest.mark.slow
async def test_cron_ticks_once_per_second_while_nodes_die_and_restart(
    daemons: Daemons, pg_url: str, queue_url: str
) -> None:
    cluster = Cluster(daemons, pg_url, queue_url)
    doomed, restarted, survivor = await cluster.start_many(3)
    async with cluster_jobs(pg_url, queue_url) as jobs:
        task = await jobs.create(
            "every second", payload={"tick": True}, type=TaskType.RECURRING, cron="*/1 * * * * *"
        )
        # The window starts after the task's first tick, on a whole second every
        # scheduler was already timing.
        t0 = datetime.fromtimestamp(math.ceil(utcnow().timestamp()) + 1, UTC)
        t1 = t0 + timedelta(seconds=WINDOW_S)

        await sleep_until(t0 + timedelta(seconds=5))
        await asyncio.to_thread(doomed.kill9)
        await sleep_until(t0 + timedelta(seconds=10))
        assert await asyncio.to_thread(restarted.terminate) == 0
        replacement = await cluster.astart()

        async def past_window() -> bool:
            return any(e.scheduled_for >= t1 for e in await jobs.executions(task.id))

        await eventually(past_window, "the tick at the end of the window", WINDOW_S + 30)
        ticks = [
            e.scheduled_for for e in await jobs.executions(task.id) if t0 <= e.scheduled_for <= t1
        ]
        assert sorted(ticks) == whole_seconds(t0, t1), Counter(ticks)

        async def window_completed() -> bool:
            found = [e for e in await jobs.executions(task.id) if t0 <= e.scheduled_for <= t1]
            return all(e.status is ExecutionStatus.COMPLETED for e in found)

        # A tick that was running on the killed node completes after its lease expired.
        await eventually(window_completed, "every tick in the window to run")
        assert survivor.running and replacement.running
        node_ids = await jobs.node_ids()
        assert {survivor.node_id, replacement.node_id} <= node_ids
        assert restarted.node_id not in node_ids, "a clean stop unregisters the node"
    await cluster.stop_all()


@pytest.mark.slow
async def test_jobs_of_a_killed_node_are_rescued_by_the_others(
    daemons: Daemons, pg_url: str, queue_url: str, api: Api
) -> None:
    # Two slots per node and more sleepers than slots: every node holds running jobs.
    cluster = Cluster(daemons, pg_url, queue_url, {"TASKFLOW_WORKER__CONCURRENCY": "2"})
    doomed, *others = await cluster.start_many(3)
    token = await api.login(others[0])
    async with cluster_jobs(pg_url, queue_url) as jobs:
        tasks = await create_one_time(jobs, 9, "sleep", {"seconds": 2})

        async def doomed_holds_jobs() -> list[str] | None:
            found = await jobs.store.db.fetch(
                "SELECT id FROM job_executions WHERE status = 'PROCESSING' AND lease_owner = $1",
                doomed.node_id,
            )
            return [r["id"] for r in found] or None

        held = await eventually(doomed_holds_jobs, "the doomed node to run jobs")
        await asyncio.to_thread(doomed.kill9)

        # Silent for node_ttl_s (3 s): the others list it as dead for as long again.
        async def listed_dead() -> bool:
            status, body = await api.call(others[0], "GET", "/api/v1/stats", token)
            assert status == 200, body
            alive = {n["id"]: n["alive"] for n in body["nodes"]}
            return alive == {doomed.node_id: False, **{n.node_id: True for n in others}}

        await eventually(listed_dead, "the killed node to count as dead", interval_s=0.2)

        async def all_completed() -> bool:
            return await jobs.count_by_status() == {"COMPLETED": len(tasks)}

        await eventually(all_completed, "every job, the rescued ones too, to complete")
        executions = {e.id: e for e in await jobs.executions()}
        assert Counter(e.task_id for e in executions.values()) == {t.id: 1 for t in tasks}
        for execution_id in held:
            rescued = executions[execution_id]
            history = await jobs.store.retry_history(execution_id)
            assert [h.error["type"] for h in history] == ["lease_expired"], history
            assert rescued.attempts == 2 and rescued.rescues == 1, rescued
            assert doomed.node_id in str(history[0].error["message"])
        statuses = await jobs.store.db.fetch("SELECT DISTINCT status FROM tasks")
        assert [r["status"] for r in statuses] == [TaskStatus.COMPLETED.value]

    async def forgotten() -> bool:
        _, body = await api.call(others[1], "GET", "/api/v1/stats", token)
        return {n["id"] for n in body["nodes"]} == {n.node_id for n in others}

    await eventually(forgotten, "the killed node to be forgotten")
    await cluster.stop_all()
