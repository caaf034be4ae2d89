"""Misfires: ticks a recurring task missed while every scheduler was down are handled by
its `misfirePolicy` (DESIGN.md §4): RUN_ONCE (default), SKIP, or RUN_ALL (bounded)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from taskflowd.domain.entities import Execution, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, MisfirePolicy, TaskType
from tests.integration.engine.harness import EngineFactory, spec

DOWNTIME_S = 30
RUN_ALL_LIMIT = 3


@pytest.mark.parametrize(
    ("policy", "catch_up_runs"),
    [
        (MisfirePolicy.RUN_ONCE, 1),
        (MisfirePolicy.SKIP, 0),
        (MisfirePolicy.RUN_ALL, RUN_ALL_LIMIT),
    ],
)
async def test_missed_ticks_follow_the_misfire_policy(
    make_engine: EngineFactory, admin: User, policy: MisfirePolicy, catch_up_runs: int
) -> None:
    # Grace 0: every tick due before the first scheduler pass counts as missed.
    engine = await make_engine(
        start=False, scheduler={"misfire_grace_s": 0.0, "run_all_limit": RUN_ALL_LIMIT}
    )
    task = await engine.tasks.create(
        admin,
        spec(TaskType.RECURRING, cron_expression="* * * * * *", misfire_policy=policy),
    )
    missed_from = utcnow().replace(microsecond=0) - timedelta(seconds=DOWNTIME_S)
    await engine.store.update_task(dataclasses.replace(task, next_run_at=missed_from), task.status)

    # The first scheduler pass after the downtime, with no lookahead: everything it
    # enqueues is catch-up, and regular ticks come after `back_at`.
    back_at = utcnow()
    await engine.timer.run_due(back_at)
    after_pass = await engine.task(task.id)
    assert after_pass.next_run_at is not None and after_pass.next_run_at > back_at
    await engine.start()

    async def regular_ticks_done() -> list[Execution] | None:
        found = await engine.executions(task.id)
        regular = [
            e for e in found if e.scheduled_for > back_at and e.status is ExecutionStatus.COMPLETED
        ]
        return found if regular else None

    found = await engine.wait_for(regular_ticks_done, "a regular tick after the downtime")

    catch_up = sorted(e.scheduled_for for e in found if e.scheduled_for <= back_at)
    assert len(catch_up) == catch_up_runs, catch_up
    if catch_up:
        # The most recent missed instants run, never older ones.
        assert catch_up[-1] > back_at - timedelta(seconds=1)
        assert catch_up == [
            catch_up[-1] - timedelta(seconds=n) for n in reversed(range(len(catch_up)))
        ]
        assert catch_up[0] >= missed_from
    ticks = [e.scheduled_for for e in found]
    assert len(set(ticks)) == len(ticks)
    for execution in found:
        if execution.scheduled_for <= back_at:
            done = await engine.wait_for_status(execution.id, ExecutionStatus.COMPLETED)
            assert done.started_at is not None
